"""Small pieces shared by the Glue provider's parts: run-record tracking, ids, S3 paths, moto's records."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from etl_localcloud.core.clock import iso, utcnow
from etl_localcloud.core.errors import client_error_code
from etl_localcloud.glue.exceptions import EntityNotFoundException, InvalidInputException

__all__ = ["utcnow", "iso", "new_job_run_id", "new_workflow_run_id", "split_s3", "moto_record", "batch_get",
           "Tracked", "state_version", "take_back"]

_changes = [0]  # bumped on every change of a run record: the persister snapshots when it moves


def state_version() -> int:
    """A number that changes whenever a job run, crawl or workflow run record changes."""
    return _changes[0]


class Tracked:
    """Mixin for run records: setting any attribute counts as a change (see :func:`state_version`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _changes[0] += 1


class _Interruptible(Protocol):
    def interrupt(self, reason: str) -> bool: ...


R = TypeVar("R", bound=_Interruptible)


def take_back(saved: dict[str, list[R]], into: dict[str, list[R]], reason: str) -> list[R]:
    """Put saved run records (name -> records) back into ``into``; those in flight end with ``reason``.

    Returns the records that were in flight (``record.interrupt(reason)`` said so).
    """
    interrupted = [r for records in saved.values() for r in records if r.interrupt(reason)]
    into.update({name: list(records) for name, records in saved.items()})
    return interrupted


def new_job_run_id() -> str:
    """``jr_`` + 64 hex digits, the shape of a Glue job run id."""
    return "jr_" + secrets.token_hex(32)


def new_workflow_run_id() -> str:
    """``wr_`` + 64 hex digits, the shape of a Glue workflow run id."""
    return "wr_" + secrets.token_hex(32)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``.

    Raises
    ------
    InvalidInputException
        When ``uri`` is not an ``s3://`` URI.
    """
    if not uri.startswith(("s3://", "s3a://", "s3n://")):
        raise InvalidInputException(f"not an S3 path: {uri}")
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def moto_record(fetch: Callable[[], dict[str, Any]], key: str, missing: str) -> dict[str, Any]:
    """``fetch()[key]`` (a record moto keeps: a job, crawler, workflow, database) as a new dict.

    Raises
    ------
    EntityNotFoundException
        With the message ``missing`` when moto has no such record.
    """
    try:
        return dict(fetch()[key])
    except Exception as exc:
        if client_error_code(exc) == "EntityNotFoundException":
            raise EntityNotFoundException(missing) from None
        raise


def batch_get(names: list[str], get: Callable[[str], dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``Batch*`` operations' answer: the records found, and the names ``get`` did not find."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in names:
        try:
            found.append(get(name))
        except EntityNotFoundException:
            missing.append(name)
    return found, missing

"""Small pieces shared by the Glue provider's parts: run-record tracking, ids, S3 paths, moto's records."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from etl_localcloud.core.clock import iso, utcnow
from etl_localcloud.core.errors import client_error_code
from etl_localcloud.glue.exceptions import EntityNotFoundException, InvalidInputException

__all__ = ["utcnow", "iso", "new_job_run_id", "new_workflow_run_id", "split_s3", "moto_record", "batch_get",
           "Tracked", "state_version", "RunBook"]

_changes = [0]  # bumped on every change of a run record: the persister snapshots when it moves


def state_version() -> int:
    """A number that changes whenever a job run, crawl or workflow run record changes."""
    return _changes[0]


class Tracked:
    """Mixin for run records: setting any attribute counts as a change (see :func:`state_version`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _changes[0] += 1


class RunRecord(Protocol):
    """What a :class:`RunBook` needs of a run record (job run, crawl, workflow run)."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str: ...  # the job, crawler or workflow the run belongs to

    @property
    def finished(self) -> bool: ...

    def interrupt(self, reason: str) -> bool: ...  # end it if in flight; True when it was


R = TypeVar("R", bound=RunRecord)


class RunBook(Generic[R]):
    """The run records of one kind: by owner (oldest first) and by id, under one lock.

    ``owner_record(owner)`` raises ``EntityNotFoundException`` for an unknown owner (the API's
    look-ups check the owner first, as Glue does); ``missing`` is the message for an unknown run,
    formatted with ``owner`` and ``run_id``. ``lock`` (re-entrant) also guards the state changes
    of the records; a snapshot is ``{owner: [records]}``.
    """

    def __init__(self, owner_record: Callable[[str], Any], missing: str) -> None:
        self.owner_record = owner_record
        self.missing = missing
        self.lock = threading.RLock()
        self._by_owner: dict[str, list[R]] = {}
        self._by_id: dict[str, R] = {}

    def add(self, run: R) -> None:
        with self.lock:
            self._by_owner.setdefault(run.owner, []).append(run)
            self._by_id[run.id] = run

    def get(self, owner: str, run_id: str) -> R | None:
        """The run ``run_id`` if it belongs to ``owner``."""
        with self.lock:
            run = self._by_id.get(run_id)
        return run if run is not None and run.owner == owner else None

    def find(self, owner: str, run_id: str) -> R:
        """The run ``run_id`` of ``owner``, for the API: ``EntityNotFoundException`` for either unknown."""
        self.owner_record(owner)
        run = self.get(owner, run_id)
        if run is None:
            raise EntityNotFoundException(self.missing.format(owner=owner, run_id=run_id))
        return run

    def newest_first(self, owner: str) -> list[R]:
        """The runs of ``owner``, newest first (as Glue lists runs); ``EntityNotFoundException`` for no owner."""
        self.owner_record(owner)
        return self.of(owner)[::-1]

    def of(self, owner: str) -> list[R]:
        """The runs of ``owner``, oldest first."""
        with self.lock:
            return list(self._by_owner.get(owner, []))

    def all(self) -> list[R]:
        with self.lock:
            return list(self._by_id.values())

    def active(self) -> list[R]:
        return [r for r in self.all() if not r.finished]

    def snapshot(self) -> dict[str, list[R]]:
        with self.lock:
            return {owner: list(runs) for owner, runs in self._by_owner.items()}

    def restore(self, saved: dict[str, list[R]], reason: str) -> list[R]:
        """Take back a snapshot; the runs in flight end with ``reason`` (``interrupt``) and are returned."""
        with self.lock:
            interrupted = [r for runs in saved.values() for r in runs if r.interrupt(reason)]
            for owner, runs in saved.items():
                self._by_owner[owner] = list(runs)
                self._by_id.update((r.id, r) for r in runs)
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


def role_session(ctx: Any, role: str, resource: str, session_name: str) -> Any:
    """The session Glue opens on ``role`` (a name or an ARN) to run ``resource`` (e.g. ``job/NAME``).

    Raises
    ------
    AssumeRefused
        With Glue's message, when the role is missing or does not trust ``glue.amazonaws.com``.
    """
    from etl_localcloud.iam import AssumeRefused, ServiceRole

    if role and not role.startswith("arn:"):
        role = f"arn:aws:iam::{ctx.account_id}:role/{role}"
    arn = f"arn:aws:glue:{ctx.region}:{ctx.account_id}:{resource}"
    try:
        return ctx.role_session(ServiceRole(role, "glue.amazonaws.com", session_name, arn))
    except AssumeRefused as exc:
        raise AssumeRefused(f"Service is unable to assume provided role. Please verify role's TrustPolicy ({exc})"
                            ) from None

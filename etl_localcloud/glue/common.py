"""Small pieces shared by the Glue provider's parts: time, ids, S3 paths, AWS-shaped errors."""

from __future__ import annotations

import secrets
from typing import Any

from etl_localcloud.core.clock import iso, utcnow
from etl_localcloud.core.paging import GLUE
from etl_localcloud.dispatcher import ServiceError

__all__ = ["utcnow", "iso", "new_job_run_id", "new_workflow_run_id", "split_s3", "not_found", "invalid_input",
           "moto_error_code", "page", "as_service_error", "Tracked", "state_version"]

_changes = [0]  # bumped on every change of a run record: the persister snapshots when it moves


def state_version() -> int:
    """A number that changes whenever a job run, crawl or workflow run record changes."""
    return _changes[0]


class Tracked:
    """Mixin for run records: setting any attribute counts as a change (see :func:`state_version`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        _changes[0] += 1


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
    ServiceError
        ``InvalidInputException`` when ``uri`` is not an ``s3://`` URI.
    """
    if not uri.startswith(("s3://", "s3a://", "s3n://")):
        raise ServiceError("InvalidInputException", f"not an S3 path: {uri}")
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def not_found(message: str) -> ServiceError:
    """Glue's error for an unknown job, crawler, workflow or run."""
    return ServiceError("EntityNotFoundException", message, 400)


def invalid_input(message: str) -> ServiceError:
    return ServiceError("InvalidInputException", message, 400)


def moto_error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    resp: Any = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def page(items: list[Any], body: dict[str, Any], default_max: int = 100) -> tuple[list[Any], str | None]:
    """Slice ``items`` by the request's ``MaxResults``/``NextToken`` (Glue's spelling)."""
    return GLUE.slice(items, body, default_max)


def as_service_error(exc: Exception) -> Exception:
    """A botocore ``ClientError`` from moto as the same AWS error for our caller (others unchanged)."""
    resp: Any = getattr(exc, "response", None)
    if isinstance(resp, dict) and resp.get("Error", {}).get("Code"):
        err = resp["Error"]
        status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        return ServiceError(str(err["Code"]), str(err.get("Message", "")), status)
    return exc

"""Two small facts every runtime module reads the same way: an AWS error's code, and now as ISO-8601 UTC.

Standard library only: the Lambda handler imports this module too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["error_code", "iso_now"]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    resp: Any = getattr(exc, "response", None)
    if not isinstance(resp, dict):
        return ""
    return str(resp.get("Error", {}).get("Code", ""))


def iso_now() -> str:
    """Now in UTC as ``2026-11-27T09:30:00.123456Z`` (reports, logs, claims)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

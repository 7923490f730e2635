"""Time as the providers report it: aware UTC datetimes, epoch seconds, Glue's event-detail form."""

from __future__ import annotations

import datetime as _dt
import time

__all__ = ["utcnow", "epoch", "iso"]


def utcnow() -> _dt.datetime:
    """Timezone-aware now (the JSON encoder turns it into epoch seconds, as the JSON APIs do)."""
    return _dt.datetime.now(_dt.UTC)


def epoch() -> float:
    """Now in epoch seconds (records that store plain numbers)."""
    return time.time()


def iso(ts: _dt.datetime | None = None) -> str:
    """``2017-11-11T01:25:00Z``: the timestamp form Glue puts in event details."""
    return (ts or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The daemon's watchdog: the embedded PostgreSQL is checked, restarted when it dies, and reported.

A dead server is noticed within :attr:`PostgresSupervisor.interval` seconds, reported by
``/_etl_kit/health`` (so ``etl-kit local status`` exits non-zero naming it) and restarted on the
same data directory and port after ``restart_delay`` seconds (``ETL_KIT_PG_RESTART_DELAY``; a
negative value leaves the repair to ``etl-kit local up``). Restarts and failures are logged to the
daemon's log and counted in the health document. Glue job and Lambda subprocesses are supervised by
the threads that wait on them: a script that dies (killed, out of memory) ends its run FAILED with
the signal in the error message.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider

__all__ = ["PostgresSupervisor"]

log = logging.getLogger("etl_localcloud.supervisor")


class PostgresSupervisor(Provider):
    """Health and restarts of the embedded PostgreSQL (shown as the ``postgres`` part in status)."""

    def __init__(self, ctx: CloudContext, pg: Any, interval: float = 1.0, restart_delay: float | None = None,
                 on_restart: Callable[[Any], None] | None = None) -> None:
        super().__init__(name="postgres")
        self.ctx = ctx
        self.pg = pg
        self.on_restart = on_restart
        self.interval = interval
        env = os.environ.get("ETL_KIT_PG_RESTART_DELAY")
        self.restart_delay = restart_delay if restart_delay is not None else float(env) if env else 0.0
        self.restarts = 0
        self.last_restart: str | None = None
        self.last_failure: str | None = None
        self.down_since: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def health(self) -> dict[str, Any]:
        alive = self.pg.alive()
        out: dict[str, Any] = {"ok": alive, "state": "running" if alive else "down", "port": self.pg.port,
                               "restarts": self.restarts}
        if self.pg.proc is not None:
            out["pid"] = self.pg.proc.pid
        if self.last_restart:
            out["last_restart"] = self.last_restart
        if self.last_failure:
            out["last_failure"] = self.last_failure
        if not alive:
            out["fix"] = "`etl-kit local up` restarts it"
        return out

    def check(self) -> None:
        """One watchdog round: notice a dead server, restart it when its delay is up."""
        if self.pg.alive():
            self.down_since = None
            return
        now = _dt.datetime.now(_dt.UTC).timestamp()
        if self.down_since is None:
            self.down_since = now
            code = self.pg.proc.returncode if self.pg.proc is not None else None
            self.last_failure = f"PostgreSQL exited (code {code}) at {_iso(now)}"
            log.error("embedded PostgreSQL is down: %s", self.last_failure)
        if self.restart_delay >= 0 and now - self.down_since >= self.restart_delay:
            self.repair()

    def repair(self) -> bool:
        """Restart the server if it is down. True when it runs afterwards."""
        with self._lock:
            if self.pg.alive():
                return True
            try:
                info = self.pg.restart()
            except Exception as exc:
                self.last_failure = f"restart failed: {exc}"
                log.error("embedded PostgreSQL did not restart: %s", exc)
                return False
            self.ctx.postgres = info
            self.restarts += 1
            self.last_restart = _iso(_dt.datetime.now(_dt.UTC).timestamp())
            self.down_since = None
            log.warning("embedded PostgreSQL restarted on port %s (restart %d)", info.port, self.restarts)
        if self.on_restart is not None:
            self.on_restart(info)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("watchdog round failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

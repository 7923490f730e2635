"""The local cloud survives itself: kill -9 of the daemon, of PostgreSQL, of a running Glue job.

Each test runs its own daemon (free port, temporary state dir) because it kills it. Every wait is on a
positive signal (a state, a health flag, a process gone), never a sleep followed by "nothing happened".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import etl_localcloud
from etl_kit import local as localcloud
from etl_kit.clients import client
from etl_kit.config import Settings, load_settings
from tests.conftest import ROOT, free_port, pid_alive, wait_for
from tests.local._pipeline_helpers import csv_bytes, ledger_rows, outcome, row, table_rows

pytestmark = pytest.mark.local

INTERRUPTED = "interrupted: the local cloud stopped"


@contextlib.contextmanager
def _own_cloud() -> Iterator[Settings]:
    """Settings for a daemon of the test's own, its state dir outside pytest's tmp tree.

    pytest makes ``/tmp/pytest-of-<user>`` private again whenever a session starts; a PostgreSQL that
    runs as another user (when the tests run as root) could then not be restarted in it.
    """
    state = Path(tempfile.mkdtemp(prefix="etl-kit-durable-"))
    settings = load_settings(ROOT / "params" / "local.yaml", local_state_dir=str(state), local_port=free_port())
    try:
        yield settings
    finally:
        localcloud.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def health(settings: Settings) -> dict[str, Any]:
    h = etl_localcloud.health(settings.local_endpoint)
    assert h is not None, "the daemon does not answer"
    return h


def kill_daemon(settings: Settings) -> None:
    pid = health(settings)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for("the daemon to die", lambda: not pid_alive(pid))


def kit(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etl_kit.cli", "local", *args, "--state-dir",
                           str(settings.state_dir), "--port", str(settings.local_port)],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def own_pipeline() -> Iterator[Settings]:
    """A provisioned pipeline on a local cloud of its own (these tests kill it)."""
    from etl_kit.provision import apply_all

    with _own_cloud() as settings:
        localcloud.up(settings)
        apply_all(settings, progress=False)
        yield settings


def _objects(settings: Settings) -> dict[str, tuple[str, int]]:
    s3 = client("s3", settings)
    out = {}
    for bucket in (settings.bucket_name(), settings.assets_bucket_name()):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                out[f"{bucket}/{o['Key']}"] = (o["ETag"], o["Size"])
    return out


def _control_plane(settings: Settings) -> dict[str, Any]:
    glue = client("glue", settings)
    tables = sorted(t["Name"] for t in glue.get_tables(DatabaseName=settings.glue_database)["TableList"])
    wf = glue.get_workflow(Name=settings.workflow, IncludeGraph=True)["Workflow"]
    runs = glue.get_workflow_runs(Name=settings.workflow, MaxResults=100)["Runs"]
    job_runs = {job: sorted((r["Id"], r["JobRunState"]) for r in glue.get_job_runs(JobName=job)["JobRuns"])
                for job in (settings.csv_job, settings.load_job)}
    return {
        "tables": tables,
        "nodes": sorted(n["Name"] for n in wf["Graph"]["Nodes"]),
        "workflow_runs": sorted((r["WorkflowRunId"], r["Status"], r["WorkflowRunProperties"].get("source_key", ""))
                                for r in runs),
        "job_runs": job_runs,
        "crawls": sorted(c["CrawlId"] for c in glue.list_crawls(CrawlerName=settings.csv_crawler)["Crawls"]),
        "rules": sorted(r["Name"] for r in client("events", settings).list_rules()["Rules"]),
        "functions": sorted(f["FunctionName"] for f in client("lambda", settings).list_functions()["Functions"]),
        "topics": sorted(t["TopicArn"] for t in client("sns", settings).list_topics()["Topics"]),
        "roles": sorted(r["RoleName"] for r in client("iam", settings).list_roles()["Roles"]),
        "workgroup": client("redshift-serverless", settings).get_workgroup(
            workgroupName=settings.redshift_workgroup)["workgroup"]["status"],
    }


def _upload(settings: Settings, key: str, body: bytes) -> str:
    s3 = client("s3", settings)
    return str(s3.put_object(Bucket=settings.bucket_name(), Key=key, Body=body)["ETag"].strip('"'))


def test_kill_9_of_the_daemon_loses_nothing_and_the_warehouse_agrees(own_pipeline: Settings, tmp_path: Path) -> None:
    bucket = own_pipeline.bucket_name()
    good = [row(7_000_000 + i, units=str(i % 9 + 1), price="3.50", cost="1.25") for i in range(30)]
    bad = [row(7_000_100, units="many")]
    key = "input/durable/first.csv"
    etag = _upload(own_pipeline, key, csv_bytes(good + bad))
    first = outcome(own_pipeline, bucket, key, etag)
    assert first.state == "loaded", first
    # an input nobody loaded yet, and a multipart object (assembled on disk), acknowledged just before the kill
    pending_body = csv_bytes([row(7_000_200)])
    big = os.urandom(9 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    from boto3.s3.transfer import TransferConfig

    client("s3", own_pipeline).upload_file(str(tmp_path / "big.bin"), bucket, "keep/big.bin",
                                           Config=TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                                                 multipart_chunksize=5 * 1024 * 1024))
    # the control plane and the run history are saved within the debounce window: wait until they are
    wait_for("the state snapshot to hold every change", lambda: health(own_pipeline)["providers"]["state"]["saved"])
    before_cp = _control_plane(own_pipeline)
    client("s3", own_pipeline).put_object(Bucket=bucket, Key="keep/not-an-input.txt", Body=pending_body)
    before_objects = _objects(own_pipeline)
    ledger_before = ledger_rows(own_pipeline, bucket, key)
    rows_before = table_rows(own_pipeline, key)
    assert any(k.startswith(f"{bucket}/output/") for k in before_objects)
    assert any("quarantine" in k for k in before_objects), sorted(before_objects)

    kill_daemon(own_pipeline)
    st = kit(own_pipeline, "status")
    assert st.returncode == 3 and "not running" in st.stdout
    up = kit(own_pipeline, "up")
    assert up.returncode == 0, up.stderr

    assert _objects(own_pipeline) == before_objects  # input, output, quarantine, reports, scripts, the multipart object
    s3 = client("s3", own_pipeline)
    assert hashlib.md5(s3.get_object(Bucket=bucket, Key="keep/big.bin")["Body"].read()).digest() == \
        hashlib.md5(big).digest()
    assert s3.get_object(Bucket=bucket, Key="keep/not-an-input.txt")["Body"].read() == pending_body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == csv_bytes(good + bad)
    assert _control_plane(own_pipeline) == before_cp  # catalog, workflow graph, run history, definitions
    assert ledger_rows(own_pipeline, bucket, key) == ledger_before  # the warehouse agrees
    assert table_rows(own_pipeline, key) == rows_before

    # and the restored pipeline runs: a new upload loads exactly once
    key2 = "input/durable/after-restart.csv"
    etag2 = _upload(own_pipeline, key2, csv_bytes([row(7_000_300 + i) for i in range(5)]))
    second = outcome(own_pipeline, bucket, key2, etag2)
    assert second.state == "loaded", second
    assert len(table_rows(own_pipeline, key2)) == 5
    assert len(table_rows(own_pipeline, key)) == len(rows_before)


def _sleeping_job(settings: Settings, name: str) -> None:
    s3 = client("s3", settings)
    bucket = settings.assets_bucket_name()
    s3.put_object(Bucket=bucket, Key=f"scripts/{name}.py", Body=b"import time\nprint('working')\ntime.sleep(600)\n")
    role = client("iam", settings).get_role(RoleName=settings.csv_job_role)["Role"]["Arn"]
    client("glue", settings).create_job(Name=name, Role=role, Command={
        "Name": "pythonshell", "ScriptLocation": f"s3://{bucket}/scripts/{name}.py", "PythonVersion": "3.9"},
        MaxCapacity=0.0625)


def _script_pid(run_id: str) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if run_id.encode() in args and b"--JOB_RUN_ID" in args:
            return int(proc.name)
    return None


def _run_state(settings: Settings, job: str, run_id: str) -> dict[str, Any]:
    return dict(client("glue", settings).get_job_run(JobName=job, RunId=run_id)["JobRun"])


def test_a_killed_job_script_ends_its_run_failed_with_the_signal(own_pipeline: Settings) -> None:
    _sleeping_job(own_pipeline, "durable-sleeper")
    run_id = client("glue", own_pipeline).start_job_run(JobName="durable-sleeper")["JobRunId"]
    pid = wait_for("the job script to run", lambda: _script_pid(run_id))
    os.kill(pid, signal.SIGKILL)
    final = wait_for("the run to end", lambda: (r := _run_state(own_pipeline, "durable-sleeper", run_id))
                     ["JobRunState"] not in ("STARTING", "RUNNING") and r)
    assert final["JobRunState"] == "FAILED"
    assert "killed by SIGKILL" in final["ErrorMessage"]


def test_runs_in_flight_when_the_daemon_dies_end_failed_as_interrupted(own_pipeline: Settings) -> None:
    _sleeping_job(own_pipeline, "durable-sleeper-2")
    sqs = client("sqs", own_pipeline)
    qurl = sqs.create_queue(QueueName="durable-sleeper-events")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client("events", own_pipeline)
    pattern = {"source": ["aws.glue"], "detail-type": ["Glue Job State Change"],
               "detail": {"jobName": ["durable-sleeper-2"]}}
    rule_arn = events.put_rule(Name="durable-sleeper-rule", EventPattern=json.dumps(pattern))["RuleArn"]
    events.put_targets(Rule="durable-sleeper-rule", Targets=[{"Id": "q", "Arn": qarn}])
    # as on AWS, EventBridge sends to a queue only if the queue's policy lets the rule
    sqs.set_queue_attributes(QueueUrl=qurl, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": qarn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
    run_id = client("glue", own_pipeline).start_job_run(JobName="durable-sleeper-2")["JobRunId"]
    pid = wait_for("the job script to run", lambda: _script_pid(run_id))
    wait_for("the running state to be saved", lambda: health(own_pipeline)["providers"]["state"]["saved"]
             and _run_state(own_pipeline, "durable-sleeper-2", run_id)["JobRunState"] == "RUNNING")
    kill_daemon(own_pipeline)
    localcloud.up(own_pipeline)
    run = _run_state(own_pipeline, "durable-sleeper-2", run_id)
    assert run["JobRunState"] == "FAILED" and run["ErrorMessage"] == INTERRUPTED
    wait_for("the orphaned script to be stopped", lambda: not pid_alive(pid))
    # the failure is announced like any other run's (a "Glue Job State Change" event on the default bus)
    def announced() -> bool:
        msgs = sqs.receive_message(QueueUrl=qurl, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return any(run_id in m["Body"] for m in msgs)

    wait_for("the FAILED notification of the interrupted run", announced, timeout=30)


def test_after_postgres_is_killed_and_restarted_a_new_upload_loads(own_pipeline: Settings) -> None:
    bucket = own_pipeline.bucket_name()
    before = health(own_pipeline)["providers"]["postgres"]
    os.kill(before["pid"], signal.SIGKILL)
    wait_for("the watchdog's restart", lambda: (p := health(own_pipeline)["providers"]["postgres"])["restarts"]
             == before["restarts"] + 1 and p["ok"])
    key = "input/durable/after-pg-restart.csv"
    etag = _upload(own_pipeline, key, csv_bytes([row(7_000_400 + i) for i in range(7)]))
    out = outcome(own_pipeline, bucket, key, etag)
    assert out.state == "loaded", out
    assert len(table_rows(own_pipeline, key)) == 7
    assert [r["state"] for r in ledger_rows(own_pipeline, bucket, key)] == ["loaded"]


@pytest.fixture
def bare_cloud() -> Iterator[Settings]:
    """A local cloud of its own, with no pipeline, not started (tests set ``ETL_KIT_PG_RESTART_DELAY`` first)."""
    with _own_cloud() as settings:
        yield settings


def _pg_query(settings: Settings) -> int:
    import psycopg

    info = json.loads((settings.state_dir / "daemon.json").read_text())["postgres"]
    # the bootstrap superuser logs in over the state dir's unix socket only
    with psycopg.connect(host=info["socket_dir"], port=info["port"], user=info["user"], password=info["password"],
                         dbname="postgres", connect_timeout=3) as conn:
        row_ = conn.execute("select 42").fetchone()
        return int(row_[0]) if row_ else 0


def test_killed_postgres_is_reported_and_local_up_repairs_it(bare_cloud: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_KIT_PG_RESTART_DELAY", "-1")  # no automatic restart: the repair is up's
    localcloud.up(bare_cloud)
    s3 = client("s3", bare_cloud)
    s3.create_bucket(Bucket="durable-pg-bucket")
    s3.put_object(Bucket="durable-pg-bucket", Key="a.txt", Body=b"kept")
    pg_pid = health(bare_cloud)["providers"]["postgres"]["pid"]
    os.kill(pg_pid, signal.SIGKILL)
    st = wait_for("status to report PostgreSQL down", lambda: (r := kit(bare_cloud, "status")).returncode != 0 and r)
    assert st.returncode == 4
    assert "DOWN: postgres" in st.stderr and "postgres" in st.stdout and "FAILING" in st.stdout
    up = kit(bare_cloud, "up")
    assert up.returncode == 0, up.stderr
    assert "repaired: postgres restarted" in up.stdout
    assert kit(bare_cloud, "status").returncode == 0
    assert _pg_query(bare_cloud) == 42
    assert health(bare_cloud)["providers"]["postgres"]["restarts"] == 1
    # nothing else was touched by the repair
    assert s3.get_object(Bucket="durable-pg-bucket", Key="a.txt")["Body"].read() == b"kept"


def test_killed_postgres_is_restarted_by_the_watchdog(bare_cloud: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_KIT_PG_RESTART_DELAY", raising=False)
    localcloud.up(bare_cloud)
    before = health(bare_cloud)["providers"]["postgres"]
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_for("the watchdog's restart", lambda: (p := health(bare_cloud)["providers"]["postgres"])
                     ["restarts"] == 1 and p["ok"] and p)
    assert after["pid"] != before["pid"] and after["port"] == before["port"]
    assert "exited" in after["last_failure"]
    assert _pg_query(bare_cloud) == 42
    log = (bare_cloud.state_dir / "daemon.log").read_text()
    assert "embedded PostgreSQL is down" in log and "embedded PostgreSQL restarted" in log


def test_down_and_up_keep_everything_and_the_state_dir_is_private(bare_cloud: Settings) -> None:
    localcloud.up(bare_cloud)
    # 0o010: the server's group may traverse when it runs as its own user (daemon run as root)
    assert (bare_cloud.state_dir.stat().st_mode & 0o077) in (0, 0o010)
    s3 = client("s3", bare_cloud)
    s3.create_bucket(Bucket="durable-down-up")
    s3.put_bucket_versioning(Bucket="durable-down-up", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="durable-down-up", Key="k", Body=b"one", Metadata={"who": "me"})["VersionId"]
    v2 = s3.put_object(Bucket="durable-down-up", Key="k", Body=b"two")["VersionId"]
    s3.create_bucket(Bucket="durable-plain")
    s3.put_object(Bucket="durable-plain", Key="gone", Body=b"x")
    s3.delete_object(Bucket="durable-plain", Key="gone")
    s3.put_object(Bucket="durable-plain", Key="over", Body=b"first")
    s3.put_object(Bucket="durable-plain", Key="over", Body=b"second")
    sqs = client("sqs", bare_cloud)
    qurl = sqs.create_queue(QueueName="durable-q")["QueueUrl"]
    sqs.send_message(QueueUrl=qurl, MessageBody="waiting")
    client("secretsmanager", bare_cloud).create_secret(Name="durable-secret", SecretString="s3cr3t")
    assert "stopped" in localcloud.down(bare_cloud)
    localcloud.up(bare_cloud)
    got = s3.get_object(Bucket="durable-down-up", Key="k", VersionId=v1)
    assert got["Body"].read() == b"one" and got["Metadata"] == {"who": "me"}
    assert s3.get_object(Bucket="durable-down-up", Key="k")["VersionId"] == v2
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="durable-plain").get("Contents", [])]
    assert keys == ["over"]
    assert s3.get_object(Bucket="durable-plain", Key="over")["Body"].read() == b"second"
    assert s3.get_bucket_versioning(Bucket="durable-down-up")["Status"] == "Enabled"
    msgs = sqs.receive_message(QueueUrl=qurl, WaitTimeSeconds=2).get("Messages", [])
    assert [m["Body"] for m in msgs] == ["waiting"]
    assert client("secretsmanager", bare_cloud).get_secret_value(SecretId="durable-secret")["SecretString"] == "s3cr3t"
    # the bodies of deleted and overwritten-and-unversioned keys do not pile up on disk
    blobs = list((bare_cloud.state_dir / "cloud" / "s3-blobs").iterdir())
    assert len(blobs) == 3  # k's two versions and "over"


def _memory(pid: int) -> tuple[int, int]:
    """(peak RSS since the last reset, current RSS) of ``pid`` in MiB."""
    fields = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in ln)
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["VmRSS"].split()[0]) // 1024


def _reset_peak(pid: int) -> int:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError as exc:
        pytest.skip(f"cannot reset the daemon's peak RSS here: {exc}")
    return _memory(pid)[1]


def test_a_large_upload_and_download_do_not_grow_the_daemon_with_the_object(bare_cloud: Settings,
                                                                           tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    size_mb = 192
    src = tmp_path / "large.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    localcloud.up(bare_cloud)
    pid = health(bare_cloud)["pid"]
    s3 = client("s3", bare_cloud)
    s3.create_bucket(Bucket="durable-large")
    base = _reset_peak(pid)
    s3.upload_file(str(src), "durable-large", "large.bin",
                   Config=TransferConfig(max_concurrency=1, multipart_chunksize=8 << 20))
    upload_peak = _memory(pid)[0] - base
    # moto 5.2.5 alone holds the object over twice at completion (measured: +231 MiB for 96 MiB here);
    # streamed, the peak follows the parts in flight (measured: +80 to +135 MiB)
    assert upload_peak < size_mb, f"upload grew the daemon by {upload_peak} MiB"

    base = _reset_peak(pid)
    md5 = hashlib.md5()
    for chunk in s3.get_object(Bucket="durable-large", Key="large.bin")["Body"].iter_chunks(1 << 20):
        md5.update(chunk)
    with open(src, "rb") as fh:
        assert md5.hexdigest() == hashlib.file_digest(fh, "md5").hexdigest()
    get_peak = _memory(pid)[0] - base
    assert get_peak < 32, f"download grew the daemon by {get_peak} MiB"
    ranged = s3.get_object(Bucket="durable-large", Key="large.bin", Range="bytes=1000-1999")
    with open(src, "rb") as fh:
        fh.seek(1000)
        assert ranged["Body"].read() == fh.read(1000)

"""Retry and replay on the local target: a failed load comes back exactly once.

Job 2 is made to fail for real by putting a table with other columns where the target is (its layout
check refuses it, the ledger records ``failed``), then the target is put back and the object retried:
by uploading the same bytes again, or by ``etl-kit replay``. Every case asserts the ledger's
attempts, rows in = loaded + quarantined, and that no order id is loaded twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from etl_kit.config import Settings
from tests.local._pipeline_helpers import csv_bytes, decisions, ledger_rows, put, row, runs_for, table_rows

pytestmark = pytest.mark.local

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def target_swapped(settings: Settings) -> Iterator[None]:
    """While inside, the target table is one with other columns: job 2's loads fail (and are recorded).

    The stand-in is granted to the loader user as provisioning grants the real one, so the load fails on its
    columns (not on a missing grant)."""
    from etl_kit.warehouse import execute

    schema, table = settings.redshift_schema, settings.redshift_table
    contract = settings.dataset_contract.model_dump(mode="json")
    cols = ", ".join(f'"{c["name"]}" VARCHAR(64)' for c in contract["columns"])
    execute([f"ALTER TABLE {schema}.{table} RENAME TO {table}_aside",
             f"CREATE TABLE {schema}.{table} ({cols}, loaded_at TIMESTAMP)",
             f'GRANT SELECT, INSERT, DELETE ON {schema}.{table} TO "{settings.redshift_loader_user}"'], settings)
    try:
        yield
    finally:
        execute([f"DROP TABLE {schema}.{table}", f"ALTER TABLE {schema}.{table}_aside RENAME TO {table}"], settings)


def finished_runs(settings: Settings, key: str, etag: str, n: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Wait until ``n`` workflow runs exist for the object and all have ended; oldest first."""
    from etl_kit.clients import client

    glue = client("glue", settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_for(settings, key, etag)
        if len(runs) >= n:
            full = [glue.get_workflow_run(Name=settings.workflow, RunId=r["WorkflowRunId"])["Run"] for r in runs]
            if all(r["Status"] in ("COMPLETED", "STOPPED", "ERROR") for r in full):
                return sorted(full, key=lambda r: r["StartedOn"])
        time.sleep(0.2)
    raise AssertionError(f"{n} finished run(s) for {key} not seen within {timeout:.0f}s: {runs_for(settings, key)}")


def attempts_of(settings: Settings, key: str, etag: str, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The object's ledger rows once there are ``n``, by attempt."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sorted((r for r in ledger_rows(settings, settings.bucket_name(), key) if r["etag"] == etag),
                      key=lambda r: r["attempt"])
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def fail_once(s3, settings: Settings, key: str, body: bytes) -> str:  # type: ignore[no-untyped-def]
    """Upload ``body`` while the target is swapped; return the ETag once its run failed in job 2."""
    with target_swapped(settings):
        etag = put(s3, settings, key, body)
        [run] = finished_runs(settings, key, etag, 1)
    assert run["Statistics"]["FailedActions"] == 1, run["Statistics"]
    [att] = attempts_of(settings, key, etag, 1)
    assert (att["state"], att["reason"], att["attempt"], att["run_id"]) == ("failed", "load_failed", 1,
                                                                            run["WorkflowRunId"])
    assert "RENAME TO" in att["message"] and table_rows(settings, key) == []
    return etag


def assert_loaded_once(settings: Settings, key: str, etag: str, ids: list[int]) -> dict[str, Any]:
    rows = table_rows(settings, key)
    assert sorted(r["order_id"] for r in rows) == ids  # every good row, none twice
    from etl_kit.warehouse import query

    dup = query(f"SELECT order_id FROM {settings.redshift_schema}.{settings.redshift_table} "
                f"WHERE order_id BETWEEN {min(ids)} AND {max(ids)} GROUP BY order_id HAVING COUNT(*) > 1", settings)
    assert len(dup) == 0
    atts = attempts_of(settings, key, etag, 2)
    loaded = [a for a in atts if a["state"] == "loaded"]
    assert len(loaded) == 1 and atts[-1]["state"] == "loaded"  # the newest attempt is the object's state
    a = loaded[0]
    assert a["rows_read"] == a["rows_loaded"] + a["rows_quarantined"]
    return a


def test_uploading_the_same_bytes_after_a_failed_load_retries_it_once(pipeline: Settings, s3) -> None:
    key = "input/retry/same-bytes.csv"
    ids = list(range(11_000_000, 11_000_012))
    body = csv_bytes([row(i) for i in ids] + [row(11_000_099, units="twelve")])
    etag = fail_once(s3, pipeline, key, body)

    assert put(s3, pipeline, key, body) == etag  # identical bytes: the same identity as the failed attempt
    first, second = finished_runs(pipeline, key, etag, 2)
    assert first["Statistics"]["FailedActions"] == 1
    assert second["Statistics"]["SucceededActions"] == 4 and second["Statistics"]["FailedActions"] == 0
    assert second["WorkflowRunProperties"]["claim_attempt"] == "2"
    loaded = assert_loaded_once(pipeline, key, etag, ids)
    assert (loaded["attempt"], loaded["run_id"], loaded["rows_read"], loaded["rows_quarantined"]) == (
        2, second["WorkflowRunId"], 13, 1)
    assert [a["state"] for a in attempts_of(pipeline, key, etag, 2)] == ["failed", "loaded"]
    # the third upload of the same bytes: loaded, so a duplicate naming the run that loaded it
    before = len(decisions(pipeline, key, 0))
    put(s3, pipeline, key, body)
    lines = decisions(pipeline, key, before + 1, timeout=30)
    assert lines[-1]["decision"] == "skipped" and lines[-1]["reason"] == "duplicate"
    assert lines[-1]["run_id"] == second["WorkflowRunId"]
    assert len(runs_for(pipeline, key)) == 2


def test_two_concurrent_replays_of_a_failed_object_start_one_run(pipeline: Settings, s3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from etl_kit.replay import replay_object

    key = "input/retry/replayed twice.csv"
    ids = list(range(12_000_000, 12_000_020))
    etag = fail_once(s3, pipeline, key, csv_bytes([row(i) for i in ids]))
    before = len(decisions(pipeline, key, 0))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: replay_object(pipeline, key), range(2)))
    assert all(r.key == key and r.etag == etag for r in results)
    # each replay reaches the Lambda; exactly one takes the failed attempt over
    lines = decisions(pipeline, key, before + 2, timeout=60)
    assert sorted(ln["decision"] for ln in lines[before:]) == ["skipped", "started"], lines[before:]
    skipped = next(ln for ln in lines[before:] if ln["decision"] == "skipped")
    assert skipped["reason"] == "duplicate"
    _, second = finished_runs(pipeline, key, etag, 2)
    assert second["WorkflowRunProperties"]["delivery"] == "replay"
    assert len(runs_for(pipeline, key)) == 2
    assert assert_loaded_once(pipeline, key, etag, ids)["run_id"] == second["WorkflowRunId"]


def _cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import yaml

    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    params.update(local_port=settings.local_port, local_state_dir=settings.local_state_dir)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", "etl_kit.cli", "replay", "--params", str(path), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def test_replaying_a_loaded_object_is_refused_and_a_missing_one_named(pipeline: Settings, s3,
                                                                      tmp_path: Path) -> None:
    from etl_kit.exceptions import PipelineError, ResourceNotFound
    from etl_kit.replay import replay_object
    from tests.local._pipeline_helpers import outcome

    key = "input/retry/loaded.csv"
    etag = put(s3, pipeline, key, csv_bytes([row(i) for i in range(13_000_000, 13_000_003)]))
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "loaded", out
    run_id = out.run["WorkflowRunId"]
    with pytest.raises(PipelineError, match=rf"s3://{pipeline.bucket_name()}/{key} .*already loaded by run {run_id}"):
        replay_object(pipeline, key)
    res = _cli(pipeline, tmp_path, key)
    assert res.returncode == 1 and f"already loaded by run {run_id}" in res.stderr and "--force" in res.stderr
    with pytest.raises(ResourceNotFound, match=r"s3://.*/input/retry/no-such\.csv does not exist"):
        replay_object(pipeline, "input/retry/no-such.csv")
    res = _cli(pipeline, tmp_path, f"s3://{pipeline.bucket_name()}/input/retry/no-such.csv")
    assert res.returncode == 1 and "input/retry/no-such.csv does not exist" in res.stderr
    # nothing was started by the refusals; the table holds the object's rows once
    assert [r["WorkflowRunId"] for r in runs_for(pipeline, key)] == [run_id]
    assert len(table_rows(pipeline, key)) == 3


def test_replay_failed_replays_each_failed_object(pipeline: Settings, s3) -> None:
    from etl_kit.replay import newest_attempts, replay_failed

    key = "input/retry/failed-list.csv"
    ids = list(range(14_000_000, 14_000_004))
    etag = fail_once(s3, pipeline, key, csv_bytes([row(i) for i in ids]))
    assert (pipeline.bucket_name(), key, etag) in {(a.bucket, a.key, a.etag) for a in newest_attempts(pipeline,
                                                                                                      "failed")}
    results = [r for r in replay_failed(pipeline, progress=False) if r.key == key]
    assert [r.outcome for r in results] in (["started"], ["queued"])
    _, second = finished_runs(pipeline, key, etag, 2)
    assert assert_loaded_once(pipeline, key, etag, ids)["run_id"] == second["WorkflowRunId"]
    assert key not in {a.key for a in newest_attempts(pipeline, "failed")}


def test_replay_dlq_moves_messages_back_and_they_are_processed(pipeline: Settings, s3, boto) -> None:
    """An event that ended in the intake DLQ goes back to the intake queue, body unchanged, and runs."""
    from etl_kit.replay import replay_dlq

    sqs, lam, events = boto("sqs"), boto("lambda"), boto("events")
    have = {u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])}
    made = [q for q in (pipeline.intake_dlq, pipeline.intake_queue) if q not in have]
    for q in made:  # on a branch without the durable intake, stand the two queues up for this test
        sqs.create_queue(QueueName=q)
    dlq = sqs.get_queue_url(QueueName=pipeline.intake_dlq)["QueueUrl"]
    intake = sqs.get_queue_url(QueueName=pipeline.intake_queue)["QueueUrl"]
    consumed = bool(lam.list_event_source_mappings(FunctionName=pipeline.lambda_function)["EventSourceMappings"])
    try:
        # an upload whose event never ran: the start rule is off while it lands, its event is in the DLQ
        key = "input/retry/from-dlq.csv"
        ids = list(range(15_000_000, 15_000_005))
        events.disable_rule(Name=pipeline.start_rule)
        try:
            etag = put(s3, pipeline, key, csv_bytes([row(i) for i in ids]))
        finally:
            events.enable_rule(Name=pipeline.start_rule)
        event = {"version": "0", "id": "dlq-test", "detail-type": "Object Created", "source": "aws.s3",
                 "time": "2026-01-01T00:00:00Z", "region": pipeline.region, "resources": [],
                 "detail": {"bucket": {"name": pipeline.bucket_name()},
                            "object": {"key": key, "size": 1, "etag": etag}}}
        body = json.dumps(event)
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
        moved = replay_dlq(pipeline, progress=False)
        assert moved == {"moved": 1, "dlq_left": 0}
        if not consumed:
            # no event source mapping on this branch: play its part (receive, invoke with the body, delete)
            msgs = sqs.receive_message(QueueUrl=intake, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
            assert [m["Body"] for m in msgs] == [body]
            res = json.loads(lam.invoke(FunctionName=pipeline.lambda_function, Payload=msgs[0]["Body"])["Payload"]
                             .read())
            assert res["status"] == "started", res
            sqs.delete_message(QueueUrl=intake, ReceiptHandle=msgs[0]["ReceiptHandle"])
        [run] = finished_runs(pipeline, key, etag, 1)
        assert run["Statistics"]["SucceededActions"] == 4
        assert sorted(r["order_id"] for r in table_rows(pipeline, key)) == ids
        [att] = attempts_of(pipeline, key, etag, 1)
        assert att["state"] == "loaded" and att["rows_loaded"] == 5

        # with the intake queue in place a replay goes through it: here a forced one of the loaded object
        from etl_kit.replay import replay_object

        res = replay_object(pipeline, key, force=True)
        assert (res.outcome, res.via) == ("queued", f"sqs:{pipeline.intake_queue}")
        if not consumed:
            msgs = sqs.receive_message(QueueUrl=intake, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
            assert len(msgs) == 1 and json.loads(msgs[0]["Body"])["detail-type"] == "Object Replay Forced"
            res2 = json.loads(lam.invoke(FunctionName=pipeline.lambda_function, Payload=msgs[0]["Body"])["Payload"]
                              .read())
            assert res2["status"] == "started" and res2["attempt"] == 2, res2
            sqs.delete_message(QueueUrl=intake, ReceiptHandle=msgs[0]["ReceiptHandle"])
        _, forced = finished_runs(pipeline, key, etag, 2)
        assert forced["WorkflowRunProperties"]["delivery"] == "force"
        assert forced["Statistics"]["SucceededActions"] == 4
        # job 2 loaded it again (forced) by replacing its rows: still each order id once
        atts = attempts_of(pipeline, key, etag, 2)
        assert [(a["state"], a["run_id"]) for a in atts] == [("loaded", run["WorkflowRunId"]),
                                                             ("loaded", forced["WorkflowRunId"])]
        assert atts[1]["message"].startswith("upserted from")
        assert sorted(r["order_id"] for r in table_rows(pipeline, key)) == ids
        assert {r["run_id"] for r in table_rows(pipeline, key)} == {forced["WorkflowRunId"]}
    finally:
        for q in made:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=q)["QueueUrl"])


def test_a_ledger_from_before_attempts_is_migrated_in_place(pipeline: Settings) -> None:
    """The old layout (primary key bucket, key, etag) takes a second attempt's row after the migration."""
    from etl_kit.clients import client
    from etl_kit.warehouse import execute, query
    from etl_runtime import job2
    from etl_runtime.loadsql import LEDGER_COLUMNS, LedgerEntry
    from etl_runtime.values import LoadTarget, SourceObject, Warehouse, WorkflowRun

    schema, table = pipeline.redshift_schema, "old_ledger_layout"
    old_cols = [f'"{n}" {t}' for n, t in LEDGER_COLUMNS if n != "attempt"]
    execute([f"DROP TABLE IF EXISTS {schema}.{table}",
             f'CREATE TABLE {schema}.{table} ({", ".join(old_cols)}, PRIMARY KEY ("bucket", "key", "etag"))',
             f"INSERT INTO {schema}.{table} (bucket, key, etag, run_id, state, rows_loaded) "
             "VALUES ('b', 'input/o.csv', 'e1', 'wr_old', 'failed', 0)"], pipeline)
    rsd = client("redshift-data", pipeline)
    warehouse = Warehouse(pipeline.redshift_workgroup, pipeline.redshift_database)
    ledger, obj = LoadTarget(schema, ledger_table=table), SourceObject("b", "input/o.csv", "e1")
    # job 2's look-up finds no loaded attempt (migrating the table on the way) ...
    assert job2.loaded_attempt(rsd, warehouse, ledger, obj) is None
    cols = query("SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                 "ORDER BY ordinal_position", pipeline, parameters={"s": schema, "t": table})
    assert list(cols["column_name"]) == [n for n, _ in LEDGER_COLUMNS]
    # ... the retry's row is a second attempt next to the first, which is kept
    job2.record_ledger(warehouse, ledger, LedgerEntry(source=obj, state="rejected", run=WorkflowRun(run_id="wr_new"),
                                                      reason="no_data_rows"), rsd)
    got = query(f"SELECT run_id, attempt, state FROM {schema}.{table} ORDER BY attempt", pipeline)
    assert got.values.tolist() == [["wr_old", 1, "failed"], ["wr_new", 2, "rejected"]]
    # migrating again changes nothing
    assert job2.ensure_ledger_layout(rsd, warehouse, ledger) == []
    # job 1's rejection (record_ledger) on an old table migrates it too
    execute([f"DROP TABLE {schema}.{table}",
             f'CREATE TABLE {schema}.{table} ({", ".join(old_cols)}, PRIMARY KEY ("bucket", "key", "etag"))',
             f"INSERT INTO {schema}.{table} (bucket, key, etag, run_id, state, rows_loaded) "
             "VALUES ('b', 'input/o.csv', 'e1', 'wr_old', 'failed', 0)"], pipeline)
    job2.record_ledger(warehouse, ledger, LedgerEntry(source=obj, state="failed", run=WorkflowRun(run_id="wr_2"),
                                                      reason="load_failed"), rsd)
    got = query(f"SELECT run_id, attempt, state FROM {schema}.{table} ORDER BY attempt", pipeline)
    assert got.values.tolist() == [["wr_old", 1, "failed"], ["wr_2", 2, "failed"]]
    execute(f"DROP TABLE {schema}.{table}", pipeline)


def test_a_stopped_run_leaves_no_ledger_row_and_replay_failed_runs_it_again(pipeline: Settings, s3, boto) -> None:
    """A run stopped part-way (a killed job) is a failed attempt found from the workflow runs."""
    from etl_kit.replay import replay_failed

    glue = boto("glue")
    ids = list(range(16_000_000, 16_000_006))
    body = csv_bytes([row(i) for i in ids])
    for n in range(3):  # stop the run while it runs; a run that already ended cannot be stopped: next key
        key, etag = f"input/retry/stopped-{n}.csv", ""
        etag = put(s3, pipeline, key, body)
        deadline = time.monotonic() + 30
        while not (runs := runs_for(pipeline, key, etag)) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            glue.stop_workflow_run(Name=pipeline.workflow, RunId=runs[0]["WorkflowRunId"])
            break
        except glue.exceptions.IllegalWorkflowStateException:
            finished_runs(pipeline, key, etag, 1)
    else:
        pytest.fail("every run ended before it could be stopped")
    [stopped] = finished_runs(pipeline, key, etag, 1)
    assert stopped["Status"] == "STOPPED"
    assert not [r for r in attempts_of(pipeline, key, etag, 0) if r["state"] == "loaded"]
    results = [r for r in replay_failed(pipeline, progress=False) if r.key == key]
    assert [(r.etag, r.outcome) for r in results] in ([(etag, "started")], [(etag, "queued")])
    _, second = finished_runs(pipeline, key, etag, 2)
    assert second["Statistics"]["SucceededActions"] == 4
    assert sorted(r["order_id"] for r in table_rows(pipeline, key)) == ids
    [loaded] = [a for a in attempts_of(pipeline, key, etag, 1) if a["state"] == "loaded"]
    assert loaded["run_id"] == second["WorkflowRunId"] and loaded["rows_loaded"] == len(ids)

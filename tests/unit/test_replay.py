"""The replay event is what the Lambda reads as a replay of exactly that object."""

from __future__ import annotations

import pytest

from etl_kit.config import load_settings
from etl_kit.exceptions import PipelineError
from etl_kit.replay import parse_target, replay_event
from etl_runtime import lambda_handler as lh

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("force", [False, True])
def test_replay_event_parses_as_the_object_and_its_kind(force: bool) -> None:
    s = load_settings(None)
    head = {"ContentLength": 42, "ETag": '"abc"', "VersionId": "v1"}
    event = replay_event(s, "bkt", "input/a b+c.csv", head, force=force)
    [ref] = lh.parse_event(event)
    assert (ref["bucket"], ref["key"], ref["etag"], ref["size"], ref["version_id"]) == (
        "bkt", "input/a b+c.csv", "abc", 42, "v1")
    assert lh.delivery_kind(ref) == ("force" if force else "replay")
    assert lh.should_process(ref) == (True, "")
    # an ordinary S3 event is not a replay
    event["detail-type"] = "Object Created"
    assert lh.delivery_kind(lh.parse_event(event)[0]) == "event"


def test_parse_target() -> None:
    s = load_settings(None)
    assert parse_target("s3://b/input/x.csv", s) == ("b", "input/x.csv")
    assert parse_target("input/x.csv", s) == (s.bucket_name(), "input/x.csv")
    with pytest.raises(PipelineError, match="s3://<bucket>/<key>"):
        parse_target("s3://b", s)


def _run(run_id: str, key: str, started: str, *, failed: int = 0, job1: str = "") -> dict[str, object]:
    props = {"source_bucket": "b", "source_key": key, "source_etag": "e"}
    if job1:
        props["job1_state"] = job1
    return {"WorkflowRunId": run_id, "Status": "COMPLETED", "StartedOn": started, "WorkflowRunProperties": props,
            "Statistics": {"FailedActions": failed, "SucceededActions": 4 - failed}}


def test_failed_identities_from_the_ledger_and_from_runs_without_a_ledger_row() -> None:
    from etl_kit.replay import Attempt, failed_identities

    def att(key: str, run_id: str, state: str) -> Attempt:
        return Attempt("b", key, "e", run_id, 1, state, "", "", "2026-01-01")

    runs = [
        _run("r1", "input/ledger-failed.csv", "1", failed=1),      # job 2 failed: the ledger says so
        _run("r2", "input/crawler.csv", "1", failed=1),             # a crawler failed: no ledger row
        _run("r3", "input/then-loaded.csv", "1", failed=1),         # failed, then loaded by r4
        _run("r4", "input/then-loaded.csv", "2"),
        _run("r5", "input/rejected.csv", "1", failed=1, job1="rejected"),
        _run("r6", "input/retried.csv", "1", failed=1),             # failed, retry r7 still running
        {**_run("r7", "input/retried.csv", "2"), "Status": "RUNNING"},
    ]
    newest = [att("input/ledger-failed.csv", "r1", "failed"), att("input/then-loaded.csv", "r4", "loaded"),
              att("input/rejected.csv", "r5", "rejected")]
    got = {(a.key, a.run_id, a.reason) for a in failed_identities(runs, newest)}
    assert got == {("input/ledger-failed.csv", "r1", ""), ("input/crawler.csv", "r2", "run_failed")}

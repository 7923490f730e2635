"""The Lambda handler: event parsing, key decoding, filters, dedupe claims, retries (no network)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import boto3
import pytest
from moto import mock_aws

from etl_kit.pipeline import lambda_handler as lh

pytestmark = pytest.mark.unit


def eb_event(key: str, size: int = 10, etag: str = "abc", bucket: str = "bkt") -> dict[str, Any]:
    return {"detail-type": "Object Created", "source": "aws.s3", "time": "2024-01-01T00:00:00Z",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "etag": etag}}}


def s3_event(key: str, size: int = 10, etag: str = "e1") -> dict[str, Any]:
    return {"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2024-01-01T00:00:00Z",
                         "s3": {"bucket": {"name": "bkt"}, "object": {"key": key, "size": size, "eTag": etag}}}]}


def put(s3: Any, key: str, body: bytes) -> str:
    return str(s3.put_object(Bucket="bkt", Key=key, Body=body)["ETag"].strip('"'))


def test_parse_eventbridge_and_s3_shapes() -> None:
    [ref] = lh.parse_event(eb_event("input/my+file%2C1.csv"))
    assert ref["key"] == "input/my+file%2C1.csv" and ref["decoded_key"] == "input/my file,1.csv"
    assert ref["bucket"] == "bkt" and ref["etag"] == "abc" and ref["source"] == "eventbridge"
    [ref] = lh.parse_event(s3_event("input/sales+records+%281%29.csv"))
    assert ref["key"] == "input/sales records (1).csv" and ref["etag"] == "e1"
    assert lh.parse_event({"foo": 1}) == []


@pytest.mark.parametrize(("key", "size", "ok", "why"), [
    ("input/a.csv", 5, True, ""),
    ("input/sub/A.CSV.GZ", 5, True, ""),
    ("input/a.txt", 5, False, "not a .csv"),
    ("input/folder/", 0, False, "folder marker"),
    ("input/empty.csv", 0, False, "zero-byte"),
    ("output/a/part-0000.parquet", 5, False, "not under input/"),
    ("quarantine/a.quarantine.csv", 5, False, "not under input/"),
    ("reports/a.report.json", 5, False, "not under input/"),
    ("_etl_kit/claims/x.json", 5, False, "not under input/"),
    ("inputx/a.csv", 5, False, "not under input/"),
])
def test_should_process(key: str, size: int, ok: bool, why: str) -> None:
    got, reason = lh.should_process({"bucket": "bkt", "key": key, "size": size})
    assert got is ok and why in reason


def test_claim_key_is_deterministic() -> None:
    a = lh.claim_key("b", "input/a.csv", "etag1")
    assert a == lh.claim_key("b", "input/a.csv", "etag1")
    assert a != lh.claim_key("b", "input/a.csv", "etag2")
    assert a.startswith("_etl_kit/claims/") and a.endswith(".json")


class FakeGlue:
    def __init__(self, refuse: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refuse = refuse
        self.runs: dict[str, dict[str, Any]] = {}  # run id -> what get_workflow_run answers (default RUNNING)

    def get_workflow_run(self, *, Name: str, RunId: str, **kw: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if RunId not in self.runs and not RunId.startswith("wr_"):
            raise ClientError({"Error": {"Code": "EntityNotFoundException", "Message": "no run"}}, "GetWorkflowRun")
        return {"Run": {"Name": Name, "WorkflowRunId": RunId, **self.runs.get(RunId, {"Status": "RUNNING"})}}

    def start_workflow_run(self, **kw: Any) -> dict[str, str]:
        from botocore.exceptions import ClientError

        self.calls.append(kw)
        if len(self.calls) <= self.refuse:
            raise ClientError({"Error": {"Code": "ConcurrentRunsExceededException", "Message": "busy"}},
                              "StartWorkflowRun")
        return {"RunId": f"wr_{len(self.calls)}"}


class FakeSns:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, **kw: Any) -> None:
        self.messages.append(kw)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("WORKFLOW_NAME", "wf")
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t")
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0.01")
    with mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket="bkt")
        yield c


def test_handler_starts_once_then_dedupes(s3: Any) -> None:
    etag = put(s3, "input/my file.csv", b"a,b\n1,2\n")
    glue, sns = FakeGlue(), FakeSns()
    ev = eb_event("input/my+file.csv", etag=etag)  # EventBridge raw key; object exists under the decoded key
    res = lh.handler(ev, None, s3=s3, glue=glue, sns=sns)
    assert res["status"] == "started" and res["run_id"] == "wr_1" and res["key"] == "input/my file.csv"
    props = glue.calls[0]["RunProperties"]
    assert props["source_key"] == "input/my file.csv" and props["source_bucket"] == "bkt"
    assert all(isinstance(v, str) for v in props.values())
    claim = json.loads(s3.get_object(Bucket="bkt", Key=props["claim_key"])["Body"].read())
    assert claim["run_id"] == "wr_1"
    again = lh.handler(ev, None, s3=s3, glue=glue, sns=sns)
    assert again["status"] == "skipped" and again["reason"] == "duplicate" and again["run_id"] == "wr_1"
    assert len(glue.calls) == 1
    assert [m["Subject"].split(":")[1].split()[0] for m in sns.messages] == ["started", "skipped"]


def test_handler_skips_outside_input_and_missing(s3: Any) -> None:
    glue, sns = FakeGlue(), FakeSns()
    assert lh.handler(eb_event("output/x/part-0000.parquet"), None, s3=s3, glue=glue, sns=sns)["status"] == "skipped"
    res = lh.handler(eb_event("input/gone.csv"), None, s3=s3, glue=glue, sns=sns)
    assert res["status"] == "skipped" and "no longer exists" in res["reason"]
    s3.put_object(Bucket="bkt", Key="input/zero.csv", Body=b"")
    assert "zero-byte" in lh.handler(eb_event("input/zero.csv", size=0), None, s3=s3, glue=glue, sns=sns)["reason"]
    assert glue.calls == []


def test_handler_retries_concurrency_then_gives_up(s3: Any) -> None:
    etag = put(s3, "input/a.csv", b"x")
    glue = FakeGlue(refuse=2)
    assert lh.handler(s3_event("input/a.csv", etag=etag), None, s3=s3, glue=glue, sns=FakeSns())["status"] == "started"
    assert len(glue.calls) == 3
    etag = put(s3, "input/b.csv", b"y")
    glue, sns = FakeGlue(refuse=100), FakeSns()
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        lh.handler(s3_event("input/b.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    assert "FAILED" in sns.messages[-1]["Subject"]
    # the claim was released: a redelivery can start the run
    assert lh.handler(s3_event("input/b.csv", etag=etag), None, s3=s3, glue=FakeGlue(), sns=sns)["status"] == "started"

    # an event for a version that has since been overwritten is skipped: the newer version's event runs it
    new = put(s3, "input/b.csv", b"z")
    res = lh.handler(s3_event("input/b.csv", etag="0" * 32), None, s3=s3, glue=FakeGlue(), sns=sns)
    assert res["status"] == "skipped" and res["reason"].startswith("superseded") and new in res["reason"]


def _failed(glue: FakeGlue, run_id: str) -> None:
    glue.runs[run_id] = {"Status": "COMPLETED", "Statistics": {"TotalActions": 4, "SucceededActions": 3,
                                                                "FailedActions": 1}}


def replay_event(key: str, etag: str, *, force: bool = False) -> dict[str, Any]:
    ev = eb_event(key, etag=etag)
    ev["detail-type"] = lh.FORCED_REPLAY_DETAIL_TYPE if force else lh.REPLAY_DETAIL_TYPE
    return ev


@pytest.mark.parametrize(("run", "verdict"), [
    ({"Status": "RUNNING"}, "running"),
    ({"Status": "STOPPING"}, "running"),
    ({"Status": "STOPPED"}, "failed"),
    ({"Status": "ERROR"}, "failed"),
    ({"Status": "COMPLETED", "Statistics": {"SucceededActions": 4}}, "succeeded"),
    ({"Status": "COMPLETED", "Statistics": {"SucceededActions": 3, "TimeoutActions": 1}}, "failed"),
    ({"Status": "COMPLETED", "Statistics": {"SucceededActions": 2, "StoppedActions": 1}}, "failed"),
    ({"Status": "COMPLETED", "Statistics": {"FailedActions": 1},
      "WorkflowRunProperties": {"job1_state": "rejected"}}, "rejected"),
    (None, "unknown"),
])
def test_run_verdict(run: dict[str, Any] | None, verdict: str) -> None:
    assert lh.run_verdict(run) == verdict


def test_a_failed_run_is_retried_by_the_next_delivery_once(s3: Any) -> None:
    etag = put(s3, "input/f.csv", b"a\n1\n")
    glue, sns = FakeGlue(), FakeSns()
    first = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    assert first["status"] == "started" and first["attempt"] == 1
    # while attempt 1 runs, the same bytes again are a duplicate
    assert lh.handler(eb_event("input/f.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)["reason"] == "duplicate"
    _failed(glue, first["run_id"])
    second = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    assert second["status"] == "started" and second["attempt"] == 2 and second["run_id"] != first["run_id"]
    props = glue.calls[-1]["RunProperties"]
    assert props["claim_attempt"] == "2" and props["claim_key"].endswith("/2.json")
    # attempt 2 is running: a third delivery is a duplicate naming attempt 2's run
    third = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    assert third["status"] == "skipped" and third["run_id"] == second["run_id"]
    assert len(glue.calls) == 2
    # both claims are kept: the history of attempts
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="_etl_kit/claims/")["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["1.json", "2.json"]


def test_rejected_and_loaded_attempts_stay_duplicates_unless_replayed(s3: Any) -> None:
    etag = put(s3, "input/r.csv", b"a\n1\n")
    glue, sns = FakeGlue(), FakeSns()
    run1 = lh.handler(eb_event("input/r.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)["run_id"]
    glue.runs[run1] = {"Status": "COMPLETED", "Statistics": {"FailedActions": 1},
                       "WorkflowRunProperties": {"job1_state": "rejected"}}
    assert lh.handler(eb_event("input/r.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)["reason"] == "duplicate"
    replayed = lh.handler(replay_event("input/r.csv", etag), None, s3=s3, glue=glue, sns=sns)
    assert replayed["status"] == "started" and replayed["attempt"] == 2
    assert glue.calls[-1]["RunProperties"]["delivery"] == "replay"
    glue.runs[replayed["run_id"]] = {"Status": "COMPLETED", "Statistics": {"SucceededActions": 4}}
    # a succeeded attempt: a duplicate for an event and for a replay; only a forced replay runs it again
    assert lh.handler(eb_event("input/r.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)["status"] == "skipped"
    assert lh.handler(replay_event("input/r.csv", etag), None, s3=s3, glue=glue, sns=sns)["status"] == "skipped"
    forced = lh.handler(replay_event("input/r.csv", etag, force=True), None, s3=s3, glue=glue, sns=sns)
    assert forced["status"] == "started" and forced["attempt"] == 3
    assert len(glue.calls) == 3


def test_a_claim_never_started_is_taken_over_after_its_lease(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    etag = put(s3, "input/l.csv", b"a\n1\n")
    ck = lh.claim_key("bkt", "input/l.csv", etag, attempt=1)
    # a Lambda that claimed, then died before StartWorkflowRun returned
    s3.put_object(Bucket="bkt", Key=ck, Body=json.dumps({"run_id": "", "claimed_at": "2020-01-01T00:00:00+00:00"}))
    glue = FakeGlue()
    res = lh.handler(eb_event("input/l.csv", etag=etag), None, s3=s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 2
    # a fresh claim without a run id is a start in progress: a duplicate
    etag2 = put(s3, "input/m.csv", b"a\n2\n")
    from datetime import datetime

    s3.put_object(Bucket="bkt", Key=lh.claim_key("bkt", "input/m.csv", etag2, attempt=1),
                  Body=json.dumps({"run_id": "", "claimed_at": datetime.now(UTC).isoformat()}))
    assert lh.handler(eb_event("input/m.csv", etag=etag2), None, s3=s3, glue=glue, sns=FakeSns())["status"] == "skipped"
    assert len(glue.calls) == 1


def test_a_claim_from_before_attempts_counts_as_attempt_zero(s3: Any) -> None:
    etag = put(s3, "input/old.csv", b"a\n1\n")
    legacy = lh.claim_key("bkt", "input/old.csv", etag)
    s3.put_object(Bucket="bkt", Key=legacy, Body=json.dumps({"run_id": "wr_old", "claimed_at": "x"}))
    glue = FakeGlue()
    glue.runs["wr_old"] = {"Status": "COMPLETED", "Statistics": {"SucceededActions": 4}}
    res = lh.handler(eb_event("input/old.csv", etag=etag), None, s3=s3, glue=glue, sns=FakeSns())
    assert res["status"] == "skipped" and res["run_id"] == "wr_old"
    _failed(glue, "wr_old")
    res = lh.handler(eb_event("input/old.csv", etag=etag), None, s3=s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 1


def test_a_run_glue_no_longer_knows_is_retried_only_on_replay(s3: Any) -> None:
    etag = put(s3, "input/u.csv", b"a\n1\n")
    s3.put_object(Bucket="bkt", Key=lh.claim_key("bkt", "input/u.csv", etag, attempt=1),
                  Body=json.dumps({"run_id": "gone_run", "claimed_at": "x"}))
    glue = FakeGlue()
    res = lh.handler(eb_event("input/u.csv", etag=etag), None, s3=s3, glue=glue, sns=FakeSns())
    assert res["status"] == "skipped" and "unknown" in res["reason"]
    res = lh.handler(replay_event("input/u.csv", etag), None, s3=s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 2

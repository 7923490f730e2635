"""The Lambda handler: event parsing, key decoding, filters, dedupe claims, SQS batches (in-process moto)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import boto3
import pytest
from moto import mock_aws

from etl_runtime import lambda_handler as lh

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
def mocked_s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("WORKFLOW_NAME", "wf")
    monkeypatch.setenv("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t")
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0.01")
    with mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket="bkt")
        yield c


def test_handler_starts_once_then_dedupes(mocked_s3: Any) -> None:
    etag = put(mocked_s3, "input/my file.csv", b"a,b\n1,2\n")
    glue, sns = FakeGlue(), FakeSns()
    ev = eb_event("input/my+file.csv", etag=etag)  # EventBridge raw key; object exists under the decoded key
    res = lh.handler(ev, None, s3=mocked_s3, glue=glue, sns=sns)
    assert res["status"] == "started" and res["run_id"] == "wr_1" and res["key"] == "input/my file.csv"
    props = glue.calls[0]["RunProperties"]
    assert props["source_key"] == "input/my file.csv" and props["source_bucket"] == "bkt"
    assert all(isinstance(v, str) for v in props.values())
    claim = json.loads(mocked_s3.get_object(Bucket="bkt", Key=props["claim_key"])["Body"].read())
    assert claim["run_id"] == "wr_1"
    again = lh.handler(ev, None, s3=mocked_s3, glue=glue, sns=sns)
    assert again["status"] == "skipped" and again["reason"] == "duplicate" and again["run_id"] == "wr_1"
    assert len(glue.calls) == 1
    assert [m["Subject"].split(":")[1].split()[0] for m in sns.messages] == ["started", "skipped"]


def test_handler_skips_outside_input_and_missing(mocked_s3: Any) -> None:
    glue, sns = FakeGlue(), FakeSns()
    assert lh.handler(eb_event("output/x/part-0000.parquet"), None, s3=mocked_s3, glue=glue,
                      sns=sns)["status"] == "skipped"
    res = lh.handler(eb_event("input/gone.csv"), None, s3=mocked_s3, glue=glue, sns=sns)
    assert res["status"] == "skipped" and "no longer exists" in res["reason"]
    mocked_s3.put_object(Bucket="bkt", Key="input/zero.csv", Body=b"")
    assert "zero-byte" in lh.handler(eb_event("input/zero.csv", size=0), None, s3=mocked_s3, glue=glue,
                                     sns=sns)["reason"]
    assert glue.calls == []


def test_direct_event_that_cannot_start_raises_and_releases_the_claim(mocked_s3: Any) -> None:
    from botocore.exceptions import ClientError

    etag = put(mocked_s3, "input/b.csv", b"y")
    glue, sns = FakeGlue(refuse=1), FakeSns()
    with pytest.raises(ClientError, match="ConcurrentRunsExceeded"):
        lh.handler(s3_event("input/b.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)
    assert len(glue.calls) == 1  # one attempt: the function never sleeps waiting for a slot
    assert sns.messages == []  # waiting for a run slot is not a failure worth a notice
    # the claim was released: a redelivery can start the run
    assert lh.handler(s3_event("input/b.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)["status"] == "started"

    # an event for a version that has since been overwritten is skipped: the newer version's event runs it
    new = put(mocked_s3, "input/b.csv", b"z")
    res = lh.handler(s3_event("input/b.csv", etag="0" * 32), None, s3=mocked_s3, glue=FakeGlue(), sns=sns)
    assert res["status"] == "skipped" and res["reason"].startswith("superseded") and new in res["reason"]


class NoDeleteS3:
    """The project bucket through a role that may not delete claims (as before s3:DeleteObject on claims/*)."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def delete_object(self, **kw: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: s3:DeleteObject"}},
                          "DeleteObject")


def test_a_claim_that_cannot_be_released_is_logged_and_the_retry_still_starts(
        mocked_s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from botocore.exceptions import ClientError

    etag = put(mocked_s3, "input/r.csv", b"y")
    glue, sns, s3 = FakeGlue(refuse=1), FakeSns(), NoDeleteS3(mocked_s3)
    with pytest.raises(ClientError, match="ConcurrentRunsExceeded"):
        lh.handler(s3_event("input/r.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [err] = [rec for rec in logs if rec.get("decision") == "claim_release_failed"]
    ckey = lh.claim_key("bkt", "input/r.csv", etag, attempt=1)
    assert err["level"] == "ERROR" and err["claim_key"] == ckey
    assert "AccessDenied" in err["error"] and "ConcurrentRunsExceeded" in err["start_error"]
    # the claim stayed, marked as a failed start: the retried event takes the next attempt and starts
    held = json.loads(mocked_s3.get_object(Bucket="bkt", Key=ckey)["Body"].read())
    assert held["start_failed"] and held["run_id"] == ""
    res = lh.handler(s3_event("input/r.csv", etag=etag), None, s3=s3, glue=glue, sns=sns)
    assert res["status"] == "started" and res["attempt"] == 2 and len(glue.calls) == 2


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


def test_a_failed_run_is_retried_by_the_next_delivery_once(mocked_s3: Any) -> None:
    etag = put(mocked_s3, "input/f.csv", b"a\n1\n")
    glue, sns = FakeGlue(), FakeSns()
    first = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)
    assert first["status"] == "started" and first["attempt"] == 1
    # while attempt 1 runs, the same bytes again are a duplicate
    assert lh.handler(eb_event("input/f.csv", etag=etag), None, s3=mocked_s3, glue=glue,
                      sns=sns)["reason"] == "duplicate"
    _failed(glue, first["run_id"])
    second = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)
    assert second["status"] == "started" and second["attempt"] == 2 and second["run_id"] != first["run_id"]
    props = glue.calls[-1]["RunProperties"]
    assert props["claim_attempt"] == "2" and props["claim_key"].endswith("/2.json")
    # attempt 2 is running: a third delivery is a duplicate naming attempt 2's run
    third = lh.handler(eb_event("input/f.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)
    assert third["status"] == "skipped" and third["run_id"] == second["run_id"]
    assert len(glue.calls) == 2
    # both claims are kept: the history of attempts
    keys = [o["Key"] for o in mocked_s3.list_objects_v2(Bucket="bkt", Prefix="_etl_kit/claims/")["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == ["1.json", "2.json"]


def test_rejected_and_loaded_attempts_stay_duplicates_unless_replayed(mocked_s3: Any) -> None:
    etag = put(mocked_s3, "input/r.csv", b"a\n1\n")
    glue, sns = FakeGlue(), FakeSns()
    run1 = lh.handler(eb_event("input/r.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)["run_id"]
    glue.runs[run1] = {"Status": "COMPLETED", "Statistics": {"FailedActions": 1},
                       "WorkflowRunProperties": {"job1_state": "rejected"}}
    assert lh.handler(eb_event("input/r.csv", etag=etag), None, s3=mocked_s3, glue=glue,
                      sns=sns)["reason"] == "duplicate"
    replayed = lh.handler(replay_event("input/r.csv", etag), None, s3=mocked_s3, glue=glue, sns=sns)
    assert replayed["status"] == "started" and replayed["attempt"] == 2
    assert glue.calls[-1]["RunProperties"]["delivery"] == "replay"
    glue.runs[replayed["run_id"]] = {"Status": "COMPLETED", "Statistics": {"SucceededActions": 4}}
    # a succeeded attempt: a duplicate for an event and for a replay; only a forced replay runs it again
    assert lh.handler(eb_event("input/r.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=sns)["status"] == "skipped"
    assert lh.handler(replay_event("input/r.csv", etag), None, s3=mocked_s3, glue=glue, sns=sns)["status"] == "skipped"
    forced = lh.handler(replay_event("input/r.csv", etag, force=True), None, s3=mocked_s3, glue=glue, sns=sns)
    assert forced["status"] == "started" and forced["attempt"] == 3
    assert len(glue.calls) == 3


def test_a_claim_never_started_is_taken_over_after_its_lease(mocked_s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    etag = put(mocked_s3, "input/l.csv", b"a\n1\n")
    ck = lh.claim_key("bkt", "input/l.csv", etag, attempt=1)
    # a Lambda that claimed, then died before StartWorkflowRun returned
    mocked_s3.put_object(Bucket="bkt", Key=ck,
                         Body=json.dumps({"run_id": "", "claimed_at": "2020-01-01T00:00:00+00:00"}))
    glue = FakeGlue()
    res = lh.handler(eb_event("input/l.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 2
    # a fresh claim without a run id is a start in progress: a duplicate
    etag2 = put(mocked_s3, "input/m.csv", b"a\n2\n")
    from datetime import datetime

    mocked_s3.put_object(Bucket="bkt", Key=lh.claim_key("bkt", "input/m.csv", etag2, attempt=1),
                         Body=json.dumps({"run_id": "", "claimed_at": datetime.now(UTC).isoformat()}))
    assert lh.handler(eb_event("input/m.csv", etag=etag2), None, s3=mocked_s3, glue=glue,
                      sns=FakeSns())["status"] == "skipped"
    assert len(glue.calls) == 1


def test_a_claim_from_before_attempts_counts_as_attempt_zero(mocked_s3: Any) -> None:
    etag = put(mocked_s3, "input/old.csv", b"a\n1\n")
    legacy = lh.claim_key("bkt", "input/old.csv", etag)
    mocked_s3.put_object(Bucket="bkt", Key=legacy, Body=json.dumps({"run_id": "wr_old", "claimed_at": "x"}))
    glue = FakeGlue()
    glue.runs["wr_old"] = {"Status": "COMPLETED", "Statistics": {"SucceededActions": 4}}
    res = lh.handler(eb_event("input/old.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=FakeSns())
    assert res["status"] == "skipped" and res["run_id"] == "wr_old"
    _failed(glue, "wr_old")
    res = lh.handler(eb_event("input/old.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 1


def test_a_run_glue_no_longer_knows_is_retried_only_on_replay(mocked_s3: Any) -> None:
    etag = put(mocked_s3, "input/u.csv", b"a\n1\n")
    mocked_s3.put_object(Bucket="bkt", Key=lh.claim_key("bkt", "input/u.csv", etag, attempt=1),
                         Body=json.dumps({"run_id": "gone_run", "claimed_at": "x"}))
    glue = FakeGlue()
    res = lh.handler(eb_event("input/u.csv", etag=etag), None, s3=mocked_s3, glue=glue, sns=FakeSns())
    assert res["status"] == "skipped" and "unknown" in res["reason"]
    res = lh.handler(replay_event("input/u.csv", etag), None, s3=mocked_s3, glue=glue, sns=FakeSns())
    assert res["status"] == "started" and res["attempt"] == 2


class BusyGlue(FakeGlue):
    """Starts ``free`` runs, then answers ConcurrentRunsExceeded (or ``error``) to every other call."""

    def __init__(self, free: int, error: str = "ConcurrentRunsExceededException") -> None:
        super().__init__()
        self.free, self.error = free, error

    def start_workflow_run(self, **kw: Any) -> dict[str, str]:
        from botocore.exceptions import ClientError

        self.calls.append(kw)
        if len(self.calls) > self.free:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "StartWorkflowRun")
        return {"RunId": f"wr_{len(self.calls)}"}


@pytest.fixture
def queue(mocked_s3: Any) -> Any:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="intake")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def sqs_records(queue: Any, bodies: list[str]) -> list[dict[str, Any]]:
    """Send ``bodies``, receive them (visible again at once) and build Lambda's SQS records, in order."""
    sqs, url, arn = queue
    ids = [sqs.send_message(QueueUrl=url, MessageBody=b)["MessageId"] for b in bodies]
    got: dict[str, dict[str, Any]] = {}
    while len(got) < len(ids):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                     AttributeNames=["All"]).get("Messages", []):
            got[m["MessageId"]] = m
    return [{"messageId": i, "receiptHandle": got[i]["ReceiptHandle"], "body": got[i]["Body"],
             "attributes": {"ApproximateReceiveCount": got[i]["Attributes"]["ApproximateReceiveCount"]},
             "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"}
            for i in ids]


def visible_bodies(queue: Any) -> list[str]:
    sqs, url, _ = queue
    out: list[str] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return sorted(out)
        out += [m["Body"] for m in msgs]


def test_sqs_batch_reports_waiting_and_poison_records_and_delays_the_waiting(mocked_s3: Any, queue: Any) -> None:
    sqs = queue[0]
    e_a, e_b, e_c = (put(mocked_s3, f"input/{k}.csv", b"a,b\n1,2\n" + k.encode()) for k in "abc")
    mocked_s3.put_object(Bucket="bkt", Key="input/notes.txt", Body=b"x")
    bodies = [json.dumps(eb_event("input/a.csv", etag=e_a)), json.dumps(eb_event("input/a.csv", etag=e_a)),
              json.dumps(eb_event("input/notes.txt")), "not an event {", json.dumps(eb_event("input/b.csv", etag=e_b)),
              json.dumps(eb_event("input/c.csv", etag=e_c)), json.dumps({"Event": "s3:TestEvent"})]
    records = sqs_records(queue, bodies)
    glue, sns = BusyGlue(free=1), FakeSns()
    res = lh.handler({"Records": records}, None, s3=mocked_s3, glue=glue, sns=sns, sqs=sqs)

    failed = [f["itemIdentifier"] for f in res["batchItemFailures"]]
    assert failed == [records[3]["messageId"], records[4]["messageId"], records[5]["messageId"]]
    # a started, its duplicate skipped, b refused (no slot), c not even tried once no slot was free
    assert [c["RunProperties"]["source_key"] for c in glue.calls] == ["input/a.csv", "input/b.csv"]
    claims = [o["Key"] for o in mocked_s3.list_objects_v2(Bucket="bkt", Prefix="_etl_kit/claims/").get("Contents", [])]
    assert claims == [lh.claim_key("bkt", "input/a.csv", e_a, attempt=1)]  # b's claim released, c never claimed
    assert not [m for m in sns.messages if "FAILED" in m["Subject"]]
    # successes stay for the event source mapping to delete; the poison comes back at once (towards the
    # DLQ); the waiting ones are hidden for their backoff
    assert visible_bodies(queue) == sorted(bodies[:4] + bodies[6:])


def test_sqs_batch_unexpected_errors_fail_only_their_record(mocked_s3: Any, queue: Any) -> None:
    e_a, e_b = (put(mocked_s3, f"input/{k}.csv", b"a,b\n1,2\n" + k.encode()) for k in "ab")
    records = sqs_records(queue, [json.dumps(eb_event(f"input/{k}.csv", etag=e)) for k, e in (("a", e_a), ("b", e_b))])
    glue, sns = BusyGlue(free=0, error="EntityNotFoundException"), FakeSns()
    res = lh.handler({"Records": records}, None, s3=mocked_s3, glue=glue, sns=sns, sqs=queue[0])
    assert [f["itemIdentifier"] for f in res["batchItemFailures"]] == [r["messageId"] for r in records]
    assert len(glue.calls) == 2  # not a busy signal: every record is tried
    assert [m["Subject"] for m in sns.messages] == ["etl-kit: FAILED to start wf"] * 2
    assert "intake DLQ" in sns.messages[0]["Message"]
    assert mocked_s3.list_objects_v2(Bucket="bkt", Prefix="_etl_kit/claims/").get("KeyCount", 0) == 0
    # once the workflow exists again, the same records start their runs and are not reported
    res = lh.handler({"Records": sqs_records(queue, [r["body"] for r in records])}, None, s3=mocked_s3, glue=FakeGlue(),
                     sns=sns, sqs=queue[0])
    assert res == {"batchItemFailures": []}


def test_backoff_grows_with_the_receive_count_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "2")
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "900")
    for count in range(1, 40):
        top = min(900, 2 * 2 ** (count - 1))
        for _ in range(20):
            d = lh.backoff_seconds(count)
            assert max(1, round(top / 2)) <= d <= top and isinstance(d, int)
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "999999")
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "100000")
    assert lh.backoff_seconds(1) == lh.MAX_VISIBILITY_SECONDS == 43200  # SQS's ceiling for a visibility timeout


def test_handler_imports_neither_pyarrow_nor_the_job_modules() -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "import etl_runtime.lambda_handler\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'etl_runtime', 'etl_kit', "
            "'etl_localcloud', 'pandas')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # stdlib + boto3 only: the package's __init__ stays empty; of the runtime only its stdlib helpers
    assert out.stdout.strip() == "['etl_runtime', 'etl_runtime.awsutil', 'etl_runtime.lambda_handler']"

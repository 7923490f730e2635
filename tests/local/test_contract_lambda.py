"""Contract: EventBridge -> Lambda and lambda.invoke run the deployed code, driven by plain boto3 only."""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import wait_for

pytestmark = pytest.mark.local

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", source)
    return buf.getvalue()


def _function(boto, name: str, source: str, timeout: int = 30, env: dict | None = None) -> str:
    iam = boto("iam")
    try:
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    except ClientError:
        role = iam.get_role(RoleName=f"{name}-role")["Role"]["Arn"]
    # IAM is enforced for the function's session (docs/local-cloud.md): what these contract functions call
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                     "Action": ["s3:*", "sqs:*", "sns:*", "logs:*"]}]}
    iam.put_role_policy(RoleName=f"{name}-role", PolicyName="contract", PolicyDocument=json.dumps(broad))
    fn = boto("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                                        Code={"ZipFile": _zip(source)}, Timeout=timeout,
                                        Environment={"Variables": env or {}})
    return str(fn["FunctionArn"])


MARKER = '''
import json, os, boto3
def handler(event, context):
    key = event["detail"]["object"]["key"]
    body = json.dumps({"event": event, "remaining": context.get_remaining_time_in_millis()})
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"], Key="markers/" + key.split("/")[-1], Body=body)
    print("marked", key)
    return {"marked": key}
'''


def lambda_report(endpoint: str) -> dict[str, Any]:
    """The local cloud's own report on its Lambda service (part ``lambda`` of its health document).

    ``async_pending``: asynchronous invocations queued or running; a rule's Lambda target is queued inside the
    ``put_object`` that emitted the event, so once it is 0 every upload so far has run its target to the end
    or matched no rule. ``sqs_pollers``: the event source mappings being polled.
    """
    from etl_localcloud.manager import health

    return dict(((health(endpoint) or {}).get("providers") or {}).get("lambda") or {})


def test_put_object_under_input_invokes_the_rule_target(boto, endpoint: str) -> None:
    s3, events = boto("s3"), boto("events")
    s3.create_bucket(Bucket="contract-lambda")
    s3.put_bucket_notification_configuration(Bucket="contract-lambda",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    arn = _function(boto, "marker-fn", MARKER, env={"BUCKET": "contract-lambda"})
    events.put_rule(Name="marker-rule", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["contract-lambda"]}, "object": {"key": [{"prefix": "input/"}]}}}))
    events.put_targets(Rule="marker-rule", Targets=[{"Id": "fn", "Arn": arn}])
    # as on AWS, EventBridge invokes the function only if the function's policy lets the rule
    boto("lambda").add_permission(FunctionName="marker-fn", StatementId="marker-rule",
                                  Action="lambda:InvokeFunction", Principal="events.amazonaws.com",
                                  SourceArn=events.describe_rule(Name="marker-rule")["Arn"])

    # the object outside input/ first: the marker of the one after it is the positive signal
    s3.put_object(Bucket="contract-lambda", Key="other/skip.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket="contract-lambda", Key="input/sales 1.csv", Body=b"a,b\n1,2\n")

    body = wait_for("the marker the function wrote",
                    lambda: s3.list_objects_v2(Bucket="contract-lambda", Prefix="markers/").get("Contents"), 30)
    assert [o["Key"] for o in body] == ["markers/sales 1.csv"]
    doc = json.loads(s3.get_object(Bucket="contract-lambda", Key="markers/sales 1.csv")["Body"].read())
    assert doc["event"]["detail-type"] == "Object Created"
    assert doc["event"]["detail"]["bucket"]["name"] == "contract-lambda"
    assert doc["event"]["time"].endswith("Z")
    assert 0 < doc["remaining"] <= 30_000
    wait_for("every queued invocation to end", lambda: lambda_report(endpoint).get("async_pending") == 0, 30)
    assert len(s3.list_objects_v2(Bucket="contract-lambda", Prefix="markers/")["Contents"]) == 1
    logs = boto("logs")

    def log_text() -> str:  # the runtime writes the log when the invocation ends, after the marker
        try:
            streams = logs.describe_log_streams(logGroupName="/aws/lambda/marker-fn")["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return ""
        return "\n".join(e["message"] for s in streams
                         for e in logs.get_log_events(logGroupName="/aws/lambda/marker-fn",
                                                      logStreamName=s["logStreamName"])["events"])

    text = wait_for("the invocation's END line in its log", lambda: "END RequestId" in log_text() and log_text(), 30)
    assert "marked input/sales 1.csv" in text and "START RequestId" in text


def test_invoke_returns_the_result_and_errors_like_lambda(boto) -> None:
    lam = boto("lambda")
    _function(boto, "echo-fn", "def handler(event, context):\n    return {'got': event['x'] * 2}\n")
    resp = lam.invoke(FunctionName="echo-fn", Payload=json.dumps({"x": 21}))
    assert json.loads(resp["Payload"].read()) == {"got": 42}
    assert "FunctionError" not in resp

    _function(boto, "boom-fn", "def handler(event, context):\n    raise ValueError('bad input: 7')\n")
    resp = lam.invoke(FunctionName="boom-fn", Payload=b"{}", LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    err = json.loads(resp["Payload"].read())
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "bad input: 7"

    _function(boto, "slow-fn", "import time\ndef handler(event, context):\n    time.sleep(30)\n", timeout=1)
    resp = lam.invoke(FunctionName="slow-fn", Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(resp["Payload"].read())["errorMessage"]

    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="no-such-fn", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_async_failures_are_retried_then_sent_to_the_on_failure_destination(boto) -> None:
    sqs, lam = boto("sqs"), boto("lambda")
    url = sqs.create_queue(QueueName="fail-dest")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = ("import os, boto3\ndef handler(event, context):\n"
              "    boto3.client('sqs').send_message(QueueUrl=os.environ['Q'], MessageBody='attempt')\n"
              "    raise RuntimeError('always fails')\n")
    attempts_url = sqs.create_queue(QueueName="attempts")["QueueUrl"]
    _function(boto, "fail-fn", source, env={"Q": attempts_url})
    lam.put_function_event_invoke_config(FunctionName="fail-fn", MaximumRetryAttempts=1,
                                         DestinationConfig={"OnFailure": {"Destination": qarn}})
    lam.invoke(FunctionName="fail-fn", InvocationType="Event", Payload=json.dumps({"n": 1}))
    msgs = wait_for("the on-failure record",
                    lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"), 30)
    record = json.loads(msgs[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"n": 1}
    assert record["responsePayload"]["errorMessage"] == "always fails"
    attempts = sqs.get_queue_attributes(QueueUrl=attempts_url,
                                        AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert attempts["ApproximateNumberOfMessages"] == "2"


# -- SQS event source mappings -------------------------------------------------------------------------------

SQS_RECORDER = '''
import json, os, boto3
def handler(event, context):
    sqs = boto3.client("sqs")
    failures = []
    for rec in event["Records"]:
        sqs.send_message(QueueUrl=os.environ["SEEN"], MessageBody=json.dumps({"record": rec}))
        if rec["body"].startswith("fail"):
            failures.append({"itemIdentifier": rec["messageId"]})
    if os.environ.get("CRASH") == "1":
        raise RuntimeError("whole batch fails")
    return {"batchItemFailures": failures}
'''


def _queue(sqs, name: str, **attrs: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _drain(sqs, url: str, n: int, timeout: float = 60.0) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    got: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(json.loads(m["Body"]) if m["Body"].startswith("{") else {"body": m["Body"]})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert len(got) >= n, f"{len(got)} of {n} messages arrived"
    return got


def _count(sqs, url: str) -> int:  # type: ignore[no-untyped-def]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in a["Attributes"].values())


@dataclass(frozen=True)
class RecorderQueues:
    """The queues around an SQS_RECORDER function: its source queue, its dead-letter queue, where it records."""

    url: str
    arn: str
    dlq_url: str
    seen_url: str


def _recorder_with_queues(boto, prefix: str, **env: str) -> RecorderQueues:  # type: ignore[no-untyped-def]
    """Queues ``{prefix}-seen``, ``{prefix}-dlq`` and ``{prefix}-src`` (redriven to the DLQ after 2 receives), and
    the SQS_RECORDER function ``{prefix}-fn`` recording into ``-seen``, with ``env`` added to its environment.

    10 s function timeout and visibility: a loaded machine must not time the function out (that fails the whole
    batch, redelivering it)."""
    sqs = boto("sqs")
    seen_url, _ = _queue(sqs, f"{prefix}-seen")
    dlq_url, dlq_arn = _queue(sqs, f"{prefix}-dlq")
    url, arn = _queue(sqs, f"{prefix}-src", VisibilityTimeout="10",
                      RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    _function(boto, f"{prefix}-fn", SQS_RECORDER, timeout=10, env={"SEEN": seen_url, **env})
    return RecorderQueues(url, arn, dlq_url, seen_url)


def test_sqs_mapping_deletes_successes_and_redrives_reported_failures(boto) -> None:
    sqs, lam = boto("sqs"), boto("lambda")
    q = _recorder_with_queues(boto, "esm")
    url, arn, dlq_url, seen_url = q.url, q.arn, q.dlq_url, q.seen_url
    esm = lam.create_event_source_mapping(FunctionName="esm-fn", EventSourceArn=arn, BatchSize=10,
                                          MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=[
                                              "ReportBatchItemFailures"], ScalingConfig={"MaximumConcurrency": 2})
    assert esm["State"] == "Enabled" and esm["ScalingConfig"] == {"MaximumConcurrency": 2}
    try:
        # sent after the mapping exists: moto's own consumer (a Docker invoke on send_message) must not act
        for i in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"ok-{i}",
                             MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}})
        sqs.send_message(QueueUrl=url, MessageBody="fail-1")
        # the failed message is delivered twice (maxReceiveCount), then the redrive moves it to the DLQ
        [dead] = _drain(sqs, dlq_url, 1)
        assert dead == {"body": "fail-1"}
        seen = _drain(sqs, seen_url, 7)
        bodies = sorted(s["record"]["body"] for s in seen)
        assert bodies == ["fail-1", "fail-1", "ok-0", "ok-1", "ok-2", "ok-3", "ok-4"]  # successes exactly once
        rec = next(s["record"] for s in seen if s["record"]["body"] == "ok-0")
        assert rec["eventSource"] == "aws:sqs" and rec["eventSourceARN"] == arn and rec["awsRegion"] == "us-east-1"
        assert rec["messageId"] and rec["receiptHandle"] and rec["md5OfBody"]
        assert rec["attributes"]["ApproximateReceiveCount"] == "1" and rec["attributes"]["SentTimestamp"]
        assert rec["messageAttributes"]["kind"]["stringValue"] == "test"
        counts = sorted(s["record"]["attributes"]["ApproximateReceiveCount"] for s in seen
                        if s["record"]["body"] == "fail-1")
        assert counts == ["1", "2"]
        wait_for("the batch deleted once the invocation returned", lambda: _count(sqs, url) == 0, 30)
    finally:
        lam.delete_event_source_mapping(UUID=esm["UUID"])


def test_sqs_mapping_function_error_fails_the_whole_batch_and_poison_reaches_the_dlq(boto) -> None:
    sqs, lam = boto("sqs"), boto("lambda")
    q = _recorder_with_queues(boto, "esm-crash", CRASH="1")
    url, arn, dlq_url, seen_url = q.url, q.arn, q.dlq_url, q.seen_url
    sqs.send_message(QueueUrl=url, MessageBody="ok-but-the-function-crashes")
    sqs.send_message(QueueUrl=url, MessageBody="not an event {")
    esm = lam.create_event_source_mapping(FunctionName="esm-crash-fn", EventSourceArn=arn, BatchSize=10,
                                          MaximumBatchingWindowInSeconds=1,
                                          FunctionResponseTypes=["ReportBatchItemFailures"])
    try:
        dead = _drain(sqs, dlq_url, 2)
        assert sorted(d["body"] for d in dead) == ["not an event {", "ok-but-the-function-crashes"]
        seen = _drain(sqs, seen_url, 4)  # both messages, each received maxReceiveCount (2) times
        assert sorted(s["record"]["body"] for s in seen) == ["not an event {"] * 2 + [
            "ok-but-the-function-crashes"] * 2
        wait_for("the batch deleted once the invocation returned", lambda: _count(sqs, url) == 0, 30)
    finally:
        lam.delete_event_source_mapping(UUID=esm["UUID"])


def test_sqs_mapping_disable_and_enable_take_effect_and_aws_refusals(boto, cloud) -> None:
    sqs, lam = boto("sqs"), boto("lambda")
    seen_url, _ = _queue(sqs, "esm-toggle-seen")
    url, arn = _queue(sqs, "esm-toggle-src", VisibilityTimeout="10")
    _function(boto, "esm-toggle-fn", SQS_RECORDER, timeout=10, env={"SEEN": seen_url})
    _, short_arn = _queue(sqs, "esm-short-visibility", VisibilityTimeout="9")
    for kw, code, text in [
        ({"EventSourceArn": short_arn}, "InvalidParameterValueException", "less than Function timeout"),
        ({"EventSourceArn": arn, "BatchSize": 50}, "InvalidParameterValueException", "Maximum batch window"),
        ({"EventSourceArn": arn, "ScalingConfig": {"MaximumConcurrency": 1001}}, "ValidationException", "2 and 1000"),
    ]:
        with pytest.raises(ClientError) as exc:
            lam.create_event_source_mapping(FunctionName="esm-toggle-fn", **kw)
        assert exc.value.response["Error"]["Code"] == code and text in str(exc.value)
    assert lam.list_event_source_mappings(FunctionName="esm-toggle-fn")["EventSourceMappings"] == []

    esm = lam.create_event_source_mapping(FunctionName="esm-toggle-fn", EventSourceArn=arn)
    try:
        with pytest.raises(ClientError) as exc:
            lam.create_event_source_mapping(FunctionName="esm-toggle-fn", EventSourceArn=arn)
        assert exc.value.response["Error"]["Code"] == "ResourceConflictException" and esm["UUID"] in str(exc.value)

        def pollers() -> list[str]:
            return list(lambda_report(cloud.local_endpoint).get("sqs_pollers", []))

        wait_for("the mapping's poller to start", lambda: esm["UUID"] in pollers(), 30)
        lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
        wait_for("the mapping's poller to stop", lambda: esm["UUID"] not in pollers(), 30)
        sqs.send_message(QueueUrl=url, MessageBody="while-disabled")
        # nobody else consumes a disabled mapping's queue (moto's own Docker invoke included): we receive it first
        [m] = wait_for("the message of the disabled mapping", lambda: sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=1, AttributeNames=["All"]).get("Messages"), 30)
        assert m["Body"] == "while-disabled" and m["Attributes"]["ApproximateReceiveCount"] == "1"
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=True)
        [seen] = _drain(sqs, seen_url, 1)
        assert seen["record"]["body"] == "while-disabled"
        assert seen["record"]["attributes"]["ApproximateReceiveCount"] == "2"
    finally:
        lam.delete_event_source_mapping(UUID=esm["UUID"])
    wait_for("the mapping's poller to stop", lambda: esm["UUID"] not in pollers(), 30)


def test_sqs_mapping_honours_batch_size_and_maximum_concurrency(boto) -> None:
    sqs, lam = boto("sqs"), boto("lambda")
    seen_url, _ = _queue(sqs, "esm-conc-seen")
    url, arn = _queue(sqs, "esm-conc-src", VisibilityTimeout="30")
    source = ('import json, os, time, boto3\n'
              'def handler(event, context):\n'
              '    start = time.time(); time.sleep(1.5)\n'
              '    boto3.client("sqs").send_message(QueueUrl=os.environ["SEEN"], MessageBody=json.dumps(\n'
              '        {"n": len(event["Records"]), "start": start, "end": time.time()}))\n')
    _function(boto, "esm-conc-fn", source, timeout=10, env={"SEEN": seen_url})
    esm = lam.create_event_source_mapping(FunctionName="esm-conc-fn", EventSourceArn=arn, BatchSize=1,
                                          ScalingConfig={"MaximumConcurrency": 2})
    try:
        for i in range(6):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        calls = _drain(sqs, seen_url, 6, timeout=120)
        assert [c["n"] for c in calls] == [1] * 6  # BatchSize 1: one record per invocation
        overlap = max(sum(1 for o in calls if o["start"] < c["end"] and c["start"] < o["end"]) for c in calls)
        assert overlap <= 2  # never more than MaximumConcurrency invocations at once
        wait_for("the batch deleted once the invocation returned", lambda: _count(sqs, url) == 0, 30)
    finally:
        lam.delete_event_source_mapping(UUID=esm["UUID"])


def test_a_rule_with_an_sqs_target_delivers_the_aws_shaped_event(boto) -> None:
    s3, events, sqs = boto("s3"), boto("events"), boto("sqs")
    s3.create_bucket(Bucket="contract-sqs-target")
    s3.put_bucket_notification_configuration(Bucket="contract-sqs-target",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    url, arn = _queue(sqs, "rule-target-queue")
    events.put_rule(Name="sqs-target-rule", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["contract-sqs-target"]}, "object": {"key": [{"prefix": "input/"}]}}}))
    events.put_targets(Rule="sqs-target-rule", Targets=[{"Id": "q", "Arn": arn}])
    # as on AWS, EventBridge sends only if the queue's policy lets the rule
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": events.describe_rule(
            Name="sqs-target-rule")["Arn"]}}}]})})
    etag = s3.put_object(Bucket="contract-sqs-target", Key="input/a b.csv", Body=b"a\n1\n")["ETag"].strip('"')
    [event] = _drain(sqs, url, 1)
    assert event["detail-type"] == "Object Created" and event["time"].endswith("Z")
    obj = event["detail"]["object"]
    assert obj["etag"] == etag and "eTag" not in obj and "version-id" not in obj  # unversioned bucket
    assert obj["key"] in ("input/a+b.csv", "input/a b.csv") and obj["size"] == 4
    events.remove_targets(Rule="sqs-target-rule", Ids=["q"])
    events.delete_rule(Name="sqs-target-rule")

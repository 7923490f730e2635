"""Contract: EventBridge -> Lambda and lambda.invoke run the deployed code, driven by plain boto3 only."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from botocore.exceptions import ClientError

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
    fn = boto("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                                        Code={"ZipFile": _zip(source)}, Timeout=timeout,
                                        Environment={"Variables": env or {}})
    return str(fn["FunctionArn"])


def _wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


MARKER = '''
import json, os, boto3
def handler(event, context):
    key = event["detail"]["object"]["key"]
    body = json.dumps({"event": event, "remaining": context.get_remaining_time_in_millis()})
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"], Key="markers/" + key.split("/")[-1], Body=body)
    print("marked", key)
    return {"marked": key}
'''


def test_put_object_under_input_invokes_the_rule_target(boto) -> None:
    s3, events = boto("s3"), boto("events")
    s3.create_bucket(Bucket="contract-lambda")
    s3.put_bucket_notification_configuration(Bucket="contract-lambda",
                                             NotificationConfiguration={"EventBridgeConfiguration": {}})
    arn = _function(boto, "marker-fn", MARKER, env={"BUCKET": "contract-lambda"})
    events.put_rule(Name="marker-rule", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["contract-lambda"]}, "object": {"key": [{"prefix": "input/"}]}}}))
    events.put_targets(Rule="marker-rule", Targets=[{"Id": "fn", "Arn": arn}])

    s3.put_object(Bucket="contract-lambda", Key="input/sales 1.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket="contract-lambda", Key="other/skip.csv", Body=b"a,b\n1,2\n")

    body = _wait_for(lambda: s3.list_objects_v2(Bucket="contract-lambda", Prefix="markers/").get("Contents"))
    assert [o["Key"] for o in body] == ["markers/sales 1.csv"]
    doc = json.loads(s3.get_object(Bucket="contract-lambda", Key="markers/sales 1.csv")["Body"].read())
    assert doc["event"]["detail-type"] == "Object Created"
    assert doc["event"]["detail"]["bucket"]["name"] == "contract-lambda"
    assert doc["event"]["time"].endswith("Z")
    assert 0 < doc["remaining"] <= 30_000
    time.sleep(0.5)  # the object outside input/ must not have fired
    assert len(s3.list_objects_v2(Bucket="contract-lambda", Prefix="markers/")["Contents"]) == 1
    logs = boto("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/marker-fn")["logStreams"]
    text = "\n".join(e["message"] for s in streams
                     for e in logs.get_log_events(logGroupName="/aws/lambda/marker-fn",
                                                  logStreamName=s["logStreamName"])["events"])
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
    msgs = _wait_for(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"), timeout=30)
    record = json.loads(msgs[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"n": 1}
    assert record["responsePayload"]["errorMessage"] == "always fails"
    attempts = sqs.get_queue_attributes(QueueUrl=attempts_url,
                                        AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert attempts["ApproximateNumberOfMessages"] == "2"

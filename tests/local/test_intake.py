"""The durable intake end to end: EventBridge -> SQS intake queue -> event source mapping -> the Lambda.

A burst of uploads with few workflow run slots ends with one run and one ledger row per object and nothing in
the DLQ (the events waited in the queue); a message that is not an event reaches the DLQ after the queue's
maxReceiveCount, and provisioning puts the redrive policy back.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from etl_kit.config import Settings
from tests.local._provision_helpers import unique

pytestmark = pytest.mark.local

# Twenty times the run slots: every object waits in the queue, most of them many times. 200 took 20 min on
# a quiet 2-core machine (each crawl re-reads every object so far, so a burst is quadratic in its size);
# `etl-kit bench --parts intake` runs 1,000; ETL_KIT_BURST_N sets the size here.
BURST_N = int(os.environ.get("ETL_KIT_BURST_N", "40"))


@pytest.fixture(scope="module")
def intake(cloud: Settings):  # type: ignore[no-untyped-def]
    from etl_kit.provision import apply_all, teardown_all

    s = unique(cloud, "intake", workflow_max_concurrent_runs=2)
    apply_all(s, progress=False)
    yield s
    teardown_all(s, yes=True)


@pytest.mark.slow
def test_a_burst_waits_in_the_queue_and_every_object_reaches_one_terminal_state(intake: Settings) -> None:
    from etl_kit.burst import run_burst

    r = run_burst(intake, BURST_N)
    assert r.complete, r.as_dict()
    assert (r.runs_started, r.run_keys) == (BURST_N, BURST_N), r.as_dict()  # one run per object, none twice
    assert (r.ledger_rows, r.ledger_keys) == (BURST_N, BURST_N), r.as_dict()  # one terminal state each
    assert r.states == {"loaded": BURST_N}, r.as_dict()
    assert (r.intake_messages, r.dlq_messages) == (0, 0), r.as_dict()
    assert r.waiting_decisions > 0, r.as_dict()  # two run slots for the burst: events did wait for a slot


def test_a_message_that_is_not_an_event_reaches_the_dlq_after_max_receive_count(intake: Settings, boto) -> None:
    from etl_kit.provision import apply_all

    sqs = boto("sqs")
    url = sqs.get_queue_url(QueueName=intake.intake_queue)["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=intake.intake_dlq)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # 1,000 receives would take minutes here: lower maxReceiveCount (drift that provisioning puts back)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})})
    sqs.send_message(QueueUrl=url, MessageBody="not an event {")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"detail": {"no": "object"}}))
    dead: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + 120
    while len(dead) < 2 and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["All"]).get("Messages", []):
            dead.append(m)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(m["Body"] for m in dead) == sorted(["not an event {", json.dumps({"detail": {"no": "object"}})])
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) >= 3 for m in dead)
    fixed = {(c.resource_type, c.name): c for c in apply_all(intake, progress=False) if c.action == "update"}
    assert "RedrivePolicy" in fixed[("sqs-queue", intake.intake_queue)].diffs  # the drift is reported and put back
    assert {a for c in apply_all(intake, progress=False) for a in [c.action]} <= {"no-change", "skip"}
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    assert json.loads(policy)["maxReceiveCount"] == 1000

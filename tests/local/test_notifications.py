"""Notifications stay deliverable whatever the error text: a job-2 failure whose message holds quotes,
backslashes and non-ASCII reaches SNS (and the notebooks' SQS queue) with the whole text.

The input transformer that renders them is unit-tested in tests/unit/test_input_transformer.py."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from etl_kit.config import Settings
from tests.local._pipeline_helpers import csv_bytes, ledger_rows, outcome, row

pytestmark = pytest.mark.local


def test_job2_failure_with_quotes_in_its_error_reaches_the_notification_queue(pipeline: Settings, boto) -> None:
    """Job 2 fails on a target table of another layout whose column names hold '"', '\\' and unicode: its
    error names them."""
    from etl_kit.warehouse import execute

    s, t = pipeline.redshift_schema, pipeline.redshift_table
    keep = f"{t}_keep_{uuid.uuid4().hex[:6]}"
    sqs = boto("sqs")
    qurl = sqs.get_queue_url(QueueName=pipeline.notification_queue)["QueueUrl"]
    execute([f"ALTER TABLE {s}.{t} RENAME TO {keep}",
             f'CREATE TABLE {s}.{t} ("say ""no""" int, "c:\\temp" int, "ünï ✓" int)',
             # granted to the loader user as provisioning grants the real table: the load fails on the columns
             f'GRANT SELECT, INSERT, DELETE ON {s}.{t} TO "{pipeline.redshift_loader_user}"'], pipeline)
    try:
        # no purge_queue: SQS allows one per 60 s per queue, and other modules' tests purge this queue too
        key = f"input/notify-{uuid.uuid4().hex[:8]}.csv"
        etag = boto("s3").put_object(Bucket=pipeline.bucket_name(), Key=key,
                                     Body=csv_bytes([row(7_700_001)]))["ETag"].strip('"')
        out = outcome(pipeline, pipeline.bucket_name(), key, etag)
        assert out.state == "failed"
        assert [r["state"] for r in ledger_rows(pipeline, pipeline.bucket_name(), key)] == ["failed"]
        runs = boto("glue").get_job_runs(JobName=pipeline.load_job)["JobRuns"]
        run = next(r for r in runs if r.get("Arguments", {}).get("--source_key", key) == key
                   and r["JobRunState"] == "FAILED" and 'say "no"' in r.get("ErrorMessage", ""))
        error = run["ErrorMessage"]
        assert 'say "no"' in error and "c:\\temp" in error and "ünï ✓" in error
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=qurl, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages",
                                                                                                        []):
                body = json.loads(m["Body"])
                if run["Id"] in body["Message"] and "FAILED" in body["Message"]:
                    found.append(body)
        assert found, "job 2's FAILED notification never arrived"
        assert error in found[0]["Message"]
    finally:
        execute([f"DROP TABLE IF EXISTS {s}.{t}", f"ALTER TABLE {s}.{keep} RENAME TO {t}"], pipeline)

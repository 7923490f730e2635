"""Helpers for the end-to-end pipeline tests: build CSVs, upload with plain boto3, observe outcomes."""

from __future__ import annotations

import gzip as _gzip
import json
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from etl_kit.config import Settings
from etl_kit.warehouse import query

HEADER = ["Region", "Country", "Item Type", "Sales Channel", "Order Priority", "Order Date", "Order ID",
          "Ship Date", "Units Sold", "Unit Price", "Unit Cost", "Total Revenue", "Total Cost", "Total Profit"]


def row(order_id: int, *, country: str = "Chad", item: str = "Cereal", order_date: str = "5/28/2010",
        ship_date: str = "6/27/2010", units: str = "10", price: str = "205.70", cost: str = "117.11",
        **override: str) -> list[str]:
    """One Sales Records row; money consistent (revenue = units x price) unless overridden."""
    try:
        rev = (Decimal(units) * Decimal(price)).quantize(Decimal("0.01"))
        tc = (Decimal(units) * Decimal(cost)).quantize(Decimal("0.01"))
        revenue, total_cost, profit = str(rev), str(tc), str(rev - tc)
    except ArithmeticError:
        revenue, total_cost, profit = "1.00", "1.00", "0.00"
    values = {"Region": "Middle East and North Africa", "Country": country, "Item Type": item,
              "Sales Channel": "Online", "Order Priority": "H", "Order Date": order_date, "Order ID": str(order_id),
              "Ship Date": ship_date, "Units Sold": units, "Unit Price": price, "Unit Cost": cost,
              "Total Revenue": revenue, "Total Cost": total_cost, "Total Profit": profit}
    values.update(override)
    return [values[h] for h in HEADER]


def csv_bytes(rows: list[list[str]], *, header: list[str] | None = None, delimiter: str = ",",
              newline: str = "\r\n", gzip: bool = False, encoding: str = "utf-8") -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(header or HEADER)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    return _gzip.compress(data) if gzip else data


@dataclass
class Outcome:
    """The terminal state of one uploaded object."""

    state: str  # loaded | rejected | failed | skipped
    reason: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    lambda_results: list[dict[str, Any]] = field(default_factory=list)


def lambda_lines(settings: Settings, key: str) -> list[dict[str, Any]]:
    """The Lambda's JSON decision lines that name ``key``."""
    from etl_kit.clients import client

    logs = client("logs", settings)
    out: list[dict[str, Any]] = []
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=f"/aws/lambda/{settings.lambda_function}")
        for page in pages:
            for e in page["events"]:
                msg = e["message"].strip()
                if msg.startswith("{"):
                    try:
                        doc = json.loads(msg)
                    except ValueError:
                        continue
                    if doc.get("key") == key:
                        out.append(doc)
    except logs.exceptions.ResourceNotFoundException:  # no invocation yet: no log group (any other error is raised)
        return []
    return out


def decisions(settings: Settings, key: str, n: int = 1, *, where: Callable[[dict[str, Any]], bool] = bool,
              timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until the Lambda has logged ``n`` decision lines for ``key`` that satisfy ``where``; returns them.

    The Lambda's log is written when its invocation ends, so a line here is a decision taken (and its
    workflow run, if it started one, already exists).
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in lambda_lines(settings, key) if "decision" in ln and where(ln)]
        if len(lines) >= n:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(lines)} of {n} Lambda decision(s) for {key} within {timeout:.0f}s: {lines}")
        time.sleep(0.2)


def busy(settings: Settings) -> list[str]:
    """What of the pipeline is still at work, read through the public APIs (so it works on AWS too).

    Read upstream first: the intake queue (messages waiting, in a batch the event source mapping runs, or
    delayed), then workflow runs, crawlers, job runs and Data API statements. The poller deletes a message only
    after the Lambda that started its run returned, so when the queue was empty at the first read every run its
    events started is seen by the later reads. An empty list means idle. On AWS SQS's counts are approximate
    and ListStatements shows only the caller's role's statements (job 2's own are covered by its job run).
    """
    from etl_kit.clients import client

    sqs = client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.intake_queue)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    out = [f"{settings.intake_queue}: {attr} = {n}" for attr, n in sorted(attrs.items()) if int(n)]
    glue = client("glue", settings)
    runs = glue.get_workflow_runs(Name=settings.workflow, MaxResults=1000)["Runs"]
    out += [f"workflow run {r['WorkflowRunId']}: {r['Status']}" for r in runs if r["Status"] in ("RUNNING", "STOPPING")]
    for crawler in (settings.csv_crawler, settings.parquet_crawler):
        state = glue.get_crawler(Name=crawler)["Crawler"]["State"]
        if state != "READY":
            out.append(f"crawler {crawler}: {state}")
    for job in (settings.csv_job, settings.load_job):
        for page in glue.get_paginator("get_job_runs").paginate(JobName=job):
            out += [f"job {job} run {jr['Id']}: {jr['JobRunState']}" for jr in page["JobRuns"]
                    if jr["JobRunState"] in ("STARTING", "RUNNING", "STOPPING", "WAITING")]
    rsd = client("redshift-data", settings)
    for status in ("SUBMITTED", "PICKED", "STARTED"):
        listed = rsd.list_statements(Status=status, WorkgroupName=settings.redshift_workgroup)["Statements"]
        out += [f"statement {st['Id']}: {status}" for st in listed]
    return out


def wait_idle(settings: Settings, timeout: float = 120.0) -> None:
    """Wait until :func:`busy` reports nothing: every event delivered so far has been decided and run."""
    deadline = time.monotonic() + timeout
    while left := busy(settings):
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipeline is still busy after {timeout:.0f}s: {left}")
        time.sleep(0.2)


def sentinel(s3: Any, settings: Settings, timeout: float = 60.0) -> str:
    """Upload an object under the input prefix that the Lambda skips without a run, and wait for its decision.

    Call it after the uploads whose events must *not* act, then :func:`wait_idle`. Locally S3 hands the event
    to EventBridge, and EventBridge to the intake queue, inside ``put_object``, so an earlier upload's event
    is already queued (or was filtered out) when the sentinel's is; the sentinel's decision proves the path
    carries events, and idle proves nothing queued before it is still waiting. On AWS neither EventBridge nor
    a standard queue keeps order: there the pair is strong evidence, not proof. Returns the sentinel's key.
    """
    key = f"{settings.input_prefix}_sentinels/{uuid.uuid4().hex}.txt"
    put(s3, settings, key, b"sentinel: not a CSV, skipped without a run")
    decisions(settings, key, where=lambda ln: ln["decision"] == "skipped", timeout=timeout)
    return key


def stable_number(text: str, modulus: int) -> int:
    """A number below ``modulus`` derived from ``text``: the same in every process (``hash()`` is salted)."""
    return zlib.crc32(text.encode("utf-8")) % modulus


def runs_for(settings: Settings, key: str, etag: str | None = None) -> list[dict[str, Any]]:
    from etl_kit.clients import client

    glue = client("glue", settings)
    runs = glue.get_workflow_runs(Name=settings.workflow, MaxResults=1000)["Runs"]
    return [r for r in runs if r.get("WorkflowRunProperties", {}).get("source_key") == key
            and (etag is None or r["WorkflowRunProperties"].get("source_etag") == etag)]


def ledger_rows(settings: Settings, bucket: str, key: str) -> list[dict[str, Any]]:
    from etl_runtime.loadsql import quote_literal

    df = query(f'select * from "{settings.redshift_schema}"."{settings.ledger_table}" '
               f'where "bucket" = {quote_literal(bucket)} and "key" = {quote_literal(key)}', settings)
    return df.to_dict(orient="records")


def table_rows(settings: Settings, key: str) -> list[dict[str, Any]]:
    from etl_runtime.loadsql import quote_literal

    df = query(f'select * from "{settings.redshift_schema}"."{settings.redshift_table}" '
               f"where source_key = {quote_literal(key)} order by order_id", settings)
    return df.to_dict(orient="records")


def outcome(settings: Settings, bucket: str, key: str, etag: str, *, timeout: float = 90.0) -> Outcome:
    """Wait for the object's terminal state: skipped by the Lambda, or its workflow run's ledger state."""
    from etl_kit.clients import client
    from etl_kit.monitor import follow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_for(settings, key, etag)
        if runs:
            final = follow(runs[0]["WorkflowRunId"], settings, timeout=deadline - time.monotonic(), progress=False)
            final = client("glue", settings).get_workflow_run(Name=settings.workflow, RunId=final["WorkflowRunId"],
                                                              IncludeGraph=True)["Run"]
            # one ledger row per attempt: the row of the run followed here
            led = [r for r in ledger_rows(settings, bucket, key)
                   if r["etag"] == etag and r["run_id"] == final["WorkflowRunId"]]
            state = led[0]["state"] if led else "failed"
            return Outcome(state, led[0].get("reason", "") if led else "", final, led[0] if led else {},
                           lambda_lines(settings, key))
        lines = lambda_lines(settings, key)
        skipped = [ln for ln in lines if (ln.get("decision") == "skipped" or ln.get("status") == "skipped")
                   and ln.get("etag") in (None, "", etag)]
        if skipped:
            return Outcome("skipped", str(skipped[-1].get("reason", "")), lambda_results=lines)
        time.sleep(0.2)
    raise AssertionError(f"no terminal state for s3://{bucket}/{key} within {timeout:.0f}s")


def put(s3: Any, settings: Settings, key: str, body: bytes) -> str:
    """Put ``body`` at ``key`` of the project bucket; returns the ETag without quotes."""
    return str(s3.put_object(Bucket=settings.bucket_name(), Key=key, Body=body)["ETag"].strip('"'))


def service_role(iam: Any, name: str, service: str, statements: list[dict[str, Any]] | None = None) -> str:
    """A role ``service`` (e.g. ``glue.amazonaws.com``) may assume, with ``statements`` as its inline policy; its ARN.

    Idempotent. The local cloud enforces IAM: a job, crawl or function of the tests runs as such a role.
    """
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": service}}]}
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    if statements:
        iam.put_role_policy(RoleName=name, PolicyName="tests", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
    return str(arn)

"""What one workflow run cost, by component, from the run's own figures priced with :mod:`etl_kit.pricing`.

The figures: each Glue job run's ``ExecutionTime`` and DPUs, each crawl's duration, the Lambda invocation
that started the run (its ``REPORT`` log line), the Data API statements of the load (``etl-kit-load-<run>``)
and the run's S3 objects. On the local target the same arithmetic runs on local durations: the table
says what the run would cost on AWS if it took as long there.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from etl_kit import pricing
from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.exceptions import error_code, is_not_found
from etl_kit.monitor import node_states
from etl_kit.pricing import CostLine

__all__ = ["RunCost", "run_cost", "parse_report"]

_REPORT = re.compile(r"REPORT RequestId: (?P<rid>\S+).*?\tDuration: (?P<ms>[\d.]+) ms"
                     r"(?:\tBilled Duration: (?P<billed>\d+) ms)?.*?\tMemory Size: (?P<mb>\d+) MB")


@dataclass(frozen=True)
class RunCost:
    """The priced components of one run; ``note`` says whose durations they are."""

    run_id: str
    target: str
    lines: list[CostLine]
    note: str

    @property
    def total_usd(self) -> float:
        """The run's total in USD."""
        return pricing.total(self.lines)


def parse_report(line: str) -> tuple[float, int, bool] | None:
    """(billed or measured ms, memory MB, whether AWS's ``Billed Duration`` was there) of a REPORT line."""
    m = _REPORT.search(line)
    if m is None:
        return None
    billed = m.group("billed")
    return (float(billed) if billed else float(m.group("ms")), int(m.group("mb")), billed is not None)


def _jobs_and_crawls(run: dict[str, Any], settings: Settings, session: boto3.Session | None) -> list[CostLine]:
    glue = client("glue", settings, session)
    out: list[CostLine] = []
    for n in node_states(run):
        if n.type == "CRAWLER" and n.duration_s is not None:
            out.append(pricing.crawler(f"crawler {n.name}", n.duration_s))
        elif n.type == "JOB" and n.run_id:
            jr = glue.get_job_run(JobName=n.name, RunId=n.run_id)["JobRun"]
            seconds = float(jr.get("ExecutionTime") or n.duration_s or 0)
            out.append(pricing.glue_job(f"job {n.name}", seconds, float(jr.get("MaxCapacity") or 0.0625)))
    return out


def _lambda(run: dict[str, Any], settings: Settings, session: boto3.Session | None) -> list[CostLine]:
    """The invocation whose log says it started this run, priced from its REPORT line."""
    logs = client("logs", settings, session)
    group = f"/aws/lambda/{settings.lambda_function}"
    started: _dt.datetime = run["StartedOn"]
    since = int((started - _dt.timedelta(minutes=15)).timestamp() * 1000)
    events: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"logGroupName": group, "startTime": since, "endTime": since + 30 * 60 * 1000}
    while True:
        r = logs.filter_log_events(**kw)
        events += r.get("events", [])
        if not r.get("nextToken") or r["nextToken"] == kw.get("nextToken"):
            break
        kw["nextToken"] = r["nextToken"]
    events.sort(key=lambda e: (e.get("logStreamName", ""), e.get("timestamp", 0)))
    mine = next((e for e in events if run["WorkflowRunId"] in e.get("message", "")
                 and '"started"' in e.get("message", "")), None)
    if mine is not None:
        after = [e for e in events if e.get("logStreamName") == mine.get("logStreamName")
                 and e.get("timestamp", 0) >= mine.get("timestamp", 0)]
        for e in after:
            parsed = parse_report(e.get("message", ""))
            if parsed:
                ms, mb, billed = parsed
                how = "Billed Duration of its REPORT line" if billed else "Duration of its REPORT line, rounded up"
                return pricing.lambda_invocation(f"Lambda {settings.lambda_function}", ms, mb, how)
    return [CostLine(f"Lambda {settings.lambda_function}", 0, "GB-second", pricing.price("lambda_gb_second"), 0.0,
                     f"no REPORT line of the invocation that started the run found in {group}")]


def _redshift(run: dict[str, Any], settings: Settings, session: boto3.Session | None) -> CostLine:
    rsd = client("redshift-data", settings, session)
    name = f"etl-kit-load-{run['WorkflowRunId']}"[:500]
    listed = rsd.list_statements(StatementName=name, Status="ALL", RoleLevel=False).get("Statements", [])
    seconds = 0.0
    for st in listed:
        duration_ns = rsd.describe_statement(Id=st["Id"]).get("Duration", -1)
        seconds += max(0, duration_ns) / 1e9
    line = pricing.redshift_serverless("Redshift Serverless load", seconds, settings.redshift_base_capacity)
    if not listed:  # a rejected file never reaches job 2: nothing ran on the warehouse
        return CostLine(line.component, 0, line.unit, line.unit_usd, 0.0, f"no Data API statement named {name}")
    return line


def _count(s3: Any, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(p.get("KeyCount", 0) for p in pages)


def _s3(run: dict[str, Any], settings: Settings, session: boto3.Session | None) -> list[CostLine]:
    props = run.get("WorkflowRunProperties", {})
    s3 = client("s3", settings, session)
    bucket = props.get("source_bucket", "")
    written = [props.get(k, "") for k in ("source_key", "output_key", "quarantine_key", "dq_report_key")]
    written = [k for k in written if k]
    size = 0
    for key in written:
        try:
            size += int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if not is_not_found(exc) and error_code(exc) != "404":
                raise
            continue  # deleted since the run (e.g. a quarantine file cleaned up): it stores nothing
    n_in, n_out = _count(s3, bucket, settings.input_prefix), _count(s3, bucket, settings.output_prefix)
    # each full crawl lists its prefix and reads every object under it; job 1 reads the source, COPY the Parquet
    puts = len(written) + 1 + math.ceil(n_in / 1000) + math.ceil(n_out / 1000)
    gets = 2 + n_in + n_out
    what = (f"{len(written)} objects written + the Lambda's claim; 2 crawls listing and reading "
            f"{n_in} + {n_out} objects; job 1 and COPY reading one each")
    return pricing.s3_requests(puts, gets, size, what)


def _messaging(run: dict[str, Any]) -> list[CostLine]:
    notes = len(node_states(run)) + 1  # a state change per node, the Lambda's status
    return [pricing.requests("SQS requests", 3, "sqs_request", "intake: send, receive, delete"),
            pricing.requests("SNS publishes", notes, "sns_publish", f"{notes} notifications (one per node + Lambda)")]


def run_cost(run: dict[str, Any], settings: Settings, session: boto3.Session | None = None) -> RunCost:
    """Price one finished workflow run (``get_workflow_run(IncludeGraph=True)``'s ``Run``) by component."""
    lines = _jobs_and_crawls(run, settings, session)
    lines += _lambda(run, settings, session)
    lines.append(_redshift(run, settings, session))
    lines += _s3(run, settings, session)
    lines += _messaging(run)
    note = (f"{pricing.REGION} list prices of {pricing.PRICE_DATE}"
            + ("" if settings.target == "aws" else "; local durations: what the run would cost on AWS "
               "if it took as long there"))
    return RunCost(run["WorkflowRunId"], settings.target, lines, note)

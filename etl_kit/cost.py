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

__all__ = ["RunCost", "run_cost", "parse_report", "crawl_requests", "EVENT_CRAWL_SQS_REQUESTS"]

# An event-mode crawl's SQS requests: S3's send of the event, the receive with it, the empty receive that ends
# the batch, the delete, the DLQ's depth.
EVENT_CRAWL_SQS_REQUESTS = 5


def crawl_requests(crawl_mode: str, objects: int, read: int) -> tuple[int, int, int]:
    """The (S3 LIST, S3 GET/HEAD, SQS) requests of one crawl of a prefix holding ``objects`` that read ``read``.

    A full crawl lists the prefix (1,000 keys a page) and GETs each object; an event-mode crawl lists nothing,
    HEADs and GETs each object its events name, and makes :data:`EVENT_CRAWL_SQS_REQUESTS` on its queues.
    """
    if crawl_mode == "events":
        return 0, 2 * read, EVENT_CRAWL_SQS_REQUESTS
    return math.ceil(objects / 1000), read, 0

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


def _group_events(logs: Any, **kw: Any) -> list[dict[str, Any]]:
    """Every event ``filter_log_events(**kw)`` returns, over all pages (none when the group is absent)."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            r = logs.filter_log_events(**kw)
        except ClientError as exc:
            if is_not_found(exc):
                return events
            raise
        events += r.get("events", [])
        if not r.get("nextToken") or r["nextToken"] == kw.get("nextToken"):
            return events
        kw["nextToken"] = r["nextToken"]


def _invocation(run: dict[str, Any], settings: Settings, session: boto3.Session | None) -> list[dict[str, Any]]:
    """The log events (START .. REPORT) of the Lambda invocation whose log says it started this run."""
    started: _dt.datetime = run["StartedOn"]
    since = int((started - _dt.timedelta(minutes=15)).timestamp() * 1000)
    events = _group_events(client("logs", settings, session), logGroupName=f"/aws/lambda/{settings.lambda_function}",
                           startTime=since, endTime=since + 30 * 60 * 1000)
    events.sort(key=lambda e: (e.get("logStreamName", ""), e.get("timestamp", 0), e.get("eventId", "")))
    at = next((i for i, e in enumerate(events) if run["WorkflowRunId"] in e.get("message", "")
               and '"started"' in e.get("message", "")), None)
    if at is None:
        return []
    stream = [e for e in events if e.get("logStreamName") == events[at].get("logStreamName")]
    i = stream.index(events[at])
    first = max((j for j in range(i + 1) if stream[j].get("message", "").startswith("START ")), default=i)
    last = next((j for j in range(i, len(stream)) if parse_report(stream[j].get("message", ""))), len(stream) - 1)
    return stream[first:last + 1]


def _lambda(invocation: list[dict[str, Any]], settings: Settings) -> list[CostLine]:
    """The invocation priced from its REPORT line."""
    parsed = parse_report(invocation[-1].get("message", "")) if invocation else None
    if parsed:
        ms, mb, billed = parsed
        how = "Billed Duration of its REPORT line" if billed else "Duration of its REPORT line, rounded up"
        return pricing.lambda_invocation(f"Lambda {settings.lambda_function}", ms, mb, how)
    group = f"/aws/lambda/{settings.lambda_function}"
    return [CostLine(f"Lambda {settings.lambda_function}", 0, "GB-second", pricing.price("lambda_gb_second"), 0.0,
                     f"no REPORT line of the invocation that started the run in {group}")]


def _event_bytes(events: list[dict[str, Any]]) -> int:
    # CloudWatch Logs sizes an event as its UTF-8 message plus 26 bytes
    return sum(len(e.get("message", "").encode("utf-8")) + 26 for e in events)


def _logs(run: dict[str, Any], invocation: list[dict[str, Any]], settings: Settings,
          session: boto3.Session | None) -> CostLine:
    """CloudWatch Logs ingestion: the invocation's lines, each job run's output and error streams, each crawl's
    lines of its crawler's stream (the crawl's time window)."""
    logs = client("logs", settings, session)
    size, parts = _event_bytes(invocation), ["the Lambda invocation"]
    for n in node_states(run):
        if n.type == "JOB" and n.run_id:
            for group in ("/aws-glue/python-jobs/output", "/aws-glue/python-jobs/error"):
                size += _event_bytes(_group_events(logs, logGroupName=group, logStreamNames=[n.run_id]))
            parts.append(f"job {n.name}'s streams")
        elif n.type == "CRAWLER" and n.started and n.completed:
            window = {"startTime": int(n.started.timestamp() * 1000), "endTime": int(n.completed.timestamp() * 1000)}
            size += _event_bytes(_group_events(logs, logGroupName="/aws-glue/crawlers", logStreamNames=[n.name],
                                               **window))
            parts.append(f"crawl of {n.name}")
    return pricing.logs_ingestion(size, ", ".join(parts))


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
    # a full crawl lists its prefix and reads every object under it, an event-mode crawl reads the run's new
    # object; job 1 reads the source, COPY the Parquet
    mode = settings.crawl_mode
    crawls = [crawl_requests(mode, n, n if mode == "full" else 1) for n in (n_in, n_out)]
    puts = len(written) + 1 + sum(c[0] for c in crawls)
    gets = 2 + sum(c[1] for c in crawls)
    how = (f"listing and reading {n_in} + {n_out} objects" if mode == "full"
           else "in S3 event mode reading (HEAD + GET) the run's new object each")
    what = f"{len(written)} objects written + the Lambda's claim; 2 crawls {how}; job 1 and COPY reading one each"
    return pricing.s3_requests(puts, gets, size, what)


def _messaging(run: dict[str, Any], settings: Settings) -> list[CostLine]:
    notes = len(node_states(run)) + 1  # a state change per node, the Lambda's status
    crawls = 2 * crawl_requests(settings.crawl_mode, 0, 1)[2]
    how = f"; 2 event-mode crawls: {crawls}" if crawls else ""
    return [pricing.requests("SQS requests", 3 + crawls, "sqs_request", f"intake: send, receive, delete{how}"),
            pricing.requests("SNS publishes", notes, "sns_publish", f"{notes} notifications (one per node + Lambda)")]


def run_cost(run: dict[str, Any], settings: Settings, session: boto3.Session | None = None) -> RunCost:
    """Price one finished workflow run (``get_workflow_run(IncludeGraph=True)``'s ``Run``) by component."""
    lines = _jobs_and_crawls(run, settings, session)
    invocation = _invocation(run, settings, session)
    lines += _lambda(invocation, settings)
    lines.append(_logs(run, invocation, settings, session))
    lines.append(_redshift(run, settings, session))
    lines += _s3(run, settings, session)
    lines += _messaging(run, settings)
    note = (f"{pricing.REGION} list prices of {pricing.PRICE_DATE}"
            + ("" if settings.target == "aws" else "; local durations: what the run would cost on AWS "
               "if it took as long there"))
    return RunCost(run["WorkflowRunId"], settings.target, lines, note)

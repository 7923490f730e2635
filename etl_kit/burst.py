"""A burst of uploads through the durable intake, counted: every object must reach exactly one terminal state.

Used by the ``local`` burst test (a few hundred uploads) and by ``etl-kit bench --parts intake`` (1,000).
Nothing here asserts a time: :func:`run_burst` uploads, waits until every object has its ledger row (or
the deadline passes) and counts runs, ledger rows, states and what is left in the intake queue and its DLQ.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from etl_kit.config import Settings

__all__ = ["BurstResult", "run_burst", "burst_csv"]

HEADER = ("Region,Country,Item Type,Sales Channel,Order Priority,Order Date,Order ID,Ship Date,Units Sold,"
          "Unit Price,Unit Cost,Total Revenue,Total Cost,Total Profit")


@dataclass
class BurstResult:
    """What a burst ended with (counts only)."""

    uploads: int
    prefix: str
    runs_started: int = 0
    run_keys: int = 0  # distinct source keys among the runs
    ledger_rows: int = 0
    ledger_keys: int = 0  # distinct keys among the ledger rows
    states: dict[str, int] = field(default_factory=dict)
    intake_messages: int = 0  # visible + in flight, at the end
    dlq_messages: int = 0
    waiting_decisions: int = 0  # records the Lambda sent back to wait for a run slot
    seconds: float = 0.0
    complete: bool = False  # every upload had its ledger row before the deadline

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def burst_csv(first_order_id: int, rows: int = 3) -> bytes:
    """A small valid Sales Records CSV with consecutive order ids."""
    lines = [HEADER]
    for i in range(rows):
        lines.append(f"Europe,Norway,Cereal,Online,H,5/28/2010,{first_order_id + i},6/27/2010,10,205.70,117.11,"
                     "2057.00,1171.10,885.90")
    return ("\r\n".join(lines) + "\r\n").encode()


def _queue_depth(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def _ledger(settings: Settings, bucket: str, prefix: str) -> tuple[int, int, dict[str, int]]:
    from etl_kit.warehouse import query
    from etl_runtime.loadsql import quote_literal

    if any(ch in prefix for ch in "%_\\"):  # LIKE wildcards or its escape: the burst's own prefix never has them
        raise ValueError(f"burst prefix {prefix!r} must not contain %, _ or a backslash")
    like = prefix + "%"
    df = query(f'select "state", count(*) as n, count(distinct "key") as k from '
               f'"{settings.redshift_schema}"."{settings.ledger_table}" where "bucket" = {quote_literal(bucket)} '
               f'and "key" like {quote_literal(like)} group by "state"', settings)
    states = {str(r["state"]): int(r["n"]) for r in df.to_dict(orient="records")}
    return sum(states.values()), int(df["k"].sum()) if len(df) else 0, states


def _runs(settings: Settings, prefix: str) -> tuple[int, int]:
    from etl_kit.clients import client

    glue = client("glue", settings)
    keys: list[str] = []
    token = ""
    while True:
        more = {"NextToken": token} if token else {}
        page = glue.get_workflow_runs(Name=settings.workflow, MaxResults=1000, **more)
        for r in page.get("Runs", []):
            key = str((r.get("WorkflowRunProperties") or {}).get("source_key", ""))
            if key.startswith(prefix):
                keys.append(key)
        token = page.get("NextToken") or ""
        if not token:
            return len(keys), len(set(keys))


def _waiting_decisions(settings: Settings) -> int:
    from etl_kit.clients import client

    logs = client("logs", settings)
    n = 0
    try:
        for page in logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{settings.lambda_function}"):
            n += sum('"decision": "waiting"' in e["message"] for e in page["events"])
    except Exception:  # no invocation yet: no log group
        return 0
    return n


def run_burst(settings: Settings, n: int, *, rows_per_file: int = 3, threads: int = 8,
              timeout: float | None = None, first_order_id: int = 50_000_000) -> BurstResult:
    """Upload ``n`` small CSVs at once into ``input/burst-<id>/`` and count how the pipeline ends.

    Parameters
    ----------
    settings
        A provisioned pipeline (any target).
    n
        Number of objects.
    timeout
        Give up waiting for ledger rows after this many seconds (default ``600 + 20 n``: a hang bound, not
        a target; with two run slots on a loaded 2-core machine a run takes ~18 s).
    """
    from etl_kit.clients import client

    s3, sqs = client("s3", settings), client("sqs", settings)
    bucket = settings.bucket_name()
    prefix = f"{settings.input_prefix}burst-{uuid.uuid4().hex[:8]}/"
    result = BurstResult(uploads=n, prefix=prefix)
    started = time.monotonic()

    def upload(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}file-{i:05d}.csv",
                      Body=burst_csv(first_order_id + i * rows_per_file, rows_per_file))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(upload, range(n)))
    deadline = started + (timeout if timeout is not None else 600 + 20 * n)
    while time.monotonic() < deadline:
        result.ledger_rows, result.ledger_keys, result.states = _ledger(settings, bucket, prefix)
        if result.ledger_keys >= n:
            result.complete = True
            break
        time.sleep(2.0)
    result.seconds = round(time.monotonic() - started, 1)
    result.runs_started, result.run_keys = _runs(settings, prefix)
    result.ledger_rows, result.ledger_keys, result.states = _ledger(settings, bucket, prefix)
    result.intake_messages = _queue_depth(sqs, settings.intake_queue)
    result.dlq_messages = _queue_depth(sqs, settings.intake_dlq)
    result.waiting_decisions = _waiting_decisions(settings)
    return result

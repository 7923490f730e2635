"""Helpers for the end-to-end pipeline tests: build CSVs, upload with plain boto3, observe outcomes."""

from __future__ import annotations

import gzip as _gzip
import json
import time
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
    except Exception:  # no invocation yet: no log group
        return []
    return out


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

"""A real local run priced by component from its own figures (issue 13, part 2)."""

from __future__ import annotations

import pytest

from etl_kit import pricing
from etl_kit.config import Settings
from etl_kit.cost import EVENT_CRAWL_SQS_REQUESTS, run_cost
from tests.local._pipeline_helpers import csv_bytes, outcome, put, row

pytestmark = pytest.mark.local


def test_a_loaded_run_gets_a_cost_line_for_every_component(pipeline: Settings, s3) -> None:
    key = "input/cost/sales.csv"
    etag = put(s3, pipeline, key, csv_bytes([row(7_000_000 + i) for i in range(25)]))
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "loaded", out

    cost = run_cost(out.run, pipeline)
    by = {x.component: x for x in cost.lines}
    assert cost.run_id == out.run["WorkflowRunId"] and "local durations" in cost.note

    for crawler in (pipeline.csv_crawler, pipeline.parquet_crawler):  # a local crawl is seconds: the minimum
        line = by[f"crawler {crawler}"]
        assert line.usd == pytest.approx(pricing.CRAWLER_DPUS * 600 / 3600 * 0.44), line
    for job in (pipeline.csv_job, pipeline.load_job):
        line = by[f"job {job}"]
        assert line.quantity >= 0.0625 * 60 / 3600 and "0.0625 DPU" in line.derivation, line

    gb_s = by[f"Lambda {pipeline.lambda_function}"]
    assert gb_s.quantity > 0 and "256 MB" in gb_s.derivation and "REPORT" in gb_s.derivation, gb_s
    assert by[f"Lambda {pipeline.lambda_function} request"].quantity == 1

    rs = by["Redshift Serverless load"]
    assert rs.quantity >= pipeline.redshift_base_capacity * 60 / 3600 and "Data API statements" in rs.derivation, rs

    assert by["S3 PUT/LIST requests"].quantity >= 4 and by["S3 GET requests"].quantity >= 4
    assert by["S3 storage (one month)"].quantity > 0
    logs = by["CloudWatch Logs ingestion"]
    assert logs.quantity > 0 and "the Lambda invocation" in logs.derivation, logs
    assert f"job {pipeline.load_job}'s streams" in logs.derivation
    assert f"crawl of {pipeline.csv_crawler}" in logs.derivation
    # the intake's send, receive and delete, and (crawl_mode events) each crawl's on its event queue
    assert by["SQS requests"].quantity == 3 + 2 * EVENT_CRAWL_SQS_REQUESTS and by["SNS publishes"].quantity == 5
    assert cost.total_usd == pytest.approx(sum(x.usd for x in cost.lines)) and cost.total_usd > 0.29

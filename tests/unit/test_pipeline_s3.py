"""run_csv_to_parquet against in-process moto S3 + Glue: output, quarantine, report and run properties."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from etl_kit.config import DEFAULT_CONTRACT
from etl_kit.exceptions import FileRejected
from etl_runtime.job1 import run_csv_to_parquet, run_properties_from_report
from etl_runtime.values import Job1Summary, SourceObject, WorkflowRun

pytestmark = pytest.mark.unit

CSV = (b"Region,Country,Item Type,Sales Channel,Order Priority,Order Date,Order ID,Ship Date,Units Sold,"
       b"Unit Price,Unit Cost,Total Revenue,Total Cost,Total Profit\r\n"
       b"Asia,Japan,Cereal,Online,H,2/3/2014,1,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n"
       b"Asia,Japan,Cereal,Online,H,2/30/2014,2,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n"
       b"Asia,Japan,Cereal,Online,H,2/4/2014,3,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n")


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        glue = boto3.client("glue", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        glue.create_workflow(Name="wf")
        run_id = glue.start_workflow_run(Name="wf")["RunId"]
        yield s3, glue, run_id


def _get(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket="bkt", Key=key)["Body"].read())


def test_run_csv_to_parquet_on_moto(mocked_aws: Any) -> None:
    s3, glue, run_id = mocked_aws
    etag = s3.put_object(Bucket="bkt", Key="input/2024/sales.csv", Body=CSV)["ETag"].strip('"')
    rep = run_csv_to_parquet(SourceObject("bkt", "input/2024/sales.csv", etag=etag), DEFAULT_CONTRACT,
                             workflow=WorkflowRun("wf", run_id), s3=s3, glue=glue)
    assert rep["output_key"] == "output/2024/sales.csv/part-0000.parquet"
    assert rep["quarantine_key"] == "quarantine/2024/sales.csv.quarantine.csv"
    assert rep["report_key"] == "reports/2024/sales.csv.report.json"
    table = pq.read_table(io.BytesIO(_get(s3, rep["output_key"])))
    assert table.column("order_id").to_pylist() == [1, 3] and table.column("source_line").to_pylist() == [2, 4]
    q = _get(s3, rep["quarantine_key"]).decode()
    assert q.splitlines()[0] == "source_line,reason,column,value,raw_record"
    assert q.splitlines()[1].startswith("3,invalid_date,order_date,2/30/2014,")
    report = json.loads(_get(s3, rep["report_key"]))
    assert report["state"] == "transformed" and report["rows_read"] == 3 and report["etag"] == etag
    props = glue.get_workflow_run_properties(Name="wf", RunId=run_id)["RunProperties"]
    assert props["dq_rows_read"] == "3" and props["dq_rows_written"] == "2" and props["dq_rows_quarantined"] == "1"
    assert props["output_key"] == rep["output_key"] and props["job1_state"] == "transformed"
    assert props["dq_warnings_by_rule"] == "{}" and report["warnings_by_rule"] == {}

    # a clean re-upload of the same key overwrites the output and removes the stale quarantine object
    clean = CSV.replace(b"2/30/2014", b"2/28/2014")
    etag2 = s3.put_object(Bucket="bkt", Key="input/2024/sales.csv", Body=gzip.compress(clean))["ETag"].strip('"')
    rep2 = run_csv_to_parquet(SourceObject("bkt", "input/2024/sales.csv", etag=etag2), DEFAULT_CONTRACT, s3=s3)
    assert rep2["output_key"] == rep["output_key"] and rep2["quarantine_key"] == "" and rep2["gzip"] is True
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
    assert "quarantine/2024/sales.csv.quarantine.csv" not in keys


def test_rejection_and_source_changed(mocked_aws: Any) -> None:
    s3, glue, run_id = mocked_aws
    etag = s3.put_object(Bucket="bkt", Key="input/x.csv", Body=CSV)["ETag"].strip('"')
    run_csv_to_parquet(SourceObject("bkt", "input/x.csv", etag=etag), DEFAULT_CONTRACT, s3=s3)
    # overwritten with a file missing a required column: rejected, old output removed, copy in quarantine
    bad = CSV.replace(b"Order ID", b"Order Number")
    etag2 = s3.put_object(Bucket="bkt", Key="input/x.csv", Body=bad)["ETag"].strip('"')
    with pytest.raises(FileRejected) as ei:
        run_csv_to_parquet(SourceObject("bkt", "input/x.csv", etag=etag2), DEFAULT_CONTRACT,
                           workflow=WorkflowRun("wf", run_id), s3=s3, glue=glue)
    assert ei.value.reason == "missing_columns" and ei.value.key == "input/x.csv"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
    assert "output/x.csv/part-0000.parquet" not in keys and "quarantine/x.csv.rejected.csv" in keys
    report = json.loads(_get(s3, "reports/x.csv.report.json"))
    assert report["state"] == "rejected" and report["reason"] == "missing_columns"
    props = glue.get_workflow_run_properties(Name="wf", RunId=run_id)["RunProperties"]
    assert props["job1_state"] == "rejected" and props["job1_reason"] == "missing_columns"
    # the event's ETag no longer matches: source_changed, nothing touched
    with pytest.raises(FileRejected) as ei:
        run_csv_to_parquet(SourceObject("bkt", "input/x.csv", etag=etag), DEFAULT_CONTRACT, s3=s3)
    assert ei.value.reason == "source_changed"


def test_run_properties_hand_job2_the_summary_as_strings() -> None:
    report = {"state": "transformed", "reason": "", "rows_read": 5, "rows_written": 4, "rows_quarantined": 1,
              "duplicate_keys_in_file": 2, "rejects_by_reason": {"z": 1, "a": 2}, "warnings_by_rule": {},
              "report_key": "reports/a.csv.report.json", "output_key": "output/a.csv/part-0000.parquet",
              "quarantine_key": "quarantine/a.csv.quarantine.csv", "output_lineage": True, "key_min": 10,
              "key_max": 99}
    props = run_properties_from_report(report)
    assert props == {
        "job1_state": "transformed", "job1_reason": "", "dq_rows_read": "5", "dq_rows_written": "4",
        "dq_rows_quarantined": "1", "dq_duplicate_keys": "2", "dq_rejects_by_reason": '{"a": 2, "z": 1}',
        "dq_warnings_by_rule": "{}", "dq_report_key": "reports/a.csv.report.json",
        "output_key": "output/a.csv/part-0000.parquet", "quarantine_key": "quarantine/a.csv.quarantine.csv",
        "dq_output_lineage": "1", "dq_key_min": "10", "dq_key_max": "99",
    }
    # job 2 reads back exactly what job 1 summarised
    assert Job1Summary.from_run_properties(props) == Job1Summary(
        rows_read=5, rows_written=4, rows_quarantined=1, duplicate_keys_in_file=2, output_lineage=True,
        key_min=10, key_max=99)
    failed = run_properties_from_report({"state": "failed", "reason": "ValueError: x", "message": "ValueError: x"})
    assert failed["dq_rows_read"] == "0" and failed["dq_duplicate_keys"] == "0"
    assert failed["dq_key_min"] == "" and failed["dq_output_lineage"] == "0"
    assert failed["job1_state"] == "failed" and failed["job1_message"] == "ValueError: x"
    assert Job1Summary.from_run_properties(failed).key_min is None

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
from etl_runtime.transform import run_csv_to_parquet

pytestmark = pytest.mark.unit

CSV = (b"Region,Country,Item Type,Sales Channel,Order Priority,Order Date,Order ID,Ship Date,Units Sold,"
       b"Unit Price,Unit Cost,Total Revenue,Total Cost,Total Profit\r\n"
       b"Asia,Japan,Cereal,Online,H,2/3/2014,1,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n"
       b"Asia,Japan,Cereal,Online,H,2/30/2014,2,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n"
       b"Asia,Japan,Cereal,Online,H,2/4/2014,3,2/9/2014,2,1.50,1.00,3.00,2.00,1.00\r\n")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
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


def test_run_csv_to_parquet_on_moto(aws: Any) -> None:
    s3, glue, run_id = aws
    etag = s3.put_object(Bucket="bkt", Key="input/2024/sales.csv", Body=CSV)["ETag"].strip('"')
    rep = run_csv_to_parquet(bucket="bkt", key="input/2024/sales.csv", contract=DEFAULT_CONTRACT, run_id=run_id,
                             workflow_name="wf", source_etag=etag, s3=s3, glue=glue)
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
    rep2 = run_csv_to_parquet(bucket="bkt", key="input/2024/sales.csv", contract=DEFAULT_CONTRACT,
                              source_etag=etag2, s3=s3)
    assert rep2["output_key"] == rep["output_key"] and rep2["quarantine_key"] == "" and rep2["gzip"] is True
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
    assert "quarantine/2024/sales.csv.quarantine.csv" not in keys


def test_rejection_and_source_changed(aws: Any) -> None:
    s3, glue, run_id = aws
    etag = s3.put_object(Bucket="bkt", Key="input/x.csv", Body=CSV)["ETag"].strip('"')
    run_csv_to_parquet(bucket="bkt", key="input/x.csv", contract=DEFAULT_CONTRACT, source_etag=etag, s3=s3)
    # overwritten with a file missing a required column: rejected, old output removed, copy in quarantine
    bad = CSV.replace(b"Order ID", b"Order Number")
    etag2 = s3.put_object(Bucket="bkt", Key="input/x.csv", Body=bad)["ETag"].strip('"')
    with pytest.raises(FileRejected) as ei:
        run_csv_to_parquet(bucket="bkt", key="input/x.csv", contract=DEFAULT_CONTRACT, source_etag=etag2,
                           run_id=run_id, workflow_name="wf", s3=s3, glue=glue)
    assert ei.value.reason == "missing_columns" and ei.value.key == "input/x.csv"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
    assert "output/x.csv/part-0000.parquet" not in keys and "quarantine/x.csv.rejected.csv" in keys
    report = json.loads(_get(s3, "reports/x.csv.report.json"))
    assert report["state"] == "rejected" and report["reason"] == "missing_columns"
    props = glue.get_workflow_run_properties(Name="wf", RunId=run_id)["RunProperties"]
    assert props["job1_state"] == "rejected" and props["job1_reason"] == "missing_columns"
    # the event's ETag no longer matches: source_changed, nothing touched
    with pytest.raises(FileRejected) as ei:
        run_csv_to_parquet(bucket="bkt", key="input/x.csv", contract=DEFAULT_CONTRACT, source_etag=etag, s3=s3)
    assert ei.value.reason == "source_changed"

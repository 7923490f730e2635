"""The Glue entry points: argument parsing (extra Glue args ignored) and a job 1 run on moto."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from etl_kit.config import DEFAULT_CONTRACT

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "etl_runtime" / "entrypoints" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parse_args_ignores_glue_extras() -> None:
    from etl_runtime import job1

    mod = load("csv_to_parquet")
    # the Glue script is a few lines: job 1 itself lives in etl_runtime.job1
    assert mod.main is job1.main and mod.parse_args is job1.parse_args
    args = mod.parse_args(["script", "--JOB_ID", "j_1", "--job-bookmark-option", "job-bookmark-disable",
                           "--WORKFLOW_NAME", "wf", "--WORKFLOW_RUN_ID", "wr_1", "--dataset_contract", "{}"])
    assert args["WORKFLOW_NAME"] == "wf" and args["output_prefix"] == "output/" and args["max_reject_ratio"] == "0.5"
    args2 = load("parquet_to_redshift").parse_args(["s", "--workgroup", "wg", "--JOB_RUN_ID", "x"])
    assert args2["workgroup"] == "wg" and args2["table"] == "sales_data_table"


def test_csv_to_parquet_main_with_workflow(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mod = load("csv_to_parquet")
    body = (b"Country,Item Type,Order Date,Order ID,Ship Date,Units Sold,Unit Price,Total Revenue,Total Cost,"
            b"Total Profit\n Japan ,Cereal,2/3/2014,1,2/9/2014,2,1.50,3.00,2.00,1.00\n")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        glue = boto3.client("glue", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        etag = s3.put_object(Bucket="bkt", Key="input/a.csv", Body=body)["ETag"].strip('"')
        glue.create_workflow(Name="wf")
        run_id = glue.start_workflow_run(Name="wf", RunProperties={
            "source_bucket": "bkt", "source_key": "input/a.csv", "source_etag": etag})["RunId"]
        argv = ["s", "--WORKFLOW_NAME", "wf", "--WORKFLOW_RUN_ID", run_id, "--dataset_contract",
                json.dumps(DEFAULT_CONTRACT), "--JOB_ID", "x"]
        assert mod.main(argv) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["rows_written"] == 1 and out["output_key"] == "output/a.csv/part-0000.parquet"
        props = glue.get_workflow_run_properties(Name="wf", RunId=run_id)["RunProperties"]
        assert props["job1_state"] == "transformed"
        s3.put_object(Bucket="bkt", Key="input/b.csv", Body=b"just,a,header\n")
        with pytest.raises(SystemExit) as ei:
            mod.main(["s", "--source_bucket", "bkt", "--source_key", "input/b.csv", "--dataset_contract",
                      json.dumps(DEFAULT_CONTRACT)])
        assert str(ei.value).startswith("REJECTED s3://bkt/input/b.csv: missing_columns")
    assert "etl_kit" in sys.modules


def test_csv_to_parquet_main_refuses_missing_arguments(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mod = load("csv_to_parquet")
    assert mod.main(["s", "--JOB_ID", "x"]) == 2
    assert "--dataset_contract (JSON) is required" in capsys.readouterr().err
    with mock_aws():
        assert mod.main(["s", "--dataset_contract", json.dumps(DEFAULT_CONTRACT)]) == 2
    assert "no source object" in capsys.readouterr().err


def test_csv_to_parquet_unexpected_error_writes_a_failed_report_and_reraises(monkeypatch: pytest.MonkeyPatch,
                                                                             capsys: Any) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mod = load("csv_to_parquet")
    broken = json.dumps({"columns": [{"name": "a", "type": "no_such_type"}]})
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="input/a.csv", Body=b"a\n1\n")
        with pytest.raises(ValueError, match="no_such_type"):
            mod.main(["s", "--source_bucket", "bkt", "--source_key", "input/a.csv", "--dataset_contract", broken,
                      "--workgroup", "wgx", "--database", "dev", "--ledger_table", "etl_load_ledger"])
        report = json.loads(s3.get_object(Bucket="bkt", Key="reports/a.csv.report.json")["Body"].read())
        assert report["state"] == "failed" and report["reason"].startswith("ValueError: ")
        assert report["key"] == "input/a.csv" and "no_such_type" in report["message"]
    # the ledger row was attempted with state failed (moto has no Data API batches: the footnote says so)
    assert "could not record the ledger row (failed)" in capsys.readouterr().err

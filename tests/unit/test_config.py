"""The typed config: defaults are the seed's names; bad keys are named with the file and expected form."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import ConfigError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_seed_names() -> None:
    s = Settings()
    assert (s.bucket, s.lambda_function, s.start_rule, s.workflow) == (
        "sales-data-etl-project", "start-workflow-function", "start-lambda-rule", "sales-data-workflow")
    assert (s.csv_crawler, s.parquet_crawler, s.glue_database) == ("csv-data-reader", "parquet-data-reader", "db-01")
    assert (s.csv_job, s.load_job, s.glue_connection) == (
        "csv-to-parquet-job", "redshift-loader-job", "sales-data-redshift-connection")
    assert (s.redshift_workgroup, s.redshift_table, s.sns_topic) == (
        "sales-data-workgroup", "sales_data_table", "sales-data-topic")
    assert [s.crawler01_rule, s.job01_rule, s.crawler02_rule, s.job02_rule] == [
        "crawler01-rule", "job01-rule", "crawler02-rule", "job02-rule"]
    assert [c.name for c in s.dataset_contract.columns] == [
        "region", "country", "item_type", "order_date", "order_id", "ship_date", "units_sold", "unit_price",
        "total_revenue", "total_cost", "total_profit"]


def test_params_files_load_and_local_equals_defaults() -> None:
    local = load_settings(ROOT / "params" / "local.yaml")
    assert local == Settings()
    aws = load_settings(ROOT / "params" / "aws.yaml")
    assert aws.target == "aws"


def test_bucket_suffix_supports_account_and_region() -> None:
    s = load_settings(None, target="aws", name_suffix="-{account_id}-{region}", region="eu-west-1")
    assert s.bucket_name("111122223333") == "sales-data-etl-project-111122223333-eu-west-1"
    assert s.assets_bucket_name("111122223333") == "aws-glue-assets-111122223333-eu-west-1"
    with pytest.raises(ConfigError, match="name_suffix"):
        load_settings(None, name_suffix="-{acct}")


def _refusal(tmp_path: Path, params: str) -> tuple[Path, str]:
    """Write ``params`` to a params file; return the file and the message of the ConfigError loading it raises."""
    p = tmp_path / "p.yaml"
    p.write_text(params)
    with pytest.raises(ConfigError) as exc:
        load_settings(p)
    return p, str(exc.value)


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    p, msg = _refusal(tmp_path, "target: local\nbuckett: x\n")
    assert "'buckett'" in msg and str(p) in msg and "bucket" in msg


def test_bad_value_names_the_key_and_expected_form(tmp_path: Path) -> None:
    _, msg = _refusal(tmp_path, "target: gcp\nlocal_port: 80\ninput_prefix: input\n")
    assert "'target'" in msg and "'local'" in msg and "'aws'" in msg
    assert "'local_port'" in msg and "1024" in msg
    assert "'input_prefix'" in msg and "must end with '/'" in msg


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(p)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_contract_primary_key_must_be_a_required_column() -> None:
    with pytest.raises(ConfigError, match="primary key"):
        load_settings(None, dataset_contract={"primary_key": ["nope"], "columns": [
            {"name": "a", "source": "A", "required": True}]})


def test_the_kits_defaults_are_the_runtimes() -> None:
    """A contract or a job argument left out means the same thing to the kit and to the jobs."""
    from etl_kit.config import DatasetContract
    from etl_runtime.contract import compile_contract
    from etl_runtime.entrypoints.parquet_to_redshift import parse_args

    columns = [{"name": "a", "source": "A", "required": True}]
    kit = DatasetContract.model_validate({"primary_key": ["a"], "columns": columns})
    job1_default = compile_contract({"primary_key": ["a"], "columns": columns}).null_values
    assert compile_contract(kit.model_dump(mode="json")).null_values == job1_default
    assert {"NULL", "N/A", "-"} <= set(job1_default)

    s = Settings()
    job2 = parse_args(["--workgroup", "wg"])  # job 2's defaults when provisioning passes nothing
    assert (s.redshift_schema, s.redshift_table, s.ledger_table, s.redshift_database) == (
        job2["schema"], job2["table"], job2["ledger_table"], job2["database"])

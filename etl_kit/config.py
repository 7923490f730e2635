"""The kit's one typed configuration model, loaded from ``params/*.yaml``.

The parameter files are flat (their keys are the notebooks' papermill parameters);
defaults are the seed's resource names. Names that must be globally unique (S3
buckets) take ``name_suffix``, a template that may use ``{account_id}`` and ``{region}``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl_kit.exceptions import ConfigError
from etl_runtime.contract import DEFAULT_NULL_VALUES
from etl_runtime.values import LoadTarget, Warehouse

__all__ = ["Settings", "ColumnSpec", "CheckSpec", "DatasetContract", "load_settings", "DEFAULT_CONTRACT",
           "SEED_CONTRACT"]

ColumnType = Literal["string", "integer", "decimal", "date", "double"]
CheckAction = Literal["quarantine", "warn"]


class ColumnSpec(BaseModel):
    """One column of the dataset contract: source header -> target column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="target column name (snake_case)")
    source: str = Field(description="source CSV header, matched ignoring case and surrounding spaces")
    type: ColumnType = "string"
    required: bool = False
    formats: list[str] = Field(default_factory=list, description="date formats, e.g. M/d/yyyy")
    precision: int = 18
    scale: int = 2
    min: Decimal | None = Field(None, description="numeric columns: smallest allowed value (rule <name>_min)")
    max: Decimal | None = Field(None, description="numeric columns: largest allowed value (rule <name>_max)")
    range_action: CheckAction = Field("quarantine", description="what a min/max violation does to the row")

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        if not v.replace("_", "").isalnum() or v != v.lower():
            raise ValueError(f"column name {v!r} must be lower snake_case")
        return v


class CheckSpec(BaseModel):
    """A cross-column rule: ``expr`` compares sums/products of numeric columns, within ``tolerance``.

    ``expr`` is parsed by :func:`etl_runtime.contract.parse_check_expression` (column names,
    numbers, ``+ - *``, parentheses and one of ``= != < <= > >=``), never evaluated as Python.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="lower snake_case; the quarantine reason or the warnings_by_rule key")
    expr: str = Field(description="e.g. total_revenue = units_sold * unit_price")
    tolerance: Decimal = Field(Decimal(0), ge=0, description="allowed absolute difference, e.g. 0.01")
    action: CheckAction = "quarantine"


class DatasetContract(BaseModel):
    """Source column -> target column, type, required, format; plus the primary key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[ColumnSpec]
    primary_key: list[str] = Field(default_factory=lambda: ["order_id"])
    delimiter: str | None = Field(default=None, description="None = detect among , ; tab |")
    encoding: str | list[str] = Field(
        "auto", description="one codec name, a list to detect among, or auto (UTF-8, UTF-16 with BOM, cp1252)")
    null_values: list[str] = Field(default_factory=lambda: list(DEFAULT_NULL_VALUES))  # job 1's default
    max_line_bytes: int = Field(1 << 20, ge=1024, description="a longer physical line is a row reject")
    checks: list[CheckSpec] = Field(default_factory=list, description="cross-column rules, in order")

    @model_validator(mode="after")
    def _pk_in_columns(self) -> DatasetContract:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("dataset_contract.columns has duplicate names")
        for pk in self.primary_key:
            if pk not in names:
                raise ValueError(f"primary key {pk!r} is not a contract column")
            if not next(c for c in self.columns if c.name == pk).required:
                raise ValueError(f"primary key {pk!r} must be required")
        from etl_runtime.contract import compile_contract
        from etl_runtime.csvread import SourceProblem, resolve_encodings

        try:  # the rules and encodings exactly as job 1 will compile them
            resolve_encodings(self.encoding)
            compile_contract(self.model_dump(mode="json"))
        except SourceProblem as exc:
            raise ValueError(f"dataset_contract.encoding: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"dataset_contract: {exc}") from exc
        return self

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


_US_DATE = ["M/d/yyyy"]
# The seed job's ten columns.
SEED_CONTRACT: dict[str, Any] = {
    "primary_key": ["order_id"],
    "columns": [
        {"name": "country", "source": "Country", "type": "string", "required": True},
        {"name": "item_type", "source": "Item Type", "type": "string", "required": True},
        {"name": "order_date", "source": "Order Date", "type": "date", "required": True, "formats": _US_DATE},
        {"name": "order_id", "source": "Order ID", "type": "integer", "required": True},
        {"name": "ship_date", "source": "Ship Date", "type": "date", "required": True, "formats": _US_DATE},
        {"name": "units_sold", "source": "Units Sold", "type": "integer", "required": True},
        {"name": "unit_price", "source": "Unit Price", "type": "decimal", "required": True},
        {"name": "total_revenue", "source": "Total Revenue", "type": "decimal", "required": True},
        {"name": "total_cost", "source": "Total Cost", "type": "decimal", "required": True},
        {"name": "total_profit", "source": "Total Profit", "type": "decimal", "required": True},
    ],
}


# The kit's default: the seed's columns plus Region (optional), so the analysis can group by region;
# units, prices, revenue and cost are never negative; the money adds up to the cent (as in the public
# data set and the kit's generator). The sources hold no unit cost, so cost is only checked through profit.
_NON_NEGATIVE = ("units_sold", "unit_price", "total_revenue", "total_cost")
DEFAULT_CONTRACT: dict[str, Any] = {
    **SEED_CONTRACT,
    "encoding": "auto",
    "columns": [{"name": "region", "source": "Region", "type": "string", "required": False},
                *[dict(c, min=0) if c["name"] in _NON_NEGATIVE else c for c in SEED_CONTRACT["columns"]]],
    "checks": [
        {"name": "revenue_is_units_times_price", "expr": "total_revenue = units_sold * unit_price",
         "tolerance": "0.01", "action": "quarantine"},
        {"name": "profit_is_revenue_minus_cost", "expr": "total_profit = total_revenue - total_cost",
         "tolerance": "0.01", "action": "quarantine"},
    ],
}


class Settings(BaseModel):
    """Everything the kit needs, validated. Keys equal the notebooks' parameter names."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # target
    target: Literal["local", "aws"] = "local"
    region: str = "us-east-1"
    aws_profile: str | None = None
    name_suffix: str = Field("", description="appended to bucket names; may use {account_id} and {region}")
    # local cloud
    local_state_dir: str = ".etl-kit"
    local_port: int = Field(4599, ge=1024, le=65535)
    local_iam_enforcement: bool = Field(True, description="the local cloud authorises the pipeline's role sessions "
                                                           "against the roles' IAM policies, as AWS does")
    # S3
    bucket: str = "sales-data-etl-project"
    input_prefix: str = "input/"
    output_prefix: str = "output/"
    quarantine_prefix: str = "quarantine/"
    reports_prefix: str = "reports/"
    state_prefix: str = "_etl_kit/"
    assets_bucket: str = "aws-glue-assets"
    scripts_prefix: str = "scripts/"
    kms_key_id: str | None = Field(None, description="None = SSE-S3; a key id/ARN = SSE-KMS")
    # Lambda and EventBridge
    lambda_function: str = "start-workflow-function"
    lambda_timeout_seconds: int = Field(60, ge=3, le=900)
    start_rule: str = "start-lambda-rule"
    crawler01_rule: str = "crawler01-rule"
    job01_rule: str = "job01-rule"
    crawler02_rule: str = "crawler02-rule"
    job02_rule: str = "job02-rule"
    # the durable intake: EventBridge -> SQS queue -> the Lambda (event source mapping); redrive to the DLQ
    intake_queue: str = "start-workflow-queue"
    intake_dlq: str = "start-workflow-queue-dlq"
    # Glue
    workflow: str = "sales-data-workflow"
    workflow_max_concurrent_runs: int = Field(5, ge=1)
    glue_database: str = "db-01"
    csv_crawler: str = "csv-data-reader"
    parquet_crawler: str = "parquet-data-reader"
    csv_job: str = "csv-to-parquet-job"
    load_job: str = "redshift-loader-job"
    job_type: Literal["pythonshell", "glueetl"] = "pythonshell"
    job_python_version: str = "3.9"
    job_timeout_minutes: int = Field(30, ge=1, le=2880)
    job_max_concurrent_runs: int = Field(5, ge=1)
    job_max_retries: int = Field(0, ge=0, le=10)
    glue_connection: str = "sales-data-redshift-connection"
    # how the crawlers find new objects (docs/provisioning.md, "Crawl mode"): "events" = CRAWL_EVENT_MODE, the
    # bucket's object events to a queue per crawler, a crawl reads only what they name (cost flat in the bucket's
    # size); "full" = the seed's CRAWL_EVERYTHING, every crawl lists and reads the whole prefix
    crawl_mode: Literal["events", "full"] = "events"
    # IAM roles
    lambda_role: str = "start-workflow-function-role"
    crawler_role: str = "glue-crawler-role"
    csv_job_role: str = "csv-to-parquet-job-role"
    load_job_role: str = "redshift-loader-job-role"
    redshift_role: str = "redshift-copy-role"
    # no longer created: EventBridge reaches its targets through their resource policies; provisioning
    # removes a role of this name that an earlier etl-kit left
    events_role: str = "eventbridge-invoke-role"
    # Redshift
    redshift_namespace: str = "sales-data-namespace"
    redshift_workgroup: str = "sales-data-workgroup"
    # the warehouse's and job 2's defaults are the runtime's own (etl_runtime.values), kept in one place
    redshift_database: str = Warehouse.database
    redshift_admin_user: str = "admin"
    # the database user jobs 1 and 2 sign in as (only the grants a load needs; docs/provisioning.md), and
    # the Secrets Manager secret holding its generated password
    redshift_loader_user: str = Field("etl_loader", pattern=r"^[a-z_][a-z0-9_]{0,126}$")
    redshift_loader_secret: str = "sales-data-redshift-loader"
    redshift_base_capacity: int = Field(8, ge=8, le=512)
    redshift_schema: str = LoadTarget.schema
    redshift_table: str = LoadTarget.table
    ledger_table: str = LoadTarget.ledger_table
    # networking (aws)
    vpc_id: str | None = None
    subnet_ids: list[str] = Field(default_factory=list)
    # where job 2 runs (docs/provisioning.md, "Network placement"): "none" = outside the VPC (it reaches
    # Redshift through the Data API, over HTTPS), no interface endpoints; "one_az" = on the Glue connection,
    # endpoints in the connection's subnet only; "every_az" = the seed's placement, endpoints in one subnet per AZ
    network_placement: Literal["none", "one_az", "every_az"] = "none"
    create_vpc_endpoints: bool = Field(True, description="with network_placement one_az/every_az: add the endpoints "
                                                        "(false when the subnets have a NAT)")
    # SNS
    sns_topic: str = "sales-data-topic"
    notification_emails: list[str] = Field(default_factory=list)
    notification_queue: str = "sales-data-notifications"
    # logs
    log_retention_days: int = 14
    # data
    dataset_contract: DatasetContract = Field(default_factory=lambda: DatasetContract.model_validate(DEFAULT_CONTRACT))
    max_reject_ratio: float = Field(0.5, ge=0.0, le=1.0)
    # notebooks
    sample_rows: int = Field(1000, ge=1)
    sample_bad_rows: int = Field(10, ge=0)
    sample_seed: int = 42
    upload_file: str | None = Field(None, description="a local CSV to upload instead of generated data")
    wait_timeout_seconds: int = Field(600, ge=1)
    teardown_confirm: bool = Field(True, description="ask before deleting data")
    keep_data: bool = False

    @field_validator("input_prefix", "output_prefix", "quarantine_prefix", "reports_prefix", "state_prefix",
                     "scripts_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.endswith("/") or v.startswith("/"):
            raise ValueError(f"prefix {v!r} must end with '/' and not start with '/'")
        return v

    @field_validator("name_suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        try:
            v.format(account_id="0", region="r")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"name_suffix {v!r} may only use {{account_id}} and {{region}}") from exc
        return v

    # -- derived names ---------------------------------------------------------------
    def suffix(self, account_id: str) -> str:
        return self.name_suffix.format(account_id=account_id, region=self.region)

    def bucket_name(self, account_id: str | None = None) -> str:
        """The project bucket's real name (with the account/region suffix applied).

        Without ``account_id``: the local cloud's account (see :func:`_local_account`).
        """
        return f"{self.bucket}{self.suffix(account_id or _local_account())}"

    def assets_bucket_name(self, account_id: str | None = None) -> str:
        """The Glue assets bucket, ``aws-glue-assets-<account>-<region>`` as Glue names it."""
        return f"{self.assets_bucket}-{account_id or _local_account()}-{self.region}"

    @property
    def state_dir(self) -> Path:
        """The local state directory; a relative path is taken from the project root, so that a notebook
        kernel (cwd ``notebooks/``), the CLI and the tests all find the same daemon and results."""
        p = Path(self.local_state_dir).expanduser()
        return p if p.is_absolute() else (_project_root() / p).resolve()

    @property
    def local_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def to_params(self) -> dict[str, Any]:
        """The flat parameter dict (what papermill passes to the notebooks)."""
        return self.model_dump(mode="json")


def _local_account() -> str:
    """The local cloud's account id, as the local cloud defines it (fixed: moto's default account).

    Read from its identity module (stdlib only, no server dependency), so that names on the local target
    can be derived without a running cloud; a running cloud reports the same id (``etl_kit.local.address``).
    """
    from etl_localcloud.identity import ACCOUNT_ID

    return ACCOUNT_ID


def _project_root() -> Path:
    """The checkout holding pyproject.toml for an editable install, else the working directory."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def _expected_form(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return "one of: " + ", ".join(sorted(Settings.model_fields))
    ann = getattr(info.annotation, "__name__", None) or str(info.annotation).replace("typing.", "")
    desc = f" ({info.description})" if info.description else ""
    return f"{ann}{desc}"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate a params file; ``overrides`` win over the file.

    Parameters
    ----------
    path
        A YAML file such as ``params/local.yaml``; ``None`` uses only defaults and overrides.
    **overrides
        Individual keys (e.g. papermill parameters).

    Raises
    ------
    ConfigError
        Naming the key, the file and the expected form.
    """
    data: dict[str, Any] = {}
    where = "overrides"
    if path is not None:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise ConfigError(f"params file {where!r} not found; copy params/local.yaml or params/aws.yaml")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"params file {where!r} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"params file {where!r} must be a mapping of key: value, got {type(loaded).__name__}")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items()})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            key = ".".join(str(x) for x in e["loc"]) or "(root)"
            top = str(e["loc"][0]) if e["loc"] else ""
            if e["type"] == "extra_forbidden":
                problems.append(f"unknown key {key!r}; expected {_expected_form('__unknown__')}")
            else:
                problems.append(f"key {key!r}: {e['msg']} (got {e.get('input')!r}); expected {_expected_form(top)}")
        raise ConfigError(f"invalid params in {where}:\n  - " + "\n  - ".join(problems)) from exc

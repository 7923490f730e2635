"""The facts the pipeline's steps hand each other, as typed values passed whole.

Python 3.9-compatible frozen dataclasses (no ``X | Y`` at runtime, no ``slots``), shared by the
Lambda, job 1 and job 2 so that none of them carries the same facts as a long keyword list.
The contract's typed value is :class:`etl_runtime.contract.CompiledContract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

__all__ = ["SourceObject", "WorkflowRun", "Warehouse", "LoadTarget", "Job1Summary"]


@dataclass(frozen=True)
class SourceObject:
    """One uploaded object, identified the way the ledger identifies it (bucket, key, ETag, version)."""

    bucket: str
    key: str
    etag: str = ""
    version_id: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class WorkflowRun:
    """The Glue workflow run a job belongs to (empty when a job is run on its own)."""

    workflow_name: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Warehouse:
    """Where Data API statements go: a Redshift Serverless workgroup, its database and optional secret."""

    workgroup: str
    database: str = "dev"
    secret_arn: Optional[str] = None

    def data_api_args(self) -> Dict[str, Any]:
        """The ``WorkgroupName``/``Database``/``SecretArn`` arguments of a Data API call."""
        args: Dict[str, Any] = {"WorkgroupName": self.workgroup, "Database": self.database}
        if self.secret_arn:
            args["SecretArn"] = self.secret_arn
        return args


@dataclass(frozen=True)
class LoadTarget:
    """The tables job 2 writes: the target table, the load ledger, and the role COPY reads S3 with."""

    schema: str = "public"
    table: str = "sales_data_table"
    ledger_table: str = "etl_load_ledger"
    redshift_role_arn: str = ""


def _int_or_none(props: Mapping[str, str], name: str) -> Optional[int]:
    value = str(props.get(name, "")).strip()
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Job1Summary:
    """What job 2 needs of job 1's report, carried in the workflow run properties as ``dq_*`` strings."""

    rows_read: Optional[int] = None
    rows_written: Optional[int] = None
    rows_quarantined: Optional[int] = None
    duplicate_keys_in_file: Optional[int] = None  # 0 lets the loader skip the staging dedupe
    output_lineage: bool = False
    key_min: Optional[int] = None
    key_max: Optional[int] = None

    @classmethod
    def from_run_properties(cls, props: Mapping[str, str]) -> Job1Summary:
        """Read the ``dq_*`` run properties job 1 wrote (missing or malformed values become ``None``)."""
        return cls(
            rows_read=_int_or_none(props, "dq_rows_read"),
            rows_written=_int_or_none(props, "dq_rows_written"),
            rows_quarantined=_int_or_none(props, "dq_rows_quarantined"),
            duplicate_keys_in_file=_int_or_none(props, "dq_duplicate_keys"),
            output_lineage=str(props.get("dq_output_lineage", "")).strip().lower() in ("1", "true", "yes"),
            key_min=_int_or_none(props, "dq_key_min"),
            key_max=_int_or_none(props, "dq_key_max"),
        )

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> Job1Summary:
        """The summary of job 1's report (a missing count is 0, a missing key bound ``None``)."""
        return cls(
            rows_read=report.get("rows_read", 0),
            rows_written=report.get("rows_written", 0),
            rows_quarantined=report.get("rows_quarantined", 0),
            duplicate_keys_in_file=report.get("duplicate_keys_in_file", 0),
            output_lineage=bool(report.get("output_lineage")),
            key_min=report.get("key_min"),
            key_max=report.get("key_max"),
        )

    def to_run_properties(self) -> Dict[str, str]:
        """The ``dq_*`` run properties job 2 reads back with :meth:`from_run_properties` (all strings, as
        Glue requires; an unknown count is ``"0"``, an unknown key bound ``""``)."""
        return {
            "dq_rows_read": _count_text(self.rows_read),
            "dq_rows_written": _count_text(self.rows_written),
            "dq_rows_quarantined": _count_text(self.rows_quarantined),
            "dq_duplicate_keys": _count_text(self.duplicate_keys_in_file),
            # job 2 appends straight into the target when the file carries its lineage columns and
            # the target holds none of its keys (checked inside the load transaction)
            "dq_output_lineage": "1" if self.output_lineage else "0",
            "dq_key_min": "" if self.key_min is None else str(self.key_min),
            "dq_key_max": "" if self.key_max is None else str(self.key_max),
        }


def _count_text(value: Optional[int]) -> str:
    return str(0 if value is None else value)

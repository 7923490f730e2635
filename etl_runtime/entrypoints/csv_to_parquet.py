"""Glue job ``csv-to-parquet-job`` (Python shell 3.9): validate one CSV object, write Parquet + quarantine.

Thin entry point around :func:`etl_runtime.transform.run_csv_to_parquet`. The job needs the
``etl_kit`` package (``etl_kit/__init__.py``, ``etl_kit/exceptions.py``, ``etl_runtime/``) on its
path, e.g. ``--extra-py-files s3://<assets>/scripts/etl_kit.zip``, and pyarrow (library set ``analytics``).

Arguments: ``--WORKFLOW_NAME --WORKFLOW_RUN_ID`` (set by the workflow), ``--dataset_contract`` (JSON),
``--output_prefix --quarantine_prefix --reports_prefix --max_reject_ratio`` and optionally
``--input_prefix``, ``--source_bucket --source_key`` (run without a workflow), and
``--workgroup --database --schema --ledger_table [--secret_arn]`` to record the ledger row of a file that
does not reach job 2: ``rejected`` (or ``skipped`` when the source changed) with the reason, or ``failed``
with ``<exception type>: <message>`` on anything unexpected (the report says the same).
Exits non-zero with one line naming the object and the reason when the file is rejected, and re-raises
unexpected exceptions so Glue marks the run FAILED with the real message.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional

OPTIONAL = ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "dataset_contract", "output_prefix", "quarantine_prefix",
            "reports_prefix", "input_prefix", "max_reject_ratio", "source_bucket", "source_key", "source_etag",
            "workgroup", "database", "schema", "ledger_table", "secret_arn", "engine"]
DEFAULTS = {"output_prefix": "output/", "quarantine_prefix": "quarantine/", "reports_prefix": "reports/",
            "input_prefix": "input/", "max_reject_ratio": "0.5", "schema": "public", "engine": "auto"}


def parse_args(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Parse job arguments (Glue passes extra ones such as --JOB_ID; they are ignored)."""
    from etl_runtime.jobargs import parse_job_args

    return parse_job_args(OPTIONAL, DEFAULTS, argv, __doc__ or "")


def main(argv: Optional[List[str]] = None) -> int:
    import boto3

    from etl_runtime.errors import FileRejected
    from etl_runtime.transform import run_csv_to_parquet

    args = parse_args(argv)
    if "dataset_contract" not in args:
        print("csv_to_parquet: --dataset_contract (JSON) is required", file=sys.stderr)
        return 2
    contract = json.loads(args["dataset_contract"])
    workflow, run_id = args.get("WORKFLOW_NAME"), args.get("WORKFLOW_RUN_ID")
    glue = boto3.client("glue")
    props: Dict[str, str] = {}
    if workflow and run_id:
        props = glue.get_workflow_run_properties(Name=workflow, RunId=run_id).get("RunProperties", {})
    bucket = args.get("source_bucket") or props.get("source_bucket")
    key = args.get("source_key") or props.get("source_key")
    if not bucket or not key:
        print("csv_to_parquet: no source object: need run properties source_bucket/source_key "
              "(started by the Lambda) or --source_bucket/--source_key", file=sys.stderr)
        return 2
    ledger = _Ledger(args, bucket, key, workflow or "", run_id or "", props)
    try:
        report = run_csv_to_parquet(
            bucket=bucket, key=key, contract=contract, output_prefix=args["output_prefix"],
            quarantine_prefix=args["quarantine_prefix"], reports_prefix=args["reports_prefix"],
            input_prefix=args["input_prefix"], max_reject_ratio=float(args["max_reject_ratio"]),
            run_id=run_id, workflow_name=workflow, source_etag=args.get("source_etag") or props.get("source_etag"),
            source_version_id=props.get("source_version_id") or None, glue=glue if workflow and run_id else None,
            engine=args["engine"],
        )
    except FileRejected as exc:
        rep = getattr(exc, "report", {}) or {}
        ledger.record("rejected" if exc.reason != "source_changed" else "skipped", exc.reason, str(exc), rep)
        # one line, naming the object and the reason; raising makes Glue mark the run FAILED with it
        raise SystemExit(f"REJECTED s3://{bucket}/{key}: {exc.reason}: {exc}") from None
    except Exception as exc:
        # anything unexpected: the object still gets a terminal state (failed, retryable), then the
        # job FAILs with the real exception
        text = f"{type(exc).__name__}: {exc}"
        ledger.record("failed", text, f"job 1 failed on s3://{bucket}/{key}: {text}", {})
        raise
    print(json.dumps({"state": report["state"], "rows_read": report["rows_read"],
                      "rows_written": report["rows_written"], "rows_quarantined": report["rows_quarantined"],
                      "output_key": report["output_key"], "report_key": report["report_key"]}))
    return 0


class _Ledger:
    """Records the object's ledger row when the job was given the warehouse (``--workgroup`` ...)."""

    def __init__(self, args: Dict[str, str], bucket: str, key: str, workflow: str, run_id: str,
                 props: Dict[str, str]) -> None:
        self.args, self.bucket, self.key, self.workflow, self.run_id, self.props = (
            args, bucket, key, workflow, run_id, props)

    def record(self, state: str, reason: str, message: str, report: Dict[str, Any]) -> None:
        args = self.args
        if not (args.get("workgroup") and args.get("database") and args.get("ledger_table")):
            return
        from etl_runtime.job2 import record_ledger
        from etl_runtime.loadsql import LedgerEntry
        from etl_runtime.values import LoadTarget, SourceObject, Warehouse, WorkflowRun

        source = SourceObject(
            self.bucket, self.key,
            etag=str(report.get("etag") or args.get("source_etag") or self.props.get("source_etag") or ""),
            version_id=str(report.get("version_id") or self.props.get("source_version_id") or ""))
        entry = LedgerEntry(source=source, state=state, run=WorkflowRun(self.workflow, self.run_id), reason=reason,
                            message=message, rows_read=report.get("rows_read"),
                            rows_written=report.get("rows_written"), rows_quarantined=report.get("rows_quarantined"))
        try:
            record_ledger(Warehouse(args["workgroup"], args["database"], args.get("secret_arn")),
                          LoadTarget(schema=args["schema"], ledger_table=args["ledger_table"]), entry)
        except Exception as lexc:  # the job's own outcome is the story; the ledger failure is a footnote
            print(f"csv_to_parquet: could not record the ledger row ({state}): {lexc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

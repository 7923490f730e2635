"""Glue job ``csv-to-parquet-job`` (Python shell 3.9): validate one CSV object, write Parquet + quarantine.

Thin entry point around :func:`etl_kit.pipeline.transform.run_csv_to_parquet`. The job needs the
``etl_kit`` package (``etl_kit/__init__.py``, ``etl_kit/exceptions.py``, ``etl_kit/pipeline/``) on its
path, e.g. ``--extra-py-files s3://<assets>/scripts/etl_kit.zip``, and pyarrow (library set ``analytics``).

Arguments: ``--WORKFLOW_NAME --WORKFLOW_RUN_ID`` (set by the workflow), ``--dataset_contract`` (JSON),
``--output_prefix --quarantine_prefix --reports_prefix --max_reject_ratio`` and optionally
``--input_prefix``, ``--source_bucket --source_key`` (run without a workflow), and
``--workgroup --database --schema --ledger_table [--secret_arn]`` to record a ``rejected`` ledger row.
Exits non-zero with one line naming the object and the reason when the file is rejected.
"""

from __future__ import annotations

import json
import sys
from typing import Dict, List, Optional

OPTIONAL = ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "dataset_contract", "output_prefix", "quarantine_prefix",
            "reports_prefix", "input_prefix", "max_reject_ratio", "source_bucket", "source_key", "source_etag",
            "workgroup", "database", "schema", "ledger_table", "secret_arn", "engine"]
DEFAULTS = {"output_prefix": "output/", "quarantine_prefix": "quarantine/", "reports_prefix": "reports/",
            "input_prefix": "input/", "max_reject_ratio": "0.5", "schema": "public", "engine": "auto"}


def parse_args(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Parse job arguments (Glue passes extra ones such as --JOB_ID; they are ignored)."""
    from etl_kit.pipeline.jobargs import parse_job_args

    return parse_job_args(OPTIONAL, DEFAULTS, argv, __doc__ or "")


def main(argv: Optional[List[str]] = None) -> int:
    import boto3

    from etl_kit.exceptions import FileRejected
    from etl_kit.pipeline.transform import run_csv_to_parquet

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
        if args.get("workgroup") and args.get("database") and args.get("ledger_table"):
            from etl_kit.pipeline.loader import record_ledger

            rep = getattr(exc, "report", {}) or {}
            try:
                record_ledger(workgroup=args["workgroup"], database=args["database"], schema=args["schema"],
                              ledger_table=args["ledger_table"], bucket=bucket, key=key,
                              etag=str(rep.get("etag") or props.get("source_etag") or ""),
                              state="rejected" if exc.reason != "source_changed" else "skipped",
                              version_id=str(rep.get("version_id") or ""), run_id=run_id or "",
                              workflow_name=workflow or "", report=rep, reason=exc.reason, message=str(exc),
                              secret_arn=args.get("secret_arn"))
            except Exception as lexc:  # the rejection is the story; the ledger failure is a footnote
                print(f"csv_to_parquet: could not record the ledger row: {lexc}", file=sys.stderr)
        # one line, naming the object and the reason; raising makes Glue mark the run FAILED with it
        raise SystemExit(f"REJECTED s3://{bucket}/{key}: {exc.reason}: {exc}") from None
    print(json.dumps({"state": report["state"], "rows_read": report["rows_read"],
                      "rows_written": report["rows_written"], "rows_quarantined": report["rows_quarantined"],
                      "output_key": report["output_key"], "report_key": report["report_key"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Glue job ``redshift-loader-job`` (Python shell 3.9): load job 1's Parquet into Redshift (Data API).

Thin entry point around :func:`etl_runtime.loader.run_load`; needs the ``etl_kit`` package on its
path (``--extra-py-files``). Arguments: ``--WORKFLOW_NAME --WORKFLOW_RUN_ID --workgroup --database
--schema --table --ledger_table --redshift_role_arn --dataset_contract [--secret_arn] [--bucket]``.
Reads the run properties ``output_key source_bucket source_key source_etag source_version_id dq_*``.
"""

from __future__ import annotations

import json
import sys
from typing import Dict, List, Optional

OPTIONAL = ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "workgroup", "database", "schema", "table", "ledger_table",
            "redshift_role_arn", "dataset_contract", "secret_arn", "bucket", "output_key", "source_bucket",
            "source_key", "source_etag"]
DEFAULTS = {"schema": "public", "table": "sales_data_table", "ledger_table": "etl_load_ledger", "database": "dev"}


def parse_args(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Parse job arguments (Glue passes extra ones such as --JOB_ID; they are ignored)."""
    from etl_runtime.jobargs import parse_job_args

    return parse_job_args(OPTIONAL, DEFAULTS, argv, __doc__ or "")


def main(argv: Optional[List[str]] = None) -> int:
    import boto3

    from etl_runtime.loader import report_from_run_properties, run_load

    args = parse_args(argv)
    missing = [a for a in ("workgroup", "redshift_role_arn", "dataset_contract") if not args.get(a)]
    if missing:
        print(f"parquet_to_redshift: missing arguments: {', '.join('--' + m for m in missing)}", file=sys.stderr)
        return 2
    workflow, run_id = args.get("WORKFLOW_NAME", ""), args.get("WORKFLOW_RUN_ID", "")
    props: Dict[str, str] = {}
    if workflow and run_id:
        props = boto3.client("glue").get_workflow_run_properties(Name=workflow, RunId=run_id).get("RunProperties", {})
    get = lambda k: args.get(k) or props.get(k, "")  # noqa: E731
    if props.get("job1_state") and props["job1_state"] != "transformed":
        print(f"parquet_to_redshift: job 1 state is {props['job1_state']!r}; nothing to load", file=sys.stderr)
        return 2
    output_key, source_bucket = get("output_key"), get("source_bucket")
    if not output_key or not source_bucket:
        print("parquet_to_redshift: need run properties output_key/source_bucket (or --output_key/--source_bucket)",
              file=sys.stderr)
        return 2
    report = report_from_run_properties(props)
    result = run_load(
        workgroup=args["workgroup"], database=args["database"], schema=args["schema"], table=args["table"],
        ledger_table=args["ledger_table"], contract=json.loads(args["dataset_contract"]),
        bucket=args.get("bucket") or source_bucket, output_key=output_key,
        redshift_role_arn=args["redshift_role_arn"], run_id=run_id, workflow_name=workflow,
        source_bucket=source_bucket, source_key=get("source_key"), source_etag=get("source_etag"),
        source_version_id=props.get("source_version_id", ""), report=report, secret_arn=args.get("secret_arn"),
        # etl-kit replay --force: load again although loaded (the upsert replaces the rows, never duplicates)
        force=props.get("delivery") == "force",
    )
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

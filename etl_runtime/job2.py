"""Job 2: load one job-1 Parquet object into Redshift through the Redshift Data API only.

Runs inside Glue Python shell (Python 3.9) and unchanged in the local cloud (whose Data API runs
the statements on PostgreSQL). stdlib + boto3 only. The statements come from
:mod:`etl_runtime.loadsql`, the Data API calls from :mod:`etl_runtime.dataapi`; this module decides.

Before the load a parameterised ``SELECT`` on the ledger skips objects with a ``loaded`` attempt
(idempotent; a ``failed`` attempt does not block the retry). Then one batch (one transaction) loads
the file, straight into the target when job 1's report allows an append, else through staging.

Ledger states: ``loaded`` (in the load's batch), ``failed`` (a separate batch after a failed load),
``rejected`` (job 1's script calls :func:`record_ledger` when the file was rejected, since the
workflow does not run job 2 after a failed job 1). A ledger table from before attempts is migrated
in place the first time it is used (:func:`ensure_ledger_layout`).

Glue arguments (:func:`main`): ``--WORKFLOW_NAME --WORKFLOW_RUN_ID --workgroup --database --schema
--table --ledger_table --redshift_role_arn --dataset_contract [--secret_arn] [--bucket]``. Run
properties read: ``output_key source_bucket source_key source_etag source_version_id delivery dq_*``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from etl_runtime import dataapi
from etl_runtime.errors import WarehouseError
from etl_runtime.loadsql import (
    LEDGER_COLUMNS,
    LedgerEntry,
    LoadBatch,
    LoadSpec,
    append_plan,
    columns_query,
    ledger_ddl,
    ledger_migration,
    ledger_statements,
    load_statements,
    loaded_attempt_query,
    primary_key_query,
    target_columns,
    utc_now,
)
from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, Warehouse, WorkflowRun

if TYPE_CHECKING:
    from etl_runtime.contract import CompiledContract

__all__ = ["check_target_layout", "ensure_ledger_layout", "record_ledger", "loaded_attempt", "run_load",
           "parse_args", "main"]


def _client(rsd: Any) -> Any:
    if rsd is not None:
        return rsd
    import boto3

    return boto3.client("redshift-data")


def check_target_layout(rsd: Any, warehouse: Warehouse, target: LoadTarget, contract: CompiledContract) -> None:
    """Raise a WarehouseError naming the table and the fix when an existing target has other columns.

    COPY maps Parquet columns to table columns by position, so a table created by an older etl-kit (or
    by hand) would fail deep inside the load, or load lineage into the wrong columns.
    """
    schema, table = target.schema, target.table
    rows = dataapi.query(rsd, warehouse, columns_query(schema, table, ordered=True))
    have = [str(r[0]).lower() for r in rows]
    want = [c.lower() for c in target_columns(contract)]
    if have and have != want:
        raise WarehouseError(
            f"table {schema}.{table} has the columns ({', '.join(have)}) but the dataset contract and etl-kit's "
            f"lineage need ({', '.join(want)}) in that order: rename it (ALTER TABLE {schema}.{table} RENAME TO "
            f"{table}_old) and re-run the load, which creates the table, then copy the old rows over; or point "
            "redshift_table in params at a new table")


def ensure_ledger_layout(rsd: Any, warehouse: Warehouse, target: LoadTarget) -> List[str]:
    """Migrate an existing ledger table from before attempts in place; return the statements run.

    Nothing happens when the table does not exist (the load's ``CREATE TABLE IF NOT EXISTS`` makes
    it) or already has every column. Two jobs migrating at once: the loser's batch fails, the
    columns are looked up again and the migration counts as done when they are there.
    """
    schema, ledger = target.schema, target.ledger_table

    def columns() -> List[str]:
        return [str(r[0]).lower() for r in dataapi.query(rsd, warehouse, columns_query(schema, ledger))]

    have = columns()
    if not have or all(n in have for n, _ in LEDGER_COLUMNS):
        return []
    pk = dataapi.query(rsd, warehouse, primary_key_query(schema, ledger))
    stmts = ledger_migration(target, have, str(pk[0][0]) if pk else None)
    try:
        dataapi.execute_batch(rsd, warehouse, stmts, name=f"etl-kit-ledger-migrate-{ledger}")
    except WarehouseError:
        if not all(n in columns() for n, _ in LEDGER_COLUMNS):
            raise
    print(json.dumps({"decision": "ledger_migrated", "table": f"{schema}.{ledger}", "statements": stmts}),
          flush=True)
    return stmts


def record_ledger(warehouse: Warehouse, target: LoadTarget, entry: LedgerEntry, rsd: Any = None) -> None:
    """Record this attempt's ledger row for an object: state ``rejected``, ``failed`` or ``skipped``.

    One row per (bucket, key, etag, run_id): a second call for the same run replaces its row; other
    attempts are kept. ``rows_loaded`` is 0 unless the entry says otherwise. Job 1's script calls
    this on a file rejection when it was given ``--workgroup``; job 2 calls it after a failed load.
    """
    rsd = _client(rsd)
    if entry.rows_loaded is None:
        entry = dataclasses.replace(entry, rows_loaded=0)
    stmts = [ledger_ddl(target), *ledger_statements(target, entry)]
    name = f"etl-kit-ledger-{entry.state}"
    try:
        dataapi.execute_batch(rsd, warehouse, stmts, name=name)
    except WarehouseError:
        # a ledger table from before attempts: migrate it, then write the row once more
        if not ensure_ledger_layout(rsd, warehouse, target):
            raise
        dataapi.execute_batch(rsd, warehouse, stmts, name=name)


def loaded_attempt(rsd: Any, warehouse: Warehouse, target: LoadTarget, source: SourceObject) -> Optional[str]:
    """The run id of the object's ``loaded`` attempt, or None (no ledger table, or never loaded).

    Only loaded attempts count: a failed or rejected one does not block a retry. A ledger table from
    before attempts is migrated first.
    """
    lookup = loaded_attempt_query(target, source)
    try:
        rows = dataapi.query(rsd, warehouse, lookup)
    except WarehouseError:
        try:
            migrated = ensure_ledger_layout(rsd, warehouse, target)
        except WarehouseError:
            migrated = []
        rows = dataapi.query(rsd, warehouse, lookup) if migrated else []  # else: no ledger table yet
    if rows and rows[0][0] == "loaded":
        return str(rows[0][1] or "")
    return None


def _execute(rsd: Any, warehouse: Warehouse, spec: LoadSpec, started: str,
             timeout: float) -> Tuple[LoadBatch, dataapi.BatchResult]:
    """Check the target's layout and run the load's batch: the append when planned, else (or when the
    append's guard finds keys of the file's range in the target) the upsert through staging."""
    plan = append_plan(spec.contract, spec.summary)
    name = f"etl-kit-load-{spec.run.run_id or spec.source.key}"[:500]
    batch = load_statements(spec, append=plan, started_at=started)
    check_target_layout(rsd, warehouse, spec.target, spec.contract)
    try:
        return batch, dataapi.execute_batch(rsd, warehouse, batch.sqls, name=name, timeout=timeout)
    except dataapi.BatchFailed as exc:
        if batch.guard is None or exc.failed_at != batch.guard:
            raise
    # the target already holds keys in this file's range: replace them through staging
    batch = load_statements(spec, started_at=started)
    return batch, dataapi.execute_batch(rsd, warehouse, batch.sqls, name=name, timeout=timeout)


def _record_failure(rsd: Any, warehouse: Warehouse, spec: LoadSpec, started: str, exc: WarehouseError) -> str:
    """Write the ``failed`` ledger row of a load; return the message the job fails with."""
    uri, tgt = spec.parquet.uri, f"{spec.target.schema}.{spec.target.table}"
    detail = dataapi.load_error_detail(rsd, warehouse, uri)
    message = f"load of {uri} into {tgt} failed: {exc}"
    if detail:
        message += f" | load errors: {detail}"
    entry = LedgerEntry.of_summary(spec.source, spec.run, "failed", spec.summary, reason="load_failed",
                                   message=message, started_at=started)
    try:
        record_ledger(warehouse, spec.target, entry, rsd)
    except Exception as lexc:  # keep the original error; mention the ledger problem
        message += f" (ledger row not written: {lexc})"
    return message


def _loaded(base: Dict[str, Any], batch: LoadBatch, result: dataapi.BatchResult, started: str) -> Dict[str, Any]:
    """The outcome of a finished load, its counts read from the batch's sub-statements by position."""
    copied = result.rows_at(batch.copy)
    out = dict(base, state="loaded", mode=batch.mode, statement_id=result.statement_id, rows_copied=copied,
               rows_deduplicated=result.rows_at(batch.dedupe) if batch.dedupe is not None else 0,
               rows_merged=copied if batch.mode == "append" else result.rows_at(batch.insert),
               started_at=started, finished_at=utc_now())
    if batch.replace is not None:
        out["rows_replaced"] = result.rows_at(batch.replace)
    return out


def run_load(spec: LoadSpec, warehouse: Warehouse, *, rsd: Any = None, force: bool = False,
             timeout: float = 1800.0) -> Dict[str, Any]:
    """Load one job-1 Parquet object into the target table in one transaction and record it in the ledger.

    Parameters
    ----------
    spec
        The Parquet object, the target, the compiled contract, the source object (the ledger's
        identity), the workflow run and job 1's summary (counts, duplicate keys, key range).
    warehouse
        The workgroup, database and optional secret the Data API statements go to.
    force
        Load even when the ledger has a ``loaded`` attempt for the object (``etl-kit replay --force``): the
        upsert replaces the object's rows, so they are still never duplicated.

    Returns
    -------
    dict
        ``{state: loaded|skipped, statement_id, rows_copied, rows_deduplicated, rows_merged, ...}``.

    Raises
    ------
    WarehouseError
        With the database's error text (and SYS_LOAD_ERROR_DETAIL rows on AWS); a ``failed`` ledger
        row is written first.
    """
    rsd = _client(rsd)
    started = utc_now()
    src = spec.source
    base: Dict[str, Any] = {"bucket": src.bucket, "key": src.key, "etag": src.etag, "run_id": spec.run.run_id,
                            "output_key": spec.parquet.key, "table": f"{spec.target.schema}.{spec.target.table}"}
    loaded_by = loaded_attempt(rsd, warehouse, spec.target, src)
    if loaded_by is not None and not force:
        skipped = dict(base, state="skipped", reason=f"already loaded by run {loaded_by}")
        print(json.dumps(dict(skipped, decision="skipped")), flush=True)
        return skipped
    try:
        batch, result = _execute(rsd, warehouse, spec, started, timeout)
    except WarehouseError as exc:
        raise WarehouseError(_record_failure(rsd, warehouse, spec, started, exc)) from exc
    out = _loaded(base, batch, result, started)
    print(json.dumps(dict(out, decision="loaded"), default=str), flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# The Glue job
# ---------------------------------------------------------------------------------------------
OPTIONAL = ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "workgroup", "database", "schema", "table", "ledger_table",
            "redshift_role_arn", "dataset_contract", "secret_arn", "bucket", "output_key", "source_bucket",
            "source_key", "source_etag"]
DEFAULTS = {"schema": "public", "table": "sales_data_table", "ledger_table": "etl_load_ledger", "database": "dev"}


def parse_args(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Parse job arguments (Glue passes extra ones such as --JOB_ID; they are ignored)."""
    from etl_runtime.jobargs import parse_job_args

    return parse_job_args(OPTIONAL, DEFAULTS, argv, __doc__ or "")


def _arg(args: Mapping[str, str], props: Mapping[str, str], name: str) -> str:
    """A job argument, else the workflow run property of the same name."""
    return args.get(name) or props.get(name, "")


def load_spec(args: Mapping[str, str], props: Mapping[str, str]) -> LoadSpec:
    """The load a job run asks for: arguments first, then the workflow run's properties."""
    from etl_runtime.contract import compile_contract

    def get(k: str) -> str:
        return _arg(args, props, k)

    source_bucket = get("source_bucket")
    return LoadSpec(
        target=LoadTarget(schema=args["schema"], table=args["table"], ledger_table=args["ledger_table"],
                          redshift_role_arn=args["redshift_role_arn"]),
        contract=compile_contract(json.loads(args["dataset_contract"])),
        parquet=SourceObject(args.get("bucket") or source_bucket, get("output_key")),
        source=SourceObject(source_bucket, get("source_key"), get("source_etag"), props.get("source_version_id", "")),
        run=WorkflowRun(args.get("WORKFLOW_NAME", ""), args.get("WORKFLOW_RUN_ID", "")),
        summary=Job1Summary.from_run_properties(props),
    )


def _run_properties(args: Mapping[str, str]) -> Dict[str, str]:
    workflow, run_id = args.get("WORKFLOW_NAME", ""), args.get("WORKFLOW_RUN_ID", "")
    if not (workflow and run_id):
        return {}
    import boto3

    props: Dict[str, str] = boto3.client("glue").get_workflow_run_properties(
        Name=workflow, RunId=run_id).get("RunProperties", {})
    return props


def main(argv: Optional[List[str]] = None) -> int:
    """Glue job ``redshift-loader-job``: load the run's Parquet object; 2 when there is nothing to load."""
    args = parse_args(argv)
    missing = [a for a in ("workgroup", "redshift_role_arn", "dataset_contract") if not args.get(a)]
    if missing:
        print(f"parquet_to_redshift: missing arguments: {', '.join('--' + m for m in missing)}", file=sys.stderr)
        return 2
    props = _run_properties(args)
    if props.get("job1_state") and props["job1_state"] != "transformed":
        print(f"parquet_to_redshift: job 1 state is {props['job1_state']!r}; nothing to load", file=sys.stderr)
        return 2
    if not _arg(args, props, "output_key") or not _arg(args, props, "source_bucket"):
        print("parquet_to_redshift: need run properties output_key/source_bucket (or --output_key/--source_bucket)",
              file=sys.stderr)
        return 2
    warehouse = Warehouse(args["workgroup"], args["database"], args.get("secret_arn"))
    # etl-kit replay --force: load again although loaded (the upsert replaces the rows, never duplicates)
    result = run_load(load_spec(args, props), warehouse, force=props.get("delivery") == "force")
    print(json.dumps(result, default=str))
    return 0

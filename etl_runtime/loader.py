"""Job 2: load one job-1 Parquet object into Redshift through the Redshift Data API only.

Runs inside Glue Python shell (Python 3.9) and unchanged in the local cloud (whose Data API runs
the statements on PostgreSQL). stdlib + boto3 only.

One ``batch_execute_statement`` (one transaction) per object:

1. ``CREATE TABLE IF NOT EXISTS`` target (contract columns + lineage, PRIMARY KEY, DISTKEY, SORTKEY)
2. ``CREATE TABLE IF NOT EXISTS`` ledger
3. ``DROP TABLE IF EXISTS`` staging; ``CREATE TEMP TABLE`` staging (contract columns + source_line)
4. ``COPY`` staging ``FROM 's3://...' IAM_ROLE '...' FORMAT AS PARQUET``
5. dedupe staging: keep the highest ``source_line`` per primary key (``DELETE ... USING`` an
   aggregate subquery; valid on Redshift and PostgreSQL); left out when job 1's report says the file
   has no duplicate keys (``duplicate_keys_in_file`` / run property ``dq_duplicate_keys`` = 0)
6. upsert, Redshift's "merge by replacing existing rows": ``DELETE FROM`` target ``USING`` staging on
   the primary key, then ``INSERT INTO`` target ``SELECT ... FROM`` staging (``UPSERT = "merge"``
   gives the equivalent ``MERGE INTO``): existing keys are replaced, new ones inserted, re-loads are
   harmless and, across files, the later load wins
7. ledger: ``DELETE`` then ``INSERT ... SELECT COUNT(*) FROM staging`` with state ``loaded`` (the row of
   this attempt: one row per (bucket, key, etag, run_id); earlier attempts are kept)
8. ``DROP TABLE`` staging

Before that a parameterised ``SELECT`` on the ledger skips objects with a ``loaded`` attempt
(idempotent; a ``failed`` attempt does not block the retry).
Batch statements take no parameters, so values are embedded as escaped literals: single quotes and
backslashes are doubled (Redshift treats backslash as an escape in literals; the local cloud hands such
literals to PostgreSQL as ``E'...'``). Identifiers are
validated (``[A-Za-z_][A-Za-z0-9_]*``) and double-quoted.

Ledger states: ``loaded`` (here), ``failed`` (here, separate statement after a failed batch),
``rejected`` (job 1's script calls :func:`record_ledger` when the file was rejected, since the
workflow does not run job 2 after a failed job 1). The ledger keeps every attempt: one row per
(bucket, key, etag, run_id), numbered by ``attempt`` (1, 2, ... per object identity); the object's
state is its newest attempt's. A ledger table from before attempts (primary key bucket, key, etag)
is migrated in place the first time it is used (:func:`ensure_ledger_layout`).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence

from etl_runtime.errors import WarehouseError

__all__ = [
    "redshift_type",
    "quote_ident",
    "quote_literal",
    "target_ddl",
    "ledger_ddl",
    "staging_ddl",
    "append_plan",
    "check_target_layout",
    "target_columns",
    "report_from_run_properties",
    "load_statements",
    "ledger_statements",
    "run_load",
    "record_ledger",
    "ensure_ledger_layout",
    "ledger_migration",
    "execute_batch",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The target's lineage columns, in the order job 1 writes them after the contract columns (so a
# lineage-carrying Parquet file has exactly the target's columns and can be COPYed straight in).
LINEAGE = [("source_line", "BIGINT"), ("source_key", "VARCHAR(1024)"), ("source_etag", "VARCHAR(256)"),
           ("run_id", "VARCHAR(256)")]
APPEND_GUARD = "etl_kit_append_guard"
LEDGER_COLUMNS = [
    ("bucket", "VARCHAR(256) NOT NULL"), ("key", "VARCHAR(1024) NOT NULL"), ("etag", "VARCHAR(256) NOT NULL"),
    ("version_id", "VARCHAR(1024)"), ("run_id", "VARCHAR(256)"), ("workflow_name", "VARCHAR(256)"),
    ("rows_read", "BIGINT"), ("rows_written", "BIGINT"), ("rows_quarantined", "BIGINT"), ("rows_loaded", "BIGINT"),
    ("state", "VARCHAR(32) NOT NULL"), ("reason", "VARCHAR(64)"), ("message", "VARCHAR(65535)"),
    ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"), ("attempt", "INTEGER"),
]
# one ledger row per attempt; "attempt" last, so that a migrated table has the columns in the same order
LEDGER_KEY = ("bucket", "key", "etag", "run_id")
STAGING = "etl_kit_staging"
# How staging is applied to the target: "delete_insert" (default; measured faster on the local cloud at
# 1M rows: 7.5-8.0 s vs 10.0 s for MERGE when every key exists, equal when none does) or "merge".
UPSERT = "delete_insert"


def _no_duplicates(report: Optional[Dict[str, Any]]) -> bool:
    """True when job 1's report says the file has no duplicate primary keys (unknown: False)."""
    return _int_value(report or {}, "duplicate_keys_in_file", "dq_duplicate_keys") == 0


def redshift_type(col: Dict[str, Any]) -> str:
    """The Redshift type of a contract column."""
    t = col.get("type", "string")
    if t == "string":
        return "VARCHAR(256)"
    if t == "integer":
        return "BIGINT"
    if t == "decimal":
        return f"DECIMAL({int(col.get('precision') or 18)},{int(col['scale'] if col.get('scale') is not None else 2)})"
    if t == "date":
        return "DATE"
    if t == "double":
        return "DOUBLE PRECISION"
    raise ValueError(f"unknown column type {t!r}")


def quote_ident(name: str) -> str:
    """Validate and double-quote an identifier (lower-case, as Redshift folds them)."""
    if not _IDENT.match(name or ""):
        raise ValueError(f"unsafe SQL identifier {name!r}: use letters, digits and underscores")
    return '"' + name.lower() + '"'


def quote_literal(value: Any) -> str:
    """An escaped SQL string literal (``NULL`` for None); single quotes and backslashes doubled."""
    if value is None:
        return "NULL"
    s = str(value)
    if "\x00" in s:
        raise ValueError("NUL character in an SQL literal")
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def _int_or_null(v: Any) -> str:
    if v is None or v == "":
        return "NULL"
    return str(int(v))


def _qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def _flag(report: Dict[str, Any], *names: str) -> bool:
    for k in names:
        v = report.get(k)
        if v is not None and str(v).strip() != "":
            return str(v).strip().lower() in ("1", "true", "yes")
    return False


def _int_value(report: Dict[str, Any], *names: str) -> Optional[int]:
    for k in names:
        v = report.get(k)
        if v is not None and str(v).strip().lstrip("-").isdigit():
            return int(str(v).strip())
    return None


def report_from_run_properties(props: Dict[str, str]) -> Dict[str, Any]:
    """Job 1's report as job 2 needs it, from the workflow run properties (``dq_*``, all strings)."""
    report: Dict[str, Any] = {k: int(props[f"dq_{k}"]) for k in ("rows_read", "rows_written", "rows_quarantined")
                              if str(props.get(f"dq_{k}", "")).isdigit()}
    if str(props.get("dq_duplicate_keys", "")).isdigit():  # 0 lets the loader skip the staging dedupe
        report["duplicate_keys_in_file"] = int(props["dq_duplicate_keys"])
    report["output_lineage"] = _flag(props, "dq_output_lineage")
    for k in ("key_min", "key_max"):
        report[k] = _int_value(props, f"dq_{k}")
    return report


def append_plan(contract: Dict[str, Any], report: Optional[Dict[str, Any]]) -> Optional[Dict[str, int]]:
    """The key range and row count for a straight append, or None when the load must go through staging.

    A straight ``COPY`` into the target is possible when job 1's file carries the lineage columns
    (``output_lineage`` / ``dq_output_lineage``), has no duplicate keys, a single integer primary key
    with a known range (``key_min``/``key_max``) and a known row count. Whether the target already
    holds keys in that range is decided inside the load transaction (see :func:`load_statements`).
    """
    report = report or {}
    pk = _pk(contract)
    cols = {c["name"]: c for c in _columns(contract)}
    if len(pk) != 1 or cols.get(pk[0], {}).get("type") != "integer":
        return None
    if not _flag(report, "output_lineage", "dq_output_lineage") or not _no_duplicates(report):
        return None
    lo = _int_value(report, "key_min", "dq_key_min")
    hi = _int_value(report, "key_max", "dq_key_max")
    rows = _int_value(report, "rows_written", "dq_rows_written")
    if lo is None or hi is None or not rows:
        return None
    return {"key_min": lo, "key_max": hi, "rows": rows}


def _columns(contract: Dict[str, Any]) -> List[Dict[str, Any]]:
    if hasattr(contract, "model_dump"):
        contract = contract.model_dump()
    return list(contract["columns"])


def _pk(contract: Dict[str, Any]) -> List[str]:
    if hasattr(contract, "model_dump"):
        contract = contract.model_dump()
    return list(contract.get("primary_key") or [])


def target_ddl(schema: str, table: str, contract: Dict[str, Any]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the target, with PRIMARY KEY, DISTKEY and SORTKEY.

    DISTKEY is the first primary-key column; SORTKEY the first date column (else the key).
    """
    cols = _columns(contract)
    pk = _pk(contract)
    parts = [f"{quote_ident(c['name'])} {redshift_type(c)}{' NOT NULL' if c.get('required') else ''}"
             for c in cols]
    parts += [f"{quote_ident(n)} {t}" for n, t in LINEAGE]
    if pk:
        parts.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in pk)})")
    sort = next((c["name"] for c in cols if c.get("type") == "date"), pk[0] if pk else None)
    attrs = ""
    if pk:
        attrs += f" DISTKEY({quote_ident(pk[0])})"
    if sort:
        attrs += f" SORTKEY({quote_ident(sort)})"
    return f"CREATE TABLE IF NOT EXISTS {_qualified(schema, table)} ({', '.join(parts)}){attrs}"


def ledger_ddl(schema: str, ledger_table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the load ledger (primary key bucket, key, etag, run_id)."""
    parts = [f"{quote_ident(n)} {t}" + (" NOT NULL" if n == "run_id" else "") for n, t in LEDGER_COLUMNS]
    parts.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in LEDGER_KEY)})")
    return f"CREATE TABLE IF NOT EXISTS {_qualified(schema, ledger_table)} ({', '.join(parts)})"


def ledger_migration(schema: str, ledger_table: str, columns: Sequence[str], pk_name: Optional[str]) -> List[str]:
    """The statements that bring an existing ledger table with ``columns`` to :data:`LEDGER_COLUMNS`.

    A table from before attempts has the primary key (bucket, key, etag), which would refuse a second
    attempt's row where keys are enforced: it is dropped (``pk_name``, from
    ``information_schema.table_constraints``), the missing columns are added (Redshift has no
    ``ADD COLUMN IF NOT EXISTS``: the caller looked them up) and the old rows become attempt 1.
    The migrated table keeps no primary key (Redshift's is informational; the writes key on
    :data:`LEDGER_KEY`).
    """
    q = _qualified(schema, ledger_table)
    have = {c.lower() for c in columns}
    stmts: List[str] = []
    if pk_name and "attempt" not in have:
        stmts.append(f"ALTER TABLE {q} DROP CONSTRAINT {quote_ident(pk_name)}")
    stmts += [f"ALTER TABLE {q} ADD COLUMN {quote_ident(n)} {t}" for n, t in LEDGER_COLUMNS if n not in have]
    if "attempt" not in have:
        stmts.append(f'UPDATE {q} SET "attempt" = 1 WHERE "attempt" IS NULL')
    return stmts


def staging_ddl(contract: Dict[str, Any], lineage: bool = False) -> str:
    """``CREATE TEMP TABLE`` staging in the Parquet column order (contract columns + source_line,
    then the other lineage columns when job 1 wrote them)."""
    cols = _columns(contract)
    parts = [f"{quote_ident(c['name'])} {redshift_type(c)}" for c in cols]
    parts += [f"{quote_ident(n)} {t}" for n, t in (LINEAGE if lineage else LINEAGE[:1])]
    return f"CREATE TEMP TABLE {STAGING} ({', '.join(parts)})"


def ledger_statements(schema: str, ledger_table: str, *, bucket: str, key: str, etag: str, state: str,
                      version_id: str = "", run_id: str = "", workflow_name: str = "", rows_read: Any = None,
                      rows_written: Any = None, rows_quarantined: Any = None, rows_loaded_sql: str = "NULL",
                      reason: str = "", message: str = "", started_at: Optional[str] = None,
                      finished_at: Optional[str] = None) -> List[str]:
    """``DELETE`` + ``INSERT`` of this attempt's ledger row, keyed (bucket, key, etag, run_id).

    Other attempts' rows are kept; the attempt number is one more than the highest of the object's
    other attempts. ``rows_loaded_sql`` is SQL.
    """
    q = _qualified(schema, ledger_table)
    obj = f'"bucket" = {quote_literal(bucket)} AND "key" = {quote_literal(key)} AND "etag" = {quote_literal(etag)}'
    where = f'{obj} AND "run_id" = {quote_literal(run_id)}'
    attempt = f'(SELECT COALESCE(MAX("attempt"), 0) + 1 FROM {q} WHERE {obj} AND "run_id" <> {quote_literal(run_id)})'
    values = [
        quote_literal(bucket), quote_literal(key), quote_literal(etag), quote_literal(version_id),
        quote_literal(run_id), quote_literal(workflow_name), _int_or_null(rows_read), _int_or_null(rows_written),
        _int_or_null(rows_quarantined), rows_loaded_sql, quote_literal(state), quote_literal(reason[:64]),
        quote_literal(message[:60000]), _ts(started_at), _ts(finished_at or _now()), attempt,
    ]
    cols = ", ".join(quote_ident(n) for n, _ in LEDGER_COLUMNS)
    return [f"DELETE FROM {q} WHERE {where}", f"INSERT INTO {q} ({cols}) SELECT {', '.join(values)}"]


def _ts(value: Optional[str]) -> str:
    if not value:
        return "NULL"
    # normalise ISO-8601 (with T/Z) to 'YYYY-MM-DD HH:MM:SS.ffffff', which both databases parse
    v = str(value).replace("T", " ").rstrip("Z")
    v = re.sub(r"[+-]\d\d:\d\d$", "", v)
    if not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$", v):
        raise ValueError(f"not a timestamp: {value!r}")
    return f"TIMESTAMP {quote_literal(v)}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_statements(*, schema: str, table: str, ledger_table: str, contract: Dict[str, Any], bucket: str,
                    output_key: str, redshift_role_arn: str, run_id: str, workflow_name: str, source_bucket: str,
                    source_key: str, source_etag: str, source_version_id: str = "", report: Optional[Dict[str, Any]]
                    = None, started_at: Optional[str] = None, loaded_at: Optional[str] = None,
                    upsert: Optional[str] = None, append: Optional[Dict[str, int]] = None) -> List[str]:
    """The statement list of one load transaction (see the module docstring for the shape).

    With ``append`` (from :func:`append_plan`) the file is copied straight into the target: after
    ``LOCK`` a guard statement divides by zero (aborting the transaction) if the target already
    holds a key in the file's range, and the caller then loads through staging instead.

    Otherwise: the staging dedupe is left out when ``report`` says job 1 found no duplicate keys in
    the file (``duplicate_keys_in_file`` or the run property ``dq_duplicate_keys`` is 0); kept when
    unknown. ``upsert`` is ``merge`` (``MERGE INTO``) or ``delete_insert`` (``DELETE ... USING``
    staging then ``INSERT ... SELECT``): the same result.
    """
    report = report or {}
    cols = _columns(contract)
    pk = _pk(contract)
    if not pk:
        raise ValueError("the dataset contract needs a primary_key for the upsert")
    tgt = _qualified(schema, table)
    names = [quote_ident(c["name"]) for c in cols]
    loaded_at = loaded_at or _now()
    s3_uri = f"s3://{bucket}/{output_key}"
    pk_q = [quote_ident(k) for k in pk]
    copy_opts = f"FROM {quote_literal(s3_uri)} IAM_ROLE {quote_literal(redshift_role_arn)} FORMAT AS PARQUET"
    ledger_args: Dict[str, Any] = dict(
        bucket=source_bucket, key=source_key, etag=source_etag, state="loaded", version_id=source_version_id,
        run_id=run_id, workflow_name=workflow_name, rows_read=report.get("rows_read"),
        rows_written=report.get("rows_written"), rows_quarantined=report.get("rows_quarantined"),
        message=f"{'appended' if append is not None else 'upserted'} from {s3_uri}", started_at=started_at,
        finished_at=loaded_at)
    head = [target_ddl(schema, table, contract), ledger_ddl(schema, ledger_table),
            # one load at a time per table: the append guard and the upsert both read then write it
            f"LOCK {tgt}"]
    if append is not None:
        guard = (f"SELECT 1 / (CASE WHEN (SELECT COUNT(*) FROM {tgt} WHERE {pk_q[0]} BETWEEN "
                 f"{int(append['key_min'])} AND {int(append['key_max'])}) = 0 THEN 1 ELSE 0 END) AS {APPEND_GUARD}")
        ledger = ledger_statements(schema, ledger_table, rows_loaded_sql=str(int(append["rows"])), **ledger_args)
        # STATUPDATE OFF: the statistics of the target are refreshed by (auto) analyze later; a COPY into
        # an empty table would otherwise analyze it inside the load (only the staging copy needs them)
        return [*head, guard, f"COPY {tgt} {copy_opts} STATUPDATE OFF", *ledger]
    lineage = _flag(report, "output_lineage", "dq_output_lineage")
    on = " AND ".join(f"t.{k} = s.{k}" for k in pk_q)
    lineage_vals = ["s.\"source_line\"", quote_literal(source_key), quote_literal(source_etag), quote_literal(run_id)]
    lineage_names = [quote_ident(n) for n, _ in LINEAGE]
    non_pk = [n for n in names if n not in pk_q]
    set_clause = ", ".join([f"{n} = s.{n}" for n in non_pk] +
                           [f"{n} = {v}" for n, v in zip(lineage_names, lineage_vals)
                          ])
    insert_cols = ", ".join(names + lineage_names)
    insert_vals = ", ".join([f"s.{n}" for n in names] + lineage_vals)
    dedupe_keys = ", ".join(pk_q)
    dedupe_on = " AND ".join(f"{STAGING}.{k} = d.{k}" for k in pk_q)
    stmts = [*head, f"DROP TABLE IF EXISTS {STAGING}", staging_ddl(contract, lineage), f"COPY {STAGING} {copy_opts}"]
    if not _no_duplicates(report):
        # keep the row with the highest source_line per key (the later line in the file wins)
        stmts.append(
            f"DELETE FROM {STAGING} USING (SELECT {dedupe_keys}, MAX(\"source_line\") AS keep_line FROM {STAGING} "
            f"GROUP BY {dedupe_keys} HAVING COUNT(*) > 1) d "
            f"WHERE {dedupe_on} AND {STAGING}.\"source_line\" < d.keep_line"
        )
    upsert = upsert or UPSERT
    if upsert == "merge":
        stmts.append(
            f"MERGE INTO {tgt} AS t USING {STAGING} AS s ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {set_clause} "
            f"WHEN NOT MATCHED THEN INSERT ({insert_cols}) VALUES ({insert_vals})"
        )
    elif upsert == "delete_insert":
        # Redshift's documented "merge by replacing existing rows": same result as the MERGE above
        # (staging has one row per key here), inside the same transaction
        ref = quote_ident(table)
        match = " AND ".join(f"{ref}.{k} = {STAGING}.{k}" for k in pk_q)
        stmts.append(f"DELETE FROM {tgt} USING {STAGING} WHERE {match}")
        stmts.append(f"INSERT INTO {tgt} ({insert_cols}) SELECT {insert_vals} FROM {STAGING} AS s")
    else:
        raise ValueError(f"unknown upsert {upsert!r}: merge or delete_insert")
    stmts += ledger_statements(schema, ledger_table, rows_loaded_sql=f"(SELECT COUNT(*) FROM {STAGING})",
                               **ledger_args)
    stmts.append(f"DROP TABLE {STAGING}")
    return stmts


# ---------------------------------------------------------------------------------------------
# Data API plumbing
# ---------------------------------------------------------------------------------------------
def _target_args(workgroup: str, database: str, secret_arn: Optional[str]) -> Dict[str, Any]:
    args: Dict[str, Any] = {"WorkgroupName": workgroup, "Database": database}
    if secret_arn:
        args["SecretArn"] = secret_arn
    return args


def _wait(rsd: Any, statement_id: str, *, timeout: float, poll: float = 0.5) -> Dict[str, Any]:
    """Poll ``describe_statement`` after 0.02 s, growing by half each time to at most ``poll`` seconds.

    Short statements (the ledger look-up, the layout check) are seen finished within a few tens of
    milliseconds; a long load costs about ten extra calls before the interval reaches ``poll``.
    """
    deadline = time.monotonic() + timeout
    delay = min(poll, 0.02)
    while True:
        desc: Dict[str, Any] = rsd.describe_statement(Id=statement_id)
        if desc.get("Status") in ("FINISHED", "FAILED", "ABORTED"):
            return desc
        if time.monotonic() > deadline:
            raise WarehouseError(f"statement {statement_id} still {desc.get('Status')} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, poll)


def execute_batch(rsd: Any, sqls: Sequence[str], *, workgroup: str, database: str, secret_arn: Optional[str] = None,
                  name: str = "etl-kit", timeout: float = 1800.0) -> Dict[str, Any]:
    """Run statements as one Data API batch (one transaction) and wait; raise WarehouseError on failure."""
    resp = rsd.batch_execute_statement(Sqls=list(sqls), StatementName=name[:500],
                                       **_target_args(workgroup, database, secret_arn))
    desc = _wait(rsd, resp["Id"], timeout=timeout)
    if desc.get("Status") != "FINISHED":
        failed = next((s for s in desc.get("SubStatements") or [] if s.get("Status") in ("FAILED", "ABORTED")), None)
        where = f" (statement {failed.get('Id')}: {str(failed.get('QueryString', ''))[:200]})" if failed else ""
        err = WarehouseError(f"{desc.get('Status')}: {desc.get('Error') or 'no error text'}{where}")
        err.statement = desc  # type: ignore[attr-defined]
        raise err
    return desc


def _query(rsd: Any, sql: str, params: Optional[List[Dict[str, str]]], *, workgroup: str, database: str,
           secret_arn: Optional[str], timeout: float = 300.0) -> List[List[Any]]:
    args = _target_args(workgroup, database, secret_arn)
    if params:
        args["Parameters"] = params
    resp = rsd.execute_statement(Sql=sql, **args)
    desc = _wait(rsd, resp["Id"], timeout=timeout)
    if desc.get("Status") != "FINISHED":
        raise WarehouseError(f"{desc.get('Status')}: {desc.get('Error')}")
    if not desc.get("HasResultSet"):
        return []
    rows: List[List[Any]] = []
    token = None
    while True:
        page = rsd.get_statement_result(Id=resp["Id"], **({"NextToken": token} if token else {}))
        for rec in page.get("Records", []):
            rows.append([next(iter(f.values())) if f and not f.get("isNull") else None for f in rec])
        token = page.get("NextToken")
        if not token:
            return rows


def target_columns(contract: Dict[str, Any]) -> List[str]:
    """The target table's columns in order: the contract's, then :data:`LINEAGE`."""
    return [c["name"] for c in _columns(contract)] + [n for n, _ in LINEAGE]


def check_target_layout(rsd: Any, *, schema: str, table: str, contract: Dict[str, Any], workgroup: str,
                        database: str, secret_arn: Optional[str] = None) -> None:
    """Raise a WarehouseError naming the table and the fix when an existing target has other columns.

    COPY maps Parquet columns to table columns by position, so a table created by an older etl-kit (or
    by hand) would fail deep inside the load, or load lineage into the wrong columns.
    """
    rows = _query(rsd, "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                  "AND table_name = :t ORDER BY ordinal_position",
                  [{"name": "s", "value": schema}, {"name": "t", "value": table}],
                  workgroup=workgroup, database=database, secret_arn=secret_arn)
    have = [str(r[0]).lower() for r in rows]
    want = [c.lower() for c in target_columns(contract)]
    if have and have != want:
        raise WarehouseError(
            f"table {schema}.{table} has the columns ({', '.join(have)}) but the dataset contract and etl-kit's "
            f"lineage need ({', '.join(want)}) in that order: rename it (ALTER TABLE {schema}.{table} RENAME TO "
            f"{table}_old) and re-run the load, which creates the table, then copy the old rows over; or point "
            "redshift_table in params at a new table")


def _guard_tripped(exc: WarehouseError) -> bool:
    """True when a batch failed at the append guard (the target holds keys in the file's range)."""
    desc = getattr(exc, "statement", None) or {}
    failed = [sub for sub in desc.get("SubStatements") or [] if sub.get("Status") in ("FAILED", "ABORTED")]
    if failed:
        return APPEND_GUARD in str(failed[0].get("QueryString", ""))
    return APPEND_GUARD in str(exc)


def _load_error_detail(rsd: Any, uri: str, **target: Any) -> str:
    """Recent SYS_LOAD_ERROR_DETAIL rows for this file (AWS only; '' when the view does not exist)."""
    try:
        rows = _query(
            rsd,
            "SELECT line_number, column_name, error_code, error_message FROM sys_load_error_detail "
            "WHERE file_name = :uri ORDER BY start_time DESC LIMIT 5",
            [{"name": "uri", "value": uri}], **target,
        )
    except Exception:  # view missing (PostgreSQL emulation) or no permission: skip silently
        return ""
    return "; ".join(f"line {r[0]} column {r[1]}: {r[2]} {r[3]}" for r in rows)


def ensure_ledger_layout(rsd: Any, *, schema: str, ledger_table: str, workgroup: str, database: str,
                         secret_arn: Optional[str] = None) -> List[str]:
    """Migrate an existing ledger table from before attempts in place; return the statements run.

    Nothing happens when the table does not exist (the load's ``CREATE TABLE IF NOT EXISTS`` makes
    it) or already has every column. Two jobs migrating at once: the loser's batch fails, the
    columns are looked up again and the migration counts as done when they are there.
    """
    target: Dict[str, Any] = {"workgroup": workgroup, "database": database, "secret_arn": secret_arn}
    where = [{"name": "s", "value": schema}, {"name": "t", "value": ledger_table}]

    def columns() -> List[str]:
        rows = _query(rsd, "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                      "AND table_name = :t", where, **target)
        return [str(r[0]).lower() for r in rows]

    have = columns()
    if not have or all(n in have for n, _ in LEDGER_COLUMNS):
        return []
    pk = _query(rsd, "SELECT constraint_name FROM information_schema.table_constraints WHERE table_schema = :s "
                "AND table_name = :t AND constraint_type = 'PRIMARY KEY'", where, **target)
    stmts = ledger_migration(schema, ledger_table, have, str(pk[0][0]) if pk else None)
    try:
        execute_batch(rsd, stmts, name=f"etl-kit-ledger-migrate-{ledger_table}", **target)
    except WarehouseError:
        if not all(n in columns() for n, _ in LEDGER_COLUMNS):
            raise
    print(json.dumps({"decision": "ledger_migrated", "table": f"{schema}.{ledger_table}", "statements": stmts}),
          flush=True)
    return stmts


def record_ledger(*, workgroup: str, database: str, schema: str, ledger_table: str, bucket: str, key: str,
                  etag: str, state: str, version_id: str = "", run_id: str = "", workflow_name: str = "",
                  report: Optional[Dict[str, Any]] = None, reason: str = "", message: str = "",
                  started_at: Optional[str] = None, rsd: Any = None, secret_arn: Optional[str] = None) -> None:
    """Record this attempt's ledger row for an object: state ``rejected``, ``failed`` or ``skipped``.

    One row per (bucket, key, etag, run_id): a second call for the same run replaces its row; other
    attempts are kept. Job 1's script calls this on a file rejection when it was given
    ``--workgroup``; job 2 calls it after a failed load.
    """
    import boto3

    rsd = rsd or boto3.client("redshift-data")
    report = report or {}
    stmts = [ledger_ddl(schema, ledger_table), *ledger_statements(
        schema, ledger_table, bucket=bucket, key=key, etag=etag, state=state, version_id=version_id, run_id=run_id,
        workflow_name=workflow_name, rows_read=report.get("rows_read"), rows_written=report.get("rows_written"),
        rows_quarantined=report.get("rows_quarantined"), rows_loaded_sql="0", reason=reason, message=message,
        started_at=started_at,
    )]
    target: Dict[str, Any] = {"workgroup": workgroup, "database": database, "secret_arn": secret_arn}
    try:
        execute_batch(rsd, stmts, name=f"etl-kit-ledger-{state}", **target)
    except WarehouseError:
        # a ledger table from before attempts: migrate it, then write the row once more
        if not ensure_ledger_layout(rsd, schema=schema, ledger_table=ledger_table, **target):
            raise
        execute_batch(rsd, stmts, name=f"etl-kit-ledger-{state}", **target)


def loaded_attempt(rsd: Any, *, schema: str, ledger_table: str, bucket: str, key: str, etag: str, workgroup: str,
                   database: str, secret_arn: Optional[str] = None) -> Optional[str]:
    """The run id of the object's ``loaded`` attempt, or None (no ledger table, or never loaded).

    Only loaded attempts count: a failed or rejected one does not block a retry. A ledger table from
    before attempts is migrated first.
    """
    target: Dict[str, Any] = {"workgroup": workgroup, "database": database, "secret_arn": secret_arn}
    sql = (f'SELECT "state", "run_id" FROM {_qualified(schema, ledger_table)} '
           'WHERE "bucket" = :b AND "key" = :k AND "etag" = :e AND "state" = \'loaded\' '
           'ORDER BY "attempt" DESC LIMIT 1')
    params = [{"name": "b", "value": bucket}, {"name": "k", "value": key}, {"name": "e", "value": etag}]
    try:
        rows = _query(rsd, sql, params, **target)
    except WarehouseError:
        try:
            migrated = ensure_ledger_layout(rsd, schema=schema, ledger_table=ledger_table, **target)
        except WarehouseError:
            migrated = []
        rows = _query(rsd, sql, params, **target) if migrated else []  # else: no ledger table yet
    if rows and rows[0][0] == "loaded":
        return str(rows[0][1] or "")
    return None


def run_load(
    *,
    workgroup: str,
    database: str,
    schema: str,
    table: str,
    ledger_table: str,
    contract: Dict[str, Any],
    bucket: str,
    output_key: str,
    redshift_role_arn: str,
    run_id: str,
    workflow_name: str,
    source_bucket: str,
    source_key: str,
    source_etag: str,
    source_version_id: str = "",
    report: Optional[Dict[str, Any]] = None,
    rsd: Any = None,
    secret_arn: Optional[str] = None,
    timeout: float = 1800.0,
    force: bool = False,
) -> Dict[str, Any]:
    """Load one job-1 Parquet object into the target table in one transaction and record it in the ledger.

    Parameters
    ----------
    bucket, output_key
        Where job 1 wrote the Parquet (``output_key`` run property).
    source_bucket, source_key, source_etag, source_version_id
        The source object's identity (ledger key: bucket, key, etag).
    report
        Job 1's counts (``rows_read``, ``rows_written``, ``rows_quarantined``; from the ``dq_*`` run properties).
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
    import boto3

    rsd = rsd or boto3.client("redshift-data")
    target: Dict[str, Any] = {"workgroup": workgroup, "database": database, "secret_arn": secret_arn}
    started = _now()
    base: Dict[str, Any] = {"bucket": source_bucket, "key": source_key, "etag": source_etag, "run_id": run_id,
            "output_key": output_key, "table": f"{schema}.{table}"}
    loaded_by = loaded_attempt(rsd, schema=schema, ledger_table=ledger_table, bucket=source_bucket, key=source_key,
                               etag=source_etag, **target)
    if loaded_by is not None and not force:
        skipped = dict(base, state="skipped", reason=f"already loaded by run {loaded_by}")
        print(json.dumps(dict(skipped, decision="skipped")), flush=True)
        return skipped
    plan = append_plan(contract, report)

    def statements(append: Optional[Dict[str, int]]) -> List[str]:
        return load_statements(
            schema=schema, table=table, ledger_table=ledger_table, contract=contract, bucket=bucket,
            output_key=output_key, redshift_role_arn=redshift_role_arn, run_id=run_id, workflow_name=workflow_name,
            source_bucket=source_bucket, source_key=source_key, source_etag=source_etag,
            source_version_id=source_version_id, report=report, started_at=started, append=append,
        )

    name = f"etl-kit-load-{run_id or source_key}"[:500]
    mode = "append" if plan else "upsert"
    sqls = statements(plan)
    try:
        check_target_layout(rsd, schema=schema, table=table, contract=contract, **target)
        try:
            desc = execute_batch(rsd, sqls, name=name, timeout=timeout, **target)
        except WarehouseError as exc:
            if plan is None or not _guard_tripped(exc):
                raise
            # the target already holds keys in this file's range: replace them through staging
            mode = "upsert"
            sqls = statements(None)
            desc = execute_batch(rsd, sqls, name=name, timeout=timeout, **target)
    except WarehouseError as exc:
        detail = _load_error_detail(rsd, f"s3://{bucket}/{output_key}", **target)
        message = f"load of s3://{bucket}/{output_key} into {schema}.{table} failed: {exc}"
        if detail:
            message += f" | load errors: {detail}"
        try:
            record_ledger(workgroup=workgroup, database=database, schema=schema, ledger_table=ledger_table,
                          bucket=source_bucket, key=source_key, etag=source_etag, state="failed",
                          version_id=source_version_id, run_id=run_id, workflow_name=workflow_name, report=report,
                          reason="load_failed", message=message, started_at=started, rsd=rsd, secret_arn=secret_arn)
        except Exception as lexc:  # keep the original error; mention the ledger problem
            message += f" (ledger row not written: {lexc})"
        raise WarehouseError(message) from exc
    subs = desc.get("SubStatements") or []

    def rows_of(i: int) -> Optional[int]:
        if i < len(subs) and subs[i].get("ResultRows") is not None and int(subs[i]["ResultRows"]) >= 0:
            return int(subs[i]["ResultRows"])
        return None

    def index(prefix: str) -> int:
        return next((i for i, q in enumerate(sqls) if q.startswith(prefix)), len(sqls))

    tgt = _qualified(schema, table)
    dedupe = index(f"DELETE FROM {STAGING} USING")
    result: Dict[str, Any] = dict(base)
    copied = rows_of(index("COPY "))
    result.update(state="loaded", mode=mode, statement_id=desc.get("Id"), rows_copied=copied,
                  rows_deduplicated=rows_of(dedupe) if dedupe < len(sqls) else 0,
                  rows_merged=copied if mode == "append"
                  else rows_of(min(index("MERGE "), index(f"INSERT INTO {tgt} "))),
                  started_at=started, finished_at=_now())
    replaced = index(f"DELETE FROM {tgt} USING {STAGING}")
    if replaced < len(sqls):
        result["rows_replaced"] = rows_of(replaced)
    print(json.dumps(dict(result, decision="loaded"), default=str), flush=True)
    return result

"""Job 2's SQL: pure functions that build the statements of a load, the ledger and its look-ups.

Nothing here talks to a warehouse (:mod:`etl_runtime.dataapi` does; :mod:`etl_runtime.job2` orchestrates).
Python 3.9-compatible, stdlib only.

One ``batch_execute_statement`` (one transaction) per object (:func:`load_statements`):

1. ``CREATE TABLE IF NOT EXISTS`` target (contract columns + lineage, PRIMARY KEY, DISTKEY, SORTKEY)
2. ``CREATE TABLE IF NOT EXISTS`` ledger
3. ``DROP TABLE IF EXISTS`` staging; ``CREATE TEMP TABLE`` staging (contract columns + source_line)
4. ``COPY`` staging ``FROM 's3://...' IAM_ROLE '...' FORMAT AS PARQUET``
5. dedupe staging: keep the highest ``source_line`` per primary key (``DELETE ... USING`` an
   aggregate subquery; valid on Redshift and PostgreSQL); left out when job 1's report says the file
   has no duplicate keys (:attr:`Job1Summary.duplicate_keys_in_file` = 0)
6. upsert, Redshift's "merge by replacing existing rows": ``DELETE FROM`` target ``USING`` staging on
   the primary key, then ``INSERT INTO`` target ``SELECT ... FROM`` staging (``UPSERT = "merge"``
   gives the equivalent ``MERGE INTO``): existing keys are replaced, new ones inserted, re-loads are
   harmless and, across files, the later load wins
7. ledger: ``DELETE`` then ``INSERT ... SELECT COUNT(*) FROM staging`` with state ``loaded`` (the row of
   this attempt: one row per (bucket, key, etag, run_id); earlier attempts are kept)
8. ``DROP TABLE`` staging

Batch statements take no parameters, so values are embedded as escaped literals: single quotes and
backslashes are doubled (Redshift treats backslash as an escape in literals; the local cloud hands such
literals to PostgreSQL as ``E'...'``). Identifiers are validated (``[A-Za-z_][A-Za-z0-9_]*``) and
double-quoted. Single statements (:class:`Query`) carry their values as bind parameters.

The ledger keeps every attempt: one row per (bucket, key, etag, run_id), numbered by ``attempt`` (1, 2,
... per object identity); the object's state is its newest attempt's. A ledger table from before
attempts (primary key bucket, key, etag) is migrated in place (:func:`ledger_migration`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, WorkflowRun

if TYPE_CHECKING:
    from etl_runtime.contract import ColumnRule, CompiledContract

__all__ = [
    "LINEAGE", "APPEND_GUARD", "LEDGER_COLUMNS", "LEDGER_KEY", "STAGING", "UPSERT",
    "redshift_type", "quote_ident", "quote_literal", "qualified", "utc_now",
    "target_ddl", "target_columns", "ledger_ddl", "ledger_migration", "staging_ddl",
    "LedgerEntry", "ledger_statements", "AppendPlan", "append_plan", "LoadSpec", "LoadBatch", "load_statements",
    "Query", "columns_query", "primary_key_query", "loaded_attempt_query", "load_error_query",
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


# ---------------------------------------------------------------------------------------------
# Identifiers, literals, types
# ---------------------------------------------------------------------------------------------
def redshift_type(col: ColumnRule) -> str:
    """The Redshift type of a compiled contract column."""
    t = col.type
    if t == "string":
        return "VARCHAR(256)"
    if t == "integer":
        return "BIGINT"
    if t == "decimal":
        return f"DECIMAL({col.precision},{col.scale})"
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


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"`` (or ``"table"`` without a schema), both validated."""
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DD HH:MM:SS.ffffff`` (the ledger's timestamps)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _int_or_null(v: Any) -> str:
    if v is None or v == "":
        return "NULL"
    return str(int(v))


def _ts(value: Optional[str]) -> str:
    if not value:
        return "NULL"
    # normalise ISO-8601 (with T/Z) to 'YYYY-MM-DD HH:MM:SS.ffffff', which both databases parse
    v = str(value).replace("T", " ").rstrip("Z")
    v = re.sub(r"[+-]\d\d:\d\d$", "", v)
    if not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$", v):
        raise ValueError(f"not a timestamp: {value!r}")
    return f"TIMESTAMP {quote_literal(v)}"


# ---------------------------------------------------------------------------------------------
# DDL
# ---------------------------------------------------------------------------------------------
def target_ddl(target: LoadTarget, contract: CompiledContract) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the target, with PRIMARY KEY, DISTKEY and SORTKEY.

    DISTKEY is the first primary-key column; SORTKEY the first date column (else the key).
    """
    cols = contract.columns
    pk = contract.primary_key
    parts = [f"{quote_ident(c.name)} {redshift_type(c)}{' NOT NULL' if c.required else ''}" for c in cols]
    parts += [f"{quote_ident(n)} {t}" for n, t in LINEAGE]
    if pk:
        parts.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in pk)})")
    sort = next((c.name for c in cols if c.type == "date"), pk[0] if pk else None)
    attrs = ""
    if pk:
        attrs += f" DISTKEY({quote_ident(pk[0])})"
    if sort:
        attrs += f" SORTKEY({quote_ident(sort)})"
    return f"CREATE TABLE IF NOT EXISTS {qualified(target.schema, target.table)} ({', '.join(parts)}){attrs}"


def target_columns(contract: CompiledContract) -> List[str]:
    """The target table's columns in order: the contract's, then :data:`LINEAGE`."""
    return [c.name for c in contract.columns] + [n for n, _ in LINEAGE]


def ledger_ddl(target: LoadTarget) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the load ledger (primary key bucket, key, etag, run_id)."""
    parts = [f"{quote_ident(n)} {t}" + (" NOT NULL" if n == "run_id" else "") for n, t in LEDGER_COLUMNS]
    parts.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in LEDGER_KEY)})")
    return f"CREATE TABLE IF NOT EXISTS {qualified(target.schema, target.ledger_table)} ({', '.join(parts)})"


def ledger_migration(target: LoadTarget, columns: Sequence[str], pk_name: Optional[str]) -> List[str]:
    """The statements that bring an existing ledger table with ``columns`` to :data:`LEDGER_COLUMNS`.

    A table from before attempts has the primary key (bucket, key, etag), which would refuse a second
    attempt's row where keys are enforced: it is dropped (``pk_name``, from
    ``information_schema.table_constraints``), the missing columns are added (Redshift has no
    ``ADD COLUMN IF NOT EXISTS``: the caller looked them up) and the old rows become attempt 1.
    The migrated table keeps no primary key (Redshift's is informational; the writes key on
    :data:`LEDGER_KEY`).
    """
    q = qualified(target.schema, target.ledger_table)
    have = {c.lower() for c in columns}
    stmts: List[str] = []
    if pk_name and "attempt" not in have:
        stmts.append(f"ALTER TABLE {q} DROP CONSTRAINT {quote_ident(pk_name)}")
    stmts += [f"ALTER TABLE {q} ADD COLUMN {quote_ident(n)} {t}" for n, t in LEDGER_COLUMNS if n not in have]
    if "attempt" not in have:
        stmts.append(f'UPDATE {q} SET "attempt" = 1 WHERE "attempt" IS NULL')
    return stmts


def staging_ddl(contract: CompiledContract, lineage: bool = False) -> str:
    """``CREATE TEMP TABLE`` staging in the Parquet column order (contract columns + source_line,
    then the other lineage columns when job 1 wrote them)."""
    parts = [f"{quote_ident(c.name)} {redshift_type(c)}" for c in contract.columns]
    parts += [f"{quote_ident(n)} {t}" for n, t in (LINEAGE if lineage else LINEAGE[:1])]
    return f"CREATE TEMP TABLE {STAGING} ({', '.join(parts)})"


# ---------------------------------------------------------------------------------------------
# The ledger row
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerEntry:
    """One attempt's ledger row: the object, the run, the outcome and job 1's counts.

    ``state`` is ``loaded``, ``failed``, ``rejected`` or ``skipped``; ``reason`` a short code (at most
    64 characters are kept), ``message`` the story. ``attempt`` None numbers the row one more than the
    object's other attempts (inside the insert, so concurrent writers see the table as it is).
    """

    source: SourceObject
    state: str
    run: WorkflowRun = field(default_factory=WorkflowRun)
    reason: str = ""
    message: str = ""
    rows_read: Optional[int] = None
    rows_written: Optional[int] = None
    rows_quarantined: Optional[int] = None
    rows_loaded: Optional[int] = None
    attempt: Optional[int] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    @classmethod
    def of_summary(cls, source: SourceObject, run: WorkflowRun, state: str, summary: Job1Summary,
                   **outcome: Any) -> LedgerEntry:
        """An entry carrying job 1's counts from ``summary``; ``outcome`` sets the other fields."""
        return cls(source=source, state=state, run=run, rows_read=summary.rows_read,
                   rows_written=summary.rows_written, rows_quarantined=summary.rows_quarantined, **outcome)


def ledger_statements(target: LoadTarget, entry: LedgerEntry, rows_loaded_sql: Optional[str] = None) -> List[str]:
    """``DELETE`` + ``INSERT`` of this attempt's ledger row, keyed (bucket, key, etag, run_id).

    Other attempts' rows are kept. ``rows_loaded_sql`` (SQL, e.g. a count of staging) replaces
    ``entry.rows_loaded`` when given.
    """
    q = qualified(target.schema, target.ledger_table)
    src, run_id = entry.source, entry.run.run_id
    obj = (f'"bucket" = {quote_literal(src.bucket)} AND "key" = {quote_literal(src.key)} '
           f'AND "etag" = {quote_literal(src.etag)}')
    where = f'{obj} AND "run_id" = {quote_literal(run_id)}'
    attempt = (_int_or_null(entry.attempt) if entry.attempt is not None else
               f'(SELECT COALESCE(MAX("attempt"), 0) + 1 FROM {q} WHERE {obj} AND "run_id" <> {quote_literal(run_id)})')
    values = [
        quote_literal(src.bucket), quote_literal(src.key), quote_literal(src.etag), quote_literal(src.version_id),
        quote_literal(run_id), quote_literal(entry.run.workflow_name), _int_or_null(entry.rows_read),
        _int_or_null(entry.rows_written), _int_or_null(entry.rows_quarantined),
        rows_loaded_sql or _int_or_null(entry.rows_loaded), quote_literal(entry.state),
        quote_literal(entry.reason[:64]), quote_literal(entry.message[:60000]), _ts(entry.started_at),
        _ts(entry.finished_at or utc_now()), attempt,
    ]
    cols = ", ".join(quote_ident(n) for n, _ in LEDGER_COLUMNS)
    return [f"DELETE FROM {q} WHERE {where}", f"INSERT INTO {q} ({cols}) SELECT {', '.join(values)}"]


# ---------------------------------------------------------------------------------------------
# The load transaction
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppendPlan:
    """A straight append: the file's primary-key range and row count (see :func:`append_plan`)."""

    key_min: int
    key_max: int
    rows: int


def append_plan(contract: CompiledContract, summary: Job1Summary) -> Optional[AppendPlan]:
    """The key range and row count for a straight append, or None when the load must go through staging.

    A straight ``COPY`` into the target is possible when job 1's file carries the lineage columns,
    has no duplicate keys, a single integer primary key with a known range and a known row count.
    Whether the target already holds keys in that range is decided inside the load transaction (see
    :func:`load_statements`).
    """
    pk = contract.primary_key
    types = {c.name: c.type for c in contract.columns}
    if len(pk) != 1 or types.get(pk[0]) != "integer":
        return None
    if not summary.output_lineage or summary.duplicate_keys_in_file != 0:
        return None
    if summary.key_min is None or summary.key_max is None or not summary.rows_written:
        return None
    return AppendPlan(summary.key_min, summary.key_max, summary.rows_written)


@dataclass(frozen=True)
class LoadSpec:
    """One job-2 load: the Parquet object job 1 wrote, where it goes, and the source it came from."""

    target: LoadTarget
    contract: CompiledContract
    parquet: SourceObject  # job 1's output (bucket, output_key)
    source: SourceObject  # the uploaded object: the ledger's identity
    run: WorkflowRun = field(default_factory=WorkflowRun)
    summary: Job1Summary = field(default_factory=Job1Summary)

    def table(self) -> str:
        """The target's ``"schema"."table"``."""
        return qualified(self.target.schema, self.target.table)


@dataclass(frozen=True)
class LoadBatch:
    """The statements of one load transaction and the positions of those whose row counts matter.

    Positions index :attr:`sqls` (the Data API numbers sub-statements from 1 in the same order); None
    when the batch has no such statement.
    """

    sqls: Tuple[str, ...]
    mode: str  # "append" or "upsert"
    copy: int
    guard: Optional[int] = None
    dedupe: Optional[int] = None
    replace: Optional[int] = None
    insert: Optional[int] = None  # the INSERT (or MERGE) into the target


def _ledger_entry(spec: LoadSpec, message: str, started_at: Optional[str], loaded_at: str) -> LedgerEntry:
    return LedgerEntry.of_summary(spec.source, spec.run, "loaded", spec.summary, message=message,
                                  started_at=started_at, finished_at=loaded_at)


def load_statements(spec: LoadSpec, *, append: Optional[AppendPlan] = None, upsert: Optional[str] = None,
                    started_at: Optional[str] = None, loaded_at: Optional[str] = None) -> LoadBatch:
    """The statements of one load transaction (see the module docstring for the shape).

    With ``append`` (from :func:`append_plan`) the file is copied straight into the target: after
    ``LOCK`` a guard statement divides by zero (aborting the transaction) if the target already
    holds a key in the file's range, and the caller then loads through staging instead.

    Otherwise: the staging dedupe is left out when job 1 found no duplicate keys in the file
    (``duplicate_keys_in_file`` is 0); kept when unknown. ``upsert`` is ``merge`` (``MERGE INTO``) or
    ``delete_insert`` (``DELETE ... USING`` staging then ``INSERT ... SELECT``): the same result.
    """
    if not spec.contract.primary_key:
        raise ValueError("the dataset contract needs a primary_key for the upsert")
    tgt = spec.table()
    loaded_at = loaded_at or utc_now()
    s3_uri = spec.parquet.uri
    copy_opts = (f"FROM {quote_literal(s3_uri)} IAM_ROLE {quote_literal(spec.target.redshift_role_arn)} "
                 "FORMAT AS PARQUET")
    head = [target_ddl(spec.target, spec.contract), ledger_ddl(spec.target),
            # one load at a time per table: the append guard and the upsert both read then write it
            f"LOCK {tgt}"]
    if append is not None:
        pk = quote_ident(spec.contract.primary_key[0])
        guard = (f"SELECT 1 / (CASE WHEN (SELECT COUNT(*) FROM {tgt} WHERE {pk} BETWEEN "
                 f"{int(append.key_min)} AND {int(append.key_max)}) = 0 THEN 1 ELSE 0 END) AS {APPEND_GUARD}")
        entry = _ledger_entry(spec, f"appended from {s3_uri}", started_at, loaded_at)
        ledger = ledger_statements(spec.target, entry, str(int(append.rows)))
        # STATUPDATE OFF: the statistics of the target are refreshed by (auto) analyze later; a COPY into
        # an empty table would otherwise analyze it inside the load (only the staging copy needs them)
        sqls = [*head, guard, f"COPY {tgt} {copy_opts} STATUPDATE OFF", *ledger]
        return LoadBatch(tuple(sqls), "append", copy=len(head) + 1, guard=len(head))
    stmts = [*head, f"DROP TABLE IF EXISTS {STAGING}", staging_ddl(spec.contract, spec.summary.output_lineage),
             f"COPY {STAGING} {copy_opts}"]
    copy = len(stmts) - 1
    dedupe = None
    if spec.summary.duplicate_keys_in_file != 0:
        dedupe = len(stmts)
        stmts.append(_dedupe_sql(spec.contract))
    replace, insert, apply = _upsert_sql(spec, upsert or UPSERT)
    first = len(stmts)
    stmts += apply
    entry = _ledger_entry(spec, f"upserted from {s3_uri}", started_at, loaded_at)
    stmts += ledger_statements(spec.target, entry, f"(SELECT COUNT(*) FROM {STAGING})")
    stmts.append(f"DROP TABLE {STAGING}")
    return LoadBatch(tuple(stmts), "upsert", copy=copy, dedupe=dedupe,
                     replace=None if replace is None else first + replace, insert=first + insert)


def _dedupe_sql(contract: CompiledContract) -> str:
    """Keep the row with the highest source_line per key in staging (the later line in the file wins)."""
    pk_q = [quote_ident(k) for k in contract.primary_key]
    keys = ", ".join(pk_q)
    on = " AND ".join(f"{STAGING}.{k} = d.{k}" for k in pk_q)
    return (f"DELETE FROM {STAGING} USING (SELECT {keys}, MAX(\"source_line\") AS keep_line FROM {STAGING} "
            f"GROUP BY {keys} HAVING COUNT(*) > 1) d "
            f"WHERE {on} AND {STAGING}.\"source_line\" < d.keep_line")


def _upsert_sql(spec: LoadSpec, upsert: str) -> Tuple[Optional[int], int, List[str]]:
    """The statements applying staging to the target: (position of the DELETE, of the INSERT/MERGE, sqls)."""
    tgt = spec.table()
    pk_q = [quote_ident(k) for k in spec.contract.primary_key]
    names = [quote_ident(c.name) for c in spec.contract.columns]
    src, run_id = spec.source, spec.run.run_id
    lineage_vals = ["s.\"source_line\"", quote_literal(src.key), quote_literal(src.etag), quote_literal(run_id)]
    lineage_names = [quote_ident(n) for n, _ in LINEAGE]
    insert_cols = ", ".join(names + lineage_names)
    insert_vals = ", ".join([f"s.{n}" for n in names] + lineage_vals)
    if upsert == "merge":
        on = " AND ".join(f"t.{k} = s.{k}" for k in pk_q)
        non_pk = [n for n in names if n not in pk_q]
        set_clause = ", ".join([f"{n} = s.{n}" for n in non_pk] +
                               [f"{n} = {v}" for n, v in zip(lineage_names, lineage_vals)
                                ])
        return None, 0, [f"MERGE INTO {tgt} AS t USING {STAGING} AS s ON {on} "
                         f"WHEN MATCHED THEN UPDATE SET {set_clause} "
                         f"WHEN NOT MATCHED THEN INSERT ({insert_cols}) VALUES ({insert_vals})"]
    if upsert == "delete_insert":
        # Redshift's documented "merge by replacing existing rows": same result as the MERGE above
        # (staging has one row per key here), inside the same transaction
        ref = quote_ident(spec.target.table)
        match = " AND ".join(f"{ref}.{k} = {STAGING}.{k}" for k in pk_q)
        return 0, 1, [f"DELETE FROM {tgt} USING {STAGING} WHERE {match}",
                      f"INSERT INTO {tgt} ({insert_cols}) SELECT {insert_vals} FROM {STAGING} AS s"]
    raise ValueError(f"unknown upsert {upsert!r}: merge or delete_insert")


# ---------------------------------------------------------------------------------------------
# Single statements with bind parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One parameterised statement: SQL with ``:name`` placeholders and the values bound to them."""

    sql: str
    params: Tuple[Tuple[str, str], ...] = ()

    def data_api_parameters(self) -> List[Dict[str, str]]:
        """The ``Parameters`` argument of ``execute_statement``."""
        return [{"name": n, "value": v} for n, v in self.params]


def columns_query(schema: str, table: str, ordered: bool = False) -> Query:
    """A table's column names from ``information_schema.columns`` (in table order when ``ordered``)."""
    sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"
    return Query(sql + (" ORDER BY ordinal_position" if ordered else ""), (("s", schema), ("t", table)))


def primary_key_query(schema: str, table: str) -> Query:
    """The name of a table's primary-key constraint."""
    return Query("SELECT constraint_name FROM information_schema.table_constraints WHERE table_schema = :s "
                 "AND table_name = :t AND constraint_type = 'PRIMARY KEY'", (("s", schema), ("t", table)))


def loaded_attempt_query(target: LoadTarget, source: SourceObject) -> Query:
    """The object's newest ``loaded`` attempt: ``(state, run_id)``, or no row."""
    sql = (f'SELECT "state", "run_id" FROM {qualified(target.schema, target.ledger_table)} '
           'WHERE "bucket" = :b AND "key" = :k AND "etag" = :e AND "state" = \'loaded\' '
           'ORDER BY "attempt" DESC LIMIT 1')
    return Query(sql, (("b", source.bucket), ("k", source.key), ("e", source.etag)))


def load_error_query(uri: str) -> Query:
    """Recent ``SYS_LOAD_ERROR_DETAIL`` rows for one file (AWS only)."""
    return Query("SELECT line_number, column_name, error_code, error_message FROM sys_load_error_detail "
                 "WHERE file_name = :uri ORDER BY start_time DESC LIMIT 5", (("uri", uri),))

"""Validation of a load: the warehouse reconciled with the job's report, the ledger and the source file.

Each check is a row (check, passed, expected, actual, detail); :func:`run_checks` never raises for a
failed check (the notebook's next cell does), only for a check that could not be evaluated at all.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.warehouse import query

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["run_checks", "REDSHIFT_TYPES"]

# Contract type -> the type names information_schema reports (Redshift and PostgreSQL spell them alike).
REDSHIFT_TYPES = {
    "string": {"character varying", "varchar", "text"},
    "integer": {"bigint", "integer"},
    "decimal": {"numeric"},
    "date": {"date"},
    "double": {"double precision"},
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    from etl_runtime.loadsql import quote_literal  # the loader's escaping (Redshift: quotes and backslashes)

    return str(quote_literal(value))


def _check(rows: list[dict[str, Any]], name: str, passed: bool, expected: Any, actual: Any, detail: str = "") -> None:
    rows.append({"check": name, "passed": bool(passed), "expected": str(expected), "actual": str(actual),
                 "detail": detail or ("ok" if passed else f"expected {expected}, got {actual}")})


def _report(settings: Settings, props: dict[str, str], bucket: str) -> dict[str, Any]:
    key = props.get("dq_report_key")
    if not key:
        return {}
    body = client("s3", settings).get_object(Bucket=bucket, Key=key)["Body"].read()
    return dict(json.loads(body))


@dataclass(frozen=True)
class _Load:
    """The load under check: the object, where it went, and what job 1 reported about it."""

    settings: Settings
    bucket: str
    key: str
    etag: str
    props: dict[str, str]  # the workflow run's properties
    report: dict[str, Any]  # job 1's report
    read: int
    written: int
    quarantined: int

    def _in_schema(self, name: str) -> str:
        return f"{_q(self.settings.redshift_schema)}.{_q(name)}"

    @property
    def table(self) -> str:
        return self._in_schema(self.settings.redshift_table)

    @property
    def ledger(self) -> str:
        return self._in_schema(self.settings.ledger_table)


def _find_load(rows: list[dict[str, Any]], settings: Settings, upload: dict[str, Any]) -> _Load | None:
    """The object's workflow run: every node SUCCEEDED, and job 1's report adds up (None: no run at all)."""
    from etl_kit.monitor import find_run_for_object, node_states

    bucket, key = upload["bucket"], upload["key"]
    run = find_run_for_object(key, settings, bucket=bucket)
    if run is None:
        _check(rows, "workflow run exists", False, "1 run", "none", f"no workflow run for s3://{bucket}/{key}")
        return None
    glue = client("glue", settings)
    full = glue.get_workflow_run(Name=settings.workflow, RunId=run["WorkflowRunId"], IncludeGraph=True)["Run"]
    nodes = node_states(full)
    _check(rows, "every workflow node SUCCEEDED", all(n.state == "SUCCEEDED" for n in nodes) and len(nodes) == 4,
           "4 x SUCCEEDED", ", ".join(f"{n.name}={n.state}" for n in nodes))
    props = full.get("WorkflowRunProperties", {})
    report = _report(settings, props, bucket)
    read, written, quarantined = (int(report.get(k, -1)) for k in ("rows_read", "rows_written", "rows_quarantined"))
    _check(rows, "rows read = written + quarantined (job report)", read == written + quarantined and read >= 0,
           f"{read}", f"{written} + {quarantined}")
    return _Load(settings, bucket, key, upload["etag"], props, report, read, written, quarantined)


def _check_table_rows(rows: list[dict[str, Any]], load: _Load) -> int:
    """The object's rows in the table are the rows written less in-file duplicates; returns that count."""
    n_table = int(query(f"select count(*) as n from {load.table} where source_key = {_lit(load.key)}",
                        load.settings).iloc[0, 0])
    dup_rows = int(load.report.get("duplicate_rows_in_file", 0))
    _check(rows, "rows in table = rows written - in-file duplicates", n_table == load.written - dup_rows,
           load.written - dup_rows, n_table)
    return n_table


def _check_ledger(rows: list[dict[str, Any]], load: _Load) -> None:
    """One ledger row per attempt; the newest is loaded, the object loaded exactly once, counts = the report."""
    attempts = query(f'select * from {load.ledger} where "bucket" = {_lit(load.bucket)} and "key" = {_lit(load.key)} '
                     f'and "etag" = {_lit(load.etag)} order by "attempt" desc, "finished_at" desc', load.settings)
    led = attempts[attempts["state"] == "loaded"] if len(attempts) else attempts
    newest = str(attempts.iloc[0]["state"]) if len(attempts) else "none"
    _check(rows, "newest ledger attempt loaded, loaded exactly once", newest == "loaded" and len(led) == 1,
           "newest loaded, 1 x loaded",
           f"{len(attempts)} attempt(s) {list(attempts['state']) if len(attempts) else ''}")
    if len(led) == 1:
        lr = led.iloc[0]
        want = (load.read, load.quarantined)
        got = (int(lr["rows_read"]), int(lr["rows_quarantined"]))
        _check(rows, "ledger counts = job report", got == want, want, got)


def _check_quarantine(rows: list[dict[str, Any]], load: _Load) -> None:
    """Every rejected row is in the quarantine object; no object when nothing was rejected."""
    q_key = load.props.get("quarantine_key") or load.report.get("quarantine_key")
    if not load.quarantined:
        _check(rows, "no quarantine object when nothing was rejected", not q_key, "none", q_key or "none")
        return
    body = client("s3", load.settings).get_object(Bucket=load.bucket, Key=q_key)["Body"].read() if q_key else b""
    q_rows = max(0, sum(1 for _ in csv.reader(io.StringIO(body.decode("utf-8")))) - 1)
    _check(rows, "quarantine object holds every rejected row", q_rows == load.quarantined, load.quarantined, q_rows,
           f"s3://{load.bucket}/{q_key}")


def _check_generated(rows: list[dict[str, Any]], load: _Load, sample: dict[str, Any], n_table: int) -> None:
    """For generated data: rows and exact money sums equal what the generator says it wrote."""
    if not sample.get("generated"):
        return
    good = int(sample.get("good_rows", -1))
    _check(rows, "rows loaded = good rows generated", n_table == good, good, n_table)
    bad = sum(int(v) for v in (sample.get("bad_rows_by_reason") or {}).values())
    _check(rows, "rows quarantined = bad rows generated", load.quarantined == bad, bad, load.quarantined)
    sums = query(f"select sum(total_revenue) as revenue, sum(total_profit) as profit from {load.table} "
                 f"where source_key = {_lit(load.key)}", load.settings).iloc[0]
    for col, fact in (("revenue", "total_revenue"), ("profit", "total_profit")):
        want = Decimal(str(sample.get(fact)))
        got = Decimal(str(sums[col]))
        _check(rows, f"sum of {col} = source's accepted rows (exact)", got == want, want, got)


def _check_table(rows: list[dict[str, Any]], settings: Settings, table: str) -> None:
    """The whole table: no duplicate key, no null in a required column, column types as the contract says."""
    contract = settings.dataset_contract
    pk = ", ".join(_q(c) for c in contract.primary_key)
    dups = int(query(f"select count(*) as n from (select {pk} from {table} group by {pk} having count(*) > 1) d",
                     settings).iloc[0, 0])
    _check(rows, f"no duplicate {pk} in the table", dups == 0, 0, dups)

    required = [c.name for c in contract.columns if c.required]
    nulls_sql = " + ".join(f"sum(case when {_q(c)} is null then 1 else 0 end)" for c in required)
    nulls = int(query(f"select {nulls_sql} as n from {table}", settings).iloc[0, 0] or 0)
    _check(rows, "no nulls in required columns", nulls == 0, 0, nulls, ", ".join(required))

    cols = query("select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns "
                 f"where table_schema = {_lit(settings.redshift_schema)} and table_name = "
                 f"{_lit(settings.redshift_table)}", settings)
    types = {r.column_name: r for r in cols.itertuples()}
    wrong = []
    for c in contract.columns:
        t = types.get(c.name)
        if t is None or str(t.data_type) not in REDSHIFT_TYPES[c.type]:
            wrong.append(f"{c.name}: {getattr(t, 'data_type', 'missing')} (contract {c.type})")
        elif c.type == "decimal" and (int(t.numeric_precision), int(t.numeric_scale)) != (c.precision, c.scale):
            wrong.append(f"{c.name}: numeric({t.numeric_precision},{t.numeric_scale}) (contract "
                         f"decimal({c.precision},{c.scale}))")
    _check(rows, "column types match the contract", not wrong, "all match", "; ".join(wrong) or "all match")


def run_checks(settings: Settings, upload: dict[str, Any]) -> pd.DataFrame:
    """Check the load of ``upload`` (as recorded by ``nb.upload``) end to end.

    Parameters
    ----------
    settings
        The kit's settings.
    upload
        ``{"bucket", "key", "etag", "sample": {...generator facts...}}``.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    load = _find_load(rows, settings, upload)
    if load is None:
        return pd.DataFrame(rows)
    n_table = _check_table_rows(rows, load)
    _check_ledger(rows, load)
    _check_quarantine(rows, load)
    _check_generated(rows, load, upload.get("sample") or {}, n_table)
    _check_table(rows, settings, load.table)
    return pd.DataFrame(rows, columns=["check", "passed", "expected", "actual", "detail"])

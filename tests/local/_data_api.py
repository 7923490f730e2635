"""The Redshift Data API driven as any caller drives it: submit a statement, wait for it to end, read its rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.conftest import wait_for

ENDED = frozenset({"FINISHED", "FAILED", "ABORTED"})


@dataclass(frozen=True)
class Target:
    """Where statements run: a workgroup and its database."""

    workgroup: str
    database: str = "dev"


def submit(rd: Any, target: Target, sql: str | list[str], **kw: Any) -> dict[str, Any]:
    """Start ``sql`` (a list: one batch, one transaction) on ``target``; ``kw`` overrides or adds request fields."""
    kw = {"WorkgroupName": target.workgroup, "Database": target.database, **kw}
    r = rd.batch_execute_statement(Sqls=sql, **kw) if isinstance(sql, list) else rd.execute_statement(Sql=sql, **kw)
    return dict(r)


def wait_ended(rd: Any, statement_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The statement's description once it has ended (FINISHED, FAILED or ABORTED); fails after ``timeout``."""

    def ended() -> dict[str, Any] | None:
        d = dict(rd.describe_statement(Id=statement_id))
        return d if d["Status"] in ENDED else None

    return wait_for(f"statement {statement_id} to end", ended, timeout)


def run_statement(rd: Any, target: Target, sql: str | list[str], timeout: float = 60.0,
                  **kw: Any) -> dict[str, Any]:
    """Run ``sql`` on ``target`` and return its description once it has ended, whatever the outcome."""
    return wait_ended(rd, submit(rd, target, sql, **kw)["Id"], timeout)


def finished(rd: Any, target: Target, sql: str | list[str], **kw: Any) -> dict[str, Any]:
    """Run ``sql`` and assert it FINISHED (the failure names the database's error)."""
    d = run_statement(rd, target, sql, **kw)
    assert d["Status"] == "FINISHED", d.get("Error")
    return d


def records(rd: Any, statement_id: str) -> list[list[Any]]:
    """The statement's first page of records as plain values (None for SQL NULL)."""
    res = rd.get_statement_result(Id=statement_id)
    return [[next(iter(f.values())) if "isNull" not in f else None for f in r] for r in res["Records"]]


def rows(rd: Any, target: Target, sql: str, **kw: Any) -> list[list[Any]]:
    """Run a query that must finish and return its rows as plain values."""
    return records(rd, finished(rd, target, sql, **kw)["Id"])

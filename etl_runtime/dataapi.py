"""Redshift Data API I/O for job 2: run a batch (one transaction) or one parameterised query, and wait.

Results are read from ``describe_statement``: a batch's ``SubStatements`` are numbered from 1 in the
order of the statements sent (``<batch id>:<n>``), so a statement's row count is found by its position
(:meth:`BatchResult.rows_at`), never by its text. Python 3.9-compatible; stdlib (boto3 clients are
passed in).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from etl_runtime.errors import WarehouseError
from etl_runtime.loadsql import Query, load_error_query
from etl_runtime.values import Warehouse

__all__ = ["BatchResult", "BatchFailed", "wait", "execute_batch", "query", "load_error_detail"]

_DONE = ("FINISHED", "FAILED", "ABORTED")


def _position(sub: Dict[str, Any], index: int) -> int:
    """The 0-based position of a sub-statement: from its id ``<batch>:<n>``, else its place in the list."""
    sid = str(sub.get("Id") or "")
    tail = sid.rsplit(":", 1)[-1] if ":" in sid else ""
    return int(tail) - 1 if tail.isdigit() else index


def _subs_by_position(desc: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    return {_position(sub, i): sub for i, sub in enumerate(desc.get("SubStatements") or [])}


@dataclass(frozen=True)
class BatchResult:
    """A finished batch: its statement id and the row count of each sub-statement."""

    description: Dict[str, Any]

    @property
    def statement_id(self) -> Optional[str]:
        return self.description.get("Id")

    def rows_at(self, position: Optional[int]) -> Optional[int]:
        """Rows affected by the statement at ``position`` (0-based), None when unknown or not in the batch."""
        if position is None:
            return None
        rows = _subs_by_position(self.description).get(position, {}).get("ResultRows")
        if rows is None or int(rows) < 0:
            return None
        return int(rows)


class BatchFailed(WarehouseError):
    """A batch that did not finish; :attr:`failed_at` is the position of the statement that failed."""

    def __init__(self, message: str, description: Dict[str, Any], failed_at: Optional[int]) -> None:
        super().__init__(message)
        self.statement = description
        self.failed_at = failed_at


def wait(rsd: Any, statement_id: str, *, timeout: float, poll: float = 0.5) -> Dict[str, Any]:
    """Poll ``describe_statement`` after 0.02 s, growing by half each time to at most ``poll`` seconds.

    Short statements (the ledger look-up, the layout check) are seen finished within a few tens of
    milliseconds; a long load costs about ten extra calls before the interval reaches ``poll``.
    """
    deadline = time.monotonic() + timeout
    delay = min(poll, 0.02)
    while True:
        desc: Dict[str, Any] = rsd.describe_statement(Id=statement_id)
        if desc.get("Status") in _DONE:
            return desc
        if time.monotonic() > deadline:
            raise WarehouseError(f"statement {statement_id} still {desc.get('Status')} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, poll)


def _failure(desc: Dict[str, Any]) -> BatchFailed:
    subs = _subs_by_position(desc)
    failed_at = next((pos for pos in sorted(subs) if subs[pos].get("Status") in ("FAILED", "ABORTED")), None)
    where = ""
    if failed_at is not None:
        sub = subs[failed_at]
        where = f" (statement {sub.get('Id')}: {str(sub.get('QueryString', ''))[:200]})"
    return BatchFailed(f"{desc.get('Status')}: {desc.get('Error') or 'no error text'}{where}", desc, failed_at)


def execute_batch(rsd: Any, warehouse: Warehouse, sqls: Sequence[str], *, name: str = "etl-kit",
                  timeout: float = 1800.0) -> BatchResult:
    """Run statements as one Data API batch (one transaction) and wait.

    Raises
    ------
    BatchFailed
        A :class:`WarehouseError` with the database's error text and the failed statement's position.
    """
    resp = rsd.batch_execute_statement(Sqls=list(sqls), StatementName=name[:500], **warehouse.data_api_args())
    desc = wait(rsd, resp["Id"], timeout=timeout)
    if desc.get("Status") != "FINISHED":
        raise _failure(desc)
    return BatchResult(desc)


def query(rsd: Any, warehouse: Warehouse, statement: Query, timeout: float = 300.0) -> List[List[Any]]:
    """Run one parameterised statement and return its rows (values as the Data API types them)."""
    args = warehouse.data_api_args()
    if statement.params:
        args["Parameters"] = statement.data_api_parameters()
    resp = rsd.execute_statement(Sql=statement.sql, **args)
    desc = wait(rsd, resp["Id"], timeout=timeout)
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


def load_error_detail(rsd: Any, warehouse: Warehouse, uri: str) -> str:
    """Recent SYS_LOAD_ERROR_DETAIL rows for this file (AWS only; '' when the view does not exist)."""
    try:
        rows = query(rsd, warehouse, load_error_query(uri))
    except Exception:  # view missing (PostgreSQL emulation) or no permission: skip silently
        return ""
    return "; ".join(f"line {r[0]} column {r[1]}: {r[2]} {r[3]}" for r in rows)

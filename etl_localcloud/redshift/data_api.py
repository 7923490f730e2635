"""Provider: the Redshift Data API (``redshift-data``) running statements for real on PostgreSQL.

Thin handlers, as moto's ``responses.py``: each reads the request's members, calls the model
(:class:`~.data_models.DataBackend`) or the runner (:class:`~.data_runner.StatementRunner`) and
shapes AWS's response. Errors are the classes of :mod:`.exceptions`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.paging import REDSHIFT_DATA
from etl_localcloud.dispatcher import Provider
from etl_localcloud.iam.resources import register_resolver
from etl_localcloud.redshift import catalog
from etl_localcloud.redshift.data_models import (
    DONE,
    MAX_BATCH_SQLS,
    DataBackend,
    Statement,
    duration,
    pg_message,
)
from etl_localcloud.redshift.data_runner import StatementRunner, connect_as
from etl_localcloud.redshift.exceptions import DatabaseConnectionException, ValidationException
from etl_localcloud.redshift.serverless_models import ServerlessStore

__all__ = ["DataApiProvider"]

_LIST_PAGE = 100  # ListStatements' default (and largest) page


class DataApiProvider(Provider):
    """``RedshiftData.*`` operations; statements run on PostgreSQL on a worker pool."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore, workers: int = 8) -> None:
        super().__init__(name="redshift-data", target_prefix="RedshiftData")
        self.ctx = ctx
        self.backend = DataBackend(ctx, store)
        self.runner = StatementRunner(ctx, self.backend.lock, workers)
        self.operations = {
            "ExecuteStatement": self.execute_statement,
            "BatchExecuteStatement": self.batch_execute_statement,
            "DescribeStatement": self.describe_statement,
            "GetStatementResult": self.get_statement_result,
            "GetStatementResultV2": self._v2_unsupported,
            "CancelStatement": self.cancel_statement,
            "ListStatements": self.list_statements,
            "ListDatabases": self._catalog_op(catalog.list_databases),
            "ListSchemas": self._catalog_op(catalog.list_schemas),
            "ListTables": self._catalog_op(catalog.list_tables),
            "DescribeTable": self._catalog_op(catalog.describe_table),
        }
        # AWS lets a role read only its own statements (redshift-data:statement-owner-iam-userid)
        register_resolver("redshift-data:statement-owner", self._statement_owner)

    def _statement_owner(self, account: str, region: str, sid: str) -> str | None:
        with self.backend.lock:
            st = self.backend.statements.get(sid)
        return st.owner if st is not None else None

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        with self.backend.lock:
            running = [s for s in self.backend.statements.values() if s.status in ("PICKED", "STARTED")]
        self.runner.close(running)

    def health(self) -> dict[str, Any]:
        counts = self.backend.counts()
        out: dict[str, Any] = {"ok": True, "statements": counts,
                               "running": counts.get("STARTED", 0) + counts.get("PICKED", 0),
                               "finished": counts.get("FINISHED", 0), "failed": counts.get("FAILED", 0)}
        try:
            with self.backend.pg.connect(timeout=10, application_name="etl-kit-setup") as conn:
                conn.execute("SELECT 1")
            out["postgres"] = "reachable"
        except Exception as exc:
            out.update(ok=False, postgres=f"unreachable: {exc}")
        return out

    # -- submit ------------------------------------------------------------------------
    def _submit(self, body: dict[str, Any], sqls: list[str], batch: bool) -> dict[str, Any]:
        st = self.backend.new_statement(body, sqls, batch)
        self.runner.submit(st)
        return {"Id": st.id, "CreatedAt": st.created, "Database": st.database,
                **st.echoed(("WorkgroupName", "ClusterIdentifier", "DbUser", "SecretArn", "SessionId"))}

    def execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        sql = body.get("Sql")
        if not isinstance(sql, str) or not sql.strip():
            raise ValidationException("Sql must not be empty.")
        return self._submit(body, [sql], batch=False)

    def batch_execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        sqls = body.get("Sqls")
        if not isinstance(sqls, list) or not sqls or not all(isinstance(s, str) and s.strip() for s in sqls):
            raise ValidationException("Sqls must hold 1 to 40 non-empty SQL statements.")
        if len(sqls) > MAX_BATCH_SQLS:
            raise ValidationException(f"1 validation error detected: Value at 'sqls' failed to satisfy constraint: "
                                      f"Member must have length less than or equal to {MAX_BATCH_SQLS}")
        return self._submit(body, list(sqls), batch=True)

    # -- reads -------------------------------------------------------------------------
    def _waited(self, body: dict[str, Any]) -> tuple[Statement, Any]:
        """The statement (and sub-statement) ``Id`` names, after waiting up to ``WaitTimeSeconds`` for its end."""
        st, sub = self.backend.lookup(body.get("Id"))
        wait = body.get("WaitTimeSeconds")
        if wait:
            st.done.wait(min(float(wait), 60.0))
        return st, sub

    def describe_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        st, sub = self._waited(body)
        common: dict[str, Any] = {"Database": st.database, "RedshiftPid": st.pid, **st.echoed()}
        if sub is not None:
            return {**sub.describe(), **common}
        last = st.subs[-1]
        out: dict[str, Any] = {
            **common, "Id": st.id, "Status": st.status, "CreatedAt": st.created, "UpdatedAt": st.updated,
            "Duration": duration(st.started, st.ended), "RedshiftQueryId": 0,
            "HasResultSet": any(s.rows is not None for s in st.subs),
            "ResultRows": last.result_rows, "ResultSize": sum(s.result_size for s in st.subs),
            "QueryString": "; ".join(s.query for s in st.subs) if st.batch else st.subs[0].query,
        }
        if st.error:
            out["Error"] = st.error
        if st.request.get("Parameters"):
            out["QueryParameters"] = st.request["Parameters"]
        if st.batch:
            out["SubStatements"] = [s.describe() for s in st.subs]
        return out

    def get_statement_result(self, body: dict[str, Any]) -> dict[str, Any]:
        st, sub = self._waited(body)
        sub = self.backend.result_sub(st, sub)
        records, token = self.backend.result_page(sub, body.get("NextToken"))
        out: dict[str, Any] = {"Records": records, "ColumnMetadata": sub.columns,
                               "TotalNumRows": len(sub.rows or [])}
        if token is not None:
            out["NextToken"] = token
        return out

    def _v2_unsupported(self, body: dict[str, Any]) -> dict[str, Any]:
        raise ValidationException("GetStatementResultV2 (ResultFormat CSV) is not supported by the local cloud; use "
                                  "GetStatementResult.")

    def cancel_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        st, _ = self.backend.lookup(body.get("Id"))
        with self.backend.lock:
            if st.status in DONE:
                raise ValidationException(f"Could not cancel a query that is already in {st.status} state with ID: "
                                          f"{st.id}")
            st.cancelled = True
            if st.status in ("SUBMITTED", "PICKED") and st.conn is None:
                for sub in st.subs:
                    sub.status = "ABORTED"
                self.runner.set_status(st, "ABORTED", f"Query ({st.pid}) cancelled on user's request")
                return {"Status": True}
        self.runner.cancel_backend(st)
        return {"Status": True}

    @staticmethod
    def _listed(st: Statement) -> dict[str, Any]:
        d: dict[str, Any] = {"Id": st.id, "Status": st.status, "CreatedAt": st.created, "UpdatedAt": st.updated,
                             "IsBatchStatement": st.batch, **st.echoed(("StatementName", "SecretArn"))}
        if st.batch:
            d["QueryStrings"] = [s.query for s in st.subs]
        else:
            d["QueryString"] = st.subs[0].query
        if st.request.get("Parameters"):
            d["QueryParameters"] = st.request["Parameters"]
        return d

    def list_statements(self, body: dict[str, Any]) -> dict[str, Any]:
        items = [self._listed(st) for st in self.backend.newest_first(body)]
        return REDSHIFT_DATA.response(items, body, "Statements", _LIST_PAGE)

    # -- catalog -----------------------------------------------------------------------
    def _catalog_op(self, fn: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            import psycopg

            target = self.backend.target(body)
            if body.get("ConnectedDatabase"):
                target = dataclasses.replace(target, database=str(body["ConnectedDatabase"]))
            try:
                with connect_as(self.ctx, target) as conn:
                    return fn(conn, body)
            except psycopg.Error as exc:
                raise DatabaseConnectionException(f"ERROR: {pg_message(exc)}") from None
        return op

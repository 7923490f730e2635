"""How the Data API runs a statement on PostgreSQL: one connection as the statement's user, one worker.

Each ``Sql`` is split on top-level ``;`` and translated from Redshift to PostgreSQL
(:mod:`.sqltranslate`); ``COPY ... FROM 's3://...'`` reads the local S3 (:mod:`.copy`). A batch is
one transaction: a failure rolls back every sub-statement. With ``WithEvent`` the end of a
statement is an EventBridge event, as on AWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.arns import arn
from etl_localcloud.core.clock import epoch
from etl_localcloud.redshift.data_models import (
    DONE,
    MAX_RESULT_BYTES,
    RETENTION_SECONDS,
    Statement,
    Sub,
    Target,
    pg_message,
)
from etl_localcloud.redshift.results import column_metadata, estimate_size
from etl_localcloud.redshift.serverless_models import workgroup_arn

__all__ = ["StatementRunner", "connect_as"]

log = logging.getLogger("etl_localcloud.redshift")

_FETCH_ROWS = 10_000
# Statements PostgreSQL cannot run inside a transaction block (a batch is one transaction).
_NO_TRANSACTION = ("CREATE DATABASE", "DROP DATABASE", "ALTER SYSTEM")


def connect_as(ctx: CloudContext, target: Target) -> Any:
    """A connection to ``target``'s database as its login (over TCP, with a password, like a client)."""
    import psycopg
    from psycopg.types.string import TextLoader

    pg = ctx.postgres
    if pg is None:
        raise RuntimeError("the local warehouse (PostgreSQL) is not running")
    user, password = target.login
    conn = psycopg.connect(host=pg.host, port=pg.port, user=user, password=password, dbname=target.database,
                           connect_timeout=10, application_name="redshift-data")
    for t in ("json", "jsonb"):  # SUPER values come back as their JSON text, like Redshift
        conn.adapters.register_loader(t, TextLoader)
    return conn


def _needs_autocommit(st: Statement) -> bool:
    """A single statement that cannot run in a transaction block (CREATE DATABASE ...)."""
    from etl_localcloud.redshift.sqltranslate import split_statements

    if len(st.subs) != 1:
        return False
    parts = split_statements(st.subs[0].query)
    if len(parts) != 1:
        return False
    head = " ".join(parts[0].upper().split()[:2])
    return head in _NO_TRANSACTION or head.startswith("VACUUM")


def _fetch(cur: Any, sub: Sub) -> None:
    """Keep the result rows up to MAX_RESULT_BYTES; past it only count them (GetStatementResult refuses)."""
    rows: list[tuple[Any, ...]] = []
    count = size = 0
    sub.too_large = False
    while batch := cur.fetchmany(_FETCH_ROWS):
        count += len(batch)
        size += estimate_size(batch)
        if size > MAX_RESULT_BYTES:
            sub.too_large, rows = True, []
        if not sub.too_large:
            rows.extend(batch)
    sub.rows, sub.result_rows, sub.result_size = rows, count, size


def _rollback(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


def _query_type(sql: str) -> str:
    """SYS_QUERY_HISTORY's query_type of a statement, from its first word."""
    words = sql.split(None, 2)
    head = words[0].upper() if words else ""
    if head in ("CREATE", "ALTER", "DROP", "TRUNCATE", "GRANT", "REVOKE"):
        return "CTAS" if head == "CREATE" and " AS SELECT" in sql.upper() else "DDL"
    return head if head in ("SELECT", "INSERT", "UPDATE", "DELETE", "COPY", "UNLOAD", "MERGE") else "UTILITY"


def _record_history(conn: Any, st: Statement, failed: Sub | None, error: str) -> None:
    """One SYS_QUERY_HISTORY / STL_QUERY row per sub-statement that ran (after the transaction ended).

    ``failed`` is the sub-statement that failed with ``error`` (the others of a failed batch were
    rolled back with it: ``failed`` too, as Redshift reports them). A failure to record is logged only.
    """
    from etl_localcloud.redshift.compat import QueryRecord, log_query

    try:
        for sub in st.subs:
            if not sub.started:
                continue
            status = "success" if not error else ("canceled" if "cancelled" in error else "failed")
            rec = QueryRecord(_query_type(sub.query), status, _utc(sub.started), _utc(sub.ended or epoch()),
                              error if sub is failed or (failed is None and error) else "", max(sub.result_rows, 0),
                              sub.query)
            log_query(conn, rec)
        if not conn.autocommit:
            conn.commit()
    except Exception as exc:
        _rollback(conn)
        log.warning("could not record statement %s in sys_query_history: %s", st.id, exc)


def _record_load_error(conn: Any, exc: Exception) -> None:
    """The STL_LOAD_ERRORS row of a failed COPY, written after its transaction was rolled back."""
    from etl_localcloud.redshift.compat import log_load_error
    from etl_localcloud.redshift.copy import CopyError

    if not isinstance(exc, CopyError) or exc.load_error is None:
        return
    try:
        log_load_error(conn, exc.load_error)
        if not conn.autocommit:
            conn.commit()
    except Exception as err:
        _rollback(conn)
        log.warning("could not record the COPY failure in stl_load_errors: %s", err)


class StatementRunner:
    """Runs statements on a worker pool and moves them through SUBMITTED, PICKED, STARTED and an end state."""

    def __init__(self, ctx: CloudContext, lock: threading.Lock, workers: int = 8) -> None:
        self.ctx = ctx
        self.lock = lock  # the registry's lock: statuses change under it
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redshift-data")
        self._type_names: dict[int, str] = {}

    def submit(self, st: Statement) -> None:
        """Queue ``st`` on the pool."""
        self.pool.submit(self.run, st)

    def close(self, running: list[Statement]) -> None:
        """Cancel ``running`` on PostgreSQL and stop the pool."""
        for st in running:
            self.cancel_backend(st)
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- status ------------------------------------------------------------------------
    def set_status(self, st: Statement, status: str, error: str | None = None) -> None:
        """Move ``st`` to ``status`` (the caller holds the lock); an end state wakes waiters and emits the event."""
        st.status, st.updated = status, epoch()
        if error:
            st.error = error
        if status in DONE:
            st.ended = st.updated
            st.done.set()
            if st.request.get("WithEvent"):
                self._event(st)

    def _event(self, st: Statement) -> None:
        ctx = self.ctx
        try:
            ctx.emit_event("aws.redshift-data", "Redshift Data Statement Status Change", {
                "principal": arn("iam", "", ctx.account_id, "user/local"), "statementName":
                st.request.get("StatementName", ""), "statementId": st.id, "redshiftQueryId": -1, "state": st.status,
                "rows": st.subs[-1].result_rows, "expireAt": int(st.created + RETENTION_SECONDS)},
                [workgroup_arn(ctx.region, ctx.account_id, st.request.get("WorkgroupName", ""))])
        except Exception:
            log.exception("could not emit the statement event")

    def _fail(self, st: Statement, current: Sub | None, error: str) -> None:
        now = epoch()
        for sub in st.subs:
            if sub is current or (current is None and sub is st.subs[0]):
                sub.status, sub.error, sub.ended, sub.updated = "FAILED", error, now, now
            elif sub.status != "FINISHED":
                sub.status, sub.updated = "ABORTED", now
        with self.lock:
            self.set_status(st, "FAILED", error)

    def _abort(self, st: Statement, current: Sub | None) -> None:
        now = epoch()
        msg = f"Query ({st.pid}) cancelled on user's request"
        for sub in st.subs:
            if sub.status != "FINISHED":
                sub.status, sub.updated = "ABORTED", now
                if sub is current:
                    sub.error, sub.ended = msg, now
        with self.lock:
            self.set_status(st, "ABORTED", msg)

    def cancel_backend(self, st: Statement) -> None:
        """Ask PostgreSQL to cancel what ``st`` is running (its worker then marks it ABORTED)."""
        conn = st.conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=5.0)
            except Exception:
                log.warning("could not cancel statement %s", st.id)

    # -- execution ---------------------------------------------------------------------
    def run(self, st: Statement) -> None:
        """Run every sub-statement of ``st`` (a batch in one transaction) and record how it ended."""
        with self.lock:
            if st.cancelled:
                return
            self.set_status(st, "PICKED")
        conn = self._open(st)
        if conn is None:
            return
        current: list[Sub] = []  # the sub-statement running when it fails
        try:
            self._execute(conn, st, current)
        except Exception as exc:
            _rollback(conn)
            _record_load_error(conn, exc)
            self._failed(conn, st, current[-1] if current else None, exc)
        finally:
            st.conn = None
            with contextlib.suppress(Exception):
                conn.close()

    def _open(self, st: Statement) -> Any:
        """The statement's connection, or ``None`` when it cannot connect (then the statement FAILED)."""
        import psycopg

        try:
            return connect_as(self.ctx, st.target)
        except psycopg.Error as exc:
            self._fail(st, None, f"ERROR: {pg_message(exc)}")
        except Exception as exc:
            self._fail(st, None, f"ERROR: {exc}")
        return None

    def _failed(self, conn: Any, st: Statement, current: Sub | None, exc: Exception) -> None:
        """Record how ``st`` ended on ``exc``: ABORTED on a cancel, else FAILED with Redshift's message."""
        import psycopg

        from etl_localcloud.redshift.copy import CopyError
        from etl_localcloud.redshift.sqltranslate import TranslationError

        if isinstance(exc, psycopg.errors.QueryCanceled):
            _record_history(conn, st, current, "Query cancelled on user's request")
            self._abort(st, current)
            return
        if isinstance(exc, psycopg.Error):
            error = f"ERROR: {pg_message(exc)}"
        elif isinstance(exc, (CopyError, TranslationError)):
            error = f"ERROR: {exc}"
        else:  # never lose a statement in a pending state
            log.error("statement %s failed unexpectedly", st.id, exc_info=exc)
            error = "ERROR: internal error of the local cloud (the traceback is in daemon.log)"
        _record_history(conn, st, current, error)
        self._fail(st, current, error)

    def _execute(self, conn: Any, st: Statement, current: list[Sub]) -> None:
        import psycopg

        with self.lock:
            st.conn, st.pid = conn, conn.info.backend_pid
            if st.cancelled:
                raise psycopg.errors.QueryCanceled("cancelled before start")
            st.started = epoch()
            self.set_status(st, "STARTED")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET datestyle = 'ISO, MDY'")
        # Literals with Redshift's backslash escapes reach PostgreSQL as E'...' (sqltranslate); values of
        # Parameters are bound server-side, never spliced into the text.
        conn.execute("SET standard_conforming_strings = on")
        conn.commit()
        autocommit = _needs_autocommit(st)
        conn.autocommit = autocommit
        for sub in st.subs:
            current.append(sub)
            sub.started = sub.updated = epoch()
            sub.status = "STARTED"
            self._run_sub(conn, sub, st.params)
            sub.ended = sub.updated = epoch()
            sub.status = "FINISHED"
        if not autocommit:
            conn.commit()
        _record_history(conn, st, None, "")
        with self.lock:
            self.set_status(st, "FINISHED")

    def _run_sub(self, conn: Any, sub: Sub, params: dict[str, str]) -> None:
        from etl_localcloud.redshift.copy import run_copy
        from etl_localcloud.redshift.sqltranslate import split_statements, translate

        for raw in split_statements(sub.query):
            for tr in translate(raw):
                if tr.copy is not None:
                    n = run_copy(conn, tr.copy, self.ctx.moto_client("s3"), self.ctx.region)
                    sub.rows, sub.result_rows, sub.result_size = None, n, 0
                elif tr.sql is None:
                    sub.rows, sub.result_rows = None, 0
                else:
                    self._run_sql(conn, sub, tr.sql, params)

    def _run_sql(self, conn: Any, sub: Sub, sql: str, params: dict[str, str]) -> None:
        from etl_localcloud.redshift.sqltranslate import placeholders

        with conn.cursor() as cur:
            if params:
                query, names = placeholders(sql)
                cur.execute(query.encode(), {n: params[n] for n in names}, prepare=False)
            else:
                cur.execute(sql.encode(), prepare=False)
            if cur.description is not None:
                sub.columns = column_metadata(conn, cur, self._types(conn))
                _fetch(cur, sub)
            else:
                sub.rows, sub.result_rows = None, max(cur.rowcount, 0)
                sub.result_size = 0

    def _types(self, conn: Any) -> dict[int, str]:
        if not self._type_names:
            with conn.cursor() as cur:
                cur.execute("SELECT oid::int8, typname FROM pg_type")
                self._type_names = {int(r[0]): str(r[1]) for r in cur.fetchall()}
        return self._type_names

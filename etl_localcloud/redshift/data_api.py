"""Provider: the Redshift Data API (``redshift-data``) running statements for real on PostgreSQL.

Statements are queued on a worker pool and run against the database of the namespace
that the workgroup belongs to. Each ``Sql`` is split on top-level ``;`` and translated
from Redshift to PostgreSQL (:mod:`.sqltranslate`); ``COPY ... FROM 's3://...'`` reads
the local S3 (:mod:`.copy`). A batch is one transaction: a failure rolls back every
sub-statement. Results stay in memory for 24 hours, as the Data API keeps them.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider, ServiceError
from etl_localcloud.redshift import catalog
from etl_localcloud.redshift.results import column_metadata, estimate_size, to_field
from etl_localcloud.redshift.serverless import ServerlessStore

__all__ = ["DataApiProvider", "Statement"]

log = logging.getLogger("etl_localcloud.redshift")

RETENTION_SECONDS = 24 * 3600
PAGE_ROWS = 5000
PAGE_BYTES = 64 * 1024 * 1024
# The Data API's quotas (Redshift Management Guide, "Quotas for the Amazon Redshift Data API")
MAX_SQL_BYTES = 100 * 1024  # a query string
MAX_BATCH_SQLS = 40  # Sqls of one BatchExecuteStatement
MAX_RESULT_BYTES = 100 * 1024 * 1024  # a result set the database returns
_FETCH_ROWS = 10_000
_PARAM_NAME = re.compile(r"[0-9A-Za-z_]+")
_DONE = ("FINISHED", "FAILED", "ABORTED")


def _validation(msg: str) -> ServiceError:
    return ServiceError("ValidationException", msg)


@dataclass
class Sub:
    """One sub-statement (an ``Sqls`` entry of a batch, or the single ``Sql``)."""

    id: str
    query: str
    created: float
    status: str = "SUBMITTED"
    error: str | None = None
    updated: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    result_rows: int = -1
    result_size: int = 0
    rows: list[tuple[Any, ...]] | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    too_large: bool = False  # the result set passed MAX_RESULT_BYTES: counted, not kept

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": self.id, "QueryString": self.query, "Status": self.status,
            "CreatedAt": self.created, "UpdatedAt": self.updated or self.created,
            "Duration": _duration(self.started, self.ended), "HasResultSet": self.rows is not None,
            "ResultRows": self.result_rows, "ResultSize": self.result_size, "RedshiftQueryId": 0,
        }
        if self.error:
            out["Error"] = self.error
        return out


def _duration(started: float, ended: float) -> int:
    if not started:
        return -1
    return int(((ended or time.time()) - started) * 1e9)


@dataclass
class Statement:
    """A submitted ExecuteStatement / BatchExecuteStatement."""

    id: str
    subs: list[Sub]
    batch: bool
    request: dict[str, Any]
    database: str
    created: float
    params: dict[str, str] = field(default_factory=dict)
    login: tuple[str, str] | None = None  # who the statement runs as (user, password)
    status: str = "SUBMITTED"
    error: str | None = None
    updated: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    pid: int = 0
    conn: Any = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class DataApiProvider(Provider):
    """``RedshiftData.*`` operations; statements run on PostgreSQL on a worker pool."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore, workers: int = 8) -> None:
        super().__init__(name="redshift-data", target_prefix="RedshiftData")
        self.ctx = ctx
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redshift-data")
        self.lock = threading.Lock()
        self.statements: dict[str, Statement] = {}
        self._type_names: dict[int, str] = {}
        self._iam_login: tuple[str, str] | None = None
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

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            running = [s for s in self.statements.values() if s.status in ("PICKED", "STARTED")]
        for st in running:
            self._cancel_backend(st)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def health(self) -> dict[str, Any]:
        with self.lock:
            counts: dict[str, int] = {}
            for st in self.statements.values():
                counts[st.status] = counts.get(st.status, 0) + 1
        out: dict[str, Any] = {"ok": True, "statements": counts,
                               "running": counts.get("STARTED", 0) + counts.get("PICKED", 0),
                               "finished": counts.get("FINISHED", 0), "failed": counts.get("FAILED", 0)}
        try:
            with self._setup_connection() as conn:
                conn.execute("SELECT 1")
            out["postgres"] = "reachable"
        except Exception as exc:
            out.update(ok=False, postgres=f"unreachable: {exc}")
        return out

    # -- target ------------------------------------------------------------------------
    def _credentials(self, secret_arn: str | None) -> tuple[str, str] | None:
        if not secret_arn:
            return None
        import json

        self.store.ready.wait(30)  # after a restart, the namespaces' secrets are being re-created

        sm = self.ctx.moto_client("secretsmanager")
        try:
            value = sm.get_secret_value(SecretId=secret_arn)["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            raise ServiceError("ValidationException", "Secrets Manager can't find the specified secret.") from None
        try:
            data = json.loads(value)
            return str(data["username"]), str(data["password"])
        except (ValueError, KeyError, TypeError):
            raise _validation("The secret must be a JSON object with username and password.") from None

    def _target(self, body: dict[str, Any]) -> tuple[str, tuple[str, str] | None]:
        """(database, the namespace admin's login or None): validates WorkgroupName / ClusterIdentifier."""
        wg, cluster = body.get("WorkgroupName"), body.get("ClusterIdentifier")
        if not wg and not cluster:
            raise _validation("Either ClusterIdentifier or WorkgroupName needs to be specified.")
        if wg and cluster:
            raise _validation("Only one of ClusterIdentifier or WorkgroupName can be specified.")
        if wg:
            try:
                _, ns = self.store.workgroup_database(wg)
            except KeyError:
                raise _validation(f"Redshift endpoint doesn't exist in this region. (workgroup '{wg}')") from None
            pw = self.store.passwords.get(ns["namespaceName"])
            admin = (str(ns["adminUsername"]), str(pw)) if ns.get("adminUsername") and pw else None
            return str(body.get("Database") or ns["dbName"]), admin
        try:
            clusters = self.ctx.moto_client("redshift").describe_clusters(ClusterIdentifier=cluster)["Clusters"]
        except Exception:
            raise _validation(f"Redshift endpoint doesn't exist in this region. (cluster '{cluster}')") from None
        return str(body.get("Database") or clusters[0].get("DBName") or "dev"), None

    def _login(self, body: dict[str, Any]) -> tuple[str, tuple[str, str]]:
        """(database, (user, password)) a request runs as; never a PostgreSQL superuser.

        A ``SecretArn`` names the user. Without one, AWS maps the caller's IAM identity to a
        database user; locally that is the namespace's admin user (so the kit's objects have
        one owner), or ``IAMR:local-data-api`` for a namespace without an admin user.
        """
        database, admin = self._target(body)
        creds = self._credentials(body.get("SecretArn"))
        return database, creds or admin or self._iam_user()

    def _iam_user(self) -> tuple[str, str]:
        """The ordinary login role standing for an IAM identity (created once per daemon, fresh password)."""
        import secrets

        from psycopg import sql

        with self.lock:
            if self._iam_login is None:
                user, pw = "IAMR:local-data-api", secrets.token_urlsafe(24)
                with self._setup_connection() as conn:
                    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
                    conn.execute(sql.SQL(("ALTER" if exists else "CREATE") + " ROLE {} WITH LOGIN NOSUPERUSER "
                                         "NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
                                             sql.Identifier(user), sql.Literal(pw)))
                self._iam_login = (user, pw)
            return self._iam_login

    def _setup_connection(self) -> Any:
        """The daemon's own superuser connection, over the unix socket only (setup, health)."""
        import psycopg

        pg = self.ctx.postgres
        if pg is None:
            raise RuntimeError("the local warehouse (PostgreSQL) is not running")
        return psycopg.connect(pg.dsn(), connect_timeout=10, autocommit=True, application_name="etl-kit-setup")

    def _connect(self, login: tuple[str, str], database: str) -> Any:
        import psycopg
        from psycopg.types.string import TextLoader

        pg = self.ctx.postgres
        if pg is None:
            raise RuntimeError("the local warehouse (PostgreSQL) is not running")
        user, password = login
        conn = psycopg.connect(host=pg.host, port=pg.port, user=user, password=password, dbname=database,
                               connect_timeout=10, application_name="redshift-data")
        for t in ("json", "jsonb"):  # SUPER values come back as their JSON text, like Redshift
            conn.adapters.register_loader(t, TextLoader)
        return conn

    # -- submit ------------------------------------------------------------------------
    def _expire(self) -> None:
        cutoff = time.time() - RETENTION_SECONDS
        with self.lock:
            for sid in [k for k, s in self.statements.items() if s.created < cutoff and s.status in _DONE]:
                del self.statements[sid]

    def _submit(self, body: dict[str, Any], sqls: list[str], batch: bool) -> dict[str, Any]:
        self._expire()
        for q in sqls:
            if len(q.encode()) > MAX_SQL_BYTES:
                raise _validation("Cannot process query string larger than 100kB")
        params = _parameters(body.get("Parameters"), sqls)
        database, login = self._login(body)  # fails fast on an unknown secret, as AWS does
        now = time.time()
        sid = str(uuid.uuid4())
        subs = [Sub(id=f"{sid}:{i + 1}" if batch else sid, query=q, created=now) for i, q in enumerate(sqls)]
        st = Statement(id=sid, subs=subs, batch=batch, request=body, database=database, created=now, updated=now,
                       params=params, login=login)
        with self.lock:
            self.statements[sid] = st
        self.pool.submit(self._run, st)
        out: dict[str, Any] = {"Id": sid, "CreatedAt": now, "Database": database}
        for k in ("WorkgroupName", "ClusterIdentifier", "DbUser", "SecretArn", "SessionId"):
            if body.get(k):
                out[k] = body[k]
        return out

    def execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        sql = body.get("Sql")
        if not isinstance(sql, str) or not sql.strip():
            raise _validation("Sql must not be empty.")
        return self._submit(body, [sql], batch=False)

    def batch_execute_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        sqls = body.get("Sqls")
        if not isinstance(sqls, list) or not sqls or not all(isinstance(s, str) and s.strip() for s in sqls):
            raise _validation("Sqls must hold 1 to 40 non-empty SQL statements.")
        if len(sqls) > MAX_BATCH_SQLS:
            raise _validation(f"1 validation error detected: Value at 'sqls' failed to satisfy constraint: Member "
                              f"must have length less than or equal to {MAX_BATCH_SQLS}")
        return self._submit(body, list(sqls), batch=True)

    # -- execution ---------------------------------------------------------------------
    def _set(self, st: Statement, status: str, error: str | None = None) -> None:
        st.status, st.updated = status, time.time()
        if error:
            st.error = error
        if status in _DONE:
            st.ended = st.updated
            st.done.set()
            if st.request.get("WithEvent"):
                self._event(st)

    def _event(self, st: Statement) -> None:
        try:
            self.ctx.emit_event("aws.redshift-data", "Redshift Data Statement Status Change", {
                "principal": f"arn:aws:iam::{self.ctx.account_id}:user/local", "statementName":
                st.request.get("StatementName", ""), "statementId": st.id, "redshiftQueryId": -1, "state": st.status,
                "rows": st.subs[-1].result_rows, "expireAt": int(st.created + RETENTION_SECONDS)},
                [f"arn:aws:redshift-serverless:{self.ctx.region}:{self.ctx.account_id}:workgroup/"
                 f"{st.request.get('WorkgroupName', '')}"])
        except Exception:
            log.exception("could not emit the statement event")

    def _run(self, st: Statement) -> None:
        import psycopg

        from etl_localcloud.redshift.copy import CopyError
        from etl_localcloud.redshift.sqltranslate import TranslationError

        with self.lock:
            if st.cancelled:
                return
            self._set(st, "PICKED")
        try:
            assert st.login is not None
            conn = self._connect(st.login, st.database)
        except psycopg.Error as exc:
            self._fail(st, None, f"ERROR: {_pg_message(exc)}")
            return
        except Exception as exc:
            self._fail(st, None, f"ERROR: {exc}")
            return
        current: Sub | None = None
        try:
            with self.lock:
                st.conn, st.pid = conn, conn.info.backend_pid
                if st.cancelled:
                    raise psycopg.errors.QueryCanceled("cancelled before start")
                st.started = time.time()
                self._set(st, "STARTED")
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute("SET datestyle = 'ISO, MDY'")
            # Literals with Redshift's backslash escapes reach PostgreSQL as E'...' (sqltranslate); values of
            # Parameters are bound server-side, never spliced into the text.
            conn.execute("SET standard_conforming_strings = on")
            conn.commit()
            autocommit = self._needs_autocommit(st)
            conn.autocommit = autocommit
            for sub in st.subs:
                current = sub
                sub.started = sub.updated = time.time()
                sub.status = "STARTED"
                self._run_sub(conn, sub, st.params)
                sub.ended = sub.updated = time.time()
                sub.status = "FINISHED"
            if not autocommit:
                conn.commit()
            with self.lock:
                self._set(st, "FINISHED")
        except psycopg.errors.QueryCanceled:
            self._rollback(conn)
            self._abort(st, current)
        except psycopg.Error as exc:
            self._rollback(conn)
            self._fail(st, current, f"ERROR: {_pg_message(exc)}")
        except (CopyError, TranslationError) as exc:
            self._rollback(conn)
            self._fail(st, current, f"ERROR: {exc}")
        except Exception:  # never lose a statement in a pending state
            log.exception("statement %s failed unexpectedly", st.id)
            self._rollback(conn)
            self._fail(st, current, "ERROR: internal error of the local cloud (the traceback is in daemon.log)")
        finally:
            st.conn = None
            with contextlib.suppress(Exception):
                conn.close()

    @staticmethod
    def _needs_autocommit(st: Statement) -> bool:
        """A single statement that cannot run in a transaction block (CREATE DATABASE ...)."""
        from etl_localcloud.redshift.sqltranslate import split_statements

        if len(st.subs) != 1:
            return False
        parts = split_statements(st.subs[0].query)
        if len(parts) != 1:
            return False
        head = " ".join(parts[0].upper().split()[:2])
        return head in ("CREATE DATABASE", "DROP DATABASE", "ALTER SYSTEM") or head.startswith("VACUUM")

    def _run_sub(self, conn: Any, sub: Sub, params: dict[str, str]) -> None:
        from etl_localcloud.redshift.copy import run_copy
        from etl_localcloud.redshift.sqltranslate import placeholders, split_statements, translate

        for raw in split_statements(sub.query):
            for tr in translate(raw):
                if tr.copy is not None:
                    n = run_copy(conn, tr.copy, self.ctx.moto_client("s3"), self.ctx.region)
                    sub.rows, sub.result_rows, sub.result_size = None, n, 0
                    continue
                if tr.sql is None:
                    sub.rows, sub.result_rows = None, 0
                    continue
                with conn.cursor() as cur:
                    if params:
                        query, names = placeholders(tr.sql)
                        cur.execute(query.encode(), {n: params[n] for n in names}, prepare=False)
                    else:
                        cur.execute(tr.sql.encode(), prepare=False)
                    if cur.description is not None:
                        sub.columns = column_metadata(conn, cur, self._types(conn))
                        self._fetch(cur, sub)
                    else:
                        sub.rows, sub.result_rows = None, max(cur.rowcount, 0)
                        sub.result_size = 0

    @staticmethod
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

    def _types(self, conn: Any) -> dict[int, str]:
        if not self._type_names:
            with conn.cursor() as cur:
                cur.execute("SELECT oid::int8, typname FROM pg_type")
                self._type_names = {int(r[0]): str(r[1]) for r in cur.fetchall()}
        return self._type_names

    @staticmethod
    def _rollback(conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.rollback()

    def _fail(self, st: Statement, current: Sub | None, error: str) -> None:
        now = time.time()
        for sub in st.subs:
            if sub is current or (current is None and sub is st.subs[0]):
                sub.status, sub.error, sub.ended, sub.updated = "FAILED", error, now, now
            elif sub.status != "FINISHED":
                sub.status, sub.updated = "ABORTED", now
        with self.lock:
            self._set(st, "FAILED", error)

    def _abort(self, st: Statement, current: Sub | None) -> None:
        now = time.time()
        msg = f"Query ({st.pid}) cancelled on user's request"
        for sub in st.subs:
            if sub.status != "FINISHED":
                sub.status, sub.updated = "ABORTED", now
                if sub is current:
                    sub.error, sub.ended = msg, now
        with self.lock:
            self._set(st, "ABORTED", msg)

    def _cancel_backend(self, st: Statement) -> None:
        conn = st.conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=5.0)
            except Exception:
                log.warning("could not cancel statement %s", st.id)

    # -- reads -------------------------------------------------------------------------
    def _lookup(self, sid: Any) -> tuple[Statement, Sub | None]:
        if not isinstance(sid, str) or not sid:
            raise _validation("Id is required.")
        base, _, num = sid.partition(":")
        with self.lock:
            st = self.statements.get(base)
        if st is None:
            raise ServiceError("ResourceNotFoundException", f"Query does not exist: {sid}", 400)
        if not num:
            return st, None
        if not st.batch or not num.isdigit() or not 1 <= int(num) <= len(st.subs):
            raise ServiceError("ResourceNotFoundException", f"Query does not exist: {sid}", 400)
        return st, st.subs[int(num) - 1]

    def _wait(self, st: Statement, body: dict[str, Any]) -> None:
        wait = body.get("WaitTimeSeconds")
        if wait:
            st.done.wait(min(float(wait), 60.0))

    def describe_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        st, sub = self._lookup(body.get("Id"))
        self._wait(st, body)
        req = st.request
        common: dict[str, Any] = {"Database": st.database, "RedshiftPid": st.pid}
        for k in ("WorkgroupName", "ClusterIdentifier", "DbUser", "SecretArn"):
            if req.get(k):
                common[k] = req[k]
        if sub is not None:
            return {**sub.describe(), **common}
        last = st.subs[-1]
        out: dict[str, Any] = {
            **common, "Id": st.id, "Status": st.status, "CreatedAt": st.created, "UpdatedAt": st.updated,
            "Duration": _duration(st.started, st.ended), "RedshiftQueryId": 0,
            "HasResultSet": any(s.rows is not None for s in st.subs),
            "ResultRows": last.result_rows, "ResultSize": sum(s.result_size for s in st.subs),
            "QueryString": "; ".join(s.query for s in st.subs) if st.batch else st.subs[0].query,
        }
        if st.error:
            out["Error"] = st.error
        if req.get("Parameters"):
            out["QueryParameters"] = req["Parameters"]
        if st.batch:
            out["SubStatements"] = [s.describe() for s in st.subs]
        return out

    def get_statement_result(self, body: dict[str, Any]) -> dict[str, Any]:
        st, sub = self._lookup(body.get("Id"))
        self._wait(st, body)
        if sub is None:
            if st.batch:
                raise _validation("Batch statement results are per sub-statement: use the Id of a sub-statement "
                                  "(<Id>:<n>).")
            sub = st.subs[0]
        if st.status != "FINISHED" or sub.rows is None:
            raise ServiceError("ResourceNotFoundException",
                               "Query does not have result. Please check query status with DescribeStatement.")
        if sub.too_large:
            raise _validation(f"Database response exceeded size limit: the result set of {sub.result_size} bytes is "
                              "over the Data API's 100 MB; select fewer rows or columns (LIMIT) and run it again.")
        start = 0
        token = body.get("NextToken")
        if token:
            try:
                tid, off = base64.b64decode(token).decode().rsplit("|", 1)
                start = int(off)
                assert tid == sub.id
            except (ValueError, AssertionError):
                raise _validation("Invalid NextToken.") from None
        records: list[list[dict[str, Any]]] = []
        size, i = 0, start
        rows = sub.rows
        while i < len(rows) and len(records) < PAGE_ROWS and size < PAGE_BYTES:
            rec = [to_field(v) for v in rows[i]]
            size += estimate_size([rows[i]])
            records.append(rec)
            i += 1
        out: dict[str, Any] = {"Records": records, "ColumnMetadata": sub.columns, "TotalNumRows": len(rows)}
        if i < len(rows):
            out["NextToken"] = base64.b64encode(f"{sub.id}|{i}".encode()).decode()
        return out

    def _v2_unsupported(self, body: dict[str, Any]) -> dict[str, Any]:
        raise _validation("GetStatementResultV2 (ResultFormat CSV) is not supported by the local cloud; use "
                          "GetStatementResult.")

    def cancel_statement(self, body: dict[str, Any]) -> dict[str, Any]:
        st, _ = self._lookup(body.get("Id"))
        with self.lock:
            if st.status in _DONE:
                raise _validation(f"Could not cancel a query that is already in {st.status} state with ID: {st.id}")
            st.cancelled = True
            if st.status in ("SUBMITTED", "PICKED") and st.conn is None:
                for sub in st.subs:
                    sub.status = "ABORTED"
                self._set(st, "ABORTED", f"Query ({st.pid}) cancelled on user's request")
                return {"Status": True}
        self._cancel_backend(st)
        return {"Status": True}

    def list_statements(self, body: dict[str, Any]) -> dict[str, Any]:
        self._expire()
        status = body.get("Status") or "ALL"
        name = body.get("StatementName")
        with self.lock:
            items = sorted(self.statements.values(), key=lambda s: s.created, reverse=True)
        out_items = []
        for st in items:
            req = st.request
            if status != "ALL" and st.status != status:
                continue
            if name and not str(req.get("StatementName", "")).startswith(name):
                continue
            if body.get("Database") and st.database != body["Database"]:
                continue
            if body.get("WorkgroupName") and req.get("WorkgroupName") != body["WorkgroupName"]:
                continue
            if body.get("ClusterIdentifier") and req.get("ClusterIdentifier") != body["ClusterIdentifier"]:
                continue
            d: dict[str, Any] = {"Id": st.id, "Status": st.status, "CreatedAt": st.created, "UpdatedAt": st.updated,
                                 "IsBatchStatement": st.batch}
            if st.batch:
                d["QueryStrings"] = [s.query for s in st.subs]
            else:
                d["QueryString"] = st.subs[0].query
            for k in ("StatementName", "SecretArn"):
                if req.get(k):
                    d[k] = req[k]
            if req.get("Parameters"):
                d["QueryParameters"] = req["Parameters"]
            out_items.append(d)
        start = 0
        if body.get("NextToken"):
            try:
                start = int(base64.b64decode(body["NextToken"]).decode())
            except ValueError:
                raise _validation("Invalid NextToken.") from None
        size = int(body.get("MaxResults") or 100)
        if not 0 < size <= 100:
            raise _validation("MaxResults must be between 1 and 100.")
        out: dict[str, Any] = {"Statements": out_items[start:start + size]}
        if start + size < len(out_items):
            out["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return out

    # -- catalog -----------------------------------------------------------------------
    def _catalog_op(self, fn: Any) -> Any:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            import psycopg

            database, login = self._login(body)
            database = str(body.get("ConnectedDatabase") or database)
            try:
                with self._connect(login, database) as conn:
                    result: dict[str, Any] = fn(conn, body)
                    return result
            except psycopg.Error as exc:
                raise ServiceError("DatabaseConnectionException", f"ERROR: {_pg_message(exc)}", 500) from None
        return op


def _parameters(params: Any, sqls: list[str]) -> dict[str, str]:
    """Validate ExecuteStatement's ``Parameters`` against the SQL's ``:name`` placeholders, as AWS does.

    Each parameter is ``{"name": [0-9a-zA-Z_]+, "value": non-empty string}`` (Redshift converts the
    text to the type the statement needs); every placeholder needs a parameter and every parameter a
    placeholder (in some statement of a batch).
    """
    from etl_localcloud.redshift.sqltranslate import TranslationError, placeholders

    if params is None:
        return {}
    if not isinstance(params, list) or not params:
        raise _validation("Parameters must be a list of at least one {name, value} parameter.")
    out: dict[str, str] = {}
    for p in params:
        if not isinstance(p, dict) or set(p) - {"name", "value"}:
            raise _validation("Each parameter is an object with only a name and a value.")
        name, value = p.get("name"), p.get("value")
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise _validation(f"Parameter name {name!r} must match the pattern [0-9a-zA-Z_]+.")
        if not isinstance(value, str) or not value:
            raise _validation(f"The value of parameter '{name}' must be a non-empty string.")
        if name in out:
            raise _validation(f"Parameter '{name}' is specified more than once.")
        out[name] = value
    used: list[str] = []
    try:
        for sql in sqls:  # a batch's statements share the parameters
            used += [n for n in placeholders(sql)[1] if n not in used]
    except TranslationError as exc:
        raise _validation(str(exc)) from None
    for name in used:
        if name not in out:
            raise _validation(f"Parameter '{name}' is not specified in the request")
    unused = [n for n in out if n not in used]
    if unused:
        raise _validation(f"Parameter '{unused[0]}' is not used in the SQL statement")
    return out


def _pg_message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return str(primary or str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


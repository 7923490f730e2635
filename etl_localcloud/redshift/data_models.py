"""The Redshift Data API's model: statement records, their registry, and what each operation does to them.

Statements are queued on a worker pool (:mod:`.data_runner`) and run against the database of the
namespace that the workgroup belongs to. Results stay in memory for 24 hours, as the Data API
keeps them. The quotas are AWS's (Redshift Management Guide, "Quotas for the Amazon Redshift Data API").
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.clock import epoch
from etl_localcloud.iam.resources import current_caller
from etl_localcloud.redshift.exceptions import ResourceNotFoundException, ValidationException
from etl_localcloud.redshift.pgadmin import IAM_ROLE, PgAdmin
from etl_localcloud.redshift.results import estimate_size, to_field
from etl_localcloud.redshift.serverless_models import ServerlessStore

__all__ = ["Sub", "Statement", "Target", "DataBackend", "parameters", "pg_message", "RETENTION_SECONDS", "DONE"]

RETENTION_SECONDS = 24 * 3600
PAGE_ROWS = 5000
PAGE_BYTES = 64 * 1024 * 1024
MAX_SQL_BYTES = 100 * 1024  # a query string
MAX_BATCH_SQLS = 40  # Sqls of one BatchExecuteStatement
MAX_RESULT_BYTES = 100 * 1024 * 1024  # a result set the database returns
_PARAM_NAME = re.compile(r"[0-9A-Za-z_]+")
DONE = ("FINISHED", "FAILED", "ABORTED")
# Request members a response echoes when the request had them.
_TARGET_KEYS = ("WorkgroupName", "ClusterIdentifier", "DbUser", "SecretArn")


def duration(started: float, ended: float) -> int:
    """Nanoseconds from ``started`` to ``ended`` (or now); -1 before the start."""
    if not started:
        return -1
    return int(((ended or epoch()) - started) * 1e9)


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
        """DescribeStatement's shape of this sub-statement (``SubStatements`` entries)."""
        out: dict[str, Any] = {
            "Id": self.id, "QueryString": self.query, "Status": self.status,
            "CreatedAt": self.created, "UpdatedAt": self.updated or self.created,
            "Duration": duration(self.started, self.ended), "HasResultSet": self.rows is not None,
            "ResultRows": self.result_rows, "ResultSize": self.result_size, "RedshiftQueryId": 0,
        }
        if self.error:
            out["Error"] = self.error
        return out


@dataclass(frozen=True)
class Target:
    """Where and as whom a request runs: the database and the login (user, password), never a superuser."""

    database: str
    login: tuple[str, str]


@dataclass
class Statement:
    """A submitted ExecuteStatement / BatchExecuteStatement."""

    id: str
    subs: list[Sub]
    batch: bool
    request: dict[str, Any]
    target: Target
    created: float
    params: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # aws:userid of the role session that ran it (None: the user's own credentials)
    status: str = "SUBMITTED"
    error: str | None = None
    updated: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    pid: int = 0
    conn: Any = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def database(self) -> str:
        return self.target.database

    def echoed(self, keys: tuple[str, ...] = _TARGET_KEYS) -> dict[str, Any]:
        """The request members among ``keys`` that the request set."""
        return {k: self.request[k] for k in keys if self.request.get(k)}

    def matches(self, body: dict[str, Any]) -> bool:
        """Whether ListStatements' filters (Status, StatementName prefix, Database, WorkgroupName,
        ClusterIdentifier) select this statement."""
        req = self.request
        status = body.get("Status") or "ALL"
        name = body.get("StatementName")
        return not ((status != "ALL" and self.status != status)
                    or (name and not str(req.get("StatementName", "")).startswith(name))
                    or (body.get("Database") and self.database != body["Database"])
                    or (body.get("WorkgroupName") and req.get("WorkgroupName") != body["WorkgroupName"])
                    or (body.get("ClusterIdentifier") and req.get("ClusterIdentifier") != body["ClusterIdentifier"]))


def parameters(params: Any, sqls: list[str]) -> dict[str, str]:
    """Validate ExecuteStatement's ``Parameters`` against the SQL's ``:name`` placeholders, as AWS does.

    Each parameter is ``{"name": [0-9a-zA-Z_]+, "value": non-empty string}`` (Redshift converts the
    text to the type the statement needs); every placeholder needs a parameter and every parameter a
    placeholder (in some statement of a batch).
    """
    if params is None:
        return {}
    if not isinstance(params, list) or not params:
        raise ValidationException("Parameters must be a list of at least one {name, value} parameter.")
    out: dict[str, str] = {}
    for p in params:
        name, value = _parameter(p)
        if name in out:
            raise ValidationException(f"Parameter '{name}' is specified more than once.")
        out[name] = value
    used = _placeholders_used(sqls)
    for name in used:
        if name not in out:
            raise ValidationException(f"Parameter '{name}' is not specified in the request")
    unused = [n for n in out if n not in used]
    if unused:
        raise ValidationException(f"Parameter '{unused[0]}' is not used in the SQL statement")
    return out


def _parameter(p: Any) -> tuple[str, str]:
    if not isinstance(p, dict) or set(p) - {"name", "value"}:
        raise ValidationException("Each parameter is an object with only a name and a value.")
    name, value = p.get("name"), p.get("value")
    if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
        raise ValidationException(f"Parameter name {name!r} must match the pattern [0-9a-zA-Z_]+.")
    if not isinstance(value, str) or not value:
        raise ValidationException(f"The value of parameter '{name}' must be a non-empty string.")
    return name, value


def _placeholders_used(sqls: list[str]) -> list[str]:
    from etl_localcloud.redshift.sqltranslate import TranslationError, placeholders

    used: list[str] = []
    try:
        for sql in sqls:  # a batch's statements share the parameters
            used += [n for n in placeholders(sql)[1] if n not in used]
    except TranslationError as exc:
        raise ValidationException(str(exc)) from None
    return used


def pg_message(exc: Exception) -> str:
    """PostgreSQL's primary message of ``exc`` (what Redshift puts after ``ERROR:``)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return str(primary or str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


class DataBackend:
    """The statements and the rules of the Data API: targets, logins, lookups, result pages."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore) -> None:
        self.ctx = ctx
        self.store = store
        self.pg = PgAdmin(ctx)
        self.lock = threading.Lock()
        self.statements: dict[str, Statement] = {}
        self._iam_login: tuple[str, str] | None = None

    # -- target ------------------------------------------------------------------------
    def _credentials(self, secret_arn: str | None) -> tuple[str, str] | None:
        if not secret_arn:
            return None
        self.store.ready.wait(30)  # after a restart, the namespaces' secrets are being re-created
        sm = self.ctx.moto_client("secretsmanager")
        try:
            value = sm.get_secret_value(SecretId=secret_arn)["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            raise ValidationException("Secrets Manager can't find the specified secret.") from None
        try:
            data = json.loads(value)
            return str(data["username"]), str(data["password"])
        except (ValueError, KeyError, TypeError):
            raise ValidationException("The secret must be a JSON object with username and password.") from None

    def _endpoint(self, body: dict[str, Any]) -> tuple[str, tuple[str, str] | None]:
        """(database, the namespace admin's login or None): validates WorkgroupName / ClusterIdentifier."""
        wg, cluster = body.get("WorkgroupName"), body.get("ClusterIdentifier")
        if not wg and not cluster:
            raise ValidationException("Either ClusterIdentifier or WorkgroupName needs to be specified.")
        if wg and cluster:
            raise ValidationException("Only one of ClusterIdentifier or WorkgroupName can be specified.")
        if wg:
            try:
                _, ns = self.store.workgroup_database(wg)
            except KeyError:
                raise ValidationException(f"Redshift endpoint doesn't exist in this region. (workgroup '{wg}')") \
                    from None
            pw = self.store.passwords.get(ns["namespaceName"])
            admin = (str(ns["adminUsername"]), str(pw)) if ns.get("adminUsername") and pw else None
            return str(body.get("Database") or ns["dbName"]), admin
        try:
            clusters = self.ctx.moto_client("redshift").describe_clusters(ClusterIdentifier=cluster)["Clusters"]
        except Exception:
            raise ValidationException(f"Redshift endpoint doesn't exist in this region. (cluster '{cluster}')") \
                from None
        return str(body.get("Database") or clusters[0].get("DBName") or "dev"), None

    def target(self, body: dict[str, Any]) -> Target:
        """The database and login a request runs as; never a PostgreSQL superuser.

        A ``SecretArn`` names the user. Without one, AWS maps the caller's IAM identity to a
        database user; locally that is the namespace's admin user (so the kit's objects have
        one owner), or ``IAMR:local-data-api`` for a namespace without an admin user.
        """
        database, admin = self._endpoint(body)
        creds = self._credentials(body.get("SecretArn"))
        return Target(database, creds or admin or self._iam_user())

    def _iam_user(self) -> tuple[str, str]:
        """The ordinary login role standing for an IAM identity (created once per daemon, fresh password)."""
        with self.lock:
            if self._iam_login is None:
                user, pw = "IAMR:local-data-api", secrets.token_urlsafe(24)
                self.pg.ensure_login(user, pw, IAM_ROLE, timeout=10)
                self._iam_login = (user, pw)
            return self._iam_login

    # -- statements --------------------------------------------------------------------
    def expire(self) -> None:
        """Forget finished statements older than the retention."""
        cutoff = epoch() - RETENTION_SECONDS
        with self.lock:
            for sid in [k for k, s in self.statements.items() if s.created < cutoff and s.status in DONE]:
                del self.statements[sid]

    def new_statement(self, body: dict[str, Any], sqls: list[str], batch: bool) -> Statement:
        """A registered statement for ``sqls``, validated as AWS does (size, parameters, target)."""
        self.expire()
        for q in sqls:
            if len(q.encode()) > MAX_SQL_BYTES:
                raise ValidationException("Cannot process query string larger than 100kB")
        params = parameters(body.get("Parameters"), sqls)
        target = self.target(body)  # fails fast on an unknown secret, as AWS does
        now = epoch()
        sid = str(uuid.uuid4())
        subs = [Sub(id=f"{sid}:{i + 1}" if batch else sid, query=q, created=now) for i, q in enumerate(sqls)]
        st = Statement(id=sid, subs=subs, batch=batch, request=body, target=target, created=now, updated=now,
                       params=params, owner=current_caller())
        with self.lock:
            self.statements[sid] = st
        return st

    def lookup(self, sid: Any) -> tuple[Statement, Sub | None]:
        """The statement of ``sid``, and its sub-statement when ``sid`` is ``<Id>:<n>``."""
        if not isinstance(sid, str) or not sid:
            raise ValidationException("Id is required.")
        base, _, num = sid.partition(":")
        with self.lock:
            st = self.statements.get(base)
        if st is None:
            raise ResourceNotFoundException(f"Query does not exist: {sid}")
        if not num:
            return st, None
        if not st.batch or not num.isdigit() or not 1 <= int(num) <= len(st.subs):
            raise ResourceNotFoundException(f"Query does not exist: {sid}")
        return st, st.subs[int(num) - 1]

    def newest_first(self, body: dict[str, Any]) -> list[Statement]:
        """The statements ListStatements' filters select, newest first."""
        self.expire()
        with self.lock:
            items = sorted(self.statements.values(), key=lambda s: s.created, reverse=True)
        return [st for st in items if st.matches(body)]

    def counts(self) -> dict[str, int]:
        """How many statements are in each status."""
        with self.lock:
            counts: dict[str, int] = {}
            for st in self.statements.values():
                counts[st.status] = counts.get(st.status, 0) + 1
        return counts

    @staticmethod
    def result_sub(st: Statement, sub: Sub | None) -> Sub:
        """The sub-statement whose result GetStatementResult returns, refused as AWS refuses."""
        if sub is None:
            if st.batch:
                raise ValidationException("Batch statement results are per sub-statement: use the Id of a "
                                          "sub-statement (<Id>:<n>).")
            sub = st.subs[0]
        if st.status != "FINISHED" or sub.rows is None:
            raise ResourceNotFoundException(
                "Query does not have result. Please check query status with DescribeStatement.")
        if sub.too_large:
            raise ValidationException(f"Database response exceeded size limit: the result set of {sub.result_size} "
                                      "bytes is over the Data API's 100 MB; select fewer rows or columns (LIMIT) and "
                                      "run it again.")
        return sub

    @staticmethod
    def result_page(sub: Sub, token: str | None) -> tuple[list[list[dict[str, Any]]], str | None]:
        """The records of one GetStatementResult page (5000 rows or 64 MB at most) and the next page's token.

        The token names the sub-statement and the next row, so a token of another statement is refused.
        """
        start = 0
        if token:
            try:
                tid, off = base64.b64decode(token).decode().rsplit("|", 1)
                start = int(off)
                assert tid == sub.id
            except (ValueError, AssertionError):
                raise ValidationException("Invalid NextToken.") from None
        records: list[list[dict[str, Any]]] = []
        size, i = 0, start
        rows = sub.rows or []
        while i < len(rows) and len(records) < PAGE_ROWS and size < PAGE_BYTES:
            records.append([to_field(v) for v in rows[i]])
            size += estimate_size([rows[i]])
            i += 1
        return records, (base64.b64encode(f"{sub.id}|{i}".encode()).decode() if i < len(rows) else None)

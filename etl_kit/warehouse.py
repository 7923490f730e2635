"""Warehouse access: SQL in, DataFrame out, on both targets.

The default route is the Redshift Data API (``redshift-data``), which works the same on
AWS and on the local cloud. A direct connection is available where the user has one:
``redshift-connector`` to the workgroup endpoint, on both targets (locally the endpoint is the
local cloud's Redshift front, see :mod:`etl_localcloud.redshift.front`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.exceptions import WaitTimeout, WarehouseError, aws_errors

if TYPE_CHECKING:
    import boto3
    import pandas as pd

__all__ = ["execute", "query", "wait_statement", "connect", "table_exists"]

_TERMINAL = {"FINISHED", "FAILED", "ABORTED"}


def _target_args(settings: Settings) -> dict[str, str]:
    return {"WorkgroupName": settings.redshift_workgroup, "Database": settings.redshift_database}


def wait_statement(statement_id: str, settings: Settings, session: boto3.Session | None = None,
                   *, timeout: float = 300.0) -> dict[str, Any]:
    """Poll ``describe_statement`` until the statement ends; raise :class:`WarehouseError` if it failed."""
    rsd = client("redshift-data", settings, session)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        with aws_errors("describe statement", statement_id):
            desc = rsd.describe_statement(Id=statement_id)
        if desc["Status"] in _TERMINAL:
            break
        if time.monotonic() > deadline:
            raise WaitTimeout(f"statement {statement_id} still {desc['Status']} after {timeout:.0f}s "
                              f"on workgroup {settings.redshift_workgroup!r}; cancel it with cancel_statement")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    if desc["Status"] != "FINISHED":
        raise WarehouseError(f"statement failed on workgroup {settings.redshift_workgroup!r} "
                             f"({desc['Status']}): {desc.get('Error', 'aborted')}\n"
                             f"SQL: {desc.get('QueryString', '')[:500]}")
    return dict(desc)


def execute(sql: str | list[str], settings: Settings, session: boto3.Session | None = None,
            *, parameters: dict[str, Any] | None = None, timeout: float = 300.0) -> dict[str, Any]:
    """Run one statement, or a list of statements as one transaction, through the Data API."""
    rsd = client("redshift-data", settings, session)
    with aws_errors("run SQL on workgroup", settings.redshift_workgroup):
        if isinstance(sql, list):
            resp = rsd.batch_execute_statement(Sqls=sql, **_target_args(settings))
        else:
            extra: dict[str, Any] = {}
            if parameters:
                extra["Parameters"] = [{"name": k, "value": str(v)} for k, v in parameters.items()]
            resp = rsd.execute_statement(Sql=sql, **_target_args(settings), **extra)
    return wait_statement(resp["Id"], settings, session, timeout=timeout)


def _value(field: dict[str, Any], type_name: str) -> Any:
    from decimal import Decimal

    if field.get("isNull"):
        return None
    if "longValue" in field:
        return field["longValue"]
    if "doubleValue" in field:
        return field["doubleValue"]
    if "booleanValue" in field:
        return field["booleanValue"]
    v = field.get("stringValue")
    if v is not None and type_name in {"numeric", "decimal"}:
        return Decimal(v)
    return v


def query(sql: str, settings: Settings, session: boto3.Session | None = None, *,
          parameters: dict[str, Any] | None = None, via: Literal["data_api", "direct"] = "data_api",
          timeout: float = 300.0) -> pd.DataFrame:
    """Run a query and return its rows as a DataFrame.

    Parameters
    ----------
    sql
        The SQL text (Redshift dialect; ``:name`` placeholders with ``parameters``).
    via
        ``"data_api"`` (both targets) or ``"direct"`` (a driver connection).

    Decimals stay exact (``decimal.Decimal``); dates and timestamps are parsed.
    """
    import pandas as pd

    if via == "direct":
        with connect(settings, session) as conn:
            cur = conn.cursor()
            cur.paramstyle = "named"  # the Data API's ``:name`` placeholders, bound by the driver
            cur.execute(sql, parameters or None)
            cols = [d[0] for d in cur.description] if cur.description else []
            return pd.DataFrame(cur.fetchall(), columns=cols)
    desc = execute(sql, settings, session, parameters=parameters, timeout=timeout)
    if not desc.get("HasResultSet"):
        return pd.DataFrame()
    rsd = client("redshift-data", settings, session)
    rows: list[list[Any]] = []
    meta: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Id": desc["Id"]}
        if token:
            kw["NextToken"] = token
        with aws_errors("read statement result", desc["Id"]):
            page = rsd.get_statement_result(**kw)
        meta = page["ColumnMetadata"]
        types = [m.get("typeName", "") for m in meta]
        rows.extend([_value(f, t) for f, t in zip(rec, types, strict=True)] for rec in page["Records"])
        token = page.get("NextToken")
        if not token:
            break
    df = pd.DataFrame(rows, columns=[m.get("label") or m["name"] for m in meta])
    for m in meta:
        name = m.get("label") or m["name"]
        if m.get("typeName") == "date":
            df[name] = pd.to_datetime(df[name]).dt.date
        elif m.get("typeName", "").startswith("timestamp"):
            df[name] = pd.to_datetime(df[name])
    return df


def table_exists(table: str, settings: Settings, session: boto3.Session | None = None) -> bool:
    """Whether ``schema.table`` (from settings' schema) exists in the warehouse."""
    df = query("select count(*) as n from information_schema.tables where table_schema = :schema "
               "and table_name = :table", settings, session,
               parameters={"schema": settings.redshift_schema, "table": table})
    return bool(int(df.iloc[0, 0]))


def connect(settings: Settings, session: boto3.Session | None = None) -> Any:
    """A redshift-connector connection to the workgroup's endpoint as the namespace's admin user, on both targets.

    The credentials come from the namespace's Secrets Manager secret, never from params (locally the admin is
    an ordinary PostgreSQL role, as Redshift's admin cannot reach the host either). On ``local`` the endpoint
    is the local cloud's Redshift front on 127.0.0.1; the kit connects without TLS there (loopback), while
    the driver's own defaults work once the local CA is trusted (docs/local-cloud.md, "Using your own tools").

    Raises
    ------
    WarehouseError
        The namespace has no managed secret, or redshift-connector is missing.
    redshift_connector.Error
        The driver's own error (a refused login, an unreachable endpoint), with a note naming the fix.
    """
    import json

    rs = client("redshift-serverless", settings, session)
    with aws_errors("get workgroup", settings.redshift_workgroup):
        wg = rs.get_workgroup(workgroupName=settings.redshift_workgroup)["workgroup"]
        ns = rs.get_namespace(namespaceName=wg["namespaceName"])["namespace"]
    secret_arn = ns.get("adminPasswordSecretArn")
    if not secret_arn:
        raise WarehouseError(f"namespace {wg['namespaceName']!r} has no managed admin secret; "
                             "re-provision with manageAdminPassword (etl-kit provision)")
    with aws_errors("read secret", secret_arn):
        secret = json.loads(client("secretsmanager", settings, session).get_secret_value(SecretId=secret_arn)
                            ["SecretString"])
    try:
        import redshift_connector
    except ImportError as exc:
        raise WarehouseError("a direct connection needs redshift-connector: pip install redshift-connector") from exc
    ep = wg["endpoint"]
    tls: dict[str, Any] = {"ssl": False} if settings.target == "local" else {}
    try:
        return redshift_connector.connect(host=ep["address"], port=int(ep["port"]),
                                          database=settings.redshift_database, user=secret["username"],
                                          password=secret["password"], timeout=30, **tls)
    except redshift_connector.Error as exc:
        exc.add_note(_connect_hint(settings, wg, secret_arn, exc))
        raise


def _connect_hint(settings: Settings, wg: dict[str, Any], secret_arn: str, exc: Exception) -> str:
    """What to do about a failed direct connection, by what failed and where."""
    where = f"workgroup {settings.redshift_workgroup!r} at {wg['endpoint']['address']}:{wg['endpoint']['port']}"
    if "28P01" in str(exc):
        return (f"etl-kit: the login to {where} was refused with the password of secret {secret_arn}; "
                "re-provision (`etl-kit provision`) to make them agree again")
    if settings.target == "local":
        return f"etl-kit: {where} does not answer; `etl-kit local status` shows what is down, `etl-kit local up` " \
               "restarts it"
    return (f"etl-kit: {where} is not reachable from here (a workgroup that is not publicly accessible answers "
            "only inside its VPC); etl_kit.warehouse.query(...) goes through the Data API instead")

"""The loader: the database user jobs 1 and 2 sign in as, and the secret holding its password (step ``redshift``).

The jobs never sign in as the namespace's admin. Provisioning (as the admin, through the Data API) creates
``redshift_loader_user`` with only the grants a load needs (:class:`LoaderGrants`) and keeps its password,
generated here, in its own Secrets Manager secret ``redshift_loader_secret`` (a JSON secret with
``username`` and ``password``, as the Data API expects for Redshift Serverless). The password is made
once: a second apply finds the user able to sign in with the secret and changes nothing; only a secret
created anew (or a user whose password drifted) has its password set again.

``CREATE USER`` cannot bind its password, so the SQL carries Redshift's ``md5`` hash of it
(``'md5' + md5(password + user)``, accepted by Redshift and by PostgreSQL): the password never appears in
a statement's text. Every other value is a bind parameter; identifiers are validated and quoted.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from etl_kit.exceptions import WarehouseError
from etl_kit.provision.base import Ctx, Resource, read_with, tag_list

__all__ = ["LoaderGrants", "new_password", "password_hash", "loader_secret_arn", "loader_secret_resource",
           "loader_user_resource"]

# Letters and digits only: nothing a literal, a shell or a connection string could misread.
_ALPHABET = string.ascii_letters + string.digits
_PASSWORD_LENGTH = 32
_HASH = re.compile(r"^md5[0-9a-f]{32}$")
# what the load does to each of its tables: read the ledger and the append guard, COPY/INSERT rows, DELETE
# replaced rows and this attempt's ledger row (DELETE also lets the load LOCK the target)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "DELETE")


def new_password() -> str:
    """A random password Redshift accepts (8-64 characters with an upper- and lower-case letter and a digit)."""
    while True:
        pw = "".join(secrets.choice(_ALPHABET) for _ in range(_PASSWORD_LENGTH))
        if any(c.isupper() for c in pw) and any(c.islower() for c in pw) and any(c.isdigit() for c in pw):
            return pw


def password_hash(user: str, password: str) -> str:
    """Redshift's (and PostgreSQL's) md5 form of a password: ``'md5' + md5(password + user)``."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()  # the form Redshift's CREATE USER takes


@dataclass(frozen=True)
class LoaderGrants:
    """The grants of the loader user: what every statement of job 1's ledger path and job 2's load needs.

    ``USAGE, CREATE`` on the target schema (the load's ``CREATE TABLE IF NOT EXISTS`` of its tables),
    ``SELECT, INSERT, DELETE`` on the target and the ledger table, ``TEMP`` on the database (the staging
    table). Not granted: ALTER / DROP / TRUNCATE of the tables (their owner is the admin), other schemas
    and tables, users.
    """

    user: str
    database: str
    schema: str
    tables: tuple[str, ...]

    @classmethod
    def of(cls, ctx: Ctx) -> LoaderGrants:
        s = ctx.settings
        return cls(s.redshift_loader_user, s.redshift_database, s.redshift_schema, (s.redshift_table, s.ledger_table))

    def _q(self) -> tuple[str, str, str, list[str]]:
        from etl_runtime.loadsql import qualified, quote_ident

        return (quote_ident(self.user), quote_ident(self.database), quote_ident(self.schema),
                [qualified(self.schema, t) for t in self.tables])

    def grants(self) -> list[str]:
        """The GRANT statements (idempotent)."""
        user, db, schema, tables = self._q()
        return [f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {user}",
                f"GRANT {', '.join(TABLE_PRIVILEGES)} ON TABLE {', '.join(tables)} TO {user}",
                f"GRANT TEMP ON DATABASE {db} TO {user}"]

    def revocations(self) -> list[str]:
        """What to revoke before the user can be dropped (Redshift refuses to drop a user holding privileges)."""
        user, db, schema, _ = self._q()
        return [f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {user}",
                f"REVOKE ALL ON SCHEMA {schema} FROM {user}", f"REVOKE ALL ON DATABASE {db} FROM {user}"]

    def wanted(self) -> list[str]:
        """Every grant as ``<object>:<privilege>``, the comparable state."""
        out = [f"schema {self.schema}:USAGE", f"schema {self.schema}:CREATE", f"database {self.database}:TEMP"]
        return sorted(out + [f"table {self.schema}.{t}:{p}" for t in self.tables for p in TABLE_PRIVILEGES])

    def check_query(self) -> Any:
        """One parameterised SELECT answering each of :meth:`wanted` with true/false, in that order."""
        from etl_runtime.loadsql import Query

        params = [("u", self.user), ("d", self.database), ("s", self.schema)]
        cols = []
        for i, item in enumerate(self.wanted()):
            what, priv = item.rsplit(":", 1)
            kind, name = what.split(" ", 1)
            if kind == "table":
                params.append((f"t{i}", name))
                cols.append(f"has_table_privilege(CAST(:u AS VARCHAR), CAST(:t{i} AS VARCHAR), '{priv}')")
            else:
                cols.append(f"has_{kind}_privilege(CAST(:u AS VARCHAR), CAST(:{kind[0]} AS VARCHAR), '{priv}')")
        return Query("SELECT " + ", ".join(cols), tuple(params))


def _query(ctx: Ctx, warehouse: Any, query: Any) -> list[list[Any]]:
    from etl_runtime import dataapi

    return dataapi.query(ctx.client("redshift-data"), warehouse, query)


def _batch(ctx: Ctx, warehouse: Any, sqls: list[str], what: str) -> None:
    from etl_runtime import dataapi

    try:
        dataapi.execute_batch(ctx.client("redshift-data"), warehouse, sqls, name=f"etl-kit-{what}", timeout=300)
    except WarehouseError as exc:
        raise WarehouseError(f"{what} of database user {ctx.settings.redshift_loader_user} in workgroup "
                             f"{ctx.settings.redshift_workgroup} failed: {exc}") from exc


# ------------------------------------------------------------------------------------------------
# The secret
# ------------------------------------------------------------------------------------------------
def loader_secret_arn(ctx: Ctx) -> str | None:
    """The ARN of the loader's secret (None while it does not exist)."""
    sm = ctx.client("secretsmanager")
    found = read_with(partial(sm.describe_secret, SecretId=ctx.settings.redshift_loader_secret),
                      lambda r: {"arn": r["ARN"]})()
    return None if found is None else str(found["arn"])


def _secret_value(ctx: Ctx) -> dict[str, Any] | None:
    sm = ctx.client("secretsmanager")
    got = read_with(partial(sm.get_secret_value, SecretId=ctx.settings.redshift_loader_secret),
                    lambda r: {"value": r.get("SecretString") or "{}"})()
    if got is None:
        return None
    try:
        doc = json.loads(got["value"])
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def loader_secret_resource(ctx: Ctx) -> Resource:
    """The secret ``{"username", "password"}`` of the loader user; the password is generated on creation only."""
    s = ctx.settings
    sm = ctx.client("secretsmanager")
    name = s.redshift_loader_secret

    def read() -> dict[str, Any] | None:
        doc = _secret_value(ctx)
        return None if doc is None else {"username": doc.get("username"), "has_password": bool(doc.get("password"))}

    def create() -> None:
        kms = {"KmsKeyId": s.kms_key_id} if s.kms_key_id else {}
        sm.create_secret(Name=name, Description=f"etl-kit: the Redshift user {s.redshift_loader_user} of jobs 1 "
                         f"and 2 in workgroup {s.redshift_workgroup}", SecretString=_secret_string(ctx, None),
                         Tags=tag_list(), **kms)

    def update(_: Any) -> None:  # another user name, or no password: keep the password when there is one
        sm.put_secret_value(SecretId=name, SecretString=_secret_string(ctx, _secret_value(ctx)))

    return Resource("secretsmanager-secret", name, read=read, create=create, update=update,
                    desired={"username": s.redshift_loader_user, "has_password": True},
                    delete=partial(sm.delete_secret, SecretId=name, ForceDeleteWithoutRecovery=True),
                    arn=ctx.arns.loader_secret)


def _secret_string(ctx: Ctx, current: dict[str, Any] | None) -> str:
    password = str((current or {}).get("password") or "") or new_password()
    return json.dumps({"username": ctx.settings.redshift_loader_user, "password": password})


# ------------------------------------------------------------------------------------------------
# The user
# ------------------------------------------------------------------------------------------------
def _signs_in(ctx: Ctx) -> bool:
    """Whether the secret's user can sign in (a ``SELECT current_user`` through the Data API with the secret)."""
    from etl_runtime.loadsql import Query
    from etl_runtime.values import Warehouse

    arn = loader_secret_arn(ctx)
    if arn is None:
        return False
    s = ctx.settings
    from botocore.exceptions import ClientError

    try:
        rows = _query(ctx, Warehouse(s.redshift_workgroup, s.redshift_database, arn), Query("SELECT current_user"))
    except (WarehouseError, ClientError):  # the login is refused, or the secret is not one the Data API takes
        return False
    return bool(rows) and str(rows[0][0]) == s.redshift_loader_user


def _password_sql(ctx: Ctx, verb: str) -> str:
    """``CREATE USER`` / ``ALTER USER`` with the secret's password, as its md5 hash (no bind parameter exists)."""
    from etl_runtime.loadsql import quote_ident, quote_literal

    user = ctx.settings.redshift_loader_user
    password = str((_secret_value(ctx) or {}).get("password") or "")
    if not password:
        raise WarehouseError(f"secret {ctx.settings.redshift_loader_secret} holds no password for user {user}; "
                             "re-run provisioning, which writes one")
    digest = password_hash(user, password)
    assert _HASH.match(digest)
    return f"{verb} USER {quote_ident(user)} PASSWORD {quote_literal(digest)}"


def loader_user_resource(ctx: Ctx, as_admin: Callable[[], Any]) -> Resource:
    """The loader database user: it exists, signs in with its secret and holds exactly :class:`LoaderGrants`.

    ``as_admin`` returns where provisioning's statements run: the workgroup as the namespace's admin (an
    :class:`etl_runtime.values.Warehouse`), or None before the workgroup exists.
    """
    from etl_runtime.loadsql import Query

    s = ctx.settings
    grants = LoaderGrants.of(ctx)

    def read() -> dict[str, Any] | None:
        admin = as_admin()
        if admin is None:
            return None
        if not _query(ctx, admin, Query("SELECT 1 FROM pg_user WHERE usename = :u", (("u", s.redshift_loader_user),))):
            return None
        try:
            [held] = _query(ctx, admin, grants.check_query())
        except WarehouseError:  # a table is missing (the tables resource creates it): nothing granted on it
            held = [False] * len(grants.wanted())
        return {"signs_in": _signs_in(ctx), "grants": [g for g, ok in zip(grants.wanted(), held, strict=True) if ok]}

    def create() -> None:
        admin = as_admin()
        assert admin is not None, "the workgroup exists before its users"
        _batch(ctx, admin, [_password_sql(ctx, "CREATE"), *grants.grants()], "creation")

    def update(diffs: dict[str, Any]) -> None:
        admin = as_admin()
        assert admin is not None, "the workgroup exists before its users"
        sqls = [_password_sql(ctx, "ALTER")] if "signs_in" in diffs else []
        _batch(ctx, admin, sqls + grants.grants(), "update")

    def delete() -> None:
        from etl_runtime.loadsql import quote_ident

        admin = as_admin()
        if admin is not None:
            _batch(ctx, admin, [*grants.revocations(), f"DROP USER {quote_ident(s.redshift_loader_user)}"],
                   "removal")

    return Resource("redshift-user", s.redshift_loader_user, read=read, create=create, update=update, delete=delete,
                    desired={"signs_in": True, "grants": grants.wanted()}, arn=s.redshift_workgroup)

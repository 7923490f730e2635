"""What the Redshift providers do to the embedded PostgreSQL as its superuser: databases and login roles.

Redshift's users are PostgreSQL login roles; none of them is a superuser (a PostgreSQL superuser could
read the host's files and run programs: ``COPY ... PROGRAM``, ``pg_read_file``). Every statement that
names a role or a database binds it as an identifier or a literal, never spliced.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.redshift.exceptions import InternalServerException

__all__ = ["PgAdmin", "ADMIN_ROLE", "IAM_ROLE", "TEMPORARY_ROLE"]

log = logging.getLogger("etl_localcloud.redshift")

# The rights of each kind of login role (after ``WITH``).
# A namespace's admin user may create databases and users and owns its database.
ADMIN_ROLE = "LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS"
# The ordinary role standing for an IAM identity in the Data API.
IAM_ROLE = "LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"
# GetCredentials' temporary user.
TEMPORARY_ROLE = "LOGIN NOSUPERUSER"

# Tables, views and schemas that an earlier etl-kit created as the superuser (oid 10) pass to the admin.
_UPGRADE_OWNERS = """DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT nspname AS s FROM pg_namespace WHERE nspowner = 10
             AND nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname NOT LIKE 'pg\\_%' LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.s, {user});
  END LOOP;
  FOR r IN SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relowner = 10 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' LOOP
    EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', r.s, r.t, {user});
  END LOOP;
END $$"""


class PgAdmin:
    """The daemon's superuser connection to the embedded PostgreSQL, and what the providers do with it."""

    def __init__(self, ctx: CloudContext) -> None:
        self.ctx = ctx

    def connect(self, database: str | None = None, timeout: int = 5, application_name: str = "") -> Any:
        """An autocommit superuser connection (over the unix socket); 500 when PostgreSQL is not running."""
        import psycopg

        pg = self.ctx.postgres
        if pg is None:
            raise InternalServerException("the local warehouse (PostgreSQL) is not running")
        extra: dict[str, Any] = {"application_name": application_name} if application_name else {}
        return psycopg.connect(pg.dsn(database), autocommit=True, connect_timeout=timeout, **extra)

    def ensure_database(self, db: str) -> None:
        """Create database ``db`` unless it exists, with Redshift's functions and system views (:mod:`.compat`).

        ``template1`` gets them first, so a database a user makes with CREATE DATABASE has them too;
        a database of an older etl-kit is upgraded here, at its namespace's creation or restore.
        """
        from psycopg import sql

        self.install_dialect("template1")
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        self.install_dialect(db)

    def install_dialect(self, db: str) -> None:
        """Install or upgrade :mod:`.compat`'s objects in ``db`` (nothing when they are current)."""
        from etl_localcloud.redshift.compat import install

        with self.connect(db, timeout=10) as conn:
            if install(conn):
                log.info("installed Redshift's functions and system views in database %s", db)

    def drop_database(self, db: str) -> None:
        """Drop ``db`` with its sessions; a failure is logged (the namespace is gone either way)."""
        from psycopg import sql

        try:
            with self.connect() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        except Exception:
            log.exception("could not drop database %s", db)

    def ensure_login(self, user: str, password: str, rights: str, valid_until: _dt.datetime | None = None,
                     *, timeout: int = 5) -> None:
        """Create login role ``user`` (or reset it) with ``rights`` (a ``*_ROLE`` constant) and ``password``."""
        from psycopg import sql

        with self.connect(timeout=timeout) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            text = ("ALTER" if exists else "CREATE") + " ROLE {} WITH " + rights + " PASSWORD {}"
            args = [sql.Identifier(user), sql.Literal(password)]
            if valid_until is not None:
                text += " VALID UNTIL {}"
                args.append(sql.Literal(valid_until.isoformat()))
            conn.execute(sql.SQL(text).format(*args))

    def grant_database(self, db: str, user: str) -> None:
        """Make ``user`` the owner of ``db`` (or a member of its owner) and let every user create in ``public``.

        Redshift lets any user create tables in ``public``; PostgreSQL 15+ does not by default.
        Objects an older etl-kit made as the superuser pass to the admin, who could not use them otherwise.
        """
        from psycopg import sql

        with self.connect() as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba), (SELECT rolsuper FROM pg_roles WHERE oid = datdba) "
                                 "FROM pg_database WHERE datname = %s", (db,)).fetchone()
            if owner is None:
                return
            if owner[1]:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), sql.Identifier(user)))
            elif owner[0] != user:  # namespaces sharing a database share its owner's rights
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner[0]), sql.Identifier(user)))
        with self.connect(db) as conn:
            conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO PUBLIC")
            conn.execute(sql.SQL(_UPGRADE_OWNERS).format(user=sql.Literal(user)))

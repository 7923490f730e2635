"""Provider: ``redshift-serverless`` namespaces and workgroups (moto has no backend for it).

Records have AWS's response shapes and are kept as JSON under ``<state_dir>/redshift``
(written atomically and fsynced on every change) so they survive a restart or a crash
of the daemon. A namespace's ``dbName`` is a real database in the
embedded PostgreSQL and its admin user a real login role; with ``manageAdminPassword``
the credentials live in a Secrets Manager secret (in moto) named by
``adminPasswordSecretArn``. A workgroup's endpoint is the front of
:mod:`etl_localcloud.redshift.front` (one port for every workgroup, kept across restarts), which
speaks to Redshift drivers and relays to the embedded PostgreSQL.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.clock import epoch
from etl_localcloud.core.paging import REDSHIFT_SERVERLESS
from etl_localcloud.dispatcher import Provider, ServiceError

__all__ = ["ServerlessProvider", "ServerlessStore"]

log = logging.getLogger("etl_localcloud.redshift")

_NAME = re.compile(r"^[a-z0-9-]{3,64}$")
_DB_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_$]{0,126}$")
_USER = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_$]{0,126}$")
_CREATING_SECONDS = 0.3  # a new workgroup reports CREATING this long, then AVAILABLE


def _validation(msg: str) -> ServiceError:
    return ServiceError("ValidationException", msg)


def _not_found(msg: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", msg)


def _page(items: list[Any], body: dict[str, Any], key: str, limit: int = 100) -> dict[str, Any]:
    return REDSHIFT_SERVERLESS.response(items, body, key, limit)


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


class ServerlessStore:
    """Namespaces, workgroups and tags persisted as JSON; thread-safe."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "redshift"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "serverless.json"
        self.lock = threading.RLock()
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.workgroups: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.passwords: dict[str, str] = {}  # namespace -> admin password (to re-create the secret)
        self.ready = threading.Event()  # set once secrets are restored after a restart
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.namespaces = data.get("namespaces", {})
            self.workgroups = data.get("workgroups", {})
            self.tags = data.get("tags", {})
            self.passwords = data.get("passwords", {})

    def save(self) -> None:
        """Write the records atomically and durably (a crash leaves the old file or the new one)."""
        from etl_localcloud.persistence import write_atomically

        with self.lock:
            data = json.dumps({"namespaces": self.namespaces, "workgroups": self.workgroups,
                               "tags": self.tags, "passwords": self.passwords}, indent=1)
            write_atomically(self.path, data.encode())  # 0600: holds admin passwords

    def workgroup_database(self, workgroup: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(workgroup, namespace) records of ``workgroup``; KeyError if unknown."""
        with self.lock:
            wg = self.workgroups[workgroup]
            return wg, self.namespaces[wg["namespaceName"]]


class ServerlessProvider(Provider):
    """``RedshiftServerless.*`` operations on :class:`ServerlessStore` and the embedded PostgreSQL."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore) -> None:
        super().__init__(name="redshift-serverless", target_prefix="RedshiftServerless")
        self.ctx = ctx
        self.store = store
        self.front: Any = None  # the workgroup endpoint (etl_localcloud.redshift.front.WarehouseFront)
        self.operations = {
            "CreateNamespace": self.create_namespace,
            "GetNamespace": self.get_namespace,
            "ListNamespaces": self.list_namespaces,
            "UpdateNamespace": self.update_namespace,
            "DeleteNamespace": self.delete_namespace,
            "CreateWorkgroup": self.create_workgroup,
            "GetWorkgroup": self.get_workgroup,
            "ListWorkgroups": self.list_workgroups,
            "UpdateWorkgroup": self.update_workgroup,
            "DeleteWorkgroup": self.delete_workgroup,
            "GetCredentials": self.get_credentials,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }
        self.operations = {k: self._after_restore(v) for k, v in self.operations.items()}

    def _after_restore(self, fn: Any) -> Any:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            self.store.ready.wait(30)
            result: dict[str, Any] = fn(body)
            return result
        return op

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Open the workgroup endpoint; after a restart re-create what lives outside the state directory.

        The daemon calls ``start`` before it serves requests, and the secrets are written
        through the daemon's own endpoint, so restoring them happens in the background.
        """
        self._start_front()
        if self.store.namespaces:
            threading.Thread(target=self._restore, name="redshift-serverless-restore", daemon=True).start()
        else:
            self.store.ready.set()

    def _restore(self) -> None:
        try:
            self._restore_all()
        finally:
            self.store.ready.set()

    def _restore_all(self) -> None:
        for name, ns in list(self.store.namespaces.items()):
            try:
                self._ensure_database(ns["dbName"])
                pw = self.store.passwords.get(name)
                if ns.get("adminUsername") and pw:
                    self._ensure_role(ns["adminUsername"], pw)
                    self._grant_database(ns["dbName"], ns["adminUsername"])
                    if ns.get("adminPasswordSecretArn"):
                        ns["adminPasswordSecretArn"] = self._ensure_secret(ns, pw)
            except Exception:
                log.exception("could not restore Redshift Serverless namespace %s", name)
        self.store.save()

    def _start_front(self) -> None:
        from etl_localcloud.redshift.front import WarehouseFront, ensure_tls

        port_file = self.store.dir / "endpoint-port"
        saved = int(port_file.read_text()) if port_file.exists() else 0

        def backend() -> tuple[str, int] | None:
            pg = self.ctx.postgres
            return (pg.host, pg.port) if pg is not None else None

        self.front = WarehouseFront(backend, ensure_tls(self.store.dir / "tls"), port=saved).start()
        if self.front.port != saved:
            port_file.write_text(str(self.front.port))
        log.info("workgroup endpoint on 127.0.0.1:%s (TLS %s)", self.front.port, "on" if self.front.tls else "off")

    def endpoint(self) -> tuple[str, int]:
        """(address, port) of every workgroup: the front once started, else the embedded PostgreSQL."""
        if self.front is not None:
            return self.front.host, self.front.port
        pg = self.ctx.postgres
        return (pg.host, pg.port) if pg else ("127.0.0.1", 5439)

    def close(self) -> None:
        if self.front is not None:
            self.front.close()

    def health(self) -> dict[str, Any]:
        with self.store.lock:
            out: dict[str, Any] = {"ok": True, "namespaces": len(self.store.namespaces),
                                   "workgroups": len(self.store.workgroups)}
        if self.front is not None:
            out["endpoint"] = f"{self.front.host}:{self.front.port}"
            if self.front.tls_files is not None:
                out["trust_bundle"] = str(self.front.tls_files.trust_bundle)
        return out

    # -- PostgreSQL ----------------------------------------------------------------------
    def _pg(self, autocommit: bool = True) -> Any:
        import psycopg

        if self.ctx.postgres is None:
            raise ServiceError("InternalServerException", "the local warehouse (PostgreSQL) is not running", 500)
        return psycopg.connect(self.ctx.postgres.dsn(), autocommit=autocommit, connect_timeout=5)

    def _ensure_database(self, db: str) -> None:
        from psycopg import sql

        with self._pg() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    def _ensure_role(self, user: str, password: str) -> None:
        from psycopg import sql

        with self._pg() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            # Redshift's admin user may create databases and users and owns its database, but a PostgreSQL
            # superuser could read the host's files and run programs (COPY ... PROGRAM, pg_read_file):
            # the admin is an ordinary role that owns the namespace's database.
            conn.execute(sql.SQL(verb + " ROLE {} WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION "
                                 "NOBYPASSRLS PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))

    def _grant_database(self, db: str, user: str) -> None:
        """Make ``user`` the owner of ``db`` (or a member of its owner) and let every user create in ``public``.

        Redshift lets any user create tables in ``public``; PostgreSQL 15+ does not by default.
        Objects an older etl-kit made as the superuser pass to the admin, who could not use them otherwise.
        """
        import psycopg
        from psycopg import sql

        assert self.ctx.postgres is not None
        with self._pg() as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba), (SELECT rolsuper FROM pg_roles WHERE oid = datdba) "
                                 "FROM pg_database WHERE datname = %s", (db,)).fetchone()
            if owner is None:
                return
            if owner[1]:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), sql.Identifier(user)))
            elif owner[0] != user:  # namespaces sharing a database share its owner's rights
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner[0]), sql.Identifier(user)))
        with psycopg.connect(self.ctx.postgres.dsn(db), autocommit=True, connect_timeout=5) as conn:
            conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO PUBLIC")
            conn.execute(sql.SQL(_UPGRADE_OWNERS).format(user=sql.Literal(user)))

    # PostgreSQL roles are cluster-wide while Redshift users belong to one namespace: namespaces that name
    # the same admin user share one login role, so they must share its password (and their secrets follow).
    def _shared_password(self, user: str) -> str:
        for other, ns in self.store.namespaces.items():
            if ns.get("adminUsername") == user and self.store.passwords.get(other):
                return str(self.store.passwords[other])
        return secrets.token_urlsafe(18) + "Aa1"

    def _sync_shared_user(self, user: str, password: str, *, except_namespace: str) -> None:
        for other, ns in self.store.namespaces.items():
            if other == except_namespace or ns.get("adminUsername") != user:
                continue
            if self.store.passwords.get(other) != password:
                self.store.passwords[other] = password
                if ns.get("adminPasswordSecretArn"):
                    ns["adminPasswordSecretArn"] = self._ensure_secret(ns, password)

    def _ensure_secret(self, ns: dict[str, Any], password: str) -> str:
        sm = self.ctx.moto_client("secretsmanager")
        host, port = self.endpoint()
        name = f"redshift!{ns['namespaceName']}-{ns['adminUsername']}"
        value = json.dumps({"username": ns["adminUsername"], "password": password, "engine": "redshift",
                            "host": host, "port": port,
                            "dbname": ns["dbName"]})
        try:
            return str(sm.put_secret_value(SecretId=name, SecretString=value)["ARN"])
        except sm.exceptions.ResourceNotFoundException:
            return str(sm.create_secret(Name=name, SecretString=value,
                                        Description=f"Admin credentials of Redshift Serverless namespace "
                                                    f"{ns['namespaceName']}",
                                        Tags=[{"Key": "aws:redshift:namespace", "Value": ns["namespaceName"]}])["ARN"])

    # -- shapes ------------------------------------------------------------------------
    def _arn(self, kind: str, rid: str) -> str:
        return f"arn:aws:redshift-serverless:{self.ctx.region}:{self.ctx.account_id}:{kind}/{rid}"

    def _ns_out(self, ns: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ns.items() if v is not None}

    def _wg_out(self, wg: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in wg.items() if v is not None and not k.startswith("_")}
        if out.get("status") == "CREATING" and epoch() - wg["_created"] >= _CREATING_SECONDS:
            out["status"] = wg["status"] = "AVAILABLE"
        address, port = self.endpoint()
        out["endpoint"] = {"address": address, "port": port, "vpcEndpoints": []}
        out["port"] = port
        return out

    def _namespace(self, name: str | None) -> dict[str, Any]:
        if not name:
            raise _validation("namespaceName is required")
        ns = self.store.namespaces.get(name)
        if ns is None:
            raise _not_found(f"Namespace {name} does not exist.")
        return ns

    def _workgroup(self, name: str | None) -> dict[str, Any]:
        if not name:
            raise _validation("workgroupName is required")
        wg = self.store.workgroups.get(name)
        if wg is None:
            raise _not_found(f"Serverless workgroup {name} not found.")
        return wg

    @staticmethod
    def _check_name(kind: str, name: Any) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise _validation(f"{kind} name must be 3-64 characters of lowercase letters, numbers and hyphens: "
                              f"{name!r}")
        return name

    def _check_roles(self, body: dict[str, Any]) -> None:
        roles = body.get("iamRoles") or []
        for r in roles:
            if not isinstance(r, str) or not r.startswith("arn:aws:iam::") or ":role/" not in r:
                raise _validation(f"Invalid IAM role ARN: {r!r}")
        default = body.get("defaultIamRoleArn")
        if default and default not in roles:
            raise _validation(f"The default IAM role {default} must be one of the namespace's iamRoles.")

    def _set_tags(self, arn: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self.store.tags.setdefault(arn, {}).update({t["key"]: t["value"] for t in tags})

    # -- namespaces --------------------------------------------------------------------
    def create_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name("Namespace", body.get("namespaceName"))
        db = body.get("dbName") or "dev"
        if not _DB_NAME.match(db):
            raise _validation(f"Invalid dbName {db!r}: letters, digits, _ and $, starting with a letter or _")
        user = body.get("adminUsername")
        password = body.get("adminUserPassword")
        managed = bool(body.get("manageAdminPassword"))
        if managed and password:
            raise _validation("You can't use adminUserPassword if manageAdminPassword is true.")
        if (password or managed) and not user:
            user = "admin"
        if user is not None:
            if not _USER.match(user) or (self.ctx.postgres is not None and user == self.ctx.postgres.user):
                raise _validation(f"adminUsername {user!r} is not valid or is reserved")
            if not password and not managed:
                raise _validation("adminUserPassword or manageAdminPassword is required with adminUsername")
        if password is not None and (len(password) < 8 or not re.search(r"[A-Z]", password)
                                     or not re.search(r"[a-z]", password) or not re.search(r"\d", password)):
            raise _validation("adminUserPassword must be 8-64 characters with an uppercase letter, a lowercase "
                              "letter and a number")
        self._check_roles(body)
        with self.store.lock:
            if name in self.store.namespaces:
                raise ServiceError("ConflictException", f"Namespace with name {name} already exists.")
            nid = str(uuid.uuid4())
            ns: dict[str, Any] = {
                "namespaceName": name, "namespaceId": nid, "namespaceArn": self._arn("namespace", nid),
                "dbName": db, "adminUsername": user, "iamRoles": list(body.get("iamRoles") or []),
                "defaultIamRoleArn": body.get("defaultIamRoleArn"),
                "kmsKeyId": body.get("kmsKeyId") or "AWS_OWNED_KMS_KEY",
                "logExports": list(body.get("logExports") or []), "status": "AVAILABLE",
                "creationDate": round(epoch(), 3),
            }
            self._ensure_database(db)
            if user:
                pw = password or self._shared_password(user)
                self._ensure_role(user, pw)
                self._grant_database(db, user)
                self.store.passwords[name] = pw
                self._sync_shared_user(user, pw, except_namespace=name)
                if managed:
                    ns["adminPasswordSecretArn"] = self._ensure_secret(ns, pw)
                    ns["adminPasswordSecretKmsKeyId"] = body.get("adminPasswordSecretKmsKeyId") or "AWS_OWNED_KMS_KEY"
            self.store.namespaces[name] = ns
            self._set_tags(ns["namespaceArn"], body.get("tags"))
            self.store.save()
            return {"namespace": self._ns_out(ns)}

    def get_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"namespace": self._ns_out(self._namespace(body.get("namespaceName")))}

    def list_namespaces(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            items = [self._ns_out(n) for n in sorted(self.store.namespaces.values(), key=lambda n: n["creationDate"])]
        return _page(items, body, "namespaces")

    def update_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            ns = self._namespace(body.get("namespaceName"))
            merged = {"iamRoles": body.get("iamRoles", ns["iamRoles"]),
                      "defaultIamRoleArn": body.get("defaultIamRoleArn", ns.get("defaultIamRoleArn"))}
            self._check_roles(merged)
            ns.update({k: v for k, v in merged.items() if v is not None})
            for k in ("kmsKeyId", "logExports"):
                if k in body:
                    ns[k] = body[k]
            password = body.get("adminUserPassword")
            managed = body.get("manageAdminPassword")
            if "adminUsername" in body and not (password or managed):
                raise _validation("adminUsername can only be changed together with adminUserPassword or "
                                  "manageAdminPassword")
            if password or managed:
                user = body.get("adminUsername") or ns.get("adminUsername") or "admin"
                pw = password or (secrets.token_urlsafe(18) + "Aa1")
                self._ensure_role(user, pw)
                self._grant_database(ns["dbName"], user)
                ns["adminUsername"] = user
                self.store.passwords[ns["namespaceName"]] = pw
                self._sync_shared_user(user, pw, except_namespace=ns["namespaceName"])
                if managed:
                    ns["adminPasswordSecretArn"] = self._ensure_secret(ns, pw)
                elif ns.get("adminPasswordSecretArn"):
                    ns.pop("adminPasswordSecretArn", None)
                    ns.pop("adminPasswordSecretKmsKeyId", None)
            self.store.save()
            return {"namespace": self._ns_out(ns)}

    def delete_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            ns = self._namespace(body.get("namespaceName"))
            users = [w["workgroupName"] for w in self.store.workgroups.values()
                     if w["namespaceName"] == ns["namespaceName"]]
            if users:
                raise ServiceError("ConflictException",
                                   f"There is an operation running on the namespace. Workgroup {users[0]} is "
                                   "associated with it; delete the workgroup first.")
            del self.store.namespaces[ns["namespaceName"]]
            self.store.passwords.pop(ns["namespaceName"], None)
            self.store.tags.pop(ns["namespaceArn"], None)
            self.store.save()
            still_used = any(n["dbName"] == ns["dbName"] for n in self.store.namespaces.values())
        if not still_used:
            self._drop_database(ns["dbName"])
        if ns.get("adminPasswordSecretArn"):
            try:
                self.ctx.moto_client("secretsmanager").delete_secret(SecretId=ns["adminPasswordSecretArn"],
                                                                     ForceDeleteWithoutRecovery=True)
            except Exception:
                log.warning("could not delete secret %s", ns["adminPasswordSecretArn"])
        return {"namespace": {**self._ns_out(ns), "status": "DELETING"}}

    def _drop_database(self, db: str) -> None:
        from psycopg import sql

        try:
            with self._pg() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        except Exception:
            log.exception("could not drop database %s", db)

    # -- workgroups --------------------------------------------------------------------
    _WG_FIELDS = ("baseCapacity", "maxCapacity", "configParameters", "enhancedVpcRouting", "publiclyAccessible",
                  "securityGroupIds", "subnetIds", "ipAddressType", "pricePerformanceTarget", "trackName")

    def _check_wg(self, body: dict[str, Any]) -> None:
        base = body.get("baseCapacity")
        if base is not None and (not isinstance(base, int) or base < 8 or base > 1024 or base % 8):
            raise _validation("baseCapacity must be between 8 and 1024 RPUs, in units of 8")
        for p in body.get("configParameters") or []:
            if "parameterKey" not in p:
                raise _validation("configParameters entries need parameterKey")

    def create_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._check_name("Workgroup", body.get("workgroupName"))
        self._check_wg(body)
        with self.store.lock:
            ns = self.store.namespaces.get(body.get("namespaceName") or "")
            if ns is None:
                raise _not_found(f"Namespace {body.get('namespaceName')} does not exist.")
            if name in self.store.workgroups:
                raise ServiceError("ConflictException", f"Workgroup with name {name} already exists.")
            taken = [w for w in self.store.workgroups.values() if w["namespaceName"] == ns["namespaceName"]]
            if taken:
                raise ServiceError("ConflictException", f"Namespace {ns['namespaceName']} is already associated "
                                   f"with workgroup {taken[0]['workgroupName']}.")
            wid = str(uuid.uuid4())
            wg: dict[str, Any] = {
                "workgroupName": name, "workgroupId": wid, "workgroupArn": self._arn("workgroup", wid),
                "namespaceName": ns["namespaceName"], "status": "CREATING",
                "baseCapacity": body.get("baseCapacity", 128), "enhancedVpcRouting": False,
                "publiclyAccessible": False, "securityGroupIds": [], "subnetIds": [],
                "configParameters": self._default_params(),
                "creationDate": round(epoch(), 3), "workgroupVersion": "1.0",
                "patchVersion": "1.0.0", "trackName": "current", "ipAddressType": "ipv4",
                "crossAccountVpcs": [], "_created": epoch(),
            }
            for k in self._WG_FIELDS:
                if k in body:
                    wg[k] = body[k]
            if "configParameters" in body:
                wg["configParameters"] = self._merge_params(self._default_params(), body["configParameters"])
            self.store.workgroups[name] = wg
            self._set_tags(wg["workgroupArn"], body.get("tags"))
            self.store.save()
            return {"workgroup": self._wg_out(wg)}

    @staticmethod
    def _default_params() -> list[dict[str, str]]:
        return [{"parameterKey": k, "parameterValue": v} for k, v in (
            ("auto_mv", "true"), ("datestyle", "ISO, MDY"), ("enable_case_sensitive_identifier", "false"),
            ("enable_user_activity_logging", "true"), ("query_group", "default"),
            ("search_path", "$user, public"), ("max_query_execution_time", "14400"))]

    @staticmethod
    def _merge_params(current: list[dict[str, str]], given: list[dict[str, str]]) -> list[dict[str, str]]:
        merged = {p["parameterKey"]: p.get("parameterValue", "") for p in current}
        merged.update({p["parameterKey"]: p.get("parameterValue", "") for p in given})
        return [{"parameterKey": k, "parameterValue": v} for k, v in merged.items()]

    def get_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"workgroup": self._wg_out(self._workgroup(body.get("workgroupName")))}

    def list_workgroups(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            items = [self._wg_out(w) for w in sorted(self.store.workgroups.values(), key=lambda w: w["creationDate"])]
        return _page(items, body, "workgroups")

    def update_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_wg(body)
        with self.store.lock:
            wg = self._workgroup(body.get("workgroupName"))
            for k in self._WG_FIELDS:
                if k in body and k != "configParameters":
                    wg[k] = body[k]
            if "configParameters" in body:
                wg["configParameters"] = self._merge_params(wg.get("configParameters") or [], body["configParameters"])
            self.store.save()
            return {"workgroup": self._wg_out(wg)}

    def delete_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            wg = self._workgroup(body.get("workgroupName"))
            out = self._wg_out(wg)
            del self.store.workgroups[wg["workgroupName"]]
            self.store.tags.pop(wg["workgroupArn"], None)
            self.store.save()
        out["status"] = "DELETING"
        return {"workgroup": out}

    def get_credentials(self, body: dict[str, Any]) -> dict[str, Any]:
        """Temporary credentials: a PostgreSQL login role ``IAMR:local`` valid for ``durationSeconds``."""
        from psycopg import sql

        with self.store.lock:
            wg = self._workgroup(body.get("workgroupName"))
            _ = self.store.namespaces[wg["namespaceName"]]
        seconds = int(body.get("durationSeconds") or 900)
        if not 900 <= seconds <= 3600:
            raise _validation("durationSeconds must be between 900 and 3600")
        user, pw = "IAMR:local", secrets.token_urlsafe(24)
        expires = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=seconds)
        with self._pg() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            conn.execute(sql.SQL(("ALTER" if exists else "CREATE") + " ROLE {} WITH LOGIN NOSUPERUSER PASSWORD {} "
                                 "VALID UNTIL {}").format(sql.Identifier(user), sql.Literal(pw),
                                                          sql.Literal(expires.isoformat())))
        return {"dbUser": user, "dbPassword": pw, "expiration": expires,
                "nextRefreshTime": expires - _dt.timedelta(seconds=60)}

    # -- tags --------------------------------------------------------------------------
    def _known_arn(self, arn: str | None) -> str:
        with self.store.lock:
            known = {n["namespaceArn"] for n in self.store.namespaces.values()} | {
                w["workgroupArn"] for w in self.store.workgroups.values()}
        if not arn or arn not in known:
            raise _not_found(f"Resource {arn} not found.")
        return arn

    def tag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = self._known_arn(body.get("resourceArn"))
        with self.store.lock:
            self._set_tags(arn, body.get("tags") or [])
            if len(self.store.tags.get(arn, {})) > 50:
                raise ServiceError("TooManyTagsException", "A resource can have at most 50 tags.")
            self.store.save()
        return {}

    def untag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = self._known_arn(body.get("resourceArn"))
        with self.store.lock:
            for k in body.get("tagKeys") or []:
                self.store.tags.get(arn, {}).pop(k, None)
            self.store.save()
        return {}

    def list_tags_for_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = self._known_arn(body.get("resourceArn"))
        with self.store.lock:
            return {"tags": [{"key": k, "value": v} for k, v in self.store.tags.get(arn, {}).items()]}

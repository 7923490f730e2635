"""Redshift Serverless' model: namespace and workgroup records, their store, and what each operation does.

Records have AWS's response shapes and are kept as JSON under ``<state_dir>/redshift``
(written atomically and fsynced on every change) so they survive a restart or a crash
of the daemon. A namespace's ``dbName`` is a real database in the embedded PostgreSQL and
its admin user a real login role (:mod:`.pgadmin`); with ``manageAdminPassword`` the
credentials live in a Secrets Manager secret (in moto) named by ``adminPasswordSecretArn``.
A workgroup's endpoint is the front of :mod:`etl_localcloud.redshift.front`.
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
from etl_localcloud.core.arns import arn
from etl_localcloud.core.clock import epoch, utcnow
from etl_localcloud.redshift.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    TooManyTagsException,
    ValidationException,
)
from etl_localcloud.redshift.pgadmin import ADMIN_ROLE, TEMPORARY_ROLE, PgAdmin

__all__ = ["ServerlessStore", "ServerlessBackend", "workgroup_arn"]

log = logging.getLogger("etl_localcloud.redshift")

_NAME = re.compile(r"^[a-z0-9-]{3,64}$")
_DB_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_$]{0,126}$")
_USER = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_$]{0,126}$")
_CREATING_SECONDS = 0.3  # a new workgroup reports CREATING this long, then AVAILABLE
_MAX_TAGS = 50
# What UpdateWorkgroup may change and CreateWorkgroup may set, besides the defaults.
_WG_FIELDS = ("baseCapacity", "maxCapacity", "configParameters", "enhancedVpcRouting", "publiclyAccessible",
              "securityGroupIds", "subnetIds", "ipAddressType", "pricePerformanceTarget", "trackName")
_DEFAULT_PARAMS = (
    ("auto_mv", "true"), ("datestyle", "ISO, MDY"), ("enable_case_sensitive_identifier", "false"),
    ("enable_user_activity_logging", "true"), ("query_group", "default"),
    ("search_path", "$user, public"), ("max_query_execution_time", "14400"))


def workgroup_arn(region: str, account_id: str, workgroup: str) -> str:
    """The ARN of a Redshift Serverless workgroup (``workgroup`` is its id, or its name in events)."""
    return arn("redshift-serverless", region, account_id, f"workgroup/{workgroup}")


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

    def namespace(self, name: str | None) -> dict[str, Any]:
        """The record of namespace ``name``; ValidationException / ResourceNotFoundException as AWS answers."""
        return _find(self.namespaces, name, "namespaceName", f"Namespace {name} does not exist.")

    def workgroup(self, name: str | None) -> dict[str, Any]:
        """The record of workgroup ``name``; ValidationException / ResourceNotFoundException as AWS answers."""
        return _find(self.workgroups, name, "workgroupName", f"Serverless workgroup {name} not found.")

    def workgroups_of(self, namespace: str) -> list[dict[str, Any]]:
        """The workgroups associated with ``namespace`` (at most one)."""
        return [w for w in self.workgroups.values() if w["namespaceName"] == namespace]


def _find(records: dict[str, dict[str, Any]], name: str | None, member: str, missing: str) -> dict[str, Any]:
    if not name:
        raise ValidationException(f"{member} is required")
    record = records.get(name)
    if record is None:
        raise ResourceNotFoundException(missing)
    return record


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationException(f"{kind} name must be 3-64 characters of lowercase letters, numbers and hyphens: "
                                  f"{name!r}")
    return name


def _check_roles(roles: list[Any], default: str | None) -> None:
    for r in roles:
        if not isinstance(r, str) or not r.startswith("arn:aws:iam::") or ":role/" not in r:
            raise ValidationException(f"Invalid IAM role ARN: {r!r}")
    if default and default not in roles:
        raise ValidationException(f"The default IAM role {default} must be one of the namespace's iamRoles.")


def _check_password(password: str | None) -> None:
    if password is not None and (len(password) < 8 or not re.search(r"[A-Z]", password)
                                 or not re.search(r"[a-z]", password) or not re.search(r"\d", password)):
        raise ValidationException("adminUserPassword must be 8-64 characters with an uppercase letter, a lowercase "
                                  "letter and a number")


def _check_workgroup_settings(body: dict[str, Any]) -> None:
    base = body.get("baseCapacity")
    if base is not None and (not isinstance(base, int) or base < 8 or base > 1024 or base % 8):
        raise ValidationException("baseCapacity must be between 8 and 1024 RPUs, in units of 8")
    for p in body.get("configParameters") or []:
        if "parameterKey" not in p:
            raise ValidationException("configParameters entries need parameterKey")


def _merge_params(current: list[dict[str, str]], given: list[dict[str, str]]) -> list[dict[str, str]]:
    merged = {p["parameterKey"]: p.get("parameterValue", "") for p in current}
    merged.update({p["parameterKey"]: p.get("parameterValue", "") for p in given})
    return [{"parameterKey": k, "parameterValue": v} for k, v in merged.items()]


def _default_params() -> list[dict[str, str]]:
    return [{"parameterKey": k, "parameterValue": v} for k, v in _DEFAULT_PARAMS]


def _new_password() -> str:
    return secrets.token_urlsafe(18) + "Aa1"


class ServerlessBackend:
    """What each Redshift Serverless operation does to the store, the warehouse and Secrets Manager.

    Methods take the request's members (AWS's input shape) and return records; the provider
    (:mod:`.serverless`) shapes the responses.
    """

    def __init__(self, ctx: CloudContext, store: ServerlessStore) -> None:
        self.ctx = ctx
        self.store = store
        self.pg = PgAdmin(ctx)
        self.front: Any = None  # the workgroup endpoint (etl_localcloud.redshift.front.WarehouseFront)

    # -- the workgroup endpoint ----------------------------------------------------------
    def start_front(self) -> None:
        """Open the front every workgroup's endpoint names, on the port it had before a restart."""
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

    def close_front(self) -> None:
        if self.front is not None:
            self.front.close()

    # -- restart -----------------------------------------------------------------------
    def restore(self) -> None:
        """Re-create what lives outside the state directory (databases, roles, moto's secrets); then ready."""
        try:
            for name, ns in list(self.store.namespaces.items()):
                try:
                    self._restore_namespace(name, ns)
                except Exception:
                    log.exception("could not restore Redshift Serverless namespace %s", name)
            self.store.save()
        finally:
            self.store.ready.set()

    def _restore_namespace(self, name: str, ns: dict[str, Any]) -> None:
        self.pg.ensure_database(ns["dbName"])
        pw = self.store.passwords.get(name)
        if ns.get("adminUsername") and pw:
            self.pg.ensure_login(ns["adminUsername"], pw, ADMIN_ROLE)
            self.pg.grant_database(ns["dbName"], ns["adminUsername"])
            if ns.get("adminPasswordSecretArn"):
                ns["adminPasswordSecretArn"] = self._ensure_secret(ns, pw)

    # -- admin users -------------------------------------------------------------------
    # PostgreSQL roles are cluster-wide while Redshift users belong to one namespace: namespaces that name
    # the same admin user share one login role, so they must share its password (and their secrets follow).
    def _shared_password(self, user: str) -> str:
        for other, ns in self.store.namespaces.items():
            if ns.get("adminUsername") == user and self.store.passwords.get(other):
                return str(self.store.passwords[other])
        return _new_password()

    def _set_admin(self, ns: dict[str, Any], user: str, password: str, managed: bool) -> None:
        """Make ``user`` with ``password`` the admin of ``ns`` (a login role owning its database)."""
        self.pg.ensure_login(user, password, ADMIN_ROLE)
        self.pg.grant_database(ns["dbName"], user)
        ns["adminUsername"] = user
        name = ns["namespaceName"]
        self.store.passwords[name] = password
        for other, rec in self.store.namespaces.items():
            if other == name or rec.get("adminUsername") != user or self.store.passwords.get(other) == password:
                continue
            self.store.passwords[other] = password
            if rec.get("adminPasswordSecretArn"):
                rec["adminPasswordSecretArn"] = self._ensure_secret(rec, password)
        if managed:
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

    def _delete_secret(self, secret_arn: str) -> None:
        try:
            self.ctx.moto_client("secretsmanager").delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
        except Exception:
            log.warning("could not delete secret %s", secret_arn)

    # -- namespaces --------------------------------------------------------------------
    def _admin_request(self, body: dict[str, Any]) -> tuple[str | None, str | None, bool]:
        """(adminUsername, adminUserPassword, manageAdminPassword) of a CreateNamespace, checked as AWS does."""
        user = body.get("adminUsername")
        password = body.get("adminUserPassword")
        managed = bool(body.get("manageAdminPassword"))
        if managed and password:
            raise ValidationException("You can't use adminUserPassword if manageAdminPassword is true.")
        if (password or managed) and not user:
            user = "admin"
        if user is not None:
            if not _USER.match(user) or (self.ctx.postgres is not None and user == self.ctx.postgres.user):
                raise ValidationException(f"adminUsername {user!r} is not valid or is reserved")
            if not password and not managed:
                raise ValidationException("adminUserPassword or manageAdminPassword is required with adminUsername")
        _check_password(password)
        return user, password, managed

    def _new_namespace(self, name: str, db: str, body: dict[str, Any]) -> dict[str, Any]:
        nid = str(uuid.uuid4())
        return {
            "namespaceName": name, "namespaceId": nid,
            "namespaceArn": arn("redshift-serverless", self.ctx.region, self.ctx.account_id, f"namespace/{nid}"),
            "dbName": db, "adminUsername": None, "iamRoles": list(body.get("iamRoles") or []),
            "defaultIamRoleArn": body.get("defaultIamRoleArn"),
            "kmsKeyId": body.get("kmsKeyId") or "AWS_OWNED_KMS_KEY",
            "logExports": list(body.get("logExports") or []), "status": "AVAILABLE",
            "creationDate": round(epoch(), 3),
        }

    def create_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new namespace: its database, its admin user (and secret), its tags."""
        name = _check_name("Namespace", body.get("namespaceName"))
        db = body.get("dbName") or "dev"
        if not _DB_NAME.match(db):
            raise ValidationException(f"Invalid dbName {db!r}: letters, digits, _ and $, starting with a letter or _")
        user, password, managed = self._admin_request(body)
        _check_roles(body.get("iamRoles") or [], body.get("defaultIamRoleArn"))
        with self.store.lock:
            if name in self.store.namespaces:
                raise ConflictException(f"Namespace with name {name} already exists.")
            ns = self._new_namespace(name, db, body)
            self.pg.ensure_database(db)
            if user:
                self._set_admin(ns, user, password or self._shared_password(user), managed)
                if managed:
                    ns["adminPasswordSecretKmsKeyId"] = body.get("adminPasswordSecretKmsKeyId") or "AWS_OWNED_KMS_KEY"
            self.store.namespaces[name] = ns
            self._set_tags(ns["namespaceArn"], body.get("tags"))
            self.store.save()
            return ns

    def update_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change a namespace's roles, KMS key, log exports or admin user and password."""
        with self.store.lock:
            ns = self.store.namespace(body.get("namespaceName"))
            roles = body.get("iamRoles", ns["iamRoles"])
            default = body.get("defaultIamRoleArn", ns.get("defaultIamRoleArn"))
            _check_roles(roles or [], default)
            ns.update({k: v for k, v in (("iamRoles", roles), ("defaultIamRoleArn", default)) if v is not None})
            for k in ("kmsKeyId", "logExports"):
                if k in body:
                    ns[k] = body[k]
            password = body.get("adminUserPassword")
            managed = body.get("manageAdminPassword")
            if "adminUsername" in body and not (password or managed):
                raise ValidationException("adminUsername can only be changed together with adminUserPassword or "
                                          "manageAdminPassword")
            if password or managed:
                user = body.get("adminUsername") or ns.get("adminUsername") or "admin"
                self._set_admin(ns, user, password or _new_password(), bool(managed))
                if not managed and ns.get("adminPasswordSecretArn"):
                    ns.pop("adminPasswordSecretArn", None)
                    ns.pop("adminPasswordSecretKmsKeyId", None)
            self.store.save()
            return ns

    def delete_namespace(self, name: str | None) -> dict[str, Any]:
        """Remove a namespace without a workgroup; its database goes when no other namespace names it."""
        with self.store.lock:
            ns = self.store.namespace(name)
            users = self.store.workgroups_of(ns["namespaceName"])
            if users:
                raise ConflictException(f"There is an operation running on the namespace. Workgroup "
                                        f"{users[0]['workgroupName']} is associated with it; delete the workgroup "
                                        "first.")
            del self.store.namespaces[ns["namespaceName"]]
            self.store.passwords.pop(ns["namespaceName"], None)
            self.store.tags.pop(ns["namespaceArn"], None)
            self.store.save()
            still_used = any(n["dbName"] == ns["dbName"] for n in self.store.namespaces.values())
        if not still_used:
            self.pg.drop_database(ns["dbName"])
        if ns.get("adminPasswordSecretArn"):
            self._delete_secret(ns["adminPasswordSecretArn"])
        return ns

    # -- workgroups --------------------------------------------------------------------
    def _new_workgroup(self, name: str, ns: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        wid = str(uuid.uuid4())
        wg: dict[str, Any] = {
            "workgroupName": name, "workgroupId": wid,
            "workgroupArn": workgroup_arn(self.ctx.region, self.ctx.account_id, wid),
            "namespaceName": ns["namespaceName"], "status": "CREATING",
            "baseCapacity": body.get("baseCapacity", 128), "enhancedVpcRouting": False,
            "publiclyAccessible": False, "securityGroupIds": [], "subnetIds": [],
            "configParameters": _default_params(),
            "creationDate": round(epoch(), 3), "workgroupVersion": "1.0",
            "patchVersion": "1.0.0", "trackName": "current", "ipAddressType": "ipv4",
            "crossAccountVpcs": [], "_created": epoch(),
        }
        for k in _WG_FIELDS:
            if k in body:
                wg[k] = body[k]
        if "configParameters" in body:
            wg["configParameters"] = _merge_params(_default_params(), body["configParameters"])
        return wg

    def create_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new workgroup of a namespace that has none (CREATING for a moment, then AVAILABLE)."""
        name = _check_name("Workgroup", body.get("workgroupName"))
        _check_workgroup_settings(body)
        with self.store.lock:
            ns = self.store.namespaces.get(body.get("namespaceName") or "")
            if ns is None:
                raise ResourceNotFoundException(f"Namespace {body.get('namespaceName')} does not exist.")
            if name in self.store.workgroups:
                raise ConflictException(f"Workgroup with name {name} already exists.")
            taken = self.store.workgroups_of(ns["namespaceName"])
            if taken:
                raise ConflictException(f"Namespace {ns['namespaceName']} is already associated "
                                        f"with workgroup {taken[0]['workgroupName']}.")
            wg = self._new_workgroup(name, ns, body)
            self.store.workgroups[name] = wg
            self._set_tags(wg["workgroupArn"], body.get("tags"))
            self.store.save()
            return wg

    def update_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change a workgroup's settings; configParameters merge into the current ones."""
        _check_workgroup_settings(body)
        with self.store.lock:
            wg = self.store.workgroup(body.get("workgroupName"))
            for k in _WG_FIELDS:
                if k in body and k != "configParameters":
                    wg[k] = body[k]
            if "configParameters" in body:
                wg["configParameters"] = _merge_params(wg.get("configParameters") or [], body["configParameters"])
            self.store.save()
            return wg

    def delete_workgroup(self, name: str | None) -> dict[str, Any]:
        """Remove a workgroup and its tags; returns its last record."""
        with self.store.lock:
            wg = self.store.workgroup(name)
            del self.store.workgroups[wg["workgroupName"]]
            self.store.tags.pop(wg["workgroupArn"], None)
            self.store.save()
            return wg

    @staticmethod
    def settle(wg: dict[str, Any]) -> None:
        """A workgroup reports CREATING for a moment after its creation, then AVAILABLE."""
        if wg.get("status") == "CREATING" and epoch() - wg["_created"] >= _CREATING_SECONDS:
            wg["status"] = "AVAILABLE"

    def get_credentials(self, workgroup: str | None, duration: Any) -> tuple[str, str, _dt.datetime]:
        """(user, password, expiry) of a temporary login ``IAMR:local`` valid for ``duration`` seconds."""
        with self.store.lock:
            wg = self.store.workgroup(workgroup)
            _ = self.store.namespaces[wg["namespaceName"]]
        seconds = int(duration or 900)
        if not 900 <= seconds <= 3600:
            raise ValidationException("durationSeconds must be between 900 and 3600")
        user, pw = "IAMR:local", secrets.token_urlsafe(24)
        expires = utcnow() + _dt.timedelta(seconds=seconds)
        self.pg.ensure_login(user, pw, TEMPORARY_ROLE, expires)
        return user, pw, expires

    # -- tags --------------------------------------------------------------------------
    def _set_tags(self, resource: str, tags: list[dict[str, str]] | None) -> None:
        if tags:
            self.store.tags.setdefault(resource, {}).update({t["key"]: t["value"] for t in tags})

    def known_arn(self, resource: str | None) -> str:
        """``resource`` when it is the ARN of a namespace or workgroup, else ResourceNotFoundException."""
        with self.store.lock:
            known = {n["namespaceArn"] for n in self.store.namespaces.values()} | {
                w["workgroupArn"] for w in self.store.workgroups.values()}
        if not resource or resource not in known:
            raise ResourceNotFoundException(f"Resource {resource} not found.")
        return resource

    def tag_resource(self, resource: str | None, tags: list[dict[str, str]]) -> None:
        """Add or replace tags; a resource holds at most 50."""
        resource = self.known_arn(resource)
        with self.store.lock:
            self._set_tags(resource, tags)
            if len(self.store.tags.get(resource, {})) > _MAX_TAGS:
                raise TooManyTagsException("A resource can have at most 50 tags.")
            self.store.save()

    def untag_resource(self, resource: str | None, keys: list[str]) -> None:
        """Remove the tags named by ``keys``."""
        resource = self.known_arn(resource)
        with self.store.lock:
            for k in keys:
                self.store.tags.get(resource, {}).pop(k, None)
            self.store.save()

    def tags_of(self, resource: str | None) -> dict[str, str]:
        """The tags of a namespace or workgroup."""
        resource = self.known_arn(resource)
        with self.store.lock:
            return dict(self.store.tags.get(resource, {}))

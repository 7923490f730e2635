"""Step ``redshift``: Serverless namespace and workgroup, the admin secret, the Glue connection, the tables,
and the loader user the jobs sign in as with its secret (:mod:`etl_kit.provision.redshift_loader`).

The admin password is managed by Secrets Manager (``manageAdminPassword``): it never appears
in params, logs or outputs; only provisioning uses it. The Redshift role is attached (default role) for
COPY. Tables and the loader user are created through the Data API with the admin secret.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import cache, partial
from typing import Any

from etl_kit.config import Settings
from etl_kit.exceptions import WarehouseError
from etl_kit.provision import glue, network, redshift_loader
from etl_kit.provision.base import Ctx, Resource, Step, read_with, tag_list, wait_until

__all__ = [
    "STEP",
    "available",
    "admin_secret_arn",
    "workgroup_exists",
    "table_ddl",
    "execute",
]

_UNAVAILABLE = "the local cloud has no redshift-serverless provider yet"


def available(ctx: Ctx) -> bool:
    """False when the target has no Redshift Serverless API (plain moto on local)."""
    if not ctx.local:
        return True
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ctx.client("redshift-serverless").list_namespaces(maxResults=1)
    except (ClientError, BotoCoreError):
        return False
    return True


def _namespace(ctx: Ctx) -> dict[str, Any] | None:
    get = partial(ctx.client("redshift-serverless").get_namespace, namespaceName=ctx.settings.redshift_namespace)
    return read_with(get, lambda r: dict(r["namespace"]))()


def _workgroup(ctx: Ctx) -> dict[str, Any] | None:
    get = partial(ctx.client("redshift-serverless").get_workgroup, workgroupName=ctx.settings.redshift_workgroup)
    return read_with(get, lambda r: dict(r["workgroup"]))()


def workgroup_exists(ctx: Ctx) -> bool:
    """Whether the workgroup exists (statements can run on it)."""
    return _workgroup(ctx) is not None


def _as_admin(ctx: Ctx) -> Any:
    """Where provisioning's statements run: the workgroup as the namespace's admin (None before it exists)."""
    from etl_runtime.values import Warehouse

    arn = admin_secret_arn(ctx)
    if not arn or not workgroup_exists(ctx):
        return None
    return Warehouse(ctx.settings.redshift_workgroup, ctx.settings.redshift_database, arn)


def admin_secret_arn(ctx: Ctx) -> str | None:
    """The ARN of the Secrets Manager secret holding the admin password (None when unknown)."""
    if not available(ctx):
        return None
    ns = _namespace(ctx)
    return None if ns is None else ns.get("adminPasswordSecretArn")


def _role_arns(roles: list[Any]) -> list[str]:
    # The API returns "IamRole(applyStatus=in-sync, iamRoleArn=arn:...)" strings (or plain ARNs).
    out = []
    for r in roles:
        m = re.search(r"iamRoleArn=([^,)]+)", str(r))
        out.append(m.group(1) if m else str(r))
    return sorted(out)


def table_ddl(settings: Settings) -> list[str]:
    """CREATE statements for the target and ledger tables: job 2's own DDL, so both always agree."""
    from etl_runtime.contract import compile_contract
    from etl_runtime.loadsql import ledger_ddl, target_ddl

    contract = compile_contract(settings.dataset_contract.model_dump(mode="json"))
    target = _load_target(settings)
    return [f"CREATE SCHEMA IF NOT EXISTS {target.schema}", target_ddl(target, contract), ledger_ddl(target)]


def execute(ctx: Ctx, sqls: list[str], secret_arn: str) -> None:
    """Run ``sqls`` as one Data API batch (one transaction) and wait; raise WarehouseError on failure."""
    rd = ctx.client("redshift-data")
    s = ctx.settings
    sid = rd.batch_execute_statement(WorkgroupName=s.redshift_workgroup, Database=s.redshift_database,
                                     SecretArn=secret_arn, Sqls=sqls, StatementName="etl-kit-provision")["Id"]
    deadline = time.monotonic() + 300
    while True:
        d = rd.describe_statement(Id=sid)
        if d["Status"] == "FINISHED":
            return
        if d["Status"] in ("FAILED", "ABORTED"):
            raise WarehouseError(f"creating tables in {s.redshift_workgroup} failed: {d.get('Error', d['Status'])}")
        if time.monotonic() > deadline:
            raise WarehouseError(f"creating tables in {s.redshift_workgroup} did not finish in 300s (statement {sid})")
        time.sleep(0.2 if ctx.local else 2)


def _wait_for(ctx: Ctx, what: str, probe: Callable[[], bool]) -> None:
    wait_until(what, probe, local=ctx.local)


def _namespace_available(ctx: Ctx) -> bool:
    return (_namespace(ctx) or {}).get("status") == "AVAILABLE"


def _workgroup_available(ctx: Ctx) -> bool:
    return (_workgroup(ctx) or {}).get("status") == "AVAILABLE"


def _namespace_resource(ctx: Ctx, ns: dict[str, Any] | None) -> Resource:
    rs = ctx.client("redshift-serverless")
    s = ctx.settings
    name = s.redshift_namespace
    role = ctx.arns.role(s.redshift_role)

    def project(r: dict[str, Any]) -> dict[str, Any]:
        n = r["namespace"]
        return {"iamRoles": _role_arns(n.get("iamRoles", [])), "defaultIamRoleArn": n.get("defaultIamRoleArn"),
                "adminUsername": n.get("adminUsername"), "dbName": n.get("dbName")}

    def available() -> None:
        _wait_for(ctx, f"Redshift namespace {name}", lambda: _namespace_available(ctx))

    def create() -> None:
        kms = {"kmsKeyId": s.kms_key_id} if s.kms_key_id else {}
        rs.create_namespace(namespaceName=name, adminUsername=s.redshift_admin_user, manageAdminPassword=True,
                            dbName=s.redshift_database, iamRoles=[role], defaultIamRoleArn=role,
                            tags=tag_list("key", "value"), **kms)
        available()

    def update(diffs: dict[str, Any]) -> None:
        if {"iamRoles", "defaultIamRoleArn"} & set(diffs):
            rs.update_namespace(namespaceName=name, iamRoles=[role], defaultIamRoleArn=role)
            available()
        if "adminUsername" in diffs:
            rs.update_namespace(namespaceName=name, adminUsername=s.redshift_admin_user, manageAdminPassword=True)
            available()

    def delete() -> None:
        _wait_for(ctx, f"deletion of workgroup {s.redshift_workgroup}", lambda: _workgroup(ctx) is None)
        rs.delete_namespace(namespaceName=name)
        _wait_for(ctx, f"deletion of namespace {name}", lambda: _namespace(ctx) is None)

    return Resource("redshift-namespace", name, read=read_with(partial(rs.get_namespace, namespaceName=name), project),
                    desired={"iamRoles": [role], "defaultIamRoleArn": role, "adminUsername": s.redshift_admin_user,
                             "dbName": s.redshift_database},
                    create=create, update=update, delete=delete, arn=(ns or {}).get("namespaceArn", ""),
                    is_data=True, extra={"secret_arn": (ns or {}).get("adminPasswordSecretArn")})


def _secret_resource(ctx: Ctx) -> Resource:
    """The namespace's managed admin secret: created by asking the namespace to manage its password."""
    s = ctx.settings

    def read() -> dict[str, Any] | None:
        arn = admin_secret_arn(ctx)
        return read_with(partial(ctx.client("secretsmanager").describe_secret, SecretId=arn))() if arn else None

    def create() -> None:
        ctx.client("redshift-serverless").update_namespace(
            namespaceName=s.redshift_namespace, adminUsername=s.redshift_admin_user, manageAdminPassword=True)
        _wait_for(ctx, f"Redshift namespace {s.redshift_namespace}", lambda: _namespace_available(ctx))

    return Resource("secretsmanager-secret", f"redshift!{s.redshift_namespace}-{s.redshift_admin_user}",
                    read=read, create=create, part_of=s.redshift_namespace)


def _workgroup_resource(ctx: Ctx, wg: dict[str, Any] | None, net: Callable[[], dict[str, Any]]) -> Resource:
    rs = ctx.client("redshift-serverless")
    s = ctx.settings
    name = s.redshift_workgroup

    def desired() -> dict[str, Any]:
        return {"namespaceName": s.redshift_namespace, "baseCapacity": s.redshift_base_capacity,
                "publiclyAccessible": False, "subnetIds": sorted(net()["subnet_ids"]),
                "securityGroupIds": [net()["security_group_id"]]}

    def project(r: dict[str, Any]) -> dict[str, Any]:
        w = r["workgroup"]
        return {"namespaceName": w.get("namespaceName"), "baseCapacity": w.get("baseCapacity"),
                "publiclyAccessible": w.get("publiclyAccessible"), "subnetIds": sorted(w.get("subnetIds", [])),
                "securityGroupIds": sorted(w.get("securityGroupIds", []))}

    def available() -> None:
        _wait_for(ctx, f"Redshift workgroup {name}", lambda: _workgroup_available(ctx))

    def create() -> None:
        rs.create_workgroup(workgroupName=name, tags=tag_list("key", "value"), **desired())
        available()

    def update(diffs: dict[str, Any]) -> None:
        want = desired()
        for key in ("baseCapacity", "publiclyAccessible", "subnetIds", "securityGroupIds"):
            if key in diffs:  # AWS takes one of these changes per call
                rs.update_workgroup(workgroupName=name, **{key: want[key]})
                available()

    def delete() -> None:
        rs.delete_workgroup(workgroupName=name)
        _wait_for(ctx, f"deletion of workgroup {name}", lambda: _workgroup(ctx) is None)

    endpoint = (wg or {}).get("endpoint")
    where = {"address": endpoint["address"], "port": endpoint["port"]} if endpoint else None
    return Resource("redshift-workgroup", name, read=read_with(partial(rs.get_workgroup, workgroupName=name), project),
                    desired=desired, create=create, update=update, delete=delete,
                    arn=(wg or {}).get("workgroupArn", ""), is_data=True, extra={"endpoint": where})


def _jdbc_target(ctx: Ctx, net: Callable[[], dict[str, Any]]) -> glue.JdbcTarget | None:
    """Where the Glue connection points, once the workgroup has an endpoint."""
    endpoint = (_workgroup(ctx) or {}).get("endpoint")
    if not endpoint:
        return None
    n = net()
    return glue.JdbcTarget(address=endpoint["address"], port=endpoint["port"], subnet_id=n["subnet_ids"][0],
                           availability_zone=n["availability_zone"], security_group_id=n["security_group_id"],
                           secret_arn=admin_secret_arn(ctx))


def _tables_resource(ctx: Ctx) -> Resource:
    s = ctx.settings

    def read() -> dict[str, Any] | None:
        arn = admin_secret_arn(ctx)
        if not arn or _workgroup(ctx) is None:
            return None
        r = ctx.client("redshift-data").list_tables(
            WorkgroupName=s.redshift_workgroup, Database=s.redshift_database, SecretArn=arn,
            SchemaPattern=s.redshift_schema, TablePattern="%")
        have = {t["name"] for t in r.get("Tables", [])}
        if not {s.redshift_table, s.ledger_table} <= have:
            return None
        return {"ledger_layout": _ledger_layout(ctx)}

    def create() -> None:
        arn = admin_secret_arn(ctx)
        assert arn, "namespace has no admin secret"
        execute(ctx, table_ddl(s), arn)

    def update(_: Any) -> None:
        # the jobs' loader user may not ALTER the ledger (the admin owns it): its migration happens here
        from etl_runtime.job2 import ensure_ledger_layout

        ensure_ledger_layout(ctx.client("redshift-data"), _as_admin(ctx), _load_target(s))

    return Resource("redshift-tables", f"{s.redshift_schema}.{s.redshift_table}, {s.redshift_schema}.{s.ledger_table}",
                    read=read, create=create, update=update, desired={"ledger_layout": "attempts"},
                    part_of=s.redshift_workgroup)


def _load_target(s: Settings) -> Any:
    from etl_runtime.values import LoadTarget

    return LoadTarget(schema=s.redshift_schema, table=s.redshift_table, ledger_table=s.ledger_table)


def _ledger_layout(ctx: Ctx) -> str:
    """``attempts`` when the ledger has every column of :data:`etl_runtime.loadsql.LEDGER_COLUMNS`, else
    ``before attempts`` (an older etl-kit's table, migrated in place by provisioning)."""
    from etl_runtime import dataapi
    from etl_runtime.loadsql import LEDGER_COLUMNS, columns_query

    s = ctx.settings
    rows = dataapi.query(ctx.client("redshift-data"), _as_admin(ctx), columns_query(s.redshift_schema, s.ledger_table))
    have = {str(r[0]).lower() for r in rows}
    return "attempts" if all(n in have for n, _ in LEDGER_COLUMNS) else "before attempts"


def _resources(ctx: Ctx) -> list[Resource]:
    s = ctx.settings
    if not available(ctx):
        names = [("redshift-namespace", s.redshift_namespace), ("redshift-workgroup", s.redshift_workgroup),
                 ("glue-connection", s.glue_connection), ("secretsmanager-secret", s.redshift_loader_secret),
                 ("redshift-user", s.redshift_loader_user)]
        return [Resource(t, n, read=lambda: None, create=lambda: None, skip=_UNAVAILABLE) for t, n in names]
    # The network is resolved only when a desired state needs it (plan, ensure), never for teardown.
    net = cache(lambda: network.resolve(ctx))
    return [
        _namespace_resource(ctx, _namespace(ctx)),
        _secret_resource(ctx),
        _workgroup_resource(ctx, _workgroup(ctx), net),
        glue.connection_resource(ctx, lambda: _jdbc_target(ctx, net)),
        _tables_resource(ctx),
        # the user the jobs sign in as: its secret first (the user's password comes from it)
        redshift_loader.loader_secret_resource(ctx),
        redshift_loader.loader_user_resource(ctx, partial(_as_admin, ctx)),
    ]


STEP = Step("redshift", _resources)

"""Step ``redshift``: Serverless namespace and workgroup, the admin secret, the Glue connection, the tables.

The admin password is managed by Secrets Manager (``manageAdminPassword``): it never appears
in params, logs or outputs. The Redshift role is attached (default role) for COPY. Tables are
created through the Data API with the admin secret.
"""

from __future__ import annotations

import re
import time
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.exceptions import WarehouseError
from etl_kit.provision import glue, network
from etl_kit.provision.base import (
    Change,
    Ctx,
    Resource,
    or_none,
    run_delete,
    run_describe,
    run_ensure,
    run_plan,
    wait_until,
)

__all__ = [
    "STEP",
    "plan",
    "ensure",
    "describe",
    "delete",
    "available",
    "admin_secret_arn",
    "table_ddl",
    "execute",
]

STEP = "redshift"
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
    r = or_none(lambda: ctx.client("redshift-serverless").get_namespace(namespaceName=ctx.settings.redshift_namespace))
    return None if r is None else dict(r["namespace"])


def _workgroup(ctx: Ctx) -> dict[str, Any] | None:
    r = or_none(lambda: ctx.client("redshift-serverless").get_workgroup(workgroupName=ctx.settings.redshift_workgroup))
    return None if r is None else dict(r["workgroup"])


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
    from etl_runtime.values import LoadTarget

    contract = compile_contract(settings.dataset_contract.model_dump(mode="json"))
    schema = settings.redshift_schema
    target = LoadTarget(schema=schema, table=settings.redshift_table, ledger_table=settings.ledger_table)
    return [f"CREATE SCHEMA IF NOT EXISTS {schema}", target_ddl(target, contract), ledger_ddl(target)]


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


def _resources(ctx: Ctx, *, deleting: bool = False) -> list[Resource]:
    s = ctx.settings
    if not available(ctx):
        names = [("redshift-namespace", s.redshift_namespace), ("redshift-workgroup", s.redshift_workgroup),
                 ("glue-connection", s.glue_connection)]
        return [Resource(t, n, lambda: None, dict, lambda: None, lambda d: None, lambda: None, skip=_UNAVAILABLE)
                for t, n in names]
    rs = ctx.client("redshift-serverless")
    role = ctx.arns.role(s.redshift_role)
    ns_want = {"iamRoles": [role], "defaultIamRoleArn": role, "adminUsername": s.redshift_admin_user,
               "dbName": s.redshift_database}

    def ns_available() -> bool:
        ns = _namespace(ctx)
        return ns is not None and ns.get("status") == "AVAILABLE"

    def wg_available() -> bool:
        wg = _workgroup(ctx)
        return wg is not None and wg.get("status") == "AVAILABLE"

    def ns_read() -> dict[str, Any] | None:
        ns = _namespace(ctx)
        if ns is None:
            return None
        return {"iamRoles": _role_arns(ns.get("iamRoles", [])), "defaultIamRoleArn": ns.get("defaultIamRoleArn"),
                "adminUsername": ns.get("adminUsername"), "dbName": ns.get("dbName")}

    def ns_create() -> None:
        kw: dict[str, Any] = {}
        if s.kms_key_id:
            kw["kmsKeyId"] = s.kms_key_id
        rs.create_namespace(namespaceName=s.redshift_namespace, adminUsername=s.redshift_admin_user,
                            manageAdminPassword=True, dbName=s.redshift_database, iamRoles=[role],
                            defaultIamRoleArn=role, tags=[{"key": "etl-kit", "value": "managed"}], **kw)
        wait_until(f"Redshift namespace {s.redshift_namespace}", ns_available, local=ctx.local)

    def ns_update(diffs: dict[str, Any]) -> None:
        if {"iamRoles", "defaultIamRoleArn"} & set(diffs):
            rs.update_namespace(namespaceName=s.redshift_namespace, iamRoles=[role], defaultIamRoleArn=role)
            wait_until(f"Redshift namespace {s.redshift_namespace}", ns_available, local=ctx.local)
        if "adminUsername" in diffs:
            rs.update_namespace(namespaceName=s.redshift_namespace, adminUsername=s.redshift_admin_user,
                                manageAdminPassword=True)
            wait_until(f"Redshift namespace {s.redshift_namespace}", ns_available, local=ctx.local)

    def ns_delete() -> None:
        wait_until(f"deletion of workgroup {s.redshift_workgroup}", lambda: _workgroup(ctx) is None,
                   local=ctx.local)
        rs.delete_namespace(namespaceName=s.redshift_namespace)
        wait_until(f"deletion of namespace {s.redshift_namespace}", lambda: _namespace(ctx) is None,
                   local=ctx.local)

    def secret_read() -> dict[str, Any] | None:
        arn = admin_secret_arn(ctx)
        if not arn:
            return None
        sec = or_none(lambda: ctx.client("secretsmanager").describe_secret(SecretId=arn))
        return None if sec is None else {}

    def secret_create() -> None:
        rs.update_namespace(namespaceName=s.redshift_namespace, adminUsername=s.redshift_admin_user,
                            manageAdminPassword=True)
        wait_until(f"Redshift namespace {s.redshift_namespace}", ns_available, local=ctx.local)

    net = network.resolve(ctx) if not deleting else None
    wg_want: dict[str, Any] = {"namespaceName": s.redshift_namespace, "baseCapacity": s.redshift_base_capacity,
                               "publiclyAccessible": False}
    if net is not None:
        wg_want["subnetIds"] = sorted(net["subnet_ids"])
        wg_want["securityGroupIds"] = [net["security_group_id"]]

    def wg_read() -> dict[str, Any] | None:
        wg = _workgroup(ctx)
        if wg is None:
            return None
        return {"namespaceName": wg.get("namespaceName"), "baseCapacity": wg.get("baseCapacity"),
                "publiclyAccessible": wg.get("publiclyAccessible"), "subnetIds": sorted(wg.get("subnetIds", [])),
                "securityGroupIds": sorted(wg.get("securityGroupIds", []))}

    def wg_create() -> None:
        rs.create_workgroup(workgroupName=s.redshift_workgroup, tags=[{"key": "etl-kit", "value": "managed"}],
                            **wg_want)
        wait_until(f"Redshift workgroup {s.redshift_workgroup}", wg_available, local=ctx.local)

    def wg_update(diffs: dict[str, Any]) -> None:
        # AWS takes one of these changes per call.
        for key in ("baseCapacity", "publiclyAccessible", "subnetIds", "securityGroupIds"):
            if key in diffs:
                rs.update_workgroup(workgroupName=s.redshift_workgroup, **{key: wg_want[key]})
                wait_until(f"Redshift workgroup {s.redshift_workgroup}", wg_available, local=ctx.local)

    def wg_delete() -> None:
        rs.delete_workgroup(workgroupName=s.redshift_workgroup)
        wait_until(f"deletion of workgroup {s.redshift_workgroup}", lambda: _workgroup(ctx) is None,
                   local=ctx.local)

    def tables_read() -> dict[str, Any] | None:
        arn = admin_secret_arn(ctx)
        if not arn or _workgroup(ctx) is None:
            return None
        r = ctx.client("redshift-data").list_tables(
            WorkgroupName=s.redshift_workgroup, Database=s.redshift_database, SecretArn=arn,
            SchemaPattern=s.redshift_schema, TablePattern="%")
        have = {t["name"] for t in r.get("Tables", [])}
        return {} if {s.redshift_table, s.ledger_table} <= have else None

    def tables_create() -> None:
        arn = admin_secret_arn(ctx)
        assert arn, "namespace has no admin secret"
        execute(ctx, table_ddl(s), arn)

    wg = None if deleting else _workgroup(ctx)
    endpoint = None
    if wg is not None and wg.get("endpoint"):
        endpoint = {"address": wg["endpoint"]["address"], "port": wg["endpoint"]["port"]}
    conn = glue.connection_resources(ctx, endpoint, net, None if deleting else admin_secret_arn(ctx),
                                     deleting=deleting)
    return [
        Resource("redshift-namespace", s.redshift_namespace, ns_read, lambda: ns_want, ns_create, ns_update,
                 ns_delete, is_data=True, extra={"secret_arn": admin_secret_arn(ctx) if not deleting else None}),
        Resource("secretsmanager-secret", f"redshift!{s.redshift_namespace}-{s.redshift_admin_user}", secret_read,
                 dict, secret_create, lambda d: None, lambda: None, sub=True),
        Resource("redshift-workgroup", s.redshift_workgroup, wg_read, lambda: wg_want, wg_create, wg_update,
                 wg_delete, is_data=True, extra={"endpoint": endpoint}),
        *conn,
        Resource("redshift-tables", f"{s.redshift_schema}.{s.redshift_table}, {s.redshift_schema}.{s.ledger_table}",
                 tables_read, dict, tables_create, lambda d: None, lambda: None, sub=True),
    ]


def _ns_arn_fix(ctx: Ctx, resources: list[Resource]) -> list[Resource]:
    for r in resources:
        if r.resource_type == "redshift-namespace":
            ns = _namespace(ctx) if available(ctx) else None
            r.arn = (ns or {}).get("namespaceArn", "")
        elif r.resource_type == "redshift-workgroup":
            wg = _workgroup(ctx) if available(ctx) else None
            r.arn = (wg or {}).get("workgroupArn", "")
    return resources


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the namespace, workgroup, connection and tables."""
    ctx = Ctx(settings, session)
    changes = run_ensure(STEP, _resources(ctx))
    # The connection needs the workgroup endpoint, known only once the workgroup exists.
    if any(c.resource_type == "glue-connection" and c.action == "skip" for c in changes) and available(ctx):
        rest = run_ensure(STEP, [r for r in _resources(ctx) if r.resource_type == "glue-connection"])
        changes = [rest[0] if c.resource_type == "glue-connection" else c for c in changes]
    return changes


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory with the namespace/workgroup ARNs, the endpoint and the secret ARN."""
    ctx = Ctx(settings, session)
    return run_describe(_ns_arn_fix(ctx, _resources(ctx)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the connection, workgroup and namespace (the warehouse is kept with ``keep_data``)."""
    return run_delete(STEP, _resources(Ctx(settings, session), deleting=True), keep_data=keep_data)

"""Step ``lambda``: the start-workflow function, its failure destination and the rule's permission.

The deployment package is :func:`etl_kit.provision.packaging.lambda_zip` (reproducible), so an
unchanged handler has an unchanged ``CodeSha256`` and is not redeployed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision import packaging
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
from etl_kit.provision.sns import queue_resources

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "RUNTIME", "HANDLER", "MAX_RETRIES", "environment"]

STEP = "lambda"
RUNTIME = "python3.12"
HANDLER = "lambda_handler.handler"
MAX_RETRIES = 2
PERMISSION_SID = "etl-kit-start-rule"
_CONFIG_FIELDS = ("Runtime", "Handler", "Role", "Timeout", "Environment", "MemorySize")


def environment(ctx: Ctx) -> dict[str, str]:
    """The function's environment variables."""
    s = ctx.settings
    return {
        "WORKFLOW_NAME": s.workflow,
        "BUCKET": ctx.arns.bucket,
        "INPUT_PREFIX": s.input_prefix,
        "STATE_PREFIX": s.state_prefix,
        "TOPIC_ARN": ctx.arns.topic,
    }


def _resources(ctx: Ctx) -> list[Resource]:
    lam = ctx.client("lambda")
    s = ctx.settings
    name = s.lambda_function
    a = ctx.arns
    dlq_arn = a.queue(a.lambda_dlq)
    config = {
        "Runtime": RUNTIME,
        "Handler": HANDLER,
        "Role": a.role(s.lambda_role),
        "Timeout": s.lambda_timeout_seconds,
        "MemorySize": 256,
        "Environment": {"Variables": environment(ctx)},
    }
    code: dict[str, bytes] = {}

    def zip_bytes() -> bytes:
        if "zip" not in code:
            code["zip"] = packaging.lambda_zip()
        return code["zip"]

    def desired() -> dict[str, Any]:
        return {**config, "CodeSha256": packaging.sha256_b64(zip_bytes())}

    def settled() -> bool:
        c = lam.get_function_configuration(FunctionName=name)
        return c.get("State", "Active") != "Pending" and c.get("LastUpdateStatus", "Successful") != "InProgress"

    def wait() -> None:
        wait_until(f"Lambda function {name}", settled, timeout=300, local=ctx.local)

    def read() -> dict[str, Any] | None:
        c = or_none(lambda: lam.get_function_configuration(FunctionName=name))
        if c is None:
            return None
        out = {k: c.get(k) for k in _CONFIG_FIELDS}
        out["Environment"] = {"Variables": (c.get("Environment") or {}).get("Variables", {})}
        out["CodeSha256"] = c.get("CodeSha256")
        return out

    def create() -> None:
        lam.create_function(FunctionName=name, Code={"ZipFile": zip_bytes()}, Publish=False,
                            Description="etl-kit: start the Glue workflow for an uploaded object",
                            Tags={"etl-kit": "managed"}, **config)
        wait()

    def update(diffs: dict[str, Any]) -> None:
        if "CodeSha256" in diffs:
            lam.update_function_code(FunctionName=name, ZipFile=zip_bytes(), Publish=False)
            wait()
        if set(diffs) - {"CodeSha256"}:
            lam.update_function_configuration(FunctionName=name, **config)
            wait()

    def delete() -> None:
        lam.delete_function(FunctionName=name)

    invoke_cfg = {"MaximumRetryAttempts": MAX_RETRIES, "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}}}

    def cfg_read() -> dict[str, Any] | None:
        c = or_none(lambda: lam.get_function_event_invoke_config(FunctionName=name))
        if c is None:
            return None
        dest = c.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        return {"MaximumRetryAttempts": c.get("MaximumRetryAttempts"),
                "DestinationConfig": {"OnFailure": {"Destination": dest}}}

    def cfg_put(_: Any = None) -> None:
        lam.put_function_event_invoke_config(FunctionName=name, **invoke_cfg)

    rule_arn = a.rule(s.start_rule)
    perm = {"Principal": "events.amazonaws.com", "SourceArn": rule_arn, "Action": "lambda:InvokeFunction"}

    def perm_read() -> dict[str, Any] | None:
        r = or_none(lambda: lam.get_policy(FunctionName=name))
        if r is None:
            return None
        for st in json.loads(r["Policy"]).get("Statement", []):
            if st.get("Sid") == PERMISSION_SID:
                principal = st.get("Principal", {})
                return {
                    "Principal": principal.get("Service") if isinstance(principal, dict) else principal,
                    "SourceArn": st.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn"),
                    "Action": st.get("Action"),
                }
        return None

    def perm_add() -> None:
        lam.add_permission(FunctionName=name, StatementId=PERMISSION_SID, Action="lambda:InvokeFunction",
                           Principal="events.amazonaws.com", SourceArn=rule_arn, SourceAccount=ctx.account)

    def perm_update(_: Any) -> None:
        lam.remove_permission(FunctionName=name, StatementId=PERMISSION_SID)
        perm_add()

    return [
        *queue_resources(ctx, a.lambda_dlq, None),
        Resource("lambda-function", name, read, desired, create, update, delete, arn=a.function),
        Resource("lambda-event-invoke-config", name, cfg_read, lambda: invoke_cfg, cfg_put, cfg_put, lambda: None,
                 arn=a.function, sub=True),
        Resource("lambda-permission", f"{name}/{PERMISSION_SID}", perm_read, lambda: perm, perm_add, perm_update,
                 lambda: None, arn=a.function, sub=True),
    ]


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the function, its DLQ, invoke config and permission."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the function and its DLQ."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the function and its DLQ."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

"""Step ``lambda``: the durable intake (SQS queue + DLQ), the start-workflow function and its event source mapping.

EventBridge's start rule sends each S3 event to the intake queue; the function consumes it through an
event source mapping (batches, maximum concurrency, ``ReportBatchItemFailures``). Records that cannot
start a run yet are delayed by the handler (``ChangeMessageVisibility``) and wait in the queue; the
queue's redrive moves a message to the intake DLQ only after :data:`MAX_RECEIVE_COUNT` receives.

The deployment package is :func:`etl_kit.provision.packaging.lambda_zip` (reproducible), so an
unchanged handler has an unchanged ``CodeSha256`` and is not redeployed. What the direct invocation
used (event invoke config, the rule's invoke permission, ``<function>-dlq``) is removed on apply.
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
from etl_kit.provision.policies import dumps, queue_policy
from etl_kit.provision.sns import queue_resources, queue_url

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "RUNTIME", "HANDLER", "environment", "intake_attributes",
           "MAPPING", "MAX_RECEIVE_COUNT"]

STEP = "lambda"
RUNTIME = "python3.12"
HANDLER = "lambda_handler.handler"
PERMISSION_SID = "etl-kit-start-rule"  # the direct invocation's permission (removed on apply)
# A waiting record comes back after at most BACKOFF_MAX_SECONDS (mean 3/4 of it); 1,000 receives (SQS's
# maximum) then cover ~1,000 x 11 min = ~8 days on AWS, within the 14-day retention, before the redrive.
MAX_RECEIVE_COUNT = 1000
RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum; the DLQ keeps the same (its clock starts at enqueue)
BACKOFF_MAX_SECONDS = {"aws": 900, "local": 60}  # runs take minutes on AWS, seconds locally
# The event source mapping: 10 records per invocation gathered for up to 1 s, at most 2 concurrent
# invocations (SQS's minimum): more would only race for the same few workflow run slots.
MAPPING: dict[str, Any] = {
    "BatchSize": 10,
    "MaximumBatchingWindowInSeconds": 1,
    "ScalingConfig": {"MaximumConcurrency": 2},
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
}
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
        "BACKOFF_BASE_SECONDS": "2",
        "BACKOFF_MAX_SECONDS": str(BACKOFF_MAX_SECONDS["local" if ctx.local else "aws"]),
    }


def intake_attributes(ctx: Ctx) -> dict[str, str]:
    """The intake queue's attributes: visibility 6x the function timeout (AWS's advice), redrive, retention."""
    s = ctx.settings
    redrive = {"deadLetterTargetArn": ctx.arns.queue(s.intake_dlq), "maxReceiveCount": MAX_RECEIVE_COUNT}
    return {"VisibilityTimeout": str(6 * s.lambda_timeout_seconds), "MessageRetentionPeriod": str(RETENTION_SECONDS),
            "RedrivePolicy": dumps(redrive)}


def _resources(ctx: Ctx) -> list[Resource]:
    lam = ctx.client("lambda")
    s = ctx.settings
    name = s.lambda_function
    a = ctx.arns
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

    queue_arn = a.queue(s.intake_queue)
    rule_policy = [a.rule(s.start_rule)]
    return [
        *queue_resources(ctx, s.intake_dlq, queue_policy(a.queue(s.intake_dlq), "events.amazonaws.com", rule_policy),
                         {"MessageRetentionPeriod": str(RETENTION_SECONDS)}),
        *queue_resources(ctx, s.intake_queue, queue_policy(queue_arn, "events.amazonaws.com", rule_policy),
                         intake_attributes(ctx)),
        Resource("lambda-function", name, read, desired, create, update, delete, arn=a.function),
        _mapping(ctx, queue_arn),
    ]


def _mapping(ctx: Ctx, queue_arn: str) -> Resource:
    """The event source mapping intake queue -> function."""
    lam = ctx.client("lambda")
    name = ctx.settings.lambda_function
    want = {**MAPPING, "State": "Enabled"}

    def find() -> dict[str, Any] | None:
        r = or_none(lambda: lam.list_event_source_mappings(FunctionName=name, EventSourceArn=queue_arn))
        found = [m for m in (r or {}).get("EventSourceMappings", []) if m.get("State") != "Deleting"]
        return found[0] if found else None

    def read() -> dict[str, Any] | None:
        m = find()
        return None if m is None else {k: m.get(k) for k in want}

    def settled() -> bool:
        m = find()
        return m is not None and m.get("State") in ("Enabled", "Disabled")

    def create() -> None:
        def attempt() -> bool:
            try:
                lam.create_event_source_mapping(FunctionName=name, EventSourceArn=queue_arn, Enabled=True, **MAPPING)
                return True
            except lam.exceptions.InvalidParameterValueException as err:
                # A just-created role needs a moment before Lambda sees its sqs:ReceiveMessage.
                if "execution role" in str(err) and not ctx.local:
                    return False
                raise

        wait_until(f"event source mapping {queue_arn} -> {name}", attempt, timeout=120, local=ctx.local)
        wait_until(f"event source mapping {queue_arn} -> {name}", settled, timeout=300, local=ctx.local)

    def update(_: Any) -> None:
        m = find()
        assert m is not None
        lam.update_event_source_mapping(UUID=m["UUID"], FunctionName=name, Enabled=True, **MAPPING)
        wait_until(f"event source mapping {queue_arn} -> {name}", settled, timeout=300, local=ctx.local)

    def delete() -> None:
        m = find()
        if m is not None:
            lam.delete_event_source_mapping(UUID=m["UUID"])

    return Resource("lambda-event-source-mapping", f"{ctx.settings.intake_queue} -> {name}", read, lambda: want,
                    create, update, delete, arn=queue_arn)


def _legacy(ctx: Ctx) -> list[Resource]:
    """What the direct EventBridge -> Lambda invocation used; absent is the desired state."""
    lam = ctx.client("lambda")
    sqs = ctx.client("sqs")
    name = ctx.settings.lambda_function
    dlq = ctx.arns.lambda_dlq

    def cfg_read() -> dict[str, Any] | None:
        return or_none(lambda: lam.get_function_event_invoke_config(FunctionName=name))

    def perm_read() -> dict[str, Any] | None:
        r = or_none(lambda: lam.get_policy(FunctionName=name))
        sids = [st.get("Sid") for st in json.loads(r["Policy"]).get("Statement", [])] if r else []
        return {} if PERMISSION_SID in sids else None

    def dlq_delete() -> None:
        url = queue_url(ctx, dlq)
        if url:
            sqs.delete_queue(QueueUrl=url)

    return [
        Resource("lambda-event-invoke-config", name, cfg_read, dict, lambda: None, lambda d: None,
                 lambda: lam.delete_function_event_invoke_config(FunctionName=name), arn=ctx.arns.function),
        Resource("lambda-permission", f"{name}/{PERMISSION_SID}", perm_read, dict, lambda: None, lambda d: None,
                 lambda: lam.remove_permission(FunctionName=name, StatementId=PERMISSION_SID),
                 arn=ctx.arns.function),
        Resource("sqs-queue", dlq, lambda: {} if queue_url(ctx, dlq) else None, dict, lambda: None,
                 lambda d: None, dlq_delete, arn=ctx.arns.queue(dlq)),
    ]


def remove_legacy(step: str, legacy: list[Resource], *, apply: bool) -> list[Change]:
    """Delete (or, in a plan, report) the resources a former layout left behind; absent ones say nothing."""
    changes = run_delete(step, legacy) if apply else [
        Change(step, r.resource_type, r.name, "delete", {"reason": "replaced by the intake queue"}, r.arn)
        for r in legacy if r.read() is not None]
    return [c for c in changes if c.action == "delete"]


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    ctx = Ctx(settings, session)
    return run_plan(STEP, _resources(ctx)) + remove_legacy(STEP, _legacy(ctx), apply=False)


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the intake queue and DLQ, the function and its event source mapping."""
    ctx = Ctx(settings, session)
    return run_ensure(STEP, _resources(ctx)) + remove_legacy(STEP, _legacy(ctx), apply=True)


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the intake queues, the function and its mapping."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the mapping, the function, the intake queue and DLQ (and any legacy leftovers)."""
    ctx = Ctx(settings, session)
    return run_delete(STEP, _resources(ctx), keep_data=keep_data) + remove_legacy(STEP, _legacy(ctx), apply=True)

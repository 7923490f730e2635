"""Step ``lambda``: the durable intake (SQS queue + DLQ), the start-workflow function and its event source mapping.

EventBridge's start rule sends each S3 event to the intake queue; the function consumes it through an
event source mapping (batches, maximum concurrency, ``ReportBatchItemFailures``). Records that cannot
start a run yet are delayed by the handler (``ChangeMessageVisibility``) and wait in the queue; the
queue's redrive moves a message to the intake DLQ only after :data:`MAX_RECEIVE_COUNT` receives.

The deployment package is the whole ``etl_runtime`` package, the same reproducible zip the Glue jobs
import (:func:`etl_kit.provision.packaging.lambda_zip`), with the handler
``etl_runtime.lambda_handler.handler``: an unchanged package has an unchanged ``CodeSha256`` and is
not redeployed. What the direct invocation
used (event invoke config, the rule's invoke permission, ``<function>-dlq``) is removed on apply.
"""

from __future__ import annotations

import json
from functools import cache, partial
from typing import Any

from etl_kit.provision import packaging
from etl_kit.provision.base import TAGS, Ctx, Resource, Step, or_none, read_with, wait_until
from etl_kit.provision.policies import dumps, queue_policy
from etl_kit.provision.sns import delete_queue, queue_resource, queue_url

__all__ = ["STEP", "RUNTIME", "HANDLER", "environment", "intake_attributes", "MAPPING", "MAX_RECEIVE_COUNT",
           "legacy_queue"]

RUNTIME = "python3.12"
HANDLER = packaging.LAMBDA_HANDLER  # the function runs the whole runtime package, as the Glue jobs import it
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


def _function(ctx: Ctx) -> Resource:
    lam = ctx.client("lambda")
    s = ctx.settings
    name = s.lambda_function
    config = {
        "Runtime": RUNTIME,
        "Handler": HANDLER,
        "Role": ctx.arns.role(s.lambda_role),
        "Timeout": s.lambda_timeout_seconds,
        "MemorySize": 256,
        "Environment": {"Variables": environment(ctx)},
    }
    code = cache(packaging.lambda_zip)  # built once, and only when compared or deployed

    def settled() -> bool:
        c = lam.get_function_configuration(FunctionName=name)
        return c.get("State", "Active") != "Pending" and c.get("LastUpdateStatus", "Successful") != "InProgress"

    def wait() -> None:
        wait_until(f"Lambda function {name}", settled, timeout=300, local=ctx.local)

    def project(c: dict[str, Any]) -> dict[str, Any]:
        out = {k: c.get(k) for k in _CONFIG_FIELDS}
        out["Environment"] = {"Variables": (c.get("Environment") or {}).get("Variables", {})}
        out["CodeSha256"] = c.get("CodeSha256")
        return out

    def create() -> None:
        lam.create_function(FunctionName=name, Code={"ZipFile": code()}, Publish=False,
                            Description="etl-kit: start the Glue workflow for an uploaded object", Tags=TAGS, **config)
        wait()

    def update(diffs: dict[str, Any]) -> None:
        if "CodeSha256" in diffs:
            lam.update_function_code(FunctionName=name, ZipFile=code(), Publish=False)
            wait()
        if set(diffs) - {"CodeSha256"}:
            lam.update_function_configuration(FunctionName=name, **config)
            wait()

    return Resource("lambda-function", name,
                    read=read_with(partial(lam.get_function_configuration, FunctionName=name), project),
                    desired=lambda: {**config, "CodeSha256": packaging.sha256_b64(code())}, create=create,
                    update=update, delete=partial(lam.delete_function, FunctionName=name), arn=ctx.arns.function)


def _resources(ctx: Ctx) -> list[Resource]:
    s = ctx.settings
    a = ctx.arns
    rule = [a.rule(s.start_rule)]
    return [
        queue_resource(ctx, s.intake_dlq, queue_policy(a.queue(s.intake_dlq), "events.amazonaws.com", rule),
                       {"MessageRetentionPeriod": str(RETENTION_SECONDS)}),
        queue_resource(ctx, s.intake_queue, queue_policy(a.queue(s.intake_queue), "events.amazonaws.com", rule),
                       intake_attributes(ctx)),
        _function(ctx),
        _mapping(ctx, a.queue(s.intake_queue)),
    ]


def _mapping(ctx: Ctx, queue_arn: str) -> Resource:
    """The event source mapping intake queue -> function."""
    lam = ctx.client("lambda")
    name = ctx.settings.lambda_function
    want = {**MAPPING, "State": "Enabled"}
    what = f"event source mapping {queue_arn} -> {name}"

    def find() -> dict[str, Any] | None:
        r = or_none(lambda: lam.list_event_source_mappings(FunctionName=name, EventSourceArn=queue_arn))
        found = [m for m in (r or {}).get("EventSourceMappings", []) if m.get("State") != "Deleting"]
        return found[0] if found else None

    def settled() -> bool:
        m = find()
        return m is not None and m.get("State") in ("Enabled", "Disabled")

    def attempt() -> bool:
        try:
            lam.create_event_source_mapping(FunctionName=name, EventSourceArn=queue_arn, Enabled=True, **MAPPING)
            return True
        except lam.exceptions.InvalidParameterValueException as err:
            # A just-created role needs a moment before Lambda sees its sqs:ReceiveMessage.
            if "execution role" in str(err) and not ctx.local:
                return False
            raise

    def create() -> None:
        wait_until(what, attempt, timeout=120, local=ctx.local)
        wait_until(what, settled, timeout=300, local=ctx.local)

    def update(_: Any) -> None:
        m = find()
        assert m is not None, "update follows a read that found the mapping"
        lam.update_event_source_mapping(UUID=m["UUID"], FunctionName=name, Enabled=True, **MAPPING)
        wait_until(what, settled, timeout=300, local=ctx.local)

    def delete() -> None:
        m = find()
        if m is not None:
            lam.delete_event_source_mapping(UUID=m["UUID"])

    def read() -> dict[str, Any] | None:
        m = find()
        return None if m is None else {k: m.get(k) for k in want}

    return Resource("lambda-event-source-mapping", f"{ctx.settings.intake_queue} -> {name}", read=read,
                    desired=want, create=create, update=update, delete=delete, arn=queue_arn)


def _legacy(ctx: Ctx) -> list[Resource]:
    """What the direct EventBridge -> Lambda invocation used; absent is the desired state."""
    lam = ctx.client("lambda")
    name = ctx.settings.lambda_function
    dlq = ctx.arns.lambda_dlq

    def permission() -> dict[str, Any] | None:
        r = or_none(lambda: lam.get_policy(FunctionName=name))
        sids = [st.get("Sid") for st in json.loads(r["Policy"]).get("Statement", [])] if r else []
        return {} if PERMISSION_SID in sids else None

    return [
        Resource("lambda-event-invoke-config", name,
                 read=read_with(partial(lam.get_function_event_invoke_config, FunctionName=name)), create=_absent,
                 delete=partial(lam.delete_function_event_invoke_config, FunctionName=name), arn=ctx.arns.function),
        Resource("lambda-permission", f"{name}/{PERMISSION_SID}", read=permission, create=_absent,
                 delete=partial(lam.remove_permission, FunctionName=name, StatementId=PERMISSION_SID),
                 arn=ctx.arns.function),
        legacy_queue(ctx, dlq),
    ]


def _absent() -> None:
    raise AssertionError("a former layout's resource is only ever deleted")


def legacy_queue(ctx: Ctx, name: str) -> Resource:
    """A queue a former layout used; absent is its desired state."""
    return Resource("sqs-queue", name, read=lambda: {} if queue_url(ctx, name) else None, create=_absent,
                    delete=lambda: delete_queue(ctx, name), arn=ctx.arns.queue(name))


STEP = Step("lambda", _resources, legacy=_legacy)

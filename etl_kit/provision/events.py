"""Step ``events``: the EventBridge rules and their targets.

``start-lambda-rule`` sends S3 "Object Created" events for ``input/`` of the project bucket to
the intake queue (retry policy; events EventBridge cannot deliver go to the intake DLQ), from which
the Lambda consumes them (step ``lambda``). The four notification rules send
Glue crawler/job state changes to the SNS topic through input transformers that produce a
readable sentence (resource, state, time, error message).
"""

from __future__ import annotations

from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, const, or_none, run_delete, run_describe, run_ensure, run_plan
from etl_kit.provision.lambda_ import remove_legacy
from etl_kit.provision.policies import dumps
from etl_kit.provision.sns import queue_url

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "rule_specs", "JOB_STATES", "CRAWLER_STATES"]

STEP = "events"
JOB_STATES = ["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR"]
CRAWLER_STATES = ["Succeeded", "Failed"]
RETRY_POLICY = {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}


def _crawler_target(topic: str) -> dict[str, Any]:
    return {
        "Id": "sns-topic",
        "Arn": topic,
        "InputTransformer": {
            "InputPathsMap": {"name": "$.detail.crawlerName", "state": "$.detail.state", "time": "$.time",
                              "error": "$.detail.errorMessage"},
            "InputTemplate": '"Glue crawler <name> finished in state <state> at <time>. Error: <error>"',
        },
    }


def _job_target(topic: str) -> dict[str, Any]:
    return {
        "Id": "sns-topic",
        "Arn": topic,
        "InputTransformer": {
            "InputPathsMap": {"name": "$.detail.jobName", "state": "$.detail.state", "time": "$.time",
                              "run": "$.detail.jobRunId", "error": "$.detail.message"},
            "InputTemplate": '"Glue job <name> run <run> finished in state <state> at <time>. Message: <error>"',
        },
    }


def rule_specs(ctx: Ctx) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]], str]]:
    """``rule name -> (event pattern, targets, description)``."""
    s = ctx.settings
    a = ctx.arns
    start_pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [a.bucket]}, "object": {"key": [{"prefix": s.input_prefix}]}},
    }
    start_target = {
        "Id": "intake-queue",
        "Arn": a.queue(s.intake_queue),
        "RetryPolicy": RETRY_POLICY,
        "DeadLetterConfig": {"Arn": a.queue(s.intake_dlq)},
    }

    def crawler(name: str) -> dict[str, Any]:
        return {"source": ["aws.glue"], "detail-type": ["Glue Crawler State Change"],
                "detail": {"crawlerName": [name], "state": CRAWLER_STATES}}

    def job(name: str) -> dict[str, Any]:
        return {"source": ["aws.glue"], "detail-type": ["Glue Job State Change"],
                "detail": {"jobName": [name], "state": JOB_STATES}}

    topic = a.topic
    return {
        s.start_rule: (start_pattern, [start_target], f"S3 Object Created in {s.input_prefix} -> intake queue"),
        s.crawler01_rule: (crawler(s.csv_crawler), [_crawler_target(topic)], f"{s.csv_crawler} state -> SNS"),
        s.job01_rule: (job(s.csv_job), [_job_target(topic)], f"{s.csv_job} state -> SNS"),
        s.crawler02_rule: (crawler(s.parquet_crawler), [_crawler_target(topic)], f"{s.parquet_crawler} state -> SNS"),
        s.job02_rule: (job(s.load_job), [_job_target(topic)], f"{s.load_job} state -> SNS"),
    }


_TARGET_KEYS = ("Id", "Arn", "RetryPolicy", "DeadLetterConfig", "InputTransformer")


def _resources(ctx: Ctx) -> list[Resource]:
    ev = ctx.client("events")
    a = ctx.arns
    out: list[Resource] = []
    for name, (pattern, targets, description) in rule_specs(ctx).items():

        def read(name: str = name) -> dict[str, Any] | None:
            r = or_none(lambda: ev.describe_rule(Name=name))
            return None if r is None else {"EventPattern": r.get("EventPattern"), "State": r.get("State")}

        def put(_: Any = None, name: str = name, pattern: dict[str, Any] = pattern, description: str = description
                ) -> None:
            ev.put_rule(Name=name, EventPattern=dumps(pattern), State="ENABLED", Description=description,
                        Tags=[{"Key": "etl-kit", "Value": "managed"}])

        def delete(name: str = name) -> None:
            ids = [t["Id"] for t in ev.list_targets_by_rule(Rule=name).get("Targets", [])]
            if ids:
                ev.remove_targets(Rule=name, Ids=ids, Force=True)
            ev.delete_rule(Name=name, Force=True)

        def t_read(name: str = name) -> dict[str, Any] | None:
            r = or_none(lambda: ev.list_targets_by_rule(Rule=name))
            if r is None or not r.get("Targets"):
                return None
            return {"Targets": [{k: t[k] for k in _TARGET_KEYS if k in t} for t in r["Targets"]]}

        def t_put(_: Any = None, name: str = name, targets: list[dict[str, Any]] = targets) -> None:
            current = [t["Id"] for t in ev.list_targets_by_rule(Rule=name).get("Targets", [])]
            stale = [i for i in current if i not in {t["Id"] for t in targets}]
            if stale:
                ev.remove_targets(Rule=name, Ids=stale, Force=True)
            r = ev.put_targets(Rule=name, Targets=targets)
            if r.get("FailedEntryCount"):
                from etl_kit.exceptions import AwsError

                raise AwsError(f"put_targets on rule {name!r} failed: {r['FailedEntries']}", resource=name)

        arn = a.rule(name)
        out.append(Resource("events-rule", name, read,
                            const({"EventPattern": pattern, "State": "ENABLED"}),
                            put, put, delete, arn=arn))
        out.append(Resource("events-targets", name, t_read, const({"Targets": targets}),
                            t_put, t_put, lambda: None, arn=arn, sub=True))
    return out


def _legacy(ctx: Ctx) -> list[Resource]:
    """The start rule's own DLQ of the direct-invocation layout (its target now uses the intake DLQ)."""
    name = ctx.arns.rule_dlq

    def delete() -> None:
        url = queue_url(ctx, name)
        if url:
            ctx.client("sqs").delete_queue(QueueUrl=url)

    return [Resource("sqs-queue", name, lambda: {} if queue_url(ctx, name) else None, dict, lambda: None,
                     lambda d: None, delete, arn=ctx.arns.queue(name))]


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    ctx = Ctx(settings, session)
    return run_plan(STEP, _resources(ctx)) + remove_legacy(STEP, _legacy(ctx), apply=False)


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the rules and their targets; remove the former start-rule DLQ."""
    ctx = Ctx(settings, session)
    return run_ensure(STEP, _resources(ctx)) + remove_legacy(STEP, _legacy(ctx), apply=True)


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the rules."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Remove targets and delete the rules (and a former start-rule DLQ)."""
    ctx = Ctx(settings, session)
    return run_delete(STEP, _resources(ctx), keep_data=keep_data) + remove_legacy(STEP, _legacy(ctx), apply=True)

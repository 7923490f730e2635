"""Step ``events``: the EventBridge rules and their targets.

``start-lambda-rule`` sends S3 "Object Created" events for ``input/`` of the project bucket to
the intake queue (retry policy; events EventBridge cannot deliver go to the intake DLQ), from which
the Lambda consumes them (step ``lambda``). The four notification rules send
Glue crawler/job state changes to the SNS topic through input transformers that produce a
readable sentence (resource, state, time, error message).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from etl_kit.exceptions import AwsError
from etl_kit.provision.base import Ctx, Resource, Step, read_with, tag_list
from etl_kit.provision.lambda_ import legacy_queue
from etl_kit.provision.policies import dumps

__all__ = ["STEP", "Rule", "rule_specs", "JOB_STATES", "CRAWLER_STATES"]

JOB_STATES = ["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR"]
CRAWLER_STATES = ["Succeeded", "Failed"]
RETRY_POLICY = {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}


@dataclass(frozen=True)
class Rule:
    """One EventBridge rule: what it matches, where it sends it, what it is for."""

    pattern: dict[str, Any]
    targets: list[dict[str, Any]]
    description: str


# What a notification says, per Glue resource kind: the event fields it quotes and its sentence.
_SENTENCES = {
    "crawler": ({"name": "$.detail.crawlerName", "state": "$.detail.state", "time": "$.time",
                 "error": "$.detail.errorMessage"},
                '"Glue crawler <name> finished in state <state> at <time>. Error: <error>"'),
    "job": ({"name": "$.detail.jobName", "state": "$.detail.state", "time": "$.time", "run": "$.detail.jobRunId",
             "error": "$.detail.message"},
            '"Glue job <name> run <run> finished in state <state> at <time>. Message: <error>"'),
}


def _notify(topic: str, kind: str) -> dict[str, Any]:
    """The SNS target of a notification rule about a Glue ``kind`` (``crawler`` or ``job``)."""
    paths, template = _SENTENCES[kind]
    return {"Id": "sns-topic", "Arn": topic, "InputTransformer": {"InputPathsMap": paths, "InputTemplate": template}}


def rule_specs(ctx: Ctx) -> dict[str, Rule]:
    """Rule name -> :class:`Rule`."""
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
        s.start_rule: Rule(start_pattern, [start_target], f"S3 Object Created in {s.input_prefix} -> intake queue"),
        s.crawler01_rule: Rule(crawler(s.csv_crawler), [_notify(topic, "crawler")], f"{s.csv_crawler} state -> SNS"),
        s.job01_rule: Rule(job(s.csv_job), [_notify(topic, "job")], f"{s.csv_job} state -> SNS"),
        s.crawler02_rule: Rule(crawler(s.parquet_crawler), [_notify(topic, "crawler")],
                               f"{s.parquet_crawler} state -> SNS"),
        s.job02_rule: Rule(job(s.load_job), [_notify(topic, "job")], f"{s.load_job} state -> SNS"),
    }


_TARGET_KEYS = ("Id", "Arn", "RetryPolicy", "DeadLetterConfig", "InputTransformer")


def _rule(ctx: Ctx, name: str, rule: Rule) -> Resource:
    ev = ctx.client("events")
    put = partial(ev.put_rule, Name=name, EventPattern=dumps(rule.pattern), State="ENABLED",
                  Description=rule.description, Tags=tag_list())

    def delete() -> None:
        ids = [t["Id"] for t in ev.list_targets_by_rule(Rule=name).get("Targets", [])]
        if ids:
            ev.remove_targets(Rule=name, Ids=ids, Force=True)
        ev.delete_rule(Name=name, Force=True)

    return Resource("events-rule", name,
                    read=read_with(partial(ev.describe_rule, Name=name),
                                   lambda r: {"EventPattern": r.get("EventPattern"), "State": r.get("State")}),
                    desired={"EventPattern": rule.pattern, "State": "ENABLED"}, create=put, update=lambda _: put(),
                    delete=delete, arn=ctx.arns.rule(name))


def _targets(ctx: Ctx, name: str, targets: list[dict[str, Any]]) -> Resource:
    ev = ctx.client("events")

    def project(r: dict[str, Any]) -> dict[str, Any] | None:
        if not r.get("Targets"):
            return None
        return {"Targets": [{k: t[k] for k in _TARGET_KEYS if k in t} for t in r["Targets"]]}

    def put(_: Any = None) -> None:
        current = [t["Id"] for t in ev.list_targets_by_rule(Rule=name).get("Targets", [])]
        stale = [i for i in current if i not in {t["Id"] for t in targets}]
        if stale:
            ev.remove_targets(Rule=name, Ids=stale, Force=True)
        r = ev.put_targets(Rule=name, Targets=targets)
        if r.get("FailedEntryCount"):
            raise AwsError(f"put_targets on rule {name!r} failed: {r['FailedEntries']}", resource=name)

    return Resource("events-targets", name, read=read_with(partial(ev.list_targets_by_rule, Rule=name), project),
                    desired={"Targets": targets}, create=put, update=put, arn=ctx.arns.rule(name), part_of=name)


def _resources(ctx: Ctx) -> list[Resource]:
    return [r for name, rule in rule_specs(ctx).items() for r in (_rule(ctx, name, rule),
                                                                  _targets(ctx, name, rule.targets))]


# The start rule's own DLQ of the direct-invocation layout (its target now uses the intake DLQ).
STEP = Step("events", _resources, legacy=lambda ctx: [legacy_queue(ctx, ctx.arns.rule_dlq)])

"""Step ``sns``: the notification topic, its policy, the SQS notifications queue and subscriptions.

Only the four notification rules (through EventBridge, scoped by ``aws:SourceArn``) and the
Lambda role may publish. The queue is subscribed on both targets (``RawMessageDelivery``
false so readers see the SNS envelope with its ``Subject``); e-mail addresses from params
are subscribed on ``aws`` only (each must confirm).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, or_none, run_delete, run_describe, run_ensure, run_plan
from etl_kit.provision.policies import dumps, queue_policy, topic_policy

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "queue_resources", "queue_url"]

STEP = "sns"
_QUEUE_ATTRS = {"SqsManagedSseEnabled": "true"}


def queue_url(ctx: Ctx, name: str) -> str | None:
    """The queue's URL, or ``None`` when it does not exist."""
    r = or_none(lambda: ctx.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=ctx.account))
    return None if r is None else str(r["QueueUrl"])


def queue_resources(ctx: Ctx, name: str, policy: dict[str, Any] | None,
                    attributes: dict[str, str] | None = None) -> list[Resource]:
    """An SQS queue (server-side encrypted) with ``attributes`` and, when given, its access policy."""
    sqs = ctx.client("sqs")
    arn = ctx.arns.queue(name)
    want = {**_QUEUE_ATTRS, **(attributes or {})}
    if policy is not None:
        want["Policy"] = dumps(policy)

    def read() -> dict[str, Any] | None:
        url = queue_url(ctx, name)
        if url is None:
            return None
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        return {k: attrs.get(k) for k in want}

    def create() -> None:
        sqs.create_queue(QueueName=name, Attributes=want, tags={"etl-kit": "managed"})

    def update(diffs: dict[str, Any]) -> None:
        url = queue_url(ctx, name)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={k: want[k] for k in diffs})

    def delete() -> None:
        url = queue_url(ctx, name)
        if url:
            sqs.delete_queue(QueueUrl=url)

    desired = {k: (json.loads(v) if k == "Policy" else v) for k, v in want.items()}
    return [Resource("sqs-queue", name, read, lambda: desired, create, update, delete, arn=arn)]


def _find_subscription(ctx: Ctx, protocol: str, endpoint: str) -> dict[str, Any] | None:
    sns = ctx.client("sns")
    topic = ctx.arns.topic
    try:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
            for sub in page.get("Subscriptions", []):
                if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                    return dict(sub)
    except Exception as err:
        from etl_kit.provision.base import is_missing

        if is_missing(err):
            return None
        raise
    return None


def _resources(ctx: Ctx) -> list[Resource]:
    sns = ctx.client("sns")
    s = ctx.settings
    topic = ctx.arns.topic
    policy = topic_policy(s, ctx.account)

    def topic_read() -> dict[str, Any] | None:
        r = or_none(lambda: sns.get_topic_attributes(TopicArn=topic))
        return None if r is None else {}

    def topic_create() -> None:
        sns.create_topic(Name=s.sns_topic, Tags=[{"Key": "etl-kit", "Value": "managed"}])

    def policy_read() -> dict[str, Any] | None:
        r = or_none(lambda: sns.get_topic_attributes(TopicArn=topic))
        return None if r is None else {"Policy": r["Attributes"].get("Policy")}

    def policy_put(_: Any = None) -> None:
        sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=dumps(policy))

    out = [
        Resource("sns-topic", s.sns_topic, topic_read, dict, topic_create, lambda d: None,
                 lambda: sns.delete_topic(TopicArn=topic), arn=topic),
        Resource("sns-topic-policy", s.sns_topic, policy_read, lambda: {"Policy": policy}, policy_put, policy_put,
                 lambda: None, arn=topic, sub=True),
    ]
    qname = s.notification_queue
    qarn = ctx.arns.queue(qname)
    out += queue_resources(ctx, qname, queue_policy(qarn, "sns.amazonaws.com", [topic]))

    def sub_read() -> dict[str, Any] | None:
        sub = _find_subscription(ctx, "sqs", qarn)
        if sub is None:
            return None
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        return {"RawMessageDelivery": attrs.get("RawMessageDelivery", "false")}

    def sub_create() -> None:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                      Attributes={"RawMessageDelivery": "false"}, ReturnSubscriptionArn=True)

    def sub_update(_: Any) -> None:
        sub = _find_subscription(ctx, "sqs", qarn)
        assert sub is not None
        sns.set_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"], AttributeName="RawMessageDelivery",
                                        AttributeValue="false")

    def sub_delete() -> None:
        sub = _find_subscription(ctx, "sqs", qarn)
        if sub is not None:
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])

    out.append(Resource("sns-subscription", f"{s.sns_topic} -> sqs:{qname}", sub_read,
                        lambda: {"RawMessageDelivery": "false"}, sub_create, sub_update, sub_delete, arn=qarn))
    for email in s.notification_emails:

        def mail_read(email: str = email) -> dict[str, Any] | None:
            return None if _find_subscription(ctx, "email", email) is None else {}

        def mail_create(email: str = email) -> None:
            sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=email)

        def mail_delete(email: str = email) -> None:
            sub = _find_subscription(ctx, "email", email)
            # Unconfirmed subscriptions cannot be unsubscribed; they go with the topic.
            if sub is not None and sub["SubscriptionArn"].startswith("arn:"):
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])

        out.append(Resource("sns-subscription", f"{s.sns_topic} -> email:{email}", mail_read, dict, mail_create,
                            lambda d: None, mail_delete, arn=topic,
                            skip="e-mail is not delivered on the local target" if ctx.local else ""))
    return out


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the topic, its policy, the queue and the subscriptions."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the topic, queue and subscriptions."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Unsubscribe, delete the queue and the topic."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

"""Step ``sns``: the notification topic, its policy, the SQS notifications queue and subscriptions.

Only the four notification rules (through EventBridge, scoped by ``aws:SourceArn``) and the
Lambda role may publish. The queue is subscribed on both targets (``RawMessageDelivery``
false so readers see the SNS envelope with its ``Subject``); e-mail addresses from params
are subscribed on ``aws`` only (each must confirm).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from etl_kit.provision.base import TAGS, Ctx, Resource, Step, or_none, paginate, read_with, tag_list
from etl_kit.provision.policies import dumps, queue_policy, topic_policy

__all__ = ["STEP", "queue_resource", "queue_url", "delete_queue"]

_QUEUE_ATTRS = {"SqsManagedSseEnabled": "true"}


def queue_url(ctx: Ctx, name: str) -> str | None:
    """The queue's URL, or ``None`` when it does not exist."""
    r = or_none(lambda: ctx.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=ctx.account))
    return None if r is None else str(r["QueueUrl"])


def delete_queue(ctx: Ctx, name: str) -> None:
    """Delete the queue ``name`` if it exists."""
    url = queue_url(ctx, name)
    if url:
        ctx.client("sqs").delete_queue(QueueUrl=url)


def queue_resource(ctx: Ctx, name: str, policy: dict[str, Any] | None,
                   attributes: dict[str, str] | None = None) -> Resource:
    """An SQS queue (server-side encrypted) with ``attributes`` and, when given, its access policy."""
    sqs = ctx.client("sqs")
    want = {**_QUEUE_ATTRS, **(attributes or {})}
    if policy is not None:
        want["Policy"] = dumps(policy)

    def read() -> dict[str, Any] | None:
        url = queue_url(ctx, name)
        if url is None:
            return None
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        return {k: attrs.get(k) for k in want}

    def update(diffs: dict[str, Any]) -> None:
        sqs.set_queue_attributes(QueueUrl=queue_url(ctx, name), Attributes={k: want[k] for k in diffs})

    return Resource("sqs-queue", name, read=read,
                    desired={k: (json.loads(v) if k == "Policy" else v) for k, v in want.items()},
                    create=partial(sqs.create_queue, QueueName=name, Attributes=want, tags=TAGS), update=update,
                    delete=lambda: delete_queue(ctx, name), arn=ctx.arns.queue(name))


def _find_subscription(ctx: Ctx, protocol: str, endpoint: str) -> dict[str, Any] | None:
    subs = or_none(lambda: list(paginate(ctx.client("sns"), "list_subscriptions_by_topic", "Subscriptions",
                                         TopicArn=ctx.arns.topic)))
    return next((dict(x) for x in subs or [] if x["Protocol"] == protocol and x["Endpoint"] == endpoint), None)


def _topic_resources(ctx: Ctx) -> list[Resource]:
    sns = ctx.client("sns")
    s = ctx.settings
    topic = ctx.arns.topic
    policy = topic_policy(s, ctx.account)
    attributes = partial(sns.get_topic_attributes, TopicArn=topic)
    put_policy = partial(sns.set_topic_attributes, TopicArn=topic, AttributeName="Policy",
                         AttributeValue=dumps(policy))
    return [
        Resource("sns-topic", s.sns_topic, read=read_with(attributes),
                 create=partial(sns.create_topic, Name=s.sns_topic, Tags=tag_list()),
                 delete=partial(sns.delete_topic, TopicArn=topic), arn=topic),
        Resource("sns-topic-policy", s.sns_topic,
                 read=read_with(attributes, lambda r: {"Policy": r["Attributes"].get("Policy")}),
                 desired={"Policy": policy}, create=put_policy, update=lambda _: put_policy(), arn=topic,
                 part_of=s.sns_topic),
    ]


def _queue_subscription(ctx: Ctx, qname: str) -> Resource:
    sns = ctx.client("sns")
    qarn = ctx.arns.queue(qname)

    def read() -> dict[str, Any] | None:
        sub = _find_subscription(ctx, "sqs", qarn)
        if sub is None:
            return None
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        return {"RawMessageDelivery": attrs.get("RawMessageDelivery", "false")}

    def update(_: Any) -> None:
        sub = _find_subscription(ctx, "sqs", qarn)
        assert sub is not None, "update follows a read that found the subscription"
        sns.set_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"], AttributeName="RawMessageDelivery",
                                        AttributeValue="false")

    def delete() -> None:
        sub = _find_subscription(ctx, "sqs", qarn)
        if sub is not None:
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])

    return Resource("sns-subscription", f"{ctx.settings.sns_topic} -> sqs:{qname}", read=read,
                    desired={"RawMessageDelivery": "false"},
                    create=partial(sns.subscribe, TopicArn=ctx.arns.topic, Protocol="sqs", Endpoint=qarn,
                                   Attributes={"RawMessageDelivery": "false"}, ReturnSubscriptionArn=True),
                    update=update, delete=delete, arn=qarn)


def _mail_subscription(ctx: Ctx, email: str) -> Resource:
    sns = ctx.client("sns")

    def delete() -> None:
        sub = _find_subscription(ctx, "email", email)
        # Unconfirmed subscriptions cannot be unsubscribed; they go with the topic.
        if sub is not None and sub["SubscriptionArn"].startswith("arn:"):
            sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])

    return Resource("sns-subscription", f"{ctx.settings.sns_topic} -> email:{email}",
                    read=lambda: None if _find_subscription(ctx, "email", email) is None else {},
                    create=partial(sns.subscribe, TopicArn=ctx.arns.topic, Protocol="email", Endpoint=email),
                    delete=delete, arn=ctx.arns.topic,
                    skip="e-mail is not delivered on the local target" if ctx.local else "")


def _resources(ctx: Ctx) -> list[Resource]:
    s = ctx.settings
    qname = s.notification_queue
    return [
        *_topic_resources(ctx),
        queue_resource(ctx, qname, queue_policy(ctx.arns.queue(qname), "sns.amazonaws.com", [ctx.arns.topic])),
        _queue_subscription(ctx, qname),
        *(_mail_subscription(ctx, email) for email in s.notification_emails),
    ]


STEP = Step("sns", _resources)

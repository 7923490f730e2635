"""Step ``logs``: CloudWatch log groups with retention for the Lambda, the crawlers and the jobs.

The Lambda's group is the kit's own and is deleted in teardown. Glue writes every crawler and
Python-shell job of the account to shared groups (``/aws-glue/crawlers``,
``/aws-glue/python-jobs/*``): the kit creates them with retention when missing but never deletes them.
"""

from __future__ import annotations

from typing import Any

from etl_kit.provision.base import TAGS, Ctx, Resource, Step

__all__ = ["STEP", "log_groups"]

SHARED = "shared with every Glue crawler/job of the account"


def log_groups(ctx: Ctx) -> list[tuple[str, bool]]:
    """``(name, shared)`` for each log group the kit manages."""
    a = ctx.arns
    return [(a.lambda_log_group, False), (a.crawler_log_group, True)] + [(g, True) for g in a.job_log_groups]


def _log_group(ctx: Ctx, name: str, shared: bool) -> Resource:
    logs = ctx.client("logs")
    days = ctx.settings.log_retention_days

    def read() -> dict[str, Any] | None:
        for g in logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", []):
            if g["logGroupName"] == name:
                return {"retentionInDays": g.get("retentionInDays")}
        return None

    def retain(_: Any = None) -> None:
        logs.put_retention_policy(logGroupName=name, retentionInDays=days)

    def create() -> None:
        logs.create_log_group(logGroupName=name, tags=TAGS)
        retain()

    return Resource("log-group", name, read=read, desired={"retentionInDays": days}, create=create, update=retain,
                    delete=lambda: logs.delete_log_group(logGroupName=name), arn=ctx.arns.log_group(name),
                    delete_skip=SHARED if shared else "")


STEP = Step("logs", lambda ctx: [_log_group(ctx, name, shared) for name, shared in log_groups(ctx)])

"""Step ``logs``: CloudWatch log groups with retention for the Lambda, the crawlers and the jobs.

The Lambda's group is the kit's own and is deleted in teardown. Glue writes every crawler and
Python-shell job of the account to shared groups (``/aws-glue/crawlers``,
``/aws-glue/python-jobs/*``): the kit creates them with retention when missing but never deletes them.
"""

from __future__ import annotations

from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, run_delete, run_describe, run_ensure, run_plan

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "log_groups"]

STEP = "logs"
SHARED = "shared with every Glue crawler/job of the account"


def log_groups(ctx: Ctx) -> list[tuple[str, bool]]:
    """``(name, shared)`` for each log group the kit manages."""
    a = ctx.arns
    return [(a.lambda_log_group, False), (a.crawler_log_group, True)] + [(g, True) for g in a.job_log_groups]


def _resources(ctx: Ctx) -> list[Resource]:
    logs = ctx.client("logs")
    days = ctx.settings.log_retention_days
    out = []
    for name, shared in log_groups(ctx):

        def read(name: str = name) -> dict[str, Any] | None:
            for g in logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", []):
                if g["logGroupName"] == name:
                    return {"retentionInDays": g.get("retentionInDays")}
            return None

        def create(name: str = name) -> None:
            logs.create_log_group(logGroupName=name, tags={"etl-kit": "managed"})
            logs.put_retention_policy(logGroupName=name, retentionInDays=days)

        def update(_: Any, name: str = name) -> None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=days)

        def delete(name: str = name) -> None:
            logs.delete_log_group(logGroupName=name)

        out.append(Resource("log-group", name, read, lambda: {"retentionInDays": days}, create, update, delete,
                            arn=ctx.arns.log_group(name), delete_skip=SHARED if shared else ""))
    return out


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create the log groups and set their retention."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the log groups."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the Lambda's log group (shared Glue groups are kept)."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

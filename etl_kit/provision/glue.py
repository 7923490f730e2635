"""Step ``glue_crawlers``: the Data Catalog database and the two crawlers; plus the Glue connection.

Crawlers use ``SchemaChangePolicy`` UPDATE_IN_DATABASE / LOG (new columns reach the catalog,
deleted objects never drop a table someone queries) and, with ``crawl_mode: events`` (the default),
``RecrawlPolicy`` CRAWL_EVENT_MODE on their single S3 target with its event queue and DLQ
(:mod:`etl_kit.provision.crawl_events`): a crawl reads only the objects the bucket's events name. With
``crawl_mode: full`` it is the seed's CRAWL_EVERYTHING ("new folders only" would miss new files, which
land in the same ``input/`` folder).
The connection (:func:`connection_resource`) is applied by the ``redshift`` step because it
needs the workgroup's endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from etl_kit.provision.base import TAGS, Ctx, Resource, Step, read_with
from etl_kit.provision.crawl_events import crawl_targets, recrawl_policy, s3_target

__all__ = [
    "STEP",
    "crawler_specs",
    "JdbcTarget",
    "connection_resource",
    "SCHEMA_CHANGE_POLICY",
]

SCHEMA_CHANGE_POLICY = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
CRAWLER_CONFIGURATION = json.dumps(
    {
        "Version": 1.0,
        "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
        "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
    },
    sort_keys=True,
)


def crawler_specs(ctx: Ctx) -> dict[str, dict[str, Any]]:
    """The desired ``create_crawler`` arguments of each crawler (without ``Name``)."""
    s = ctx.settings
    a = ctx.arns
    return {t.crawler: {
        "Role": a.role(s.crawler_role),
        "DatabaseName": s.glue_database,
        "Description": f"etl-kit: {t.what} under s3://{a.bucket}/{t.prefix} into {s.glue_database}",
        "Targets": {"S3Targets": [s3_target(ctx, t)]},
        "SchemaChangePolicy": SCHEMA_CHANGE_POLICY,
        "RecrawlPolicy": recrawl_policy(ctx),
        "Configuration": CRAWLER_CONFIGURATION,
    } for t in crawl_targets(ctx)}


def _database(ctx: Ctx) -> Resource:
    glue = ctx.client("glue")
    db = ctx.settings.glue_database
    return Resource("glue-database", db, read=read_with(partial(glue.get_database, Name=db)),
                    create=partial(glue.create_database, DatabaseInput={"Name": db, "Description": "etl-kit catalog"}),
                    delete=partial(glue.delete_database, Name=db), arn=ctx.arns.database, is_data=True)


def _crawler_state(r: dict[str, Any]) -> dict[str, Any]:
    c = r["Crawler"]
    keys = ("Path", "Exclusions", "EventQueueArn", "DlqEventQueueArn")
    targets = [{"Exclusions": [], **{k: t[k] for k in keys if k in t}}
               for t in c.get("Targets", {}).get("S3Targets", [])]
    return {
        "Role": c.get("Role"),
        "DatabaseName": c.get("DatabaseName"),
        "Description": c.get("Description"),
        "Targets": {"S3Targets": targets},
        "SchemaChangePolicy": c.get("SchemaChangePolicy"),
        "RecrawlPolicy": c.get("RecrawlPolicy"),
        "Configuration": c.get("Configuration"),
    }


def _crawler(ctx: Ctx, name: str, spec: dict[str, Any]) -> Resource:
    glue = ctx.client("glue")
    return Resource("glue-crawler", name, read=read_with(partial(glue.get_crawler, Name=name), _crawler_state),
                    desired=spec, create=partial(glue.create_crawler, Name=name, Tags=TAGS, **spec),
                    update=lambda _: glue.update_crawler(Name=name, **spec),
                    delete=partial(glue.delete_crawler, Name=name), arn=ctx.arns.crawler(name))


@dataclass(frozen=True)
class JdbcTarget:
    """Where the Glue connection points: the workgroup's endpoint, its network and the admin secret."""

    address: str
    port: int
    subnet_id: str
    availability_zone: str
    security_group_id: str
    secret_arn: str | None


def connection_resource(ctx: Ctx, target: Callable[[], JdbcTarget | None]) -> Resource:
    """The JDBC connection to the workgroup; waits (is skipped) while ``target()`` is ``None``."""
    glue = ctx.client("glue")
    s = ctx.settings
    name = s.glue_connection

    def desired() -> dict[str, Any]:
        t = target()
        assert t is not None, "waits_for lets the connection through only once its target is known"
        props = {"JDBC_CONNECTION_URL": f"jdbc:redshift://{t.address}:{t.port}/{s.redshift_database}",
                 "JDBC_ENFORCE_SSL": "true"}
        if t.secret_arn:
            props["SECRET_ID"] = t.secret_arn
        return {
            "ConnectionType": "JDBC",
            "ConnectionProperties": props,
            "PhysicalConnectionRequirements": {"SubnetId": t.subnet_id, "AvailabilityZone": t.availability_zone,
                                               "SecurityGroupIdList": [t.security_group_id]},
        }

    def body() -> dict[str, Any]:
        return {"Name": name, "Description": f"etl-kit: {s.redshift_workgroup} over JDBC", **desired()}

    def project(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r["Connection"].get(k) for k in ("ConnectionType", "ConnectionProperties",
                                                    "PhysicalConnectionRequirements")}

    return Resource("glue-connection", name, read=read_with(partial(glue.get_connection, Name=name, HidePassword=True),
                                                            project),
                    desired=desired, create=lambda: glue.create_connection(ConnectionInput=body()),
                    update=lambda _: glue.update_connection(Name=name, ConnectionInput=body()),
                    delete=partial(glue.delete_connection, ConnectionName=name), arn=ctx.arns.connection,
                    waits_for=lambda: "" if target() is not None else "no Redshift workgroup endpoint yet")


STEP = Step("glue_crawlers", lambda ctx: [_database(ctx),
                                          *(_crawler(ctx, name, spec) for name, spec in crawler_specs(ctx).items())])

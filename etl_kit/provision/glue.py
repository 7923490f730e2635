"""Step ``glue_crawlers``: the Data Catalog database and the two crawlers; plus the Glue connection.

Crawlers use ``SchemaChangePolicy`` UPDATE_IN_DATABASE / LOG (new columns reach the catalog,
deleted objects never drop a table someone queries) and ``RecrawlPolicy`` CRAWL_EVERYTHING
(new files land in the same ``input/`` folder, which "new folders only" would miss).
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

__all__ = [
    "STEP",
    "crawler_specs",
    "JdbcTarget",
    "connection_resource",
    "SCHEMA_CHANGE_POLICY",
    "RECRAWL_POLICY",
]

SCHEMA_CHANGE_POLICY = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
RECRAWL_POLICY = {"RecrawlBehavior": "CRAWL_EVERYTHING"}
CRAWLER_CONFIGURATION = json.dumps(
    {
        "Version": 1.0,
        "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
        "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
    },
    sort_keys=True,
)
# Glue exclude globs: the CSV crawler ignores everything that is not CSV, the Parquet one everything not Parquet.
INPUT_EXCLUSIONS = ["**.{json,parquet,avro,orc,txt,zip,gz,tmp,crc}", "**/_*", "_*"]
OUTPUT_EXCLUSIONS = ["**.{csv,json,txt,tmp,crc}", "**/_*", "_*"]


def crawler_specs(ctx: Ctx) -> dict[str, dict[str, Any]]:
    """The desired ``create_crawler`` arguments of each crawler (without ``Name``)."""
    s = ctx.settings
    a = ctx.arns
    role = a.role(s.crawler_role)

    def spec(prefix: str, exclusions: list[str], what: str) -> dict[str, Any]:
        return {
            "Role": role,
            "DatabaseName": s.glue_database,
            "Description": f"etl-kit: {what} under s3://{a.bucket}/{prefix} into {s.glue_database}",
            "Targets": {"S3Targets": [{"Path": f"s3://{a.bucket}/{prefix}", "Exclusions": exclusions}]},
            "SchemaChangePolicy": SCHEMA_CHANGE_POLICY,
            "RecrawlPolicy": RECRAWL_POLICY,
            "Configuration": CRAWLER_CONFIGURATION,
        }

    return {
        s.csv_crawler: spec(s.input_prefix, INPUT_EXCLUSIONS, "CSV files"),
        s.parquet_crawler: spec(s.output_prefix, OUTPUT_EXCLUSIONS, "Parquet files"),
    }


def _database(ctx: Ctx) -> Resource:
    glue = ctx.client("glue")
    db = ctx.settings.glue_database
    return Resource("glue-database", db, read=read_with(partial(glue.get_database, Name=db)),
                    create=partial(glue.create_database, DatabaseInput={"Name": db, "Description": "etl-kit catalog"}),
                    delete=partial(glue.delete_database, Name=db), arn=ctx.arns.database, is_data=True)


def _crawler_state(r: dict[str, Any]) -> dict[str, Any]:
    c = r["Crawler"]
    targets = [{"Path": t.get("Path"), "Exclusions": t.get("Exclusions", [])}
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

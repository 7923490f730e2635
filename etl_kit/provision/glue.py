"""Step ``glue_crawlers``: the Data Catalog database and the two crawlers; plus the Glue connection.

Crawlers use ``SchemaChangePolicy`` UPDATE_IN_DATABASE / LOG (new columns reach the catalog,
deleted objects never drop a table someone queries) and ``RecrawlPolicy`` CRAWL_EVERYTHING
(new files land in the same ``input/`` folder, which "new folders only" would miss).
The connection (:func:`connection_resources`) is applied by the ``redshift`` step because it
needs the workgroup's endpoint.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import (
    Change,
    Ctx,
    Resource,
    const,
    or_none,
    run_delete,
    run_describe,
    run_ensure,
    run_plan,
)

__all__ = [
    "STEP",
    "plan",
    "ensure",
    "describe",
    "delete",
    "crawler_specs",
    "connection_resources",
    "SCHEMA_CHANGE_POLICY",
    "RECRAWL_POLICY",
]

STEP = "glue_crawlers"
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


def _resources(ctx: Ctx) -> list[Resource]:
    glue = ctx.client("glue")
    s = ctx.settings
    db = s.glue_database

    def db_read() -> dict[str, Any] | None:
        return None if or_none(lambda: glue.get_database(Name=db)) is None else {}

    out = [
        Resource("glue-database", db, db_read, dict,
                 lambda: glue.create_database(DatabaseInput={"Name": db, "Description": "etl-kit catalog"}),
                 lambda d: None, lambda: glue.delete_database(Name=db), arn=ctx.arns.database, is_data=True),
    ]
    for name, spec in crawler_specs(ctx).items():

        def read(name: str = name) -> dict[str, Any] | None:
            r = or_none(lambda: glue.get_crawler(Name=name))
            if r is None:
                return None
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

        def create(name: str = name, spec: dict[str, Any] = spec) -> None:
            glue.create_crawler(Name=name, Tags={"etl-kit": "managed"}, **spec)

        def update(_: Any, name: str = name, spec: dict[str, Any] = spec) -> None:
            glue.update_crawler(Name=name, **spec)

        out.append(Resource("glue-crawler", name, read, const(spec), create, update,
                            partial(glue.delete_crawler, Name=name), arn=ctx.arns.crawler(name)))
    return out


def connection_resources(ctx: Ctx, endpoint: dict[str, Any] | None, network: dict[str, Any] | None,
                         secret_arn: str | None, *, deleting: bool = False) -> list[Resource]:
    """The JDBC connection to the workgroup (``endpoint``: address/port; ``network``: subnet, AZ, group)."""
    glue = ctx.client("glue")
    s = ctx.settings
    name = s.glue_connection

    def desired() -> dict[str, Any]:
        assert endpoint is not None and network is not None
        props = {
            "JDBC_CONNECTION_URL": f"jdbc:redshift://{endpoint['address']}:{endpoint['port']}/{s.redshift_database}",
            "JDBC_ENFORCE_SSL": "true",
        }
        if secret_arn:
            props["SECRET_ID"] = secret_arn
        return {
            "ConnectionType": "JDBC",
            "ConnectionProperties": props,
            "PhysicalConnectionRequirements": {
                "SubnetId": network["subnet_ids"][0],
                "AvailabilityZone": network["availability_zone"],
                "SecurityGroupIdList": [network["security_group_id"]],
            },
        }

    def read() -> dict[str, Any] | None:
        r = or_none(lambda: glue.get_connection(Name=name, HidePassword=True))
        if r is None:
            return None
        c = r["Connection"]
        out = {k: c.get(k) for k in ("ConnectionType", "ConnectionProperties", "PhysicalConnectionRequirements")}
        return out

    def body() -> dict[str, Any]:
        return {"Name": name, "Description": f"etl-kit: {s.redshift_workgroup} over JDBC", **desired()}

    def delete() -> None:
        glue.delete_connection(ConnectionName=name)

    ready = deleting or (endpoint is not None and network is not None)
    skip = "" if ready else "no Redshift workgroup endpoint yet"
    return [
        Resource("glue-connection", name, read, desired, lambda: glue.create_connection(ConnectionInput=body()),
                 lambda d: glue.update_connection(Name=name, ConnectionInput=body()),
                 delete, arn=ctx.arns.connection, skip=skip),
    ]


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the database and the crawlers."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the database and crawlers."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the crawlers, and the database unless ``keep_data``."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

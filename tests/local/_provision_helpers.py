"""Helpers for the provisioning tests: unique resource names per test on the shared local cloud."""

from __future__ import annotations

from typing import Any

from etl_kit.config import Settings

NAME_KEYS = (
    "bucket", "assets_bucket", "lambda_function", "start_rule", "crawler01_rule", "job01_rule", "crawler02_rule",
    "job02_rule", "workflow", "glue_database", "csv_crawler", "parquet_crawler", "csv_job", "load_job",
    "glue_connection", "lambda_role", "crawler_role", "csv_job_role", "load_job_role", "redshift_role",
    "events_role", "redshift_namespace", "redshift_workgroup", "sns_topic", "notification_queue",
    "intake_queue", "intake_dlq", "redshift_loader_secret",
)

def unique(cloud: Settings, tag: str, **overrides: Any) -> Settings:
    """``cloud`` with every resource name suffixed by ``-tag`` (tests share one local cloud)."""
    values: dict[str, Any] = {k: f"{getattr(cloud, k)}-{tag}" for k in NAME_KEYS}
    # database users are one namespace of the whole local warehouse (an identifier: no "-")
    values["redshift_loader_user"] = f"{cloud.redshift_loader_user}_{tag.replace('-', '_').lower()}"
    data = cloud.model_dump()
    data.update(values)
    data.update(overrides)
    return Settings.model_validate(data)

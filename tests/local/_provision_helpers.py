"""Helpers for the provisioning tests: unique resource names per test on the shared local cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl_kit.config import Settings
from etl_kit.provision import packaging

NAME_KEYS = (
    "bucket", "assets_bucket", "lambda_function", "start_rule", "crawler01_rule", "job01_rule", "crawler02_rule",
    "job02_rule", "workflow", "glue_database", "csv_crawler", "parquet_crawler", "csv_job", "load_job",
    "glue_connection", "lambda_role", "crawler_role", "csv_job_role", "load_job_role", "redshift_role",
    "events_role", "redshift_namespace", "redshift_workgroup", "sns_topic", "notification_queue",
)

STUB_HANDLER = '''"""Stand-in handler used until etl_kit/pipeline/lambda_handler.py exists."""


def handler(event, context):
    return {"status": "ok"}
'''


def unique(cloud: Settings, tag: str, **overrides: Any) -> Settings:
    """``cloud`` with every resource name suffixed by ``-tag`` (tests share one local cloud)."""
    values = {k: f"{getattr(cloud, k)}-{tag}" for k in NAME_KEYS}
    data = cloud.model_dump()
    data.update(values)
    data.update(overrides)
    return Settings.model_validate(data)


def ensure_handler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the Lambda packaging at a stub when the real handler is not written yet."""
    if not packaging.LAMBDA_SOURCE.is_file():
        stub = tmp_path / "lambda_handler.py"
        stub.write_text(STUB_HANDLER)
        monkeypatch.setattr(packaging, "LAMBDA_SOURCE", stub)


def redshift_available(settings: Settings) -> bool:
    from etl_kit.provision import redshift
    from etl_kit.provision.base import Ctx

    return redshift.available(Ctx(settings))

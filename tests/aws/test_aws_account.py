"""Opt-in tier against a real AWS account: ``ETL_KIT_AWS_TESTS=1 ./kit test -m aws``.

The pytest config pins fake credentials, so this tier reads real ones only from the profile named by
``ETL_KIT_AWS_PROFILE`` (or the default chain once the pinned variables are removed). It is read-only:
preflight and a plan; nothing is created.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.aws
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_session(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN",
                "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    import boto3

    return boto3.Session(profile_name=os.environ.get("ETL_KIT_AWS_PROFILE"))


def test_preflight_and_plan_against_the_account(real_session) -> None:  # type: ignore[no-untyped-def]
    from etl_kit.config import load_settings
    from etl_kit.provision import plan_all, preflight

    settings = load_settings(ROOT / "params" / "aws.yaml", region=real_session.region_name or "us-east-1")
    assert preflight(settings, real_session)
    changes = plan_all(settings, real_session)
    assert changes and {c.action for c in changes} <= {"create", "update", "no-change", "skip"}

"""Fixtures shared by the local tier's pipeline tests (the session's ``cloud`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from etl_kit.config import Settings


@pytest.fixture(scope="module")
def pipeline(cloud: Settings) -> Settings:
    """The session's local cloud with the whole pipeline provisioned (idempotent: once per module)."""
    from etl_kit.provision import apply_all

    apply_all(cloud, progress=False)
    return cloud


@pytest.fixture
def s3(pipeline: Settings, boto):  # type: ignore[no-untyped-def]
    """A plain boto3 S3 client against the provisioned pipeline's cloud."""
    return boto("s3")

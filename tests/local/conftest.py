"""The local tier's fixtures: one family, one name per meaning.

=================  ========  ==================================================================================
fixture            scope     what it is
=================  ========  ==================================================================================
``cloud``          session   the session's local cloud: its Settings (tests/conftest.py)
``boto``           function  ``boto(service)``: a plain boto3 client against ``cloud`` (tests/conftest.py)
``pipeline``       module    ``cloud`` with the whole pipeline provisioned: its Settings
``s3``             function  a plain boto3 S3 client against ``pipeline``'s cloud
``module_cloud``   module    a local cloud of the test module's own (defaults, fresh state dir): its Settings
``module_boto``    module    ``module_boto(service)``: a plain boto3 client against ``module_cloud``
=================  ========  ==================================================================================

A module whose tests change the warehouse or the daemon in ways other modules must not see asks for
``module_cloud`` / ``module_boto``; it never redefines ``cloud`` or ``boto``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etl_kit.config import Settings
from tests.conftest import client_factory, private_cloud


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


@pytest.fixture(scope="module")
def module_cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local cloud of the requesting module's own, stopped after its last test."""
    yield from private_cloud(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def module_boto(module_cloud: Settings) -> Callable[[str], Any]:
    """``module_boto(service)``: a plain boto3 client against the module's own cloud."""
    return client_factory(module_cloud)  # type: ignore[no-any-return]

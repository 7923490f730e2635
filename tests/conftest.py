"""Shared fixtures. Fake AWS credentials are pinned in pyproject.toml ([tool.pytest.ini_options] env)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etl_kit import local
from etl_kit.config import Settings, load_settings
from etl_localcloud.identity import pid_alive
from etl_localcloud.spec import free_port

__all__ = ["ROOT", "free_port", "pid_alive", "wait_for", "private_cloud", "client_factory",
           "insist_on_pinned_runtimes", "require_interpreter"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One local cloud (moto + providers + PostgreSQL) for the test session (per xdist worker).

    Yields the Settings that point at it; torn down at the end of the session.
    """
    state = tmp_path_factory.mktemp("cloud")
    settings = load_settings(ROOT / "params" / "local.yaml", local_state_dir=str(state), local_port=free_port())
    st = local.up(settings)
    try:
        insist_on_pinned_runtimes(st.get("runtimes") or {})
        yield settings
    finally:
        local.down(settings)


def insist_on_pinned_runtimes(runtimes: dict[str, Any]) -> None:
    """On CI (``CI=true``) the pipeline's tests must run on the pinned Glue and Lambda runtimes: a runtime that
    fell back to the daemon's Python (no python3.9 / python3.12 found, or pip failed) fails the session loudly."""
    fallen = {name: r.get("fallback") for name, r in runtimes.items() if r.get("fallback")}
    if fallen and os.environ.get("CI") == "true":
        pytest.fail("CI=true but the local cloud's runtimes are not the pinned ones: "
                    + "; ".join(f"{n}: {why}" for n, why in fallen.items())
                    + " (install the interpreters, e.g. with pyenv, so PATH or `pyenv root` finds them)",
                    pytrace=False)


def require_interpreter(minor: str) -> Any:
    """The ``python<minor>`` the local cloud would find (:class:`~etl_localcloud.runtime_envs.Interpreter`).

    Skips the test where there is none, but fails it on CI (``CI=true``): the pinned runtimes are tested there.
    """
    from etl_localcloud.runtime_envs import find_interpreter

    found = find_interpreter(minor)
    if found is None:
        message = f"no python{minor} on PATH or through pyenv: the pinned runtime cannot be tested"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return found


def private_cloud(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Settings]:
    """A local cloud of a test module's own (defaults, free port, fresh state dir), stopped afterwards.

    For modules whose tests change the warehouse or the daemon in ways the session's ``cloud`` must not see.
    """
    settings = load_settings(None, local_state_dir=str(tmp_path_factory.mktemp(name)), local_port=free_port())
    local.up(settings)
    try:
        yield settings
    finally:
        local.down(settings)


def client_factory(settings: Settings):  # type: ignore[no-untyped-def]
    """``make(service)``: a plain boto3 client against ``settings``' running local cloud, with the keys it gave."""
    import boto3

    where = local.address(settings)

    def make(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=where.endpoint, region_name=settings.region,
                            **where.credentials.boto3_kwargs())

    return make


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def endpoint(cloud: Settings) -> str:
    return cloud.local_endpoint


@pytest.fixture
def boto(cloud: Settings):  # type: ignore[no-untyped-def]
    """``boto(service)``: a plain boto3 client against the session's local cloud."""
    return client_factory(cloud)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ``aws`` tier is opt-in: skipped unless ETL_KIT_AWS_TESTS=1 and real credentials are configured."""
    if os.environ.get("ETL_KIT_AWS_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="aws tier is opt-in: set ETL_KIT_AWS_TESTS=1 with real credentials")
    for item in items:
        if "aws" in item.keywords:
            item.add_marker(skip)


# -- tiers (issue 11, item 8): a test's folder, its tier marker and what it needs agree --------------------------
TIERS = ("unit", "local", "notebooks", "aws")
SERVER_FIXTURES = frozenset({"cloud", "module_cloud"})  # every fixture that starts a local cloud leads to one


def tier_problems(items: list[pytest.Item]) -> list[str]:
    """Why each item is in the wrong tier: its folder under tests/ names the one tier marker it must carry,
    and a unit test starts no local cloud (directly or through another fixture)."""
    problems = []
    for item in items:
        parts = item.path.relative_to(ROOT / "tests").parts
        folder = parts[0] if len(parts) > 1 else ""
        marked = {m.name for m in item.iter_markers() if m.name in TIERS}
        if folder not in TIERS:
            problems.append(f"{item.nodeid}: tests live in a tier folder: tests/{{{','.join(TIERS)}}}/")
        elif marked != {folder}:
            problems.append(f"{item.nodeid}: under tests/{folder}/ but marked {sorted(marked) or 'with no tier'}; "
                            f"mark it {folder} only (pytestmark = pytest.mark.{folder}) or move it")
        elif folder == "unit" and SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            problems.append(f"{item.nodeid}: a unit test that starts a local cloud "
                            f"({', '.join(sorted(SERVER_FIXTURES & set(item.fixturenames)))}); move it to tests/local/")
    return problems


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection fails when a test's folder, tier marker and fixtures disagree (see :func:`tier_problems`)."""
    problems = tier_problems(session.items)
    if problems:
        raise pytest.UsageError("tests in the wrong tier:\n  " + "\n  ".join(problems))

"""moto is pinned because the local cloud reaches into its internals: fail loudly if they moved."""

from __future__ import annotations

import pytest

from etl_localcloud import motohooks

pytestmark = pytest.mark.unit


def test_moto_internals_the_kit_uses_are_where_it_expects_them() -> None:
    assert motohooks.check_contract() == []


def test_pinned_version_matches_pyproject() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    # moto belongs to the local cloud, installed by the `local` extra
    assert f"moto[server]=={motohooks.MOTO_VERSION}" in project["optional-dependencies"]["local"]

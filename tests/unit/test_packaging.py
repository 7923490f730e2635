"""pyproject.toml is the source of truth; environment.yml (conda route) must list the same packages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_lists_exactly_the_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    want = set(project["dependencies"]) | set(extras["dev"]) | set(extras["bench"]) | set(extras["local"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = {p for p in pip_section if not p.startswith("-e")}
    assert got == want, f"missing in environment.yml: {want - got}; extra: {got - want}"
    assert "python=3.11" in env["dependencies"]


def test_console_script_and_markers_are_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["etl-kit"] == "etl_kit.cli:main"
    markers = {m.split(":")[0] for m in data["tool"]["pytest"]["ini_options"]["markers"]}
    assert markers == {"unit", "local", "notebooks", "aws", "slow"}
    env = dict(e.split("=", 1) for e in data["tool"]["pytest"]["ini_options"]["env"])
    assert env["AWS_ACCESS_KEY_ID"] == "testing"


def test_params_files_have_the_same_keys_as_the_settings_model() -> None:
    from etl_kit.config import Settings

    for name in ("local.yaml", "aws.yaml"):
        keys = set(yaml.safe_load((ROOT / "params" / name).read_text()))
        assert keys == set(Settings.model_fields), f"params/{name} differs from Settings"

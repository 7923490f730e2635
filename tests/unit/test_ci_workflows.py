"""The ready-to-copy GitHub Actions definitions parse, and every `etl-kit` command they run exists with those flags."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return dict(data)


def _steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def _etl_kit_commands(wf: dict[str, Any]) -> list[list[str]]:
    commands = []
    for step in _steps(wf):
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and words[0] == "etl-kit":
                    commands.append(words[1:])
    return commands


def _parse(args: list[str]) -> click.Context:
    """Resolve ``args`` through the kit's command groups and parse them as the CLI would (no command runs)."""
    from etl_kit.cli import cli

    cmd: click.Command = cli
    while isinstance(cmd, click.Group):
        assert args and args[0] in cmd.commands, f"no etl-kit command {args[:1]} (have {sorted(cmd.commands)})"
        cmd, args = cmd.commands[args[0]], args[1:]
    return cmd.make_context(cmd.name or "", list(args))


@pytest.fixture(autouse=True)
def _in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the workflows run from the checkout (params files are checked to exist)


def test_the_local_workflow_runs_the_notebooks_on_every_push_and_keeps_them() -> None:
    wf = _load("notebooks-local.yml")
    assert "push" in wf["on"]
    commands = _etl_kit_commands(wf)
    runs = [c for c in commands if c[:2] == ["notebooks", "run"]]
    assert len(runs) == 1
    ctx = _parse(runs[0])
    assert ctx.params["params"] == "params/local.yaml" and not ctx.params["teardown"]
    for args in commands:
        _parse(args)
    artifact = next(s for s in _steps(wf) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert artifact["if"] == "always()" and ctx.params["out"].rstrip("/") in artifact["with"]["path"]


def test_the_aws_workflow_is_manual_assumes_a_role_through_oidc_and_tears_down_at_the_end() -> None:
    wf = _load("notebooks-aws.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    assert wf["on"]["workflow_dispatch"]["inputs"]["role-to-assume"]["required"] is True
    assert wf["permissions"]["id-token"] == "write"
    steps = _steps(wf)
    creds = next(s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    assert creds["with"]["role-to-assume"] == "${{ inputs.role-to-assume }}"
    assert steps.index(creds) < min(i for i, s in enumerate(steps) if "etl-kit" in s.get("run", ""))
    runs = [_parse(c) for c in _etl_kit_commands(wf)]
    assert [c.params["params"] for c in runs] == ["params/aws.yaml", "params/aws.yaml"]
    assert [c.params["teardown"] for c in runs] == [False, True]
    assert runs[1].params["only"] == "99"
    teardown = next(s for s in steps if "--teardown" in s.get("run", ""))
    assert teardown["if"].startswith("always()"), "the teardown runs even after a failed notebook"
    assert steps.index(teardown) == max(i for i, s in enumerate(steps) if "etl-kit" in s.get("run", ""))


def test_an_unknown_flag_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _parse(["notebooks", "run", "--params", "params/local.yaml", "--tear-down"])
    with pytest.raises(AssertionError, match="no etl-kit command"):
        _parse(["notebook", "run"])

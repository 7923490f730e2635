"""CLI commands ``provision``, ``resources`` and ``teardown``."""

from __future__ import annotations

import json
from typing import Any

import click

from etl_kit.config import load_settings
from etl_kit.provision.base import Change

__all__ = ["register"]

_COLOURS = {"create": "green", "update": "yellow", "delete": "red", "skip": "bright_black", "no-change": None}


def _print(changes: list[Change]) -> None:
    step = None
    for c in changes:
        if c.step != step:
            step = c.step
            click.secho(f"[{step}]", bold=True)
        click.secho(f"  {c}", fg=_COLOURS.get(c.action))
        if c.action == "update":
            for k, v in c.diffs.items():
                click.echo(f"      {k}: {json.dumps(v.get('actual'), default=str)[:200]}"
                           f" -> {json.dumps(v.get('desired'), default=str)[:200]}")
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.action] = counts.get(c.action, 0) + 1
    click.echo(", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to do")


def _print_idle(lines: list[Any], target: str) -> None:
    from etl_kit.pricing import PRICE_DATE, REGION, total

    where = "" if target == "aws" else " (what these resources would cost on AWS; the local cloud is free)"
    click.secho(f"idle cost per month{where}, {REGION} list prices of {PRICE_DATE}:", bold=True)
    for x in lines:
        click.echo(f"  {x.component:<28} ${x.usd:>8.2f}  {x.derivation} @ ${x.unit_usd:g} per {x.unit}")
    click.secho(f"  {'total':<28} ${total(lines):>8.2f}", bold=True)


def register(group: click.Group) -> None:
    """Add the provisioning commands to ``group``."""

    @group.command("provision")
    @click.option("--params", "params", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="params file, e.g. params/local.yaml")
    @click.option("--plan", "plan_only", is_flag=True, help="show what would change, change nothing")
    def provision_cmd(params: str, plan_only: bool) -> None:
        """Create or update every pipeline resource (idempotent; drift is put back)."""
        from etl_kit.provision import apply_all, idle_cost, plan_all

        settings = load_settings(params)
        if not plan_only:
            _print(apply_all(settings, progress=True))
            return
        _print(plan_all(settings))
        _print_idle(idle_cost(settings), settings.target)

    @group.command("resources")
    @click.option("--params", "params", required=True, type=click.Path(exists=True, dir_okay=False))
    def resources_cmd(params: str) -> None:
        """Print the inventory with ARNs (and console links on aws)."""
        from etl_kit.provision import inventory

        settings = load_settings(params)
        for step, items in inventory(settings).items():
            click.secho(f"[{step}]", bold=True)
            for name, info in items.items():
                if not isinstance(info, dict) or "type" not in info:
                    click.echo(f"  {name}: {json.dumps(info, default=str)}")
                    continue
                state = "present" if info.get("exists") else ("skipped" if info.get("skipped") else "absent")
                click.echo(f"  {info['type']:<24} {name:<45} {state:<8} {info.get('arn', '')}")
                if info.get("console"):
                    click.echo(f"      {info['console']}")

    @group.command("teardown")
    @click.option("--params", "params", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--yes", is_flag=True, help="do not ask before deleting data")
    @click.option("--keep-data", is_flag=True, help="keep the bucket contents, the catalog and the warehouse")
    def teardown_cmd(params: str, yes: bool, keep_data: bool) -> None:
        """Delete every pipeline resource in reverse order (re-runnable)."""
        from etl_kit.provision import teardown_all

        settings = load_settings(params)
        _print(teardown_all(settings, keep_data=keep_data, yes=yes,
                            confirm=lambda q: click.confirm(q, default=False), progress=True))

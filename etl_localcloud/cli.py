"""``etl-kit local up|down|status``."""

from __future__ import annotations

import json

import click

from etl_kit.config import Settings, load_settings

__all__ = ["register"]

_params_opt = click.option("--params", "params", type=click.Path(dir_okay=False), default=None,
                           help="params file (default: params/local.yaml if present)")


def _settings(params: str | None, state_dir: str | None = None, port: int | None = None) -> Settings:
    from pathlib import Path

    if params is None and Path("params/local.yaml").exists():
        params = "params/local.yaml"
    overrides: dict[str, object] = {}
    if state_dir:
        overrides["local_state_dir"] = state_dir
    if port:
        overrides["local_port"] = port
    return load_settings(params, **overrides)


def register(group: click.Group) -> None:
    @group.group("local")
    def local() -> None:
        """Run the local cloud (moto + the kit's providers + embedded PostgreSQL) on 127.0.0.1."""

    @local.command("up")
    @_params_opt
    @click.option("--state-dir", default=None, help="where the daemon keeps its state (default .etl-kit/)")
    @click.option("--port", type=int, default=None, help="port on 127.0.0.1 (default from params)")
    def up_cmd(params: str | None, state_dir: str | None, port: int | None) -> None:
        """Start the local cloud in the background; returns once it is ready."""
        from etl_localcloud import up

        st = up(_settings(params, state_dir, port))
        if st.get("repaired"):
            fixed = ", ".join(f"{name} {'restarted' if ok else 'NOT restarted'}" for name, ok in st["repaired"].items())
            click.echo(f"local cloud at {st['endpoint']} (pid {st['pid']}) repaired: {fixed}")
        elif st.get("already_running"):
            click.echo(f"local cloud already running at {st['endpoint']} (pid {st['pid']})")
        else:
            click.echo(f"local cloud ready at {st['endpoint']} (pid {st['pid']}, postgres {st.get('postgres')}, "
                       f"{st.get('startup_seconds')} s)")

    @local.command("down")
    @_params_opt
    @click.option("--state-dir", default=None)
    @click.option("--port", type=int, default=None)
    def down_cmd(params: str | None, state_dir: str | None, port: int | None) -> None:
        """Stop the local cloud and everything it started."""
        from etl_localcloud import down

        click.echo(down(_settings(params, state_dir, port)))

    @local.command("status")
    @_params_opt
    @click.option("--state-dir", default=None)
    @click.option("--port", type=int, default=None)
    @click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
    def status_cmd(params: str | None, state_dir: str | None, port: int | None, as_json: bool) -> None:
        """Show endpoint, pid, uptime, PostgreSQL address and each part's health.

        Exits 3 when the local cloud is not running, 4 when it runs but a part is down (named).
        """
        from etl_localcloud import status

        st = status(_settings(params, state_dir, port))
        if as_json:
            click.echo(json.dumps(st, indent=2, default=str))
            if st["running"] and st.get("down"):
                raise SystemExit(4)
            if not st["running"]:
                raise SystemExit(3)
            return
        if not st["running"]:
            extra = f" (stale pid file for pid {st['stale_pid']}: `etl-kit local up` will replace it)" \
                if st.get("stale_pid") else ""
            click.echo(f"local cloud is not running{extra}")
            raise SystemExit(3)
        click.echo(f"endpoint  {st['endpoint']}\npid       {st['pid']}\nuptime    {st['uptime_seconds']} s\n"
                   f"postgres  {st.get('postgres')}\nstate     {st['state_dir']}")
        for name, h in st.get("providers", {}).items():
            flag = "ok" if h.get("ok") else "FAILING"
            detail = ", ".join(f"{k}={v}" for k, v in h.items() if k != "ok")
            click.echo(f"provider  {name:<18} {flag}  {detail}")
        if st.get("down"):
            click.echo(f"DOWN: {', '.join(st['down'])} -- `etl-kit local up` repairs it", err=True)
            raise SystemExit(4)

"""The kit's side of the local cloud: its spec from the Settings, starting and stopping it, and where it is.

Starting is explicit: ``etl-kit local up`` (registered here), notebook 00 (:func:`etl_kit.nb.setup`),
``etl-kit quickstart`` and the test fixtures call :func:`up`. The client factory only asks :func:`address`
where a running cloud serves. The local cloud (:mod:`etl_localcloud`) is imported here only, and only in
functions: its server's dependencies come with the ``local`` extra, and its errors
(:class:`etl_localcloud.errors.CloudError`) become :class:`~etl_kit.exceptions.LocalCloudError` here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import LocalCloudError

if TYPE_CHECKING:
    from etl_localcloud.identity import CloudAddress
    from etl_localcloud.spec import CloudSpec

__all__ = ["spec", "address", "up", "down", "status", "warehouse_info", "register", "runtime_lines"]

INSTALL_HINT = "pip install 'etl-kit[local]'"
START_HINT = "start it with `etl-kit local up` (or run notebook 00_setup)"


def spec(settings: Settings) -> CloudSpec:
    """The local cloud's spec for ``settings``: its state dir, port and region."""
    from etl_localcloud.spec import CloudSpec

    return CloudSpec(state_dir=settings.state_dir, port=settings.local_port, region=settings.region,
                     iam_enforcement=settings.local_iam_enforcement)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """The local cloud's errors as the kit's (same message: it names the part and the fix)."""
    from etl_localcloud.errors import CloudError

    try:
        yield
    except CloudError as exc:
        raise LocalCloudError(str(exc)) from exc


def address(settings: Settings) -> CloudAddress:
    """Where the local cloud of ``settings`` serves, its account and its credentials (never starts it).

    Raises
    ------
    LocalCloudError
        It is not running (naming how to start it), or it serves on another port than ``local_port``.
    """
    from etl_localcloud.identity import read_address

    found = read_address(settings.state_dir)
    if found is None or not found.running():
        raise LocalCloudError(f"the local cloud is not running (state dir {settings.state_dir}, port "
                              f"{settings.local_port}); {START_HINT}")
    if found.endpoint != settings.local_endpoint:
        raise LocalCloudError(f"the local cloud of {settings.state_dir} serves at {found.endpoint}, not at "
                              f"{settings.local_endpoint}: set local_port to match, or restart it on local_port "
                              "with `etl-kit local down` and `etl-kit local up`")
    return found


def up(settings: Settings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Start the local cloud of ``settings`` (or repair a running one); its status once it serves.

    The first start on a machine also builds the pinned Glue and Lambda runtimes' environments (about a
    minute; ``progress`` gets a line for each); later starts reuse them.

    Raises
    ------
    LocalCloudError
        The ``local`` extra is not installed, the port is taken, or the cloud failed to start (with why).
    """
    from etl_localcloud import manager

    missing = manager.missing_requirements()
    if missing:
        raise LocalCloudError(f"the local cloud needs {', '.join(missing)}, not installed here: run "
                              f"`{INSTALL_HINT}` (./kit installs it)")
    with _translated():
        return manager.up(spec(settings), progress=progress)


def down(settings: Settings) -> str:
    """Stop the local cloud of ``settings`` and everything it started; a one-line message."""
    from etl_localcloud import manager

    with _translated():
        return manager.down(spec(settings))


def status(settings: Settings) -> dict[str, Any]:
    """Whether the local cloud runs, with endpoint, pid, uptime, PostgreSQL address and each part's health."""
    from etl_localcloud import manager

    with _translated():
        return manager.status(spec(settings))


def warehouse_info(settings: Settings) -> dict[str, Any]:
    """Connection facts of the local cloud's embedded PostgreSQL (host, port, user, password, socket dir)."""
    from etl_localcloud import manager

    with _translated():
        return manager.warehouse_info(spec(settings))


# -- etl-kit local up|down|status ------------------------------------------------------------------
_params_opt = click.option("--params", "params", type=click.Path(dir_okay=False), default=None,
                           help="params file (default: params/local.yaml if present)")
_state_opt = click.option("--state-dir", default=None, help="where the daemon keeps its state (default .etl-kit/)")
_port_opt = click.option("--port", type=int, default=None, help="port on 127.0.0.1 (default from params)")


def _settings(params: str | None, state_dir: str | None = None, port: int | None = None) -> Settings:
    if params is None and Path("params/local.yaml").exists():
        params = "params/local.yaml"
    overrides: dict[str, object] = {}
    if state_dir:
        overrides["local_state_dir"] = state_dir
    if port:
        overrides["local_port"] = port
    return load_settings(params, **overrides)


def runtime_lines(runtimes: dict[str, Any]) -> list[str]:
    """One line per runtime: the pinned Python and libraries it runs on, or that it falls back and why."""
    lines = []
    for name, r in sorted(runtimes.items()):
        if r.get("building"):
            lines.append(f"{name}: environment being built")
            continue
        libs = ", ".join(f"{k} {v}" for k, v in (r.get("packages") or {}).items())
        if r.get("fallback"):
            lines.append(f"{name}: NOT EMULATED, runs on the daemon's Python {r.get('python')} ({libs}): "
                         f"{r['fallback']}")
        else:
            lines.append(f"{name}: Python {r.get('python')}, pinned {libs}")
    return lines


def _echo_up(st: dict[str, Any]) -> None:
    if st.get("repaired"):
        fixed = ", ".join(f"{name} {'restarted' if ok else 'NOT restarted'}" for name, ok in st["repaired"].items())
        click.echo(f"local cloud at {st['endpoint']} (pid {st['pid']}) repaired: {fixed}")
    elif st.get("already_running"):
        click.echo(f"local cloud already running at {st['endpoint']} (pid {st['pid']})")
    else:
        click.echo(f"local cloud ready at {st['endpoint']} (pid {st['pid']}, postgres {st.get('postgres')}, "
                   f"{st.get('startup_seconds')} s; runtimes {st.get('runtimes_seconds')} s)")
    for line in runtime_lines(st.get("runtimes") or {}):
        click.echo(f"runtime   {line}")


def _iam_line(st: dict[str, Any]) -> str:
    """What ``etl-kit local status`` says of IAM enforcement."""
    on = st.get("iam_enforcement")
    if on is None:
        return "unknown (a daemon older than IAM enforcement)"
    if on:
        return "enforced: the pipeline's Lambda, Glue jobs and crawlers are held to their roles' policies"
    return "NOT enforced (local_iam_enforcement: false): the pipeline's roles may do anything"


def _echo_status(st: dict[str, Any], as_json: bool) -> None:
    """Print the status; exit 3 when the cloud is not running, 4 when it runs with a part down."""
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
    elif not st["running"]:
        extra = f" (stale pid file for pid {st['stale_pid']}: `etl-kit local up` will replace it)" \
            if st.get("stale_pid") else ""
        click.echo(f"local cloud is not running{extra}")
    else:
        click.echo(f"endpoint  {st['endpoint']}\npid       {st['pid']}\nuptime    {st['uptime_seconds']} s\n"
                   f"postgres  {st.get('postgres')}\nstate     {st['state_dir']}\n"
                   f"iam       {_iam_line(st)}")
        for line in runtime_lines(st.get("runtimes") or {}):
            click.echo(f"runtime   {line}")
        for name, h in st.get("providers", {}).items():
            if name == "runtimes":  # shown above, one line each
                continue
            flag = "ok" if h.get("ok") else "FAILING"
            detail = ", ".join(f"{k}={v}" for k, v in h.items() if k != "ok")
            click.echo(f"provider  {name:<18} {flag}  {detail}")
        if st.get("down"):
            click.echo(f"DOWN: {', '.join(st['down'])} -- `etl-kit local up` repairs it", err=True)
    if not st["running"]:
        raise SystemExit(3)
    if st.get("down"):
        raise SystemExit(4)


def register(group: click.Group) -> None:
    """Add ``etl-kit local up|down|status`` to the kit's command line."""

    @group.group("local")
    def local() -> None:
        """Run the local cloud (moto + the kit's providers + embedded PostgreSQL) on 127.0.0.1."""

    @local.command("up")
    @_params_opt
    @_state_opt
    @_port_opt
    def up_cmd(params: str | None, state_dir: str | None, port: int | None) -> None:
        """Start the local cloud in the background; returns once it is ready."""
        _echo_up(up(_settings(params, state_dir, port), progress=click.echo))

    @local.command("down")
    @_params_opt
    @_state_opt
    @_port_opt
    def down_cmd(params: str | None, state_dir: str | None, port: int | None) -> None:
        """Stop the local cloud and everything it started."""
        click.echo(down(_settings(params, state_dir, port)))

    @local.command("status")
    @_params_opt
    @_state_opt
    @_port_opt
    @click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
    def status_cmd(params: str | None, state_dir: str | None, port: int | None, as_json: bool) -> None:
        """Show endpoint, pid, uptime, PostgreSQL address and each part's health.

        Exits 3 when the local cloud is not running, 4 when it runs but a part is down (named).
        """
        _echo_status(status(_settings(params, state_dir, port)), as_json)

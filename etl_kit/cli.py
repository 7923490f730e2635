"""The ``etl-kit`` command line. Each concern registers its own commands."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tomllib
from pathlib import Path

import click

from etl_kit.exceptions import EtlKitError

# Modules that expose ``register(group: click.Group) -> None``.
_COMMAND_MODULES = (
    "etl_kit.local",
    "etl_kit.provision.cli",
    "etl_kit.runner",
    "etl_kit.nbrecord",  # adds `notebooks record` to the group runner made
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="etl-kit")
def cli() -> None:
    """Provision, run, watch and analyse the S3 -> Glue -> Redshift pipeline (target: local or aws)."""


for _mod in _COMMAND_MODULES:
    try:
        importlib.import_module(_mod).register(cli)
    except ModuleNotFoundError as _exc:  # a concern not built yet must not break the others
        if _exc.name != _mod:
            raise


def _is_checkout(root: Path) -> bool:
    """``root`` is a checkout of etl-kit (its pyproject names the project): only then is its code run."""
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(project.get("name") == "etl-kit" and (root / "benchmarks" / "bench.py").is_file())


def _benchmarks_dir() -> Path | None:
    """The checkout's ``benchmarks/``: in the working directory or a parent of it, else next to the source the
    kit runs from (an editable install). ``None`` for an installed kit run elsewhere."""
    here = Path.cwd().resolve()
    for root in (here, *here.parents, Path(__file__).resolve().parent.parent):
        if _is_checkout(root):
            return root / "benchmarks"
    return None


def _register_bench(group: click.Group) -> None:
    """``etl-kit bench`` from the checkout's ``benchmarks/bench.py`` (loaded by path: it is not installed)."""
    found = _benchmarks_dir()
    if found is None:
        @group.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def bench_unavailable() -> None:
            """The benchmarks (they run from a checkout of etl-kit)."""
            raise click.ClickException(
                f"etl-kit bench runs from a checkout of etl-kit: no benchmarks/ folder next to etl-kit's "
                f"pyproject.toml in {Path.cwd()} or its parents (the benchmarks are not part of the installed "
                "package); run it from the project's checkout")
        return
    module = sys.modules.get("benchmarks.bench")
    if module is None:
        spec = importlib.util.spec_from_file_location("benchmarks.bench", found / "bench.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    module.register(group)


_register_bench(cli)


@cli.command("replay")
@click.argument("target", required=False)
@click.option("--params", "params", default="params/local.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="params file")
@click.option("--failed", "failed", is_flag=True, help="replay every object whose newest attempt failed")
@click.option("--dlq", "dlq", is_flag=True, help="move the intake DLQ's messages back to the intake queue")
@click.option("--force", "force", is_flag=True, help="also replay an object that is loaded (rows are replaced)")
def replay_cmd(target: str | None, params: str, failed: bool, dlq: bool, force: bool) -> None:
    """Run an object again exactly once: TARGET (a source key or s3:// URI), --failed or --dlq."""
    from etl_kit import replay
    from etl_kit.config import load_settings

    if sum(bool(x) for x in (target, failed, dlq)) != 1:
        raise click.UsageError("give exactly one of TARGET, --failed or --dlq")
    settings = load_settings(params)
    if dlq:
        moved = replay.replay_dlq(settings)
        click.echo(f"moved {moved['moved']} message(s) from {settings.intake_dlq} to {settings.intake_queue}; "
                   f"{moved['dlq_left']} left in the DLQ")
        return
    results = replay.replay_failed(settings) if failed else [replay.replay_object(settings, target or "", force=force)]
    for r in results:
        run = f" run {r.run_id}" if r.run_id else ""
        detail = f" - {r.detail}" if r.detail else ""
        click.echo(f"{r.outcome}: s3://{r.bucket}/{r.key} (ETag {r.etag}){run}{detail}")
    if failed:
        click.echo(f"{len(results)} object(s) whose newest attempt failed")


def main() -> None:
    """Entry point: run the CLI, turning the kit's errors into one clear line and exit code 1."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EtlKitError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()

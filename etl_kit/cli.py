"""The ``etl-kit`` command line. Each concern registers its own commands."""

from __future__ import annotations

import importlib
import sys

import click

from etl_kit.exceptions import EtlKitError

# Modules that expose ``register(group: click.Group) -> None``.
_COMMAND_MODULES = (
    "etl_kit.localcloud.cli",
    "etl_kit.provision.cli",
    "etl_kit.runner",
    "etl_kit.bench",
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

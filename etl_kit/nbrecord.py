"""``etl-kit notebooks record``: the notebooks committed with the outputs of a deterministic local run.

A fresh local cloud in a temporary state dir on a free port, the seed's sample (fixed seed), notebooks 00 to 05
run with papermill (:func:`etl_kit.runner.run_notebooks`); each executed notebook's outputs are put back on the
committed notebook's cells (its sources, ids and parameters cell unchanged) and sanitised by the one set of rules
in :mod:`etl_kit.nbsanitize`. The same command twice gives the same notebooks: what still varies between runs
(ids, times, ports, paths) is what the rules replace.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from etl_kit.config import Settings, _project_root, load_settings
from etl_kit.exceptions import PipelineError
from etl_kit.nbsanitize import RunValues, rules_for, sanitize_notebook

__all__ = ["RECORD_SEED", "Recording", "run_values", "recording_cloud", "graft_outputs", "record_notebooks",
           "write_notebook", "register"]

#: The sample's seed in a recording (the params' default; pinned so an edited params file changes nothing).
RECORD_SEED = 42


@dataclass(frozen=True)
class Recording:
    """What a recording wrote: the notebooks, how long it took, and the run's values the rules replaced."""

    notebooks: tuple[Path, ...]
    seconds: float
    values: RunValues
    kept: Path | None = None  # the temporary run, when kept


def run_values(settings: Settings, extra_paths: dict[str, str] | None = None) -> RunValues:
    """The values of the running local cloud of ``settings`` the published outputs must not hold literally:
    its state dir and the checkout / home paths, its ports, the warehouse password and every secret string in
    its Secrets Manager (the managed admin secret's password among them)."""
    from etl_kit import local
    from etl_kit.clients import client

    root = _project_root()
    paths = {str(settings.state_dir): "<state-dir>", str(root): "<checkout>", str(Path.home()): "~",
             str(Path(tempfile.gettempdir()).resolve()): "<tmp>", **(extra_paths or {})}
    ports: list[int] = [settings.local_port]
    secrets: list[str] = []
    info = local.warehouse_info(settings)
    ports += [v for k, v in info.items() if "port" in k and isinstance(v, int)]
    if info.get("password"):
        secrets.append(str(info["password"]))
    sm = client("secretsmanager", settings)
    for page in sm.get_paginator("list_secrets").paginate():
        for entry in page["SecretList"]:
            secrets += _secret_strings(sm.get_secret_value(SecretId=entry["ARN"]).get("SecretString") or "")
    return RunValues(paths=paths, ports=tuple(ports), secrets=tuple(secrets))


def _secret_strings(value: str) -> list[str]:
    """What of a secret must not be published: of a JSON object its password / secret / token values (a user
    name or host is no secret), else the whole string."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return [value]
    if isinstance(parsed, dict):
        return [str(v) for k, v in parsed.items() if k.lower() in {"password", "secret", "token"} and v]
    return [value]


def graft_outputs(source: dict[str, Any], executed: dict[str, Any]) -> dict[str, Any]:
    """``source`` (the committed notebook) with the outputs and execution counts of ``executed`` (papermill's
    run of it), matched by cell id; papermill's injected-parameters cell is left out, sources stay as they are."""
    ran = {c.get("id"): c for c in executed["cells"] if c.get("id")}
    out = json.loads(json.dumps(source))
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            continue
        got = ran.get(cell.get("id"))
        if got is None or got.get("source") != cell.get("source"):
            raise PipelineError(f"cell {cell.get('id')} of the committed notebook is not in its executed copy; "
                                "record from an unchanged notebook")
        cell["outputs"] = got.get("outputs", [])
        cell["execution_count"] = got.get("execution_count")
    out["metadata"] = {**out.get("metadata", {}), **{k: v for k, v in executed.get("metadata", {}).items()
                                                       if k == "language_info"}}
    return out


def write_notebook(path: Path, nb: dict[str, Any]) -> None:
    """Write ``nb`` as Jupyter does (one-space indent, sorted keys, trailing newline): stable bytes in git."""
    import nbformat

    nbformat.validate(nbformat.from_dict(nb))
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _params_file(tmp: Path) -> tuple[Settings, Path]:
    """The settings of a recording (fresh state dir in ``tmp``, a free port, the fixed seed) and their file."""
    import yaml

    from etl_localcloud.spec import free_port

    settings = load_settings(_project_root() / "params" / "local.yaml", local_state_dir=str(tmp / "state"),
                             local_port=free_port(), sample_seed=RECORD_SEED)
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(settings.to_params(), sort_keys=False))
    return settings, path


@contextlib.contextmanager
def recording_cloud(*, keep: bool = False) -> Iterator[tuple[Settings, Path, Path]]:
    """A fresh local cloud as a recording uses it: ``(settings, params file, temporary dir)``; stopped and
    removed afterwards (the directory stays with ``keep``). nbval's check of the committed outputs runs on one
    too, so that its paths and ports are as long as the recording's and the plan starts from nothing."""
    from etl_kit import local

    tmp = Path(tempfile.mkdtemp(prefix="etl-kit-record-")).resolve()
    try:
        settings, params = _params_file(tmp)
        local.up(settings)
        try:
            yield settings, params, tmp
        finally:
            local.down(settings)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def record_notebooks(directory: Path | None = None, *, progress: bool = True, keep: bool = False) -> Recording:
    """Record the notebooks (all but the teardown) of ``directory`` (default the kit's ``notebooks/``) in place.

    Parameters
    ----------
    progress
        Show a progress bar over the notebooks.
    keep
        Keep the temporary directory (executed notebooks, summary, the cloud's state) for a look afterwards.

    Raises
    ------
    PipelineError
        A notebook failed (naming it and the cell); nothing is written back then.
    """
    from etl_kit.runner import NOTEBOOK_DIR, notebooks, run_notebooks

    directory = directory or NOTEBOOK_DIR
    started = time.monotonic()
    with recording_cloud(keep=keep) as (settings, params, tmp):
        run_notebooks(params, out=tmp / "executed", progress=progress, directory=directory)
        values = run_values(settings, {str(tmp): "<tmp>"})
        rules = rules_for(values)
        written = []
        for path in notebooks(directory=directory, teardown=False):
            source = json.loads(path.read_text(encoding="utf-8"))
            executed = json.loads((tmp / "executed" / path.name).read_text(encoding="utf-8"))
            write_notebook(path, sanitize_notebook(graft_outputs(source, executed), rules))
            written.append(path)
    return Recording(tuple(written), round(time.monotonic() - started, 1), values, tmp if keep else None)


def register(group: click.Group) -> None:
    """``etl-kit notebooks record`` (in the ``notebooks`` group :mod:`etl_kit.runner` registers)."""
    nbs = group.commands["notebooks"]
    assert isinstance(nbs, click.Group)

    @nbs.command("record")
    @click.option("--keep", is_flag=True, help="keep the temporary run (executed notebooks, summary, state)")
    def record_cmd(keep: bool) -> None:
        """Run notebooks 00-05 on a fresh local cloud (fixed seed) and write them back with sanitised outputs."""
        done = record_notebooks(keep=keep)
        for path in done.notebooks:
            click.echo(f"recorded {path.relative_to(_project_root())}")
        click.echo(f"{len(done.notebooks)} notebooks recorded in {done.seconds:.0f} s")
        if done.kept:
            click.echo(f"the run (executed notebooks, summary, the cloud's state) is kept in {done.kept}")

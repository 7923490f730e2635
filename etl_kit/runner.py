"""The notebooks, headless and interactive: ``etl-kit notebooks run`` (papermill), ``quickstart`` and ``lab``."""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

import click

from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import ConfigError, PipelineError

__all__ = ["NOTEBOOK_DIR", "KERNEL_NAME", "notebooks", "notebook_parameters", "ensure_kernel", "split_parameters",
           "render_html", "run_notebooks", "write_summary", "lab", "register", "kernel_config"]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
RESULTS_FILE = "notebook-results.json"


#: Notebook parameters that are not settings: which upload or workflow run 03 and 04 look at.
RUN_PARAMETERS = ("source_key", "run_id")
TEARDOWN_PREFIX = "99"
KERNEL_NAME = "etl-kit"
KERNEL_DISPLAY = "etl-kit (Python 3.11)"


def notebooks(only: list[str] | None = None, directory: Path = NOTEBOOK_DIR, *,
              teardown: bool = True) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose name starts with one of ``only``.

    ``teardown=False`` leaves out 99_teardown (and refuses to pick it with ``only``).
    """
    found = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not teardown:
        found = [p for p in found if not p.stem.startswith(TEARDOWN_PREFIX)]
    if not only:
        return found
    chosen = [p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.stem == o or p.stem.startswith(o) for p in found)]
    if missing:
        hint = " (99_teardown runs only with --teardown)" if not teardown else ""
        raise ConfigError(f"no notebook matches {missing}; available: {[p.stem for p in found]}{hint}")
    return chosen


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in the notebook's cell tagged ``parameters``."""
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def results_path(settings: Settings) -> Path:
    return settings.state_dir / RESULTS_FILE


def ensure_kernel() -> Path:
    """Register this Python as the Jupyter kernel ``etl-kit`` (in its own environment's prefix); idempotent.

    The notebooks name this kernel, so JupyterLab, papermill and nbval all run them on the kit's Python.
    """
    import sys

    from ipykernel.kernelspec import install

    return Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY, prefix=sys.prefix))


#: The kernel's channels run over IPC (unix sockets, private to this user) instead of TCP on 127.0.0.1: the
#: notebooks never run on another machine than their kernel, and over TCP ipykernel warns that the channels are
#: unencrypted ("Kernel is running over TCP without encryption").
KERNEL_TRANSPORT = "ipc"


def kernel_config() -> Any:
    """The traitlets config of the kernel managers papermill and JupyterLab start the kit's kernels with."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": KERNEL_TRANSPORT}})


def split_parameters(pairs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-p KEY VALUE`` pairs -> (settings overrides, run parameters); an unknown key is an error."""
    unknown = sorted(set(pairs) - set(Settings.model_fields) - set(RUN_PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}: give a key of params/*.yaml or one of "
                          f"{list(RUN_PARAMETERS)}")
    overrides = {k: v for k, v in pairs.items() if k in Settings.model_fields}
    return overrides, {k: v for k, v in pairs.items() if k in RUN_PARAMETERS}


def _check_declared(chosen: list[Path]) -> None:
    """Each notebook declares params_file and nothing but settings keys and run parameters."""
    allowed = set(Settings.model_fields) | set(RUN_PARAMETERS) | {"params_file"}
    for nb in chosen:
        declared = notebook_parameters(nb)
        unknown = sorted(declared - allowed)
        if "params_file" not in declared or unknown:
            raise ConfigError(f"notebook {nb.name}: its `parameters` cell must set params_file and only keys of "
                              f"params/*.yaml or {list(RUN_PARAMETERS)}; unknown: {unknown}")


def _params_file(params_file: str | Path, settings: Settings, overrides: dict[str, Any], out_dir: Path) -> Path:
    """The params file the notebooks read: the given one, or with overrides the merged ``out_dir/params.yaml``."""
    if not overrides:
        return Path(params_file).resolve()
    import yaml

    merged = out_dir / "params.yaml"
    merged.write_text(yaml.safe_dump(settings.to_params(), sort_keys=False))
    return merged.resolve()


def render_html(executed: Path) -> Path:
    """An HTML rendering of an executed notebook beside it (nbconvert's lab template), for CI artifacts."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _execute(nb: Path, target: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run one notebook with papermill; its summary entry (status, seconds, error, files)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    started = time.monotonic()
    entry: dict[str, Any] = {"notebook": nb.stem, "status": "succeeded", "error": None, "executed": str(target)}
    try:
        papermill.execute_notebook(str(nb), str(target), parameters=parameters, kernel_name=KERNEL_NAME,
                                   progress_bar=False, cwd=str(ROOT), log_output=False,
                                   config=kernel_config(), coalesce_streams=True)
    except PapermillExecutionError as exc:
        entry.update(status="failed", error=f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
    except Exception as exc:  # the kernel died or would not start: still a summary entry, not a lost run
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - started, 1)
    if target.exists():
        entry["html"] = str(render_html(target))
    return entry


def run_notebooks(params_file: str | Path, *, only: list[str] | None = None, out: str | Path | None = None,
                  progress: bool = True, parameters: dict[str, Any] | None = None,
                  teardown: bool = False, directory: Path = NOTEBOOK_DIR) -> dict[str, Any]:
    """Execute the notebooks in order with papermill; stop at the first failure.

    Parameters
    ----------
    params_file
        The params file every notebook reads (its ``params_file`` parameter).
    parameters
        ``KEY: VALUE`` pairs: keys of the params file override it; ``source_key`` / ``run_id`` go to the
        notebooks that declare them (03, 04).
    teardown
        Also run 99_teardown at the end, unattended (the flag is the confirmation).
    directory
        Where the numbered notebooks are (default the kit's ``notebooks/``).

    Returns the summary (also written as ``summary.json`` and ``summary.md`` in ``out``, beside each executed
    notebook and its HTML rendering).

    Raises
    ------
    PipelineError
        Naming the notebook, the cell and the error, with the path of the executed notebook.
    """
    from tqdm import tqdm

    overrides, run_params = split_parameters(dict(parameters or {}))
    if teardown:
        overrides["teardown_confirm"] = False
    settings = load_settings(params_file, **overrides)
    chosen = notebooks(only, directory, teardown=teardown)
    _check_declared(chosen)  # before anything runs
    out_dir = Path(out) if out else ROOT / "runs" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    common = {"params_file": str(_params_file(params_file, settings, overrides, out_dir))}
    ensure_kernel()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    since = time.time()  # results persist between runs; the summary only shows what this run recorded
    entries: list[dict[str, Any]] = []
    bar = tqdm(chosen, desc="notebooks", unit="nb", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        declared = notebook_parameters(nb)
        entry = _execute(nb, out_dir / nb.name,
                         {**common, **{k: v for k, v in run_params.items() if k in declared}})
        entries.append(entry)
        if entry["status"] == "failed":
            break
    bar.close()
    entries += [{"notebook": p.stem, "status": "not run", "error": None, "seconds": None}
                for p in chosen[len(entries):]]
    summary = write_summary(settings, out_dir, entries, since=since)
    failed = next((e for e in entries if e["status"] == "failed"), None)
    if failed:
        raise PipelineError(f"notebook {failed['notebook']} failed in {failed['error']}\n"
                            f"executed notebook: {failed['executed']}\nsummary: {summary['files']['markdown']}")
    return summary


def write_summary(settings: Settings, out_dir: Path, entries: list[dict[str, Any]],
                  since: float = 0.0) -> dict[str, Any]:
    """Collect each notebook's outcome and what the notebooks recorded (since ``since``) into ``summary.json``
    and ``summary.md``."""
    rp = results_path(settings)
    stored = json.loads(rp.read_text()) if rp.exists() else {}
    recorded = {k: v["value"] for k, v in stored.items() if isinstance(v, dict) and v.get("at", 0) >= since}
    failed = next((f"{e['notebook']} {e['error']}" for e in entries if e["status"] == "failed"), None)
    summary: dict[str, Any] = {"target": settings.target, "failed": failed, "notebooks": entries,
                               "notebook_seconds": {e["notebook"]: e["seconds"] for e in entries
                                                    if e["status"] != "not run"}, **recorded}
    md = [f"# etl-kit run ({settings.target})", ""]
    md.append(f"- result: {'FAILED at ' + failed if failed else 'all notebooks succeeded'}")
    md += _run_lines(recorded)
    md += ["", "| notebook | status | seconds | error |", "|---|---|---|---|"]
    md += [f"| {e['notebook']} | {e['status']} | {e['seconds'] if e['seconds'] is not None else ''} | "
           f"{(e['error'] or '').replace('|', '/')} |" for e in entries]
    files = {"json": str(out_dir / "summary.json"), "markdown": str(out_dir / "summary.md")}
    summary["files"] = files
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "summary.md").write_text("\n".join(md) + "\n")
    summary["markdown"] = "\n".join(md)
    return summary


def _run_lines(recorded: dict[str, Any]) -> list[str]:
    """The summary's lines about the workflow run and the checks the notebooks recorded."""
    md: list[str] = []
    run = recorded.get("run") or {}
    if run:
        md.append(f"- source: {run.get('source')}  (workflow run {run.get('run_id')}, {run.get('status')})")
        md.append(f"- rows read {run.get('rows_read')}, loaded {run.get('rows_written')}, "
                  f"quarantined {run.get('rows_quarantined')}")
        md += ["", "| node | type | state | seconds |", "|---|---|---|---|"]
        md += [f"| {n['name']} | {n['type']} | {n['state']} | {n['duration_s']} |" for n in run.get("nodes", [])]
    cost = recorded.get("cost") or {}
    if cost:
        md.append(f"- cost of run {cost.get('run_id')}: ${cost.get('total_usd', 0):.4f} ({cost.get('note')})")
    checks = recorded.get("checks") or []
    if checks:
        passed = sum(1 for c in checks if c["passed"])
        md += ["", f"- checks passed: {passed}/{len(checks)}"]
        md += [f"  - {'PASS' if c['passed'] else 'FAIL'} {c['check']}: {c['detail']}" for c in checks]
    return md


def _parameter_pairs(pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``-p KEY VALUE`` as papermill reads them: the value parsed as YAML (numbers, booleans, null), else text."""
    import yaml

    parsed: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            parsed[key] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            parsed[key] = raw
        if key in RUN_PARAMETERS:
            parsed[key] = raw  # identifiers stay text
    return parsed


def lab(params: str, jupyter_args: list[str]) -> None:
    """Start the local cloud (local target), register the ``etl-kit`` kernel and become JupyterLab on notebooks/.

    Replaces this process with JupyterLab (``os.execv``): stopping it stops JupyterLab; the local cloud keeps
    running (``etl-kit local down`` stops it).
    """
    import os
    import sys

    from etl_kit.analysis import tools_environment

    settings = load_settings(params)
    if settings.target == "local":
        from etl_kit import local

        st = local.up(settings, progress=click.echo)  # the first start builds the runtimes: say so
        click.echo(f"local cloud at {st['endpoint']} (postgres {st.get('postgres')})")
    # Every kernel inherits the local cloud's trust bundle (the system's CAs plus the local CA, harmless on aws),
    # so redshift-connector's defaults verify the local endpoint. Not the endpoint or keys: a notebook may run
    # on params/aws.yaml in this JupyterLab; 00 and 05 set those for their own target (analysis.use_target).
    bundle = tools_environment(settings).get("SSL_CERT_FILE")
    if bundle:
        os.environ["SSL_CERT_FILE"] = bundle
        click.echo(f"kernels trust the local cloud's CA: SSL_CERT_FILE={bundle}")
    click.echo(f"kernel {KERNEL_NAME!r} registered in {ensure_kernel()}")
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOK_DIR}",
            f"--KernelManager.transport={KERNEL_TRANSPORT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # containers and CI runners are often root; JupyterLab refuses that unless told (it still binds localhost)
        argv.append("--allow-root")
    argv += jupyter_args
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def register(group: click.Group) -> None:
    @group.group("notebooks")
    def nbs() -> None:
        """Run the numbered notebooks headless with papermill."""

    @nbs.command("run")
    @click.option("--params", "params", type=click.Path(dir_okay=False, exists=True), default="params/local.yaml",
                  show_default=True)
    @click.option("--only", default=None, help="comma-separated notebook names or prefixes, e.g. 00,01,02")
    @click.option("--out", default=None, help="directory for executed notebooks and the summary (default runs/<time>)")
    @click.option("-p", "--parameter", "pairs", type=(str, str), multiple=True, metavar="KEY VALUE",
                  help="a params key to override, or source_key / run_id for 03 and 04 (repeatable)")
    @click.option("--teardown", is_flag=True, help="also run 99_teardown at the end (removes what 01 made)")
    def run_cmd(params: str, only: str | None, out: str | None, pairs: tuple[tuple[str, str], ...],
                teardown: bool) -> None:
        """Execute the notebooks in order; stop at the first failure naming the notebook and cell."""
        summary = run_notebooks(params, only=only.split(",") if only else None, out=out,
                                parameters=_parameter_pairs(pairs), teardown=teardown)
        click.echo(summary["markdown"])
        click.echo(f"\nexecuted notebooks, their HTML and the summary in {Path(summary['files']['json']).parent}")

    @group.command("quickstart")
    @click.option("--params", "params", type=click.Path(dir_okay=False, exists=True), default="params/local.yaml",
                  show_default=True)
    @click.option("--rows", type=int, default=None, help="rows of generated sales data (default from params)")
    @click.option("--out", default="runs/quickstart", show_default=True)
    @click.option("--teardown/--no-teardown", default=False, show_default=True,
                  help="also run 99_teardown at the end (removes the data you just loaded)")
    def quickstart(params: str, rows: int | None, out: str, teardown: bool) -> None:
        """The main job: start the local cloud, provision, load data, monitor, validate, analyse; print a summary."""
        settings = load_settings(params)
        if settings.target == "local":
            from etl_kit import local

            st = local.up(settings, progress=click.echo)  # the first start builds the runtimes: say so
            click.echo(f"local cloud at {st['endpoint']} (postgres {st.get('postgres')})")
        summary = run_notebooks(params, out=out, parameters={"sample_rows": rows} if rows else None,
                                teardown=teardown)
        click.echo(summary["markdown"])
        click.echo(f"\nexecuted notebooks, their HTML and the summary in {out}/\n"
                   "explore the notebooks in JupyterLab: ./kit lab")

    @group.command("lab", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.option("--params", "params", type=click.Path(dir_okay=False, exists=True), default="params/local.yaml",
                  show_default=True)
    @click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
    def lab_cmd(params: str, jupyter_args: tuple[str, ...]) -> None:
        """Start the local cloud and open JupyterLab on notebooks/ with the etl-kit kernel (extra args go to it)."""
        lab(params, list(jupyter_args))

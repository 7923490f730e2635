"""Run the notebooks headless with papermill: ``etl-kit notebooks run`` and ``etl-kit quickstart``."""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

import click

from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import ConfigError, PipelineError

__all__ = ["NOTEBOOK_DIR", "notebooks", "notebook_parameters", "run_notebooks", "write_summary", "register"]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
RESULTS_FILE = "notebook-results.json"


def notebooks(only: list[str] | None = None, directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose name starts with one of ``only``."""
    found = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [p for p in found if any(p.stem == o or p.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.stem == o or p.stem.startswith(o) for p in found)]
    if missing:
        raise ConfigError(f"no notebook matches {missing}; available: {[p.stem for p in found]}")
    return chosen


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in the notebook's cell tagged ``parameters``."""
    import papermill

    return set(papermill.inspect_notebook(str(path)))


def results_path(settings: Settings) -> Path:
    return settings.state_dir / RESULTS_FILE


def run_notebooks(params_file: str | Path, *, only: list[str] | None = None, out: str | Path | None = None,
                  progress: bool = True, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute the notebooks in order with papermill; stop at the first failure.

    Returns the summary (also written as ``summary.json`` and ``summary.md`` in ``out``).

    Raises
    ------
    PipelineError
        Naming the notebook, the cell and the error, with the path of the executed notebook.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from tqdm import tqdm

    settings = load_settings(params_file, **(overrides or {}))
    params = settings.to_params()
    chosen = notebooks(only)
    out_dir = Path(out) if out else ROOT / "runs" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    for nb in chosen:  # unknown parameters are errors, before anything runs
        declared = notebook_parameters(nb)
        unknown = sorted(set(params) - declared)
        if unknown:
            raise ConfigError(f"notebook {nb.name} does not declare parameter(s) {unknown} in its `parameters` cell")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # Results persist between runs (a later notebook reads an earlier one's upload); the summary only
    # shows what this run recorded.
    since = time.time()
    timings: dict[str, float] = {}
    bar = tqdm(chosen, desc="notebooks", unit="nb", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        target = out_dir / nb.name
        started = time.monotonic()
        try:
            papermill.execute_notebook(str(nb), str(target), parameters=params, kernel_name="python3",
                                       progress_bar=False, cwd=str(ROOT), log_output=False)
        except PapermillExecutionError as exc:
            timings[nb.stem] = round(time.monotonic() - started, 1)
            summary = write_summary(settings, out_dir, timings, failed=f"{nb.stem} cell {exc.exec_count}",
                                    since=since)
            raise PipelineError(
                f"notebook {nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                f"executed notebook: {target}\nsummary: {summary['files']['markdown']}") from exc
        timings[nb.stem] = round(time.monotonic() - started, 1)
    bar.close()
    return write_summary(settings, out_dir, timings, since=since)


def write_summary(settings: Settings, out_dir: Path, timings: dict[str, float],
                  failed: str | None = None, since: float = 0.0) -> dict[str, Any]:
    """Collect what the notebooks recorded (since ``since``) into ``summary.json`` and ``summary.md``."""
    rp = results_path(settings)
    stored = json.loads(rp.read_text()) if rp.exists() else {}
    recorded = {k: v["value"] for k, v in stored.items() if isinstance(v, dict) and v.get("at", 0) >= since}
    summary: dict[str, Any] = {"target": settings.target, "failed": failed, "notebook_seconds": timings,
                               **recorded}
    md = [f"# etl-kit run ({settings.target})", ""]
    md.append(f"- result: {'FAILED at ' + failed if failed else 'all notebooks succeeded'}")
    run = recorded.get("run") or {}
    if run:
        md.append(f"- source: {run.get('source')}  (workflow run {run.get('run_id')}, {run.get('status')})")
        md.append(f"- rows read {run.get('rows_read')}, loaded {run.get('rows_written')}, "
                  f"quarantined {run.get('rows_quarantined')}")
        md += ["", "| node | type | state | seconds |", "|---|---|---|---|"]
        md += [f"| {n['name']} | {n['type']} | {n['state']} | {n['duration_s']} |" for n in run.get("nodes", [])]
    checks = recorded.get("checks") or []
    if checks:
        passed = sum(1 for c in checks if c["passed"])
        md += ["", f"- checks passed: {passed}/{len(checks)}"]
        md += [f"  - {'PASS' if c['passed'] else 'FAIL'} {c['check']}: {c['detail']}" for c in checks]
    md += ["", "| notebook | seconds |", "|---|---|"] + [f"| {k} | {v} |" for k, v in timings.items()]
    files = {"json": str(out_dir / "summary.json"), "markdown": str(out_dir / "summary.md")}
    summary["files"] = files
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "summary.md").write_text("\n".join(md) + "\n")
    summary["markdown"] = "\n".join(md)
    return summary


def register(group: click.Group) -> None:
    @group.group("notebooks")
    def nbs() -> None:
        """Run the numbered notebooks headless with papermill."""

    @nbs.command("run")
    @click.option("--params", "params", type=click.Path(dir_okay=False, exists=True), default="params/local.yaml",
                  show_default=True)
    @click.option("--only", default=None, help="comma-separated notebook names or prefixes, e.g. 00,01,02")
    @click.option("--out", default=None, help="directory for executed notebooks and the summary (default runs/<time>)")
    def run_cmd(params: str, only: str | None, out: str | None) -> None:
        """Execute the notebooks in order; stop at the first failure naming the notebook and cell."""
        summary = run_notebooks(params, only=only.split(",") if only else None, out=out)
        click.echo(summary["markdown"])
        click.echo(f"\nexecuted notebooks and summary in {Path(summary['files']['json']).parent}")

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

            st = local.up(settings)
            click.echo(f"local cloud at {st['endpoint']} (postgres {st.get('postgres')})")
        overrides: dict[str, Any] = {"teardown_confirm": False}
        if rows:
            overrides["sample_rows"] = rows
        only = None if teardown else [p.stem for p in notebooks() if not p.stem.startswith("99")]
        summary = run_notebooks(params, only=only, out=out, overrides=overrides)
        click.echo(summary["markdown"])
        click.echo(f"\nexecuted notebooks and summary in {out}/ ; explore in JupyterLab: jupyter lab notebooks/")

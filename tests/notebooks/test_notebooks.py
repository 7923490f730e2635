"""Execute the notebooks with papermill on the local target (as `etl-kit notebooks run` does), assert on their
outputs, the summary and the HTML renderings; 03/04 on a given run / upload; the teardown when asked (nbval's check
of the committed outputs is test_nbval.py)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from etl_kit.config import Settings
from etl_kit.runner import notebooks, run_notebooks

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params(cloud: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A params file pointing at the session's local cloud (keep_data: the teardown keeps the bucket)."""
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    values = cloud.to_params()
    values.update(keep_data=True, sample_rows=300, sample_bad_rows=6)
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def executed(params: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The notebooks run headless by default (00 to 05; no teardown) against the session's local cloud."""
    out = tmp_path_factory.mktemp("executed")
    summary = run_notebooks(params, out=out, progress=False)
    return out, summary


def cloud_workflow(params: Path) -> str:
    return str(yaml.safe_load(params.read_text())["workflow"])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etl_kit.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def outputs(path: Path) -> list[dict[str, Any]]:
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def texts(path: Path) -> str:
    parts = []
    for o in outputs(path):
        if o.get("output_type") == "stream":
            parts.append(o["text"])
        parts.append(o.get("data", {}).get("text/plain", ""))
        parts.append(o.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


def cell_html(path: Path, call: str) -> str:
    """The HTML output of the one code cell whose source calls ``call``."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and call in c.source]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells call {call}"
    return "".join(o.get("data", {}).get("text/html", "") for o in cells[0].outputs)


def pngs(path: Path) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in outputs(path) if "image/png" in o.get("data", {})]


def test_every_notebook_but_the_teardown_ran_without_an_error(executed: tuple[Path, dict[str, Any]]) -> None:
    out, summary = executed
    assert summary["failed"] is None
    ran = [p.stem for p in notebooks(teardown=False)]
    assert "99_teardown" not in ran and not (out / "99_teardown.ipynb").exists()
    assert [(e["notebook"], e["status"], e["error"]) for e in summary["notebooks"]] == \
        [(n, "succeeded", None) for n in ran]
    for p in notebooks(teardown=False):
        assert not [o for o in outputs(out / p.name) if o.get("output_type") == "error"], p.name
        html = (out / p.name).with_suffix(".html").read_text()
        assert html.startswith("<!DOCTYPE html>") and "jp-Notebook" in html, p.name
    on_disk = json.loads((out / "summary.json").read_text())
    assert [e["notebook"] for e in on_disk["notebooks"]] == ran and all(e["seconds"] > 0 for e in on_disk["notebooks"])
    md = (out / "summary.md").read_text()
    assert "| 05_analysis | succeeded |" in md and "all notebooks succeeded" in md


def test_setup_and_provision_show_target_plan_and_picture(executed: tuple[Path, dict[str, Any]]) -> None:
    out, _ = executed
    setup = texts(out / "00_setup.ipynb")
    assert "local" in setup and "endpoint" in setup and "lambda:ok" in setup
    prov = texts(out / "01_provision.ipynb")
    for resource in ("s3-bucket", "iam-role", "lambda-function", "glue-workflow", "events-rule", "sns-topic"):
        assert resource in prov
    assert pngs(out / "01_provision.ipynb"), "the architecture picture is missing"


def test_upload_monitor_and_validation_outputs(executed: tuple[Path, dict[str, Any]]) -> None:
    out, summary = executed
    up = texts(out / "02_upload_test_data.ipynb")
    assert "started" in up and "wr_" in up
    mon = out / "03_monitor_workflow.ipynb"
    assert len(pngs(mon)) >= 2  # the updating graph and the final one
    text = texts(mon)
    assert "SUCCEEDED" in text and "no node failed" in text and "Started workflow" in text
    run = summary["run"]
    assert run["all_succeeded"] and run["rows_read"] == 300
    assert run["rows_written"] + run["rows_quarantined"] == 300 and run["rows_quarantined"] == 6
    checks = summary["checks"]
    assert len(checks) >= 10 and all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    validation = texts(out / "04_validate_redshift.ipynb")
    assert f"all {len(checks)} checks passed" in validation
    # the sample rows, before the checks: the table's header and ten rows (which ten depends on what is loaded)
    sample = cell_html(out / "04_validate_redshift.ipynb", "first_rows")
    assert "<th>order_id</th>" in sample and "<th>total_profit</th>" in sample
    assert sample.split("<tbody>", 1)[1].count("<tr>") == 10


def test_analysis_produced_tables_and_figures(executed: tuple[Path, dict[str, Any]]) -> None:
    out, _ = executed
    nb = out / "05_analysis.ipynb"
    assert len(pngs(nb)) == 3
    text = texts(nb)
    for column in ("region", "Sub-Saharan Africa", "item_type", "revenue", "margin_pct", "country", "month",
                   "avg_days", "orders", "big_orders"):  # big_orders: the user's own awswrangler query
        assert column in text
    assert "<table" in text  # DataFrames, shown as tables


def test_the_analysis_reads_the_same_through_the_data_api_and_redshift_connector(
        executed: tuple[Path, dict[str, Any]], cloud: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL of 05 on awswrangler's Data API connection and on a driver connection: the same frames, and
    the per-item-type orders add up to the table's rows."""
    from etl_kit import analysis
    from etl_kit.warehouse import query

    for k, v in analysis.tools_environment(cloud).items():
        monkeypatch.setenv(k, v)  # restored after the test (connect sets them for the kernel's own tools)
    api, direct = analysis.connect(cloud), analysis.connect(cloud, direct=True)
    try:
        for helper in (analysis.revenue_by_item_type, analysis.revenue_by_region_and_item_type,
                       analysis.top_countries, analysis.monthly_trend, analysis.order_to_ship_days):
            a, b = helper(api, cloud), helper(direct, cloud)
            assert len(a) > 0 and list(a.columns) == list(b.columns), helper.__name__
            assert a.astype(str).values.tolist() == b.astype(str).values.tolist(), helper.__name__
    finally:
        direct.close()
    rows = int(query(f"select count(*) as n from {cloud.redshift_table}", cloud)["n"][0])
    assert int(analysis.revenue_by_item_type(api, cloud)["orders"].sum()) == rows


def test_outputs_read_cleanly(executed: tuple[Path, dict[str, Any]]) -> None:
    """No kernel transport or widget warnings; each progress bar is one finished line (no carriage returns)."""
    out, _ = executed
    for p in notebooks(teardown=False):
        streams = [o["text"] for o in outputs(out / p.name) if o.get("output_type") == "stream"]
        for text in streams:
            assert "\r" not in text, (p.name, text[:300])
            for noise in ("without encryption", "IProgress not found", "TqdmWarning"):
                assert noise not in text, (p.name, text[:300])
    up = "".join(o["text"] for o in outputs(out / "02_upload_test_data.ipynb") if o.get("output_type") == "stream")
    bars = [line for line in up.splitlines() if line.startswith("upload sales_")]
    assert len(bars) == 1 and "100%" in bars[0], up[-500:]
    setup = texts(out / "00_setup.ipynb")
    assert "SSL_CERT_FILE" in setup and "trust-bundle.pem" in setup and "AWS_ENDPOINT_URL" in setup


def test_03_and_04_run_on_a_given_run_and_upload_from_the_command_line(
        executed: tuple[Path, dict[str, Any]], params: Path, tmp_path: Path) -> None:
    _, summary = executed
    run_id = summary["run"]["run_id"]
    by_run = cli("notebooks", "run", "--params", str(params), "--only", "03,04", "-p", "run_id", run_id,
                 "--out", str(tmp_path / "by-run"))
    assert by_run.returncode == 0, by_run.stdout[-3000:] + by_run.stderr[-3000:]
    assert "without encryption" not in by_run.stderr  # the kernels' channels are unix sockets
    assert f"{cloud_workflow(params)} {run_id[-8:]}" in texts(tmp_path / "by-run" / "03_monitor_workflow.ipynb")
    followed = json.loads((tmp_path / "by-run" / "summary.json").read_text())["run"]
    assert followed["run_id"] == run_id and followed["all_succeeded"]
    assert {p.name for p in (tmp_path / "by-run").iterdir()} >= {
        "03_monitor_workflow.ipynb", "03_monitor_workflow.html", "04_validate_redshift.ipynb",
        "04_validate_redshift.html", "summary.md", "summary.json"}
    key = summary["run"]["source"].split("/", 3)[-1]
    by_key = cli("notebooks", "run", "--params", str(params), "--only", "04", "-p", "source_key", key,
                 "--out", str(tmp_path / "by-key"))
    assert by_key.returncode == 0, by_key.stdout[-3000:] + by_key.stderr[-3000:]
    assert key in texts(tmp_path / "by-key" / "04_validate_redshift.ipynb")
    unknown = cli("notebooks", "run", "--params", str(params), "--only", "04", "-p", "sourcekey", key)
    assert unknown.returncode == 1 and "unknown parameter(s) ['sourcekey']" in unknown.stderr


def test_teardown_runs_when_asked_and_removes_what_provision_made(params: Path, cloud: Settings,
                                                                  tmp_path: Path) -> None:
    from etl_kit.clients import client

    summary = run_notebooks(params, only=["99"], teardown=True, out=tmp_path, progress=False)
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [("99_teardown", "succeeded")]
    assert "delete" in texts(tmp_path / "99_teardown.ipynb")
    functions = [f["FunctionName"] for f in client("lambda", cloud).list_functions()["Functions"]]
    assert cloud.lambda_function not in functions
    kept = client("s3", cloud).list_objects_v2(Bucket=cloud.bucket_name(), Prefix=cloud.input_prefix)["KeyCount"]
    assert kept > 0  # keep_data: the bucket and its objects survive

"""Execute every notebook with papermill on the local target, assert on their outputs, then nbval them."""

from __future__ import annotations

import base64
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
def executed(cloud: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """All notebooks, 00 to 99, run headless against the session's local cloud."""
    out = tmp_path_factory.mktemp("executed")
    params = out / "params.yaml"
    values = cloud.to_params()
    values.update(teardown_confirm=False, keep_data=True, sample_rows=300, sample_bad_rows=6)
    params.write_text(yaml.safe_dump(values))
    summary = run_notebooks(params, out=out, progress=False)
    # what 99_teardown left, read now: a later test (nbval) provisions again
    from etl_kit.clients import client

    summary["after_teardown"] = {
        "functions": [f["FunctionName"] for f in client("lambda", cloud).list_functions()["Functions"]],
        "input_objects": client("s3", cloud).list_objects_v2(Bucket=cloud.bucket_name(),
                                                             Prefix=cloud.input_prefix)["KeyCount"],
    }
    return out, summary


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


def pngs(path: Path) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in outputs(path) if "image/png" in o.get("data", {})]


def test_every_notebook_ran_without_an_error(executed: tuple[Path, dict[str, Any]]) -> None:
    out, summary = executed
    assert summary["failed"] is None
    assert set(summary["notebook_seconds"]) == {p.stem for p in notebooks()}
    for p in notebooks():
        assert not [o for o in outputs(out / p.name) if o.get("output_type") == "error"], p.name


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
    assert f"all {len(checks)} checks passed" in texts(out / "04_validate_redshift.ipynb")


def test_analysis_produced_tables_and_figures(executed: tuple[Path, dict[str, Any]]) -> None:
    out, _ = executed
    nb = out / "05_analysis.ipynb"
    assert len(pngs(nb)) == 3
    text = texts(nb)
    for column in ("region", "Sub-Saharan Africa", "item_type", "revenue", "margin_pct", "country", "month",
                   "avg_days", "orders"):
        assert column in text


def test_teardown_removed_what_provision_made(executed: tuple[Path, dict[str, Any]], cloud: Settings) -> None:
    out, summary = executed
    text = texts(out / "99_teardown.ipynb")
    assert "delete" in text
    left = summary["after_teardown"]
    assert cloud.lambda_function not in left["functions"]
    assert left["input_objects"] > 0  # keep_data: the bucket and its objects survive


def test_nbval_replays_the_executed_notebooks(executed: tuple[Path, dict[str, Any]], cloud: Settings) -> None:
    """nbval (lax) re-runs the executed notebooks (their injected parameters point at this cloud)."""
    out, _ = executed
    from etl_kit.provision import apply_all

    apply_all(cloud, progress=False)  # 99 tore it down; replay 01-05 on a provisioned pipeline
    names = [str(out / p.name) for p in notebooks() if not p.stem.startswith("99")]
    res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
                          "--rootdir", str(out), *names], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout

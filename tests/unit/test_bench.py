"""Smoke test of ``etl-kit bench --quick``: files produced, and every reference wrote what job 1 wrote.

No timing is asserted anywhere: speed is shown by the benchmark's report, not by tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.unit

pytest.importorskip("polars")
pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from etl_kit.cli import cli

    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(cli, ["bench", "--quick", "--parts", "transform", "--out", str(out), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "bench.json").read_text())


def test_files_and_keys(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, doc = quick_run
    expected = {"started_at", "machine", "config", "datasets", "transform", "ratios", "targets", "seconds_total"}
    assert expected <= set(doc)
    machine = doc["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"]
    assert {"pyarrow", "polars", "pandas"} <= set(machine["versions"])
    assert "git_commit" in machine
    assert doc["config"]["sizes"] == [20_000]
    engines = {r["engine"] for r in doc["transform"]}
    assert engines == {"job1", "polars", "pandas", "arrow_parse", "arrow_parse_1t"}
    for r in doc["transform"]:
        assert "error" not in r, r
        assert {"rows", "bytes", "seconds", "cpu_seconds", "mb_s", "rows_s", "peak_rss_mb"} <= set(r)
        assert r["peak_rss_mb"] > 0
    assert set(doc["ratios"]["20000"]) >= {"job1_vs_polars", "job1_vs_pandas", "job1_vs_parse_ceiling"}
    assert {t["key"] for t in doc["targets"]} >= {"job1_vs_polars", "job1_vs_pandas", "job1_vs_parse_ceiling",
                                                  "job1_peak_rss_mb", "load_vs_adbc", "e2e_small_seconds"}
    assert all(t["status"] in ("PASS", "FAIL", "SKIP") for t in doc["targets"])
    md = (out / "bench.md").read_text()
    for heading in ("## Targets", "## Transform", "job 1 / polars"):
        assert heading in md
    assert not (out / "work").exists()  # engine outputs are cleaned up unless --keep


def test_same_rules_same_result(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, doc = quick_run
    runs = {r["engine"]: r for r in doc["transform"]}
    job1 = runs["job1"]
    data = doc["datasets"]["20000"]
    # job 1 itself: every generated bad row quarantined, the rest written
    assert job1["rows_quarantined"] == data["bad_rows"] > 0
    assert job1["rows_written"] == 20_000 - data["bad_rows"]
    # its report says where its CPU went, stage by stage
    assert set(job1["stages"]) == {"parse", "validate", "write", "keys"}
    assert all(v >= 0 for v in job1["stages"].values()) and job1["stages"]["validate"] > 0
    for engine in ("polars", "pandas"):
        r = runs[engine]
        assert r["parity"] is True, r.get("parity_diff")
        assert (r["rows_written"], r["rows_quarantined"]) == (job1["rows_written"], job1["rows_quarantined"])
        assert r["rejects_by_column"] == job1["rejects_by_column"]
        assert r["checksums"] == job1["checksums"]  # same values in every column, not just counts
    for engine in ("arrow_parse", "arrow_parse_1t"):
        assert runs[engine]["rows_read"] == job1["rows_written"] + job1["rows_quarantined"]
        assert runs[engine]["parity"] is True


def test_parity_flags_a_difference() -> None:
    from benchmarks.bench import parity

    base = {"rows": 10, "rows_written": 9, "rows_quarantined": 1, "rejects_by_column": {"order_id": 1},
            "quarantined_lines_sum": 5, "checksums": {"order_id": "45"}}
    runs = [dict(base, engine="job1"), dict(base, engine="polars", rows_written=8, rows_quarantined=2),
            {"engine": "arrow_parse", "rows": 10, "rows_read": 10}]
    parity(runs)
    assert runs[0]["parity"] is True
    assert runs[1]["parity"] is False and "rows_written" in runs[1]["parity_diff"]
    assert runs[2]["parity"] is True


def test_targets_evaluation() -> None:
    from benchmarks.bench import evaluate

    doc = {"ratios": {"5000000": {"job1_vs_polars": 1.2, "job1_vs_pandas": 3.0, "job1_vs_parse_ceiling": 0.7}},
           "memory": [{"engine": "job1", "rows": 1_000_000, "peak_rss_mb": 300.0},
                      {"engine": "job1", "rows": 20_000_000, "peak_rss_mb": 320.0}],
           "load": [], "e2e": [{"rows": 100, "seconds": 2.0}]}
    status = {t["key"]: t["status"] for t in evaluate(doc)}
    assert status == {"job1_vs_polars": "PASS", "job1_vs_pandas": "FAIL", "job1_vs_parse_ceiling": "PASS",
                      "job1_peak_rss_mb": "PASS", "job1_rss_growth": "PASS", "load_vs_adbc": "SKIP",
                      "e2e_small_seconds": "PASS", "e2e_large_seconds": "SKIP", "crawl_event_growth": "SKIP"}
    flat = [{"mode": "events", "objects": 10, "seconds": 0.10}, {"mode": "events", "objects": 1000, "seconds": 0.12},
            {"mode": "full", "objects": 10, "seconds": 0.10}, {"mode": "full", "objects": 1000, "seconds": 8.0}]
    assert {t["key"]: t["status"] for t in evaluate({**doc, "crawl": flat})}["crawl_event_growth"] == "PASS"
    grown = [dict(r, seconds=r["seconds"] * (10 if r["objects"] == 1000 else 1)) for r in flat]
    assert {t["key"]: t["status"] for t in evaluate({**doc, "crawl": grown})}["crawl_event_growth"] == "FAIL"


def test_bench_is_found_only_in_an_etl_kit_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another project's benchmarks/ in the working directory is never run; the kit's own checkout is found."""
    from etl_kit.cli import _benchmarks_dir, _is_checkout

    root = Path(__file__).resolve().parents[2]
    other = tmp_path / "other"
    (other / "benchmarks").mkdir(parents=True)
    (other / "benchmarks" / "bench.py").write_text("raise SystemExit('must not run')\n")
    (other / "pyproject.toml").write_text('[project]\nname = "not-etl-kit"\n')
    assert not _is_checkout(other) and _is_checkout(root)
    monkeypatch.chdir(other / "benchmarks")
    assert _benchmarks_dir() == root / "benchmarks"  # the editable install's own checkout, not the cwd's project

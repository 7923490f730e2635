"""The notebooks stay thin and stand alone (params_file + the keys they use); their committed outputs are
checked in test_notebook_outputs.py (recorded, sanitised, free of secrets and local paths)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_expected_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == ["00_setup", "01_provision", "02_upload_test_data", "03_monitor_workflow",
                                           "04_validate_redshift", "05_analysis", "99_teardown"]


RUN_PARAMETER_NOTEBOOKS = {"03_monitor_workflow", "04_validate_redshift"}


def _parameters(path: Path) -> dict[str, object]:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    return {t.id: ast.literal_eval(node.value) for node in ast.parse(tagged[0].source).body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_holding_params_file_and_a_subset_of_the_params_keys(path: Path) -> None:
    names = _parameters(path)
    assert names.pop("params_file") == "params/local.yaml"
    run_params = {"source_key", "run_id"} & set(names)
    if path.stem in RUN_PARAMETER_NOTEBOOKS:
        assert run_params == {"source_key", "run_id"} and all(names.pop(k) == "" for k in run_params)
    else:
        assert not run_params, f"{path.stem} takes no source_key/run_id"
    assert names, "each notebook shows the keys it uses"
    for params in ("local.yaml", "aws.yaml"):
        keys = set(yaml.safe_load((ROOT / "params" / params).read_text()))
        assert set(names) <= keys, f"unknown keys {set(names) - keys} (not in params/{params})"
    # None = the params file's value: the file stays the one source of truth
    assert all(v is None for v in names.values()), names


def test_the_runner_refuses_a_notebook_declaring_an_unknown_key(tmp_path: Path) -> None:
    from etl_kit.exceptions import ConfigError
    from etl_kit.runner import _check_declared

    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\nsample_rowz = None"
    bad = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, bad)
    _check_declared(NOTEBOOKS)  # the committed ones pass
    with pytest.raises(ConfigError, match=r"00_setup.*unknown: \['sample_rowz'\]"):
        _check_declared([bad])


def test_run_parameters_split_from_overrides_and_unknown_keys_refused() -> None:
    from etl_kit.exceptions import ConfigError
    from etl_kit.runner import _parameter_pairs, split_parameters

    pairs = _parameter_pairs((("sample_rows", "300"), ("run_id", "wr_0001"), ("source_key", "input/1.csv"),
                              ("keep_data", "true")))
    assert split_parameters(pairs) == ({"sample_rows": 300, "keep_data": True},
                                       {"run_id": "wr_0001", "source_key": "input/1.csv"})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['sample_rowz'\]"):
        split_parameters({"sample_rowz": 3})


def test_teardown_is_left_out_unless_asked() -> None:
    from etl_kit.exceptions import ConfigError
    from etl_kit.runner import notebooks

    assert [p.stem for p in notebooks(teardown=False)] == [p.stem for p in NOTEBOOKS if p.stem != "99_teardown"]
    assert notebooks(["99"], teardown=True)[0].stem == "99_teardown"
    with pytest.raises(ConfigError, match="runs only with --teardown"):
        notebooks(["99"], teardown=False)


def test_the_notebooks_name_the_kits_kernel() -> None:
    from etl_kit.runner import KERNEL_NAME

    for path in NOTEBOOKS:
        assert nbformat.read(path, as_version=4).metadata["kernelspec"]["name"] == KERNEL_NAME


#: What a cell may call: the kit's helpers, or awswrangler in a user's own query (05).
HELPERS = {"nb", "analysis", "wr"}


def _root(func: ast.expr) -> str:
    """``wr`` of ``wr.data_api.redshift.read_sql_query``; "" for a call of a plain name."""
    node = func
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) and node is not func else ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_thin_and_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    for cell in code:
        stmts = [s for s in ast.parse(cell.source).body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        calls = sum(isinstance(n, ast.Call) and _root(n.func) in HELPERS for s in stmts for n in ast.walk(s))
        assert calls == 1, f"each cell makes exactly one helper call: {cell.source!r}"
        assert len(stmts) <= 2, f"thin cell expected: {cell.source!r}"
    # every code cell is preceded by a markdown heading
    for prev, cell in zip(nb.cells, nb.cells[1:], strict=False):
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            assert prev.cell_type == "markdown" and prev.source.lstrip().startswith("#")


def test_a_failing_notebook_stops_the_run_with_a_summary_naming_it(tmp_path: Path) -> None:
    """The runner's bookkeeping on a failure: status/error per notebook, later ones not run, HTML of the failed one."""
    from etl_kit.exceptions import PipelineError
    from etl_kit.runner import run_notebooks

    src = tmp_path / "nbs"
    src.mkdir()
    for name, code in (("10_ok", "x = 1"), ("20_fails", "raise ValueError('no such upload')"), ("30_after", "x = 3")):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "etl-kit", "display_name": "etl-kit (Python 3.11)", "language": "python"}
        params = nbformat.v4.new_code_cell('params_file = "params/local.yaml"')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, src / f"{name}.ipynb")
    out = tmp_path / "out"
    with pytest.raises(PipelineError, match=r"notebook 20_fails failed in cell 3: ValueError: no such upload"):
        run_notebooks(ROOT / "params" / "local.yaml", out=out, progress=False, directory=src)
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [
        ("10_ok", "succeeded"), ("20_fails", "failed"), ("30_after", "not run")]
    assert summary["failed"].startswith("20_fails cell 3: ValueError")  # cell 2 is papermill's injected one
    assert (out / "20_fails.html").is_file() and not (out / "30_after.ipynb").exists()
    assert "| 20_fails | failed |" in (out / "summary.md").read_text()

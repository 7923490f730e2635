"""The notebooks stay thin, declare exactly the params keys, and are committed without outputs."""

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_whose_names_equal_the_params_keys(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {t.id for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    for params in ("local.yaml", "aws.yaml"):
        assert names == set(yaml.safe_load((ROOT / "params" / params).read_text())), params


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_are_thin_and_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, "commit notebooks without outputs"
        stmts = [s for s in ast.parse(cell.source).body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        calls = sum(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and
                    isinstance(n.func.value, ast.Name) and n.func.value.id in {"nb", "analysis"}
                    for s in stmts for n in ast.walk(s))
        assert calls == 1, f"each cell makes exactly one helper call: {cell.source!r}"
        assert len(stmts) <= 2, f"thin cell expected: {cell.source!r}"
    # every code cell is preceded by a markdown heading
    for prev, cell in zip(nb.cells, nb.cells[1:], strict=False):
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            assert prev.cell_type == "markdown" and prev.source.lstrip().startswith("#")

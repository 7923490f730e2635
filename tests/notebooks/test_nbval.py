"""nbval checks the committed notebooks' outputs, not only that their cells run: notebooks 00-05 as committed
(recorded by `etl-kit notebooks record`) run again on a fresh local cloud made as a recording makes one, and each
cell's fresh output must equal its recorded output, both passed through the recorder's sanitiser rules
(`--nbval-sanitize-with`, the file written from etl_kit/nbsanitize.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from etl_kit.nbrecord import record_notebooks, recording_cloud, run_values
from etl_kit.nbsanitize import write_nbval_config
from etl_kit.runner import NOTEBOOK_DIR, ensure_kernel, notebooks

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[2]


def _copy_for(path: Path, params: Path, directory: Path) -> Path:
    """The committed notebook with its outputs, and after its parameters cell one that points it at ``params``
    (as papermill injects it; it has no recorded output, so nbval runs it without comparing)."""
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(f"params_file = {str(params)!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    copy = directory / path.name
    nbformat.write(nb, copy)
    return copy


def test_nbval_checks_the_committed_outputs_against_a_fresh_run() -> None:
    ensure_kernel()
    committed = notebooks(teardown=False)
    compared = sum(1 for p in committed for c in nbformat.read(p, as_version=4).cells
                   if c.cell_type == "code" and c.outputs)
    with recording_cloud() as (settings, params, tmp):
        directory = tmp / "nbval"
        directory.mkdir()
        copies = [_copy_for(p, params, directory) for p in committed]
        sanitize = write_nbval_config(tmp / "sanitize.cfg", run_values(settings, {str(tmp): "<tmp>"}))
        res = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-sanitize-with", str(sanitize),
                              "-p", "no:cacheprovider", "-q", "--rootdir", str(directory), *map(str, copies)],
                             capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    cells = sum(1 for p in committed for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")
    injected = len(committed)
    passed = re.search(r"(\d+) passed", res.stdout)
    assert passed and int(passed.group(1)) == cells + injected, res.stdout[-2000:]
    assert compared >= 25  # the recorded outputs nbval compared (a notebook without outputs would compare nothing)


def _without_what_varies(nb: dict[str, Any]) -> dict[str, Any]:
    """``nb`` without its pictures (they draw measured durations) and the outputs of the cells nbval ignores."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if "NBVAL_IGNORE_OUTPUT" in "".join(cell["source"]):
            cell["outputs"] = []
        for out in cell.get("outputs", []):
            out.get("data", {}).pop("image/png", None)
    return nb


def test_recording_again_reproduces_the_committed_notebooks(tmp_path: Path) -> None:
    """`etl-kit notebooks record` on a copy of notebooks/: the same bytes, but for 03's pictures and its cost
    (measured durations); the teardown is not recorded."""
    copy = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, copy)
    done = record_notebooks(copy, progress=False)
    assert [p.name for p in done.notebooks] == [p.name for p in notebooks(teardown=False)]
    assert (copy / "99_teardown.ipynb").read_bytes() == (NOTEBOOK_DIR / "99_teardown.ipynb").read_bytes()
    for path in done.notebooks:
        new, old = path.read_text(encoding="utf-8"), (NOTEBOOK_DIR / path.name).read_text(encoding="utf-8")
        if path.stem.startswith("03"):
            assert _without_what_varies(json.loads(new)) == _without_what_varies(json.loads(old)), path.name
        else:
            assert new == old, f"{path.name} differs from its recording: re-record with `etl-kit notebooks record`"

"""etl_runtime runs in Glue Python shell 3.9 and Lambda: every file of it compiles with a real Python 3.9.

ruff lints etl_runtime/** at a 3.9 target (pyproject.toml); this test is the interpreter's own word. The 3.9
interpreter is found on PATH (``python3.9``) or among pyenv's versions (``pyenv root``/versions/3.9.*); without
one the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
RUNTIME = Path(__file__).resolve().parents[2] / "etl_runtime"

# Compiles (never imports, never writes .pyc) each file given on stdin as JSON; prints the failures as JSON.
_COMPILE_ALL = """
import json, sys
bad = {}
for path in json.load(sys.stdin):
    try:
        with open(path, "rb") as fh:
            compile(fh.read(), path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        bad[path] = "line %s: %s" % (exc.lineno, exc.msg)
print(json.dumps({"version": list(sys.version_info[:2]), "bad": bad}))
"""


def _is_39(python: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return None
    out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def find_python39() -> tuple[str | None, str]:
    """(a Python 3.9 interpreter, "") or (None, where it was looked for)."""
    on_path = shutil.which("python3.9")
    if on_path and _is_39(on_path):  # a pyenv shim answers only when 3.9 is among the selected versions
        return on_path, ""
    root = _pyenv_root()
    if root is not None:
        for version in sorted((root / "versions").glob("3.9*"), reverse=True):
            candidate = version / "bin" / "python3.9"
            if candidate.is_file() and _is_39(str(candidate)):
                return str(candidate), ""
    where = f"no working python3.9 on PATH ({on_path or 'none'}) nor under " + (
        f"{root}/versions/3.9*" if root else "pyenv (not installed)")
    return None, where


def test_every_runtime_file_compiles_with_python_39() -> None:
    python, where = find_python39()
    if python is None:
        pytest.skip(f"SKIPPED, etl_runtime's 3.9 compatibility is NOT checked: {where}; "
                    "install Python 3.9 (e.g. `pyenv install 3.9`) to run this test")
    files = sorted(str(p) for p in RUNTIME.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(files) >= 10, f"expected the runtime package's files under {RUNTIME}, found {files}"
    out = subprocess.run([python, "-c", _COMPILE_ALL], input=json.dumps(files), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["version"] == [3, 9]
    assert result["bad"] == {}, f"files that Python 3.9 cannot compile: {result['bad']}"


def test_the_check_catches_syntax_newer_than_39(tmp_path: Path) -> None:
    """The same compile step rejects a ``match`` statement (3.10+), so a pass above means something."""
    python, where = find_python39()
    if python is None:
        pytest.skip(f"SKIPPED: {where}")
    probe = tmp_path / "probe.py"
    probe.write_text("def f(x):\n    match x:\n        case 1:\n            return 1\n    return 0\n")
    out = subprocess.run([python, "-c", _COMPILE_ALL], input=json.dumps([str(probe)]), capture_output=True,
                         text=True, timeout=60)
    assert str(probe) in json.loads(out.stdout)["bad"]

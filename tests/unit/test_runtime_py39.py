"""etl_runtime runs in Glue Python shell 3.9 and Lambda: every file of it compiles with a real Python 3.9.

ruff lints etl_runtime/** at a 3.9 target (pyproject.toml); this test is the interpreter's own word. The 3.9
interpreter is found as the local cloud finds it (:func:`etl_localcloud.runtime_envs.find_interpreter`: PATH or
pyenv's versions); without one the test is skipped with the reason (failed on CI), never passed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_interpreter

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


def test_every_runtime_file_compiles_with_python_39() -> None:
    python = require_interpreter("3.9").path  # as the local cloud finds it; on CI a missing one fails
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
    python = require_interpreter("3.9").path
    probe = tmp_path / "probe.py"
    probe.write_text("def f(x):\n    match x:\n        case 1:\n            return 1\n    return 0\n")
    out = subprocess.run([python, "-c", _COMPILE_ALL], input=json.dumps([str(probe)]), capture_output=True,
                         text=True, timeout=60)
    assert str(probe) in json.loads(out.stdout)["bad"]

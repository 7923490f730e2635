"""The programs a local Glue job's process runs (etl_localcloud/glue/programs), run as the job runner runs them.

Each test starts ``python -m <program>`` with the programs' folder on ``PYTHONPATH`` (unit: no server).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl_localcloud.glue.job_process import memory_limit_bytes
from etl_localcloud.glue.programs import BOOTSTRAP_MODULE, PATH_ROOT
from tests.conftest import require_interpreter

pytestmark = pytest.mark.unit


def _run(module: str, *args: str, cwd: Path, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PATH_ROOT)}
    return subprocess.run([python, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def _script(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "script"
    folder.mkdir()
    (folder / "helper.py").write_text("GREETING = 'hello from the script folder'\n")
    script = folder / "job.py"
    script.write_text(body)
    return script


def test_the_bootstrap_runs_the_script_as_main_with_glue_argv_and_its_folder_importable(tmp_path: Path) -> None:
    script = _script(tmp_path, (
        "import sys\n"
        "from awsglue.utils import getResolvedOptions\n"
        "import helper\n"
        "args = getResolvedOptions(sys.argv, ['JOB_NAME', 'bucket'])\n"
        "print(__name__, sys.argv[1:], args['JOB_NAME'], args['bucket'], helper.GREETING)\n"
    ))
    out = _run(BOOTSTRAP_MODULE, "0", str(script), "--JOB_NAME", "nightly", "--bucket", "b1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("__main__ ['--JOB_NAME', 'nightly', '--bucket', 'b1'] nightly b1 "
                                  "hello from the script folder")


def test_a_failing_script_exits_non_zero_with_its_traceback(tmp_path: Path) -> None:
    script = _script(tmp_path, "raise ValueError('row 7 has no key')\n")
    out = _run(BOOTSTRAP_MODULE, "0", str(script), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.rstrip().splitlines()[-1] == "ValueError: row 7 has no key"
    script.write_text("import sys\nsys.exit(3)\n")
    assert _run(BOOTSTRAP_MODULE, "0", str(script), cwd=tmp_path).returncode == 3


def test_the_memory_cap_makes_a_greedy_script_fail_with_memory_error(tmp_path: Path) -> None:
    script = _script(tmp_path, "hog = bytearray(600 * 1024 * 1024)\nprint('allocated')\n")
    capped = _run(BOOTSTRAP_MODULE, str(256 * 1024**2), str(script), cwd=tmp_path)
    assert capped.returncode == 1 and "MemoryError" in capped.stderr and "allocated" not in capped.stdout
    uncapped = _run(BOOTSTRAP_MODULE, "0", str(script), cwd=tmp_path)
    assert uncapped.returncode == 0 and uncapped.stdout.strip() == "allocated"
    assert memory_limit_bytes(None) == memory_limit_bytes(0.0625) == 1024**3
    assert memory_limit_bytes(1.0) == 16 * 1024**3


def test_the_awsglue_shim_names_the_missing_arguments(tmp_path: Path) -> None:
    script = _script(tmp_path, (
        "import sys\n"
        "from awsglue.utils import getResolvedOptions\n"
        "getResolvedOptions(sys.argv, ['JOB_NAME', 'bucket'])\n"
    ))
    out = _run(BOOTSTRAP_MODULE, "0", str(script), "--JOB_NAME", "nightly", cwd=tmp_path)
    assert out.returncode != 0
    assert "the following arguments are required: --bucket" in out.stderr


def test_the_bootstrap_and_its_awsglue_shim_run_on_python_3_9(tmp_path: Path) -> None:
    """Glue Python shell runs 3.9: the job's process must start there (no newer syntax in the programs)."""
    py39 = require_interpreter("3.9")
    script = _script(tmp_path, (
        "import sys\n"
        "from awsglue.utils import getResolvedOptions\n"
        "args = getResolvedOptions(sys.argv, ['JOB_NAME'])\n"
        "print(sys.version_info[:2], args['JOB_NAME'])\n"))
    out = _run(BOOTSTRAP_MODULE, str(1 << 30), str(script), "--JOB_NAME", "nightly", cwd=tmp_path, python=py39.path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 9) nightly"

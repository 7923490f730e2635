"""The kit installed from its wheel (not editable), run from outside the checkout, provisions the local target.

What a user who ran ``pip install .`` gets: the wheel is built from a copy of the project, installed into a fresh
venv, and the venv's own ``etl-kit`` starts the local cloud and provisions it from a directory that holds nothing
but a params file. The Glue job scripts and ``etl_runtime.zip`` must then be in the assets bucket with the bytes of
the installed package, and every job's ScriptLocation must name an object that exists.

To stay fast, the fresh venv installs only the wheel (``--no-deps``) and sees the dev venv's dependencies through a
``.pth`` line (the dev venv's site-packages is appended, its own ``.pth`` hooks, the editable install's among them,
are not run); ``pip check`` then confirms that the wheel's declared dependencies are satisfied.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from etl_localcloud.postgres import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.local

# What a wheel is built from: the project, without local state, caches and the dev venv.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".etl-kit", "runs",
                                     "bench-results", ".*_cache", ".import_linter_cache", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Installed:
    """A fresh venv holding the installed wheel, and a working directory outside the checkout."""

    python: Path
    etl_kit: Path  # the venv's console script
    runtime_dir: Path  # etl_runtime as the venv imports it
    workdir: Path
    wheel_names: frozenset[str]
    seconds: float

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run([str(self.etl_kit), *args], cwd=self.workdir, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def _check(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    t0 = time.perf_counter()
    base = tmp_path_factory.mktemp("installed")
    src, wheels, env_dir, workdir = base / "src", base / "wheels", base / "venv", base / "work"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _check([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("etl_kit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = frozenset(zf.namelist())
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_etl_kit_dev_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _check([*pip, "--python", str(python), "install", "--no-deps", str(wheel)])
    _check([*pip, "--python", str(python), "check"])
    workdir.mkdir()
    runtime = _check([str(python), "-c", "import etl_runtime, os; print(os.path.dirname(etl_runtime.__file__))"],
                     cwd=workdir).stdout.strip()
    return Installed(python=python, etl_kit=env_dir / "bin" / "etl-kit", runtime_dir=Path(runtime), workdir=workdir,
                     wheel_names=names, seconds=round(time.perf_counter() - t0, 1))


@pytest.fixture(scope="module")
def provisioned(installed: Installed) -> Iterator[dict[str, object]]:
    """The installed CLI's local cloud, provisioned from a params file in a directory outside the checkout."""
    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    params.update(local_state_dir=str(installed.workdir / "state"), local_port=free_port())
    (installed.workdir / "local.yaml").write_text(yaml.safe_dump(params))
    up = installed.run("local", "up", "--params", "local.yaml")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        prov = installed.run("provision", "--params", "local.yaml", timeout=600)
        assert prov.returncode == 0, prov.stdout + prov.stderr
        yield params
    finally:
        installed.run("local", "down", "--params", "local.yaml")


def test_the_wheel_holds_the_three_packages_and_no_benchmarks(installed: Installed) -> None:
    names = installed.wheel_names
    for must in ("etl_kit/py.typed", "etl_kit/cli.py", "etl_runtime/lambda_handler.py",
                 "etl_runtime/entrypoints/csv_to_parquet.py", "etl_runtime/entrypoints/parquet_to_redshift.py",
                 "etl_localcloud/daemon.py"):
        assert must in names, f"{must} missing from the wheel"
    assert not [n for n in names if n.startswith(("benchmarks/", "tests/", "tools/"))]
    # the venv imports the installed copy, not the checkout
    assert ROOT not in installed.runtime_dir.parents
    assert installed.runtime_dir.is_relative_to(installed.python.parents[1])
    print(f"wheel built and installed into a fresh venv in {installed.seconds} s")


def test_bench_outside_a_checkout_says_where_it_runs(installed: Installed) -> None:
    out = installed.run("bench", "--quick")
    assert out.returncode == 1
    assert "runs from a checkout of etl-kit" in out.stderr and str(installed.workdir) in out.stderr


def test_installed_cli_provisions_the_job_scripts_and_the_runtime_zip(installed: Installed,
                                                                       provisioned: dict[str, object]) -> None:
    p = provisioned
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{p['local_port']}", region_name=str(p["region"]))
    glue = boto3.client("glue", endpoint_url=f"http://127.0.0.1:{p['local_port']}", region_name=str(p["region"]))
    assets = f"{p['assets_bucket']}-123456789012-{p['region']}"
    prefix = str(p["scripts_prefix"])

    def body(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=assets, Key=key)["Body"].read())

    entrypoints = sorted((installed.runtime_dir / "entrypoints").glob("*.py"))
    scripts = [e for e in entrypoints if e.name != "__init__.py"]
    assert len(scripts) == 2
    for script in scripts:
        assert body(prefix + script.name) == script.read_bytes(), f"{script.name} differs from the installed file"
    with zipfile.ZipFile(io.BytesIO(body(prefix + "etl_runtime.zip"))) as zf:
        shipped = {n: zf.read(n) for n in zf.namelist()}
    installed_files = {f"etl_runtime/{f.relative_to(installed.runtime_dir).as_posix()}": f.read_bytes()
                       for f in installed.runtime_dir.rglob("*.py") if "__pycache__" not in f.parts}
    assert shipped.keys() == installed_files.keys()
    assert shipped == installed_files
    for job in (p["csv_job"], p["load_job"]):
        location = glue.get_job(JobName=str(job))["Job"]["Command"]["ScriptLocation"]
        bucket, _, key = location.removeprefix("s3://").partition("/")
        assert (bucket, key) in {(assets, prefix + s.name) for s in scripts}, f"{job}: {location}"
    print(json.dumps({"install_seconds": installed.seconds, "scripts": [s.name for s in scripts]}))

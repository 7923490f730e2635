"""`./kit lab` opens JupyterLab on notebooks/ with the kit's kernel, beside the local cloud: started headless here,
asked through its REST API, then stopped."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl_kit.config import Settings
from etl_kit.runner import KERNEL_NAME
from tests.conftest import free_port

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[2]


def _command() -> list[str]:
    """`./kit lab` when the tests run in the kit's own .venv (what a user runs), else the same command of the CLI."""
    if Path(sys.prefix).resolve() == (ROOT / ".venv").resolve():
        return [sys.executable, str(ROOT / "kit"), "lab"]
    return [sys.executable, "-m", "etl_kit.cli", "lab"]


class Lab:
    def __init__(self, base: str, token: str, proc: subprocess.Popen[bytes], tmp: Path) -> None:
        self.base, self.token, self.proc = base, token, proc
        self.runtime, self.log_path = tmp / "runtime", tmp / "lab.log"

    def api(self, path: str, method: str = "GET", body: dict[str, Any] | None = None, *,
            token: bool = True) -> tuple[int, Any]:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {self.token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None


@pytest.fixture(scope="module")
def lab(cloud: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(cloud.to_params()))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    log = (tmp / "lab.log").open("wb")
    proc = subprocess.Popen([*_command(), "--params", str(params), "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    it = Lab(f"http://127.0.0.1:{port}", token, proc, tmp)
    try:
        deadline = time.monotonic() + 300  # a first `./kit` may install into .venv
        while True:
            assert proc.poll() is None, (tmp / "lab.log").read_text()[-3000:]
            try:
                if it.api("/api/status")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not answer: " + (tmp / "lab.log").read_text()[-3000:]
            time.sleep(0.5)
        yield it
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_lab_serves_the_notebooks_with_the_kits_kernel(lab: Lab) -> None:
    status, body = lab.api("/api/status")
    assert status == 200 and "started" in body
    status, specs = lab.api("/api/kernelspecs")
    assert status == 200 and KERNEL_NAME in specs["kernelspecs"]
    assert specs["kernelspecs"][KERNEL_NAME]["spec"]["display_name"] == "etl-kit (Python 3.11)"
    status, root = lab.api("/api/contents")
    assert status == 200
    assert {"00_setup.ipynb", "04_validate_redshift.ipynb"} <= {c["name"] for c in root["content"]}
    assert lab.api("/api/status", token=False)[0] == 403  # the token guards the server


def test_the_kits_kernel_starts(lab: Lab) -> None:
    status, kernel = lab.api("/api/kernels", "POST", {"name": KERNEL_NAME})
    assert status == 201 and kernel["name"] == KERNEL_NAME
    try:
        assert any(k["id"] == kernel["id"] for k in lab.api("/api/kernels")[1])
    finally:
        assert lab.api(f"/api/kernels/{kernel['id']}", "DELETE")[0] == 204


def test_the_local_cloud_is_up_beside_lab(lab: Lab, cloud: Settings) -> None:
    from etl_kit import local

    assert lab.proc.poll() is None
    assert local.status(cloud)["endpoint"] == cloud.local_endpoint


def test_lab_kernels_run_over_ipc_and_trust_the_local_cloud(lab: Lab, cloud: Settings) -> None:
    """The kernels' channels are unix sockets (no "running over TCP without encryption" warning), and a kernel
    trusts the local cloud's CA: SSL_CERT_FILE is its trust bundle (redshift-connector's defaults then work)."""
    from jupyter_client import BlockingKernelClient

    from etl_kit import local

    status, kernel = lab.api("/api/kernels", "POST", {"name": KERNEL_NAME})
    assert status == 201
    try:
        conn = lab.runtime / f"kernel-{kernel['id']}.json"
        assert json.loads(conn.read_text())["transport"] == "ipc"
        kc = BlockingKernelClient(connection_file=str(conn))
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            seen: list[str] = []
            reply = kc.execute_interactive(
                "import os; print(os.environ['SSL_CERT_FILE'])", timeout=60,
                output_hook=lambda m: seen.append(m["content"].get("text", "")))
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
        bundle = local.status(cloud)["providers"]["redshift-serverless"]["trust_bundle"]
        assert "".join(seen).split() == [str(bundle)]
    finally:
        assert lab.api(f"/api/kernels/{kernel['id']}", "DELETE")[0] == 204
    assert b"without encryption" not in lab.log_path.read_bytes()

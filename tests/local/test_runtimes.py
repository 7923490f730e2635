"""Glue Python shell jobs and Lambda functions run on the runtimes AWS runs them on (etl_localcloud/runtimes.py).

Jobs run on Python 3.9 with the ``analytics`` pins, functions on their declared runtime's Python with its boto3;
the environments are built once and reused; ``--additional-python-modules`` installs pinned modules; a missing
interpreter is said (logs, status), never silent. Driven with plain boto3 against clouds of this module's own.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from etl_kit import local
from etl_kit.config import Settings
from etl_localcloud.runtime_envs import SEARCH_PATH_VAR
from etl_localcloud.runtimes import GLUE_PYTHONSHELL_39, LAMBDA_RUNTIMES
from tests.conftest import client_factory, private_cloud, require_interpreter
from tests.local._pipeline_helpers import service_role
from tests.local.test_contract_glue import ROLE, job_run

pytestmark = pytest.mark.local

BUCKET = "runtime-tests"


@pytest.fixture(scope="module")
def make(module_cloud: Settings, module_boto: Callable[[str], Any]) -> Callable[[str], Any]:
    require_interpreter(GLUE_PYTHONSHELL_39.python)
    require_interpreter(LAMBDA_RUNTIMES["python3.12"].python)
    module_boto("s3").create_bucket(Bucket=BUCKET)
    _glue_role(module_boto)
    return module_boto


def _glue_role(make: Callable[[str], Any]) -> None:
    """Glue runs the jobs as ROLE (IAM is enforced): it may be assumed by Glue and read the scripts."""
    service_role(make("iam"), ROLE.rsplit("/", 1)[-1], "glue.amazonaws.com", [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/scripts/*"}])


def _job(make: Callable[[str], Any], name: str, script: str, **args: str) -> dict[str, Any]:
    """Run a Python shell job of ``script`` with default arguments ``args``; its final run and output log."""
    key = f"scripts/{name}.py"
    make("s3").put_object(Bucket=BUCKET, Key=key, Body=script.encode())
    glue = make("glue")
    glue.create_job(Name=name, Role=ROLE, MaxCapacity=0.0625, DefaultArguments=args,
                    Command={"Name": "pythonshell", "ScriptLocation": f"s3://{BUCKET}/{key}", "PythonVersion": "3.9"})
    run = job_run(glue, name, glue.start_job_run(JobName=name)["JobRunId"], timeout=300)
    events = make("logs").get_log_events(logGroupName="/aws-glue/python-jobs/output", logStreamName=run["Id"])
    run["output"] = [e["message"] for e in events["events"]]
    return dict(run)


def test_a_job_runs_on_python_3_9_with_the_pinned_analytics_libraries(make: Callable[[str], Any]) -> None:
    run = _job(make, "reports-runtime", "import sys, json, pyarrow, pandas, boto3\n"
               "print(json.dumps({'python': list(sys.version_info[:2]), 'pyarrow': pyarrow.__version__,\n"
               "                  'pandas': pandas.__version__, 'boto3': boto3.__version__}))\n")
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["output"][0].startswith("[etl-kit local cloud] runtime glue-pythonshell-3.9-analytics: Python 3.9.")
    reported = json.loads(run["output"][1])
    assert reported == {"python": [3, 9], "pyarrow": GLUE_PYTHONSHELL_39.version_of("pyarrow"),
                        "pandas": GLUE_PYTHONSHELL_39.version_of("pandas"),
                        "boto3": GLUE_PYTHONSHELL_39.version_of("boto3")}


def test_a_job_using_an_api_the_pinned_pyarrow_lacks_fails_locally_as_on_glue(make: Callable[[str], Any]) -> None:
    # StructType.field() came with pyarrow 8; Glue's Python shell 3.9 has 7.0.0 (job 1 used it once)
    run = _job(make, "newer-pyarrow-api", "import pyarrow as pa\n"
               "print(pa.struct([('y', pa.int32())]).field(0).name)\n")
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "AttributeError: 'pyarrow.lib.StructType' object has no attribute 'field'"


def test_additional_python_modules_install_pinned_modules_and_refuse_unpinned_ones(
        make: Callable[[str], Any]) -> None:
    script = "import appdirs\nprint('appdirs', appdirs.__version__)\n"
    run = _job(make, "pinned-module", script, **{"--additional-python-modules": "appdirs==1.4.4"})
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert "appdirs 1.4.4" in run["output"]
    again = job_run(make("glue"), "pinned-module", make("glue").start_job_run(JobName="pinned-module")["JobRunId"])
    assert again["JobRunState"] == "SUCCEEDED", again.get("ErrorMessage")  # from the cached overlay

    unpinned = _job(make, "unpinned-module", script, **{"--additional-python-modules": "appdirs"})
    assert unpinned["JobRunState"] == "FAILED"
    assert unpinned["ErrorMessage"].startswith("--additional-python-modules: appdirs has no pinned version")
    missing = _job(make, "missing-module", script, **{"--additional-python-modules": "no-such-pkg-xyz-etl==1.0"})
    assert missing["JobRunState"] == "FAILED"
    assert missing["ErrorMessage"].startswith("--additional-python-modules: could not install no-such-pkg-xyz-etl==1.0")


def _function(make: Callable[[str], Any], name: str, runtime: str) -> dict[str, Any]:
    code = ("import sys, boto3, botocore\n"
            "def handler(event, context):\n"
            "    return {'python': list(sys.version_info[:2]), 'boto3': boto3.__version__,\n"
            "            'botocore': botocore.__version__}\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fn.py", code)
    iam = make("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    lam = make("lambda")
    lam.create_function(FunctionName=name, Runtime=runtime, Role=role, Handler="fn.handler",
                        Code={"ZipFile": buf.getvalue()}, Timeout=60)
    out = lam.invoke(FunctionName=name, LogType="Tail")
    assert "FunctionError" not in out, out["Payload"].read()
    return dict(json.loads(out["Payload"].read()))


def test_a_function_runs_on_its_runtimes_python_with_the_boto3_it_ships(make: Callable[[str], Any]) -> None:
    pins = LAMBDA_RUNTIMES["python3.12"]
    assert _function(make, "reports-runtime", "python3.12") == {
        "python": [3, 12], "boto3": pins.version_of("boto3"), "botocore": pins.version_of("botocore")}


def test_the_environments_are_built_once_and_reused_by_the_next_start(module_cloud: Settings,
                                                                      make: Callable[[str], Any]) -> None:
    before = local.status(module_cloud)["providers"]["runtimes"]
    envs = {name: Path(r["environment"]) for name, r in before["runtimes"].items()}
    assert set(envs) == {GLUE_PYTHONSHELL_39.name, *(p.name for p in LAMBDA_RUNTIMES.values())}
    stamps = {name: (env / "etl-kit-runtime.json").stat().st_mtime_ns for name, env in envs.items()}
    local.down(module_cloud)
    local.up(module_cloud)  # returns once the runtimes are resolved
    after = local.status(module_cloud)["providers"]["runtimes"]
    assert (after["built"], after["reused"]) == (0, len(envs))
    assert {name: Path(r["environment"]) for name, r in after["runtimes"].items()} == envs
    assert {name: (env / "etl-kit-runtime.json").stat().st_mtime_ns for name, env in envs.items()} == stamps
    assert not list(envs[GLUE_PYTHONSHELL_39.name].parent.glob(".build-*"))  # no half-built folder left


@pytest.fixture(scope="module")
def no_interpreters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A cloud whose interpreter lookup sees an empty PATH and an empty pyenv root (nothing else changed)."""
    empty = tmp_path_factory.mktemp("no-pythons")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SEARCH_PATH_VAR, str(empty))
        mp.setenv("PYENV_ROOT", str(empty))
        yield from private_cloud(tmp_path_factory, "fallback")


def test_a_missing_interpreter_falls_back_to_the_daemons_python_and_says_so(no_interpreters: Settings) -> None:
    table = local.status(no_interpreters)["runtimes"]
    glue = table[GLUE_PYTHONSHELL_39.name]
    assert glue["pinned"] is False and glue["environment"] is None
    assert glue["fallback"].startswith(f"python3.9 was not found on {SEARCH_PATH_VAR} or through pyenv")
    shown = CliRunner().invoke(local_cli(), ["local", "status", "--state-dir", str(no_interpreters.state_dir),
                                             "--port", str(no_interpreters.local_port)])
    assert f"runtime   {GLUE_PYTHONSHELL_39.name}: NOT EMULATED, runs on the daemon's Python 3.11" in shown.output
    assert "runtime   lambda-python3.12: NOT EMULATED" in shown.output

    boto = client_factory(no_interpreters)
    boto("s3").create_bucket(Bucket=BUCKET)
    _glue_role(boto)
    run = _job(boto, "on-daemon-python", "import sys\nprint(sys.version_info[:2])\n")
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert run["output"][0].startswith("[etl-kit local cloud] WARNING: runtime glue-pythonshell-3.9-analytics is "
                                       "NOT emulated for this run: python3.9 was not found")
    assert run["output"][1] == "(3, 11)"


def local_cli() -> Any:
    """The kit's command line (``etl-kit``)."""
    from etl_kit.cli import cli

    return cli

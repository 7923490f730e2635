"""One Glue Python shell job run as a process: its folder, its downloads, its command line, its end.

:class:`ScriptRun` turns a job definition and a run into what Glue runs: the script and its
``--extra-py-files`` downloaded from the local S3 into a folder of the run's own, and
``python -m glue_job_bootstrap LIMIT script.py --JOB_ID .. --JOB_RUN_ID .. --JOB_NAME .. --key value ...``
(see :mod:`etl_localcloud.glue.programs`) with the local endpoint in its environment, the run's
timeout and a memory cap derived from the job's capacity (:func:`memory_limit_bytes`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from etl_localcloud.context import CloudContext
from etl_localcloud.glue.common import role_session, split_s3
from etl_localcloud.glue.programs import BOOTSTRAP_MODULE, PATH_ROOT
from etl_localcloud.iam import AssumeRefused
from etl_localcloud.runtime_envs import ModuleError, Resolved

__all__ = ["ScriptRun", "Outcome", "error_from_stderr", "memory_limit_bytes", "kill", "LOG_GROUP"]

log = logging.getLogger("etl_localcloud.glue.jobs")

LOG_GROUP = "/aws-glue/python-jobs"
JOB_SESSION_NAME = "GlueJobRunnerSession"  # the role session name Glue gives a job run
GIB = 1024**3
# Arguments the runner sets itself; the same names among the job's arguments are not passed twice.
_RUNNER_ARGUMENTS = ("--JOB_ID", "--JOB_RUN_ID", "--JOB_NAME", "--WORKFLOW_NAME", "--WORKFLOW_RUN_ID")

Outcome = tuple[str, str | None]  # (final JobRunState, ErrorMessage)
Closing = Callable[[], bool]  # whether the daemon is stopping


class JobRun(Protocol):
    """What a run's process reads and writes of its record (:class:`etl_localcloud.glue.jobs.JobRun`)."""

    id: str
    job_name: str
    workflow: tuple[str, str] | None  # (workflow name, workflow run id)
    timeout: int  # minutes
    max_capacity: float
    stop: threading.Event  # set: the run is asked to stop
    proc: subprocess.Popen[bytes] | None
    pid: int | None
    execution_time: int  # seconds


def memory_limit_bytes(max_capacity: float | None) -> int:
    """The memory cap of a Python shell job with ``max_capacity`` DPU.

    =============  ========================================================
    MaxCapacity    address-space cap (``RLIMIT_DATA``) of the script process
    =============  ========================================================
    0.0625         1 GiB (what a 1/16 DPU Python shell job gets)
    1.0            16 GiB
    other          16 GiB x MaxCapacity
    =============  ========================================================
    """
    cap = float(max_capacity or 0.0625)
    if cap <= 0.0625:
        return 1 * GIB
    return int(16 * GIB * cap)


def error_from_stderr(stderr: str, returncode: int) -> str:
    """The script's real error: the exception line of the last traceback in ``stderr``.

    Falls back to the last non-empty line, then to the exit code.
    """
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    tb = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    if tb:
        for ln in lines[tb[-1] + 1:]:
            if not ln[:1].isspace():
                return ln
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"Command failed with exit code {returncode} (killed by {name})"
    if lines:
        return lines[-1][-2000:]
    return f"Command failed with exit code {returncode}"


def kill(run: JobRun) -> None:
    """Kill the script of ``run`` and anything it spawned (its process group)."""
    proc = run.proc
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()


def with_path(env: dict[str, str], paths: list[str]) -> dict[str, str]:
    """``env`` with ``paths`` put before its ``PYTHONPATH``."""
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return out


class _CannotStart(Exception):
    """The run ends FAILED before its script starts (the message says why)."""


@dataclass
class ScriptRun:
    """The execution of one run's script: prepare its folder, run it, read its end.

    ``minute`` is how many seconds a timeout minute lasts. The script runs on the job's pinned runtime
    (:meth:`etl_localcloud.runtime_envs.RuntimeTable.for_glue`; the run waits while it is first built), whose
    banner opens the run's output log.
    """

    ctx: CloudContext
    run: JobRun
    job: dict[str, Any]
    minute: float
    session: Any = None  # the job role's session (set when the run starts)

    def execute(self, arguments: dict[str, str], root: Path, closing: Closing) -> Outcome:
        """Run the script with the job's default arguments, ``arguments`` and the non-overridable ones."""
        command = self.job.get("Command") or {}
        kind = command.get("Name") or "glueetl"
        if kind != "pythonshell":
            return "FAILED", (f"The local cloud runs Python shell jobs only; job {self.run.job_name} has "
                              f"Command.Name={kind!r} (Spark/streaming/Ray jobs need AWS Glue)")
        args: dict[str, str] = dict(self.job.get("DefaultArguments") or {})
        args.update(arguments)
        args.update(self.job.get("NonOverridableArguments") or {})
        try:
            runtime = self.ctx.runtimes.for_glue(command.get("PythonVersion"),
                                                 stop=lambda: self.run.stop.is_set() or closing())
        except InterruptedError:
            return "STOPPED", None
        workdir = Path(tempfile.mkdtemp(prefix=f"{self.run.id[:20]}-", dir=root))
        try:
            try:
                self.session = self._assume()
                script, paths = self._prepare(command.get("ScriptLocation") or "", args, workdir, runtime)
            except _CannotStart as refused:
                self._logs(runtime, "", str(refused))
                return "FAILED", str(refused)
            return self._spawn(runtime, self.argv(script, args), paths, workdir, closing)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _assume(self) -> Any:
        """The job role's session the run executes with (Glue assumes the job's role)."""
        try:
            return role_session(self.ctx, str(self.job.get("Role") or ""), f"job/{self.run.job_name}",
                                JOB_SESSION_NAME)
        except AssumeRefused as exc:
            raise _CannotStart(str(exc)) from None

    def _prepare(self, script_uri: str, args: dict[str, str], workdir: Path,
                 runtime: Resolved) -> tuple[Path, list[str]]:
        """The downloaded script and the job's path; :class:`_CannotStart` says why there are none."""
        try:
            script = self._download(script_uri, workdir / "script")
        except Exception as exc:
            raise _CannotStart(f"Failed to download the script {script_uri}: {exc}") from None
        paths: list[str] = []
        for uri in filter(None, (u.strip() for u in args.get("--extra-py-files", "").split(","))):
            try:
                f = self._download(uri, workdir / "extra")
            except Exception as exc:
                raise _CannotStart(f"Failed to download --extra-py-files entry {uri}: {exc}") from None
            # .py files are importable from their folder; .zip/.whl go on sys.path themselves.
            paths.append(str(f.parent) if f.suffix == ".py" else str(f))
        try:  # installed as Glue installs them (pip, pinned), after the job's own files on the path
            overlay = runtime.overlay(args.get("--additional-python-modules", ""),
                                      lambda line: log.info("job run %s: %s", self.run.id, line))
        except ModuleError as exc:
            raise _CannotStart(str(exc)) from None
        if overlay is not None:
            paths.append(str(overlay))
        paths.append(str(PATH_ROOT))  # last: a real awsglue on the path wins over the shim there
        return script, paths

    def _download(self, uri: str, folder: Path) -> Path:
        bucket, key = split_s3(uri)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (key.rsplit("/", 1)[-1] or "script.py")
        # Glue reads the script and --extra-py-files with the job's role
        s3 = self.ctx.session_client("s3", self.session, direct=True)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        target.write_bytes(body)
        return target

    def argv(self, script: Path, args: dict[str, str]) -> list[str]:
        """The script's command line as Glue gives it: its own arguments first, then the job's."""
        run = self.run
        job_id = "j_" + hashlib.sha256(run.job_name.encode()).hexdigest()
        argv = [str(script), "--JOB_ID", job_id, "--JOB_RUN_ID", run.id, "--JOB_NAME", run.job_name]
        if run.workflow:
            argv += ["--WORKFLOW_NAME", run.workflow[0], "--WORKFLOW_RUN_ID", run.workflow[1]]
        for k, v in args.items():
            if k not in _RUNNER_ARGUMENTS:
                argv += [k if k.startswith("--") else f"--{k}", str(v)]
        return argv

    def _spawn(self, runtime: Resolved, argv: list[str], paths: list[str], workdir: Path,
               closing: Closing) -> Outcome:
        run = self.run
        env = with_path(self.ctx.child_env(self.session), paths)
        env.update({"GLUE_JOB_NAME": run.job_name, "GLUE_JOB_RUN_ID": run.id})
        out_path, err_path = workdir / "stdout", workdir / "stderr"
        limit = memory_limit_bytes(run.max_capacity)
        began = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([runtime.python, "-m", BOOTSTRAP_MODULE, str(limit), *argv], cwd=str(workdir),
                                    env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            run.proc = proc
            run.pid = proc.pid
            timed_out = self._wait(proc, began + run.timeout * self.minute, closing)
        run.execution_time = round(time.monotonic() - began)
        stderr = err_path.read_text(errors="replace")
        self._logs(runtime, out_path.read_text(errors="replace"), stderr)
        if run.stop.is_set():
            return "STOPPED", None
        if timed_out:
            return "TIMEOUT", f"Job run timed out after {run.timeout} minutes"
        if proc.returncode == 0:
            return "SUCCEEDED", None
        return "FAILED", error_from_stderr(stderr, proc.returncode)

    def _wait(self, proc: subprocess.Popen[bytes], deadline: float, closing: Closing) -> bool:
        """Wait for the script's end, killing it on a stop, a close or the deadline; True when timed out."""
        timed_out = False
        while True:
            try:
                proc.wait(timeout=0.1)
                return timed_out
            except subprocess.TimeoutExpired:
                if self.run.stop.is_set() or closing():
                    kill(self.run)
                elif time.monotonic() > deadline:
                    timed_out = True
                    kill(self.run)

    def _logs(self, runtime: Resolved, stdout: str, stderr: str) -> None:
        """The run's output (opened by what it ran on) and error logs."""
        try:
            self.ctx.put_logs(f"{LOG_GROUP}/output", self.run.id, [runtime.banner(), *stdout.splitlines()])
            self.ctx.put_logs(f"{LOG_GROUP}/error", self.run.id, stderr.splitlines() or [""])
        except Exception:
            log.exception("could not write the logs of job run %s", self.run.id)

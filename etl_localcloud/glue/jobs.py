"""Glue job runs, executed as a Python shell job executes them.

A run downloads the job's ``Command.ScriptLocation`` and its ``--extra-py-files`` from the local S3
and runs ``python script.py --JOB_ID .. --JOB_RUN_ID .. --JOB_NAME .. --key value ...`` in a
subprocess with the local endpoint in its environment, a working directory of its own, the run's
timeout and a memory cap derived from the job's capacity:

=============  ========================================================
MaxCapacity    address-space cap (``RLIMIT_DATA``) of the script process
=============  ========================================================
0.0625         1 GiB (what a 1/16 DPU Python shell job gets)
1.0            16 GiB
other          16 GiB x MaxCapacity
=============  ========================================================

At most ``max_parallel`` scripts run at once (the machine has few cores); the others wait in
``STARTING``, as runs waiting for capacity do on AWS. Spark (``glueetl``), streaming and Ray jobs
end FAILED with a message saying so: the local cloud runs Python shell jobs only.

``ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS`` (in the daemon's environment; default 60) sets how long a
timeout "minute" lasts, so that tests can see a TIMEOUT without waiting a real minute.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.common import (
    Tracked,
    moto_error_code,
    new_job_run_id,
    not_found,
    page,
    split_s3,
    utcnow,
)

__all__ = ["JobRun", "JobRunner", "error_from_stderr", "memory_limit_bytes", "BOOTSTRAP"]

log = logging.getLogger("etl_localcloud.glue.jobs")

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR", "EXPIRED"})
LOG_GROUP = "/aws-glue/python-jobs"
GIB = 1024**3

# Runs as the job's process: caps memory, ties the job's life to the daemon, then runs the script
# as __main__ with the argv Glue gives it.
BOOTSTRAP = r"""
import ctypes, resource, runpy, signal, sys
limit = int(sys.argv[1])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
try:  # die with the daemon (Linux): no orphaned job when it is killed
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
except Exception:
    pass
sys.argv = sys.argv[2:]
sys.path.insert(0, __import__("os").path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# A minimal stand-in for ``awsglue.utils.getResolvedOptions``, which Glue's Python shell provides.
AWSGLUE_SHIM = r'''
import argparse


class GlueArgumentError(Exception):
    pass


def getResolvedOptions(args, options):
    """Resolve ``--NAME value`` job arguments, as awsglue.utils does."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in ("JOB_ID", "JOB_RUN_ID", "JOB_NAME", "SECURITY_CONFIGURATION", "encryption-type",
                 "enable-glue-datacatalog", "RedshiftTempDir", "TempDir"):
        parser.add_argument("--" + name, required=False)
    for name in options:
        if name not in ("JOB_ID", "JOB_RUN_ID", "JOB_NAME"):
            parser.add_argument("--" + name, required=True)
    known, _ = parser.parse_known_args(args[1:])
    out = {k: v for k, v in vars(known).items() if v is not None}
    missing = [o for o in options if o not in out]
    if missing:
        raise GlueArgumentError("the following arguments are required: " + ", ".join("--" + m for m in missing))
    return out
'''


def memory_limit_bytes(max_capacity: float | None) -> int:
    """The memory cap of a Python shell job with ``max_capacity`` DPU (see the module docstring)."""
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


@dataclass
class JobRun(Tracked):
    """One attempt of a job run: what ``GetJobRun`` shows."""

    id: str
    job_name: str
    arguments: dict[str, str]
    attempt: int = 0
    state: str = "STARTING"
    timeout: int = 2880
    max_capacity: float = 0.0625
    glue_version: str | None = None
    worker_type: str | None = None
    number_of_workers: int | None = None
    trigger_name: str | None = None
    previous_run_id: str | None = None
    workflow: tuple[str, str] | None = None  # (workflow name, workflow run id)
    error_message: str | None = None
    started_on: Any = field(default_factory=utcnow)
    last_modified: Any = field(default_factory=utcnow)
    completed_on: Any = None
    execution_time: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None  # of the script's process (in a snapshot: to stop it if the daemon died)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("proc", None)
        state.pop("stop", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, stop=threading.Event(), proc=None)

    def set_state(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.last_modified = utcnow()
        if error is not None:
            self.error_message = error
        if state in TERMINAL:
            self.completed_on = self.last_modified

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "Id": self.id, "Attempt": self.attempt, "JobName": self.job_name, "JobMode": "SCRIPT",
            "StartedOn": self.started_on, "LastModifiedOn": self.last_modified, "JobRunState": self.state,
            "Arguments": dict(self.arguments), "PredecessorRuns": [], "AllocatedCapacity": 0,
            "ExecutionTime": self.execution_time, "Timeout": self.timeout, "MaxCapacity": self.max_capacity,
            "LogGroupName": LOG_GROUP, "ExecutionClass": "STANDARD",
            "DPUSeconds": round(self.execution_time * self.max_capacity, 4),
        }
        for key, val in (("CompletedOn", self.completed_on), ("ErrorMessage", self.error_message),
                         ("TriggerName", self.trigger_name), ("PreviousRunId", self.previous_run_id),
                         ("GlueVersion", self.glue_version), ("WorkerType", self.worker_type),
                         ("NumberOfWorkers", self.number_of_workers)):
            if val is not None:
                d[key] = val
        return d


class JobRunner:
    """Starts, runs, stops and reports Glue job runs.

    ``on_final`` callbacks get every run that reached its final state (after the last retry).
    """

    def __init__(self, ctx: CloudContext, max_parallel: int = 2) -> None:
        self.ctx = ctx
        self.root = ctx.state_dir / "glue" / "job-runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._lock = threading.RLock()
        self.runs: dict[str, list[JobRun]] = {}  # job name -> runs, oldest first
        self.by_id: dict[str, JobRun] = {}
        self.on_final: list[Callable[[JobRun], None]] = []
        self._module_cache: dict[str, str | None] = {}
        self._closing = False
        self.minute = float(os.environ.get("ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS", "60"))

    # -- API handlers -----------------------------------------------------------------------
    def op_start_job_run(self, body: dict[str, Any]) -> dict[str, Any]:
        run = self.start(body.get("JobName", ""), body.get("Arguments") or {}, timeout=body.get("Timeout"),
                         max_capacity=body.get("MaxCapacity"), previous_run_id=body.get("JobRunId"))
        return {"JobRunId": run.id}

    def op_get_job_run(self, body: dict[str, Any]) -> dict[str, Any]:
        self.job_definition(body.get("JobName", ""))
        with self._lock:
            run = self.by_id.get(body.get("RunId", ""))
            if run is None or run.job_name != body.get("JobName"):
                raise not_found(f"Job Run with id {body.get('RunId')} not found")
            return {"JobRun": run.as_dict()}

    def op_get_job_runs(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("JobName", "")
        self.job_definition(name)
        with self._lock:
            items = [r.as_dict() for r in reversed(self.runs.get(name, []))]  # newest first, as Glue
        chunk, nxt = page(items, body, default_max=200)
        out: dict[str, Any] = {"JobRuns": chunk}
        if nxt:
            out["NextToken"] = nxt
        return out

    def op_batch_stop_job_run(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("JobName", "")
        self.job_definition(name)
        ok, errors = [], []
        for rid in body.get("JobRunIds") or []:
            with self._lock:
                run = self.by_id.get(rid)
            if run is None or run.job_name != name:
                errors.append({"JobName": name, "JobRunId": rid, "ErrorDetail": {
                    "ErrorCode": "EntityNotFoundException", "ErrorMessage": f"Job Run with id {rid} not found"}})
            elif not self.stop(run):
                errors.append({"JobName": name, "JobRunId": rid, "ErrorDetail": {
                    "ErrorCode": "InvalidInputException",
                    "ErrorMessage": f"Job Run cannot be stopped in current state: {run.state}"}})
            else:
                ok.append({"JobName": name, "JobRunId": rid})
        return {"SuccessfulSubmissions": ok, "Errors": errors}

    # -- engine -----------------------------------------------------------------------------
    def job_definition(self, name: str) -> dict[str, Any]:
        """The job's record as moto keeps it; ``EntityNotFoundException`` when there is none."""
        glue = self.ctx.moto_client("glue")
        try:
            return dict(glue.get_job(JobName=name)["Job"])
        except Exception as exc:
            if moto_error_code(exc) == "EntityNotFoundException":
                raise not_found(f"Job with name: {name} not found") from None
            raise

    def active_count(self) -> int:
        with self._lock:
            return sum(1 for r in self.by_id.values() if r.state not in TERMINAL)

    def start(self, name: str, arguments: dict[str, str], *, timeout: int | None = None,
              max_capacity: float | None = None, trigger_name: str | None = None,
              workflow: tuple[str, str] | None = None, previous_run_id: str | None = None,
              attempt: int = 0, run_id: str | None = None, on_busy_fail: bool = False,
              on_created: Callable[[JobRun], None] | None = None) -> JobRun:
        """Create a run (STARTING) and execute it in the background.

        Raises
        ------
        ServiceError
            ``EntityNotFoundException`` for an unknown job, ``ConcurrentRunsExceededException`` when the
            job already runs ``ExecutionProperty.MaxConcurrentRuns`` times. With ``on_busy_fail`` (runs
            started by a workflow trigger) the run is recorded FAILED with that reason instead, as Glue
            records it for triggered runs.
        """
        job = self.job_definition(name)
        shown = dict(arguments)
        if workflow:
            # Glue adds these to the arguments of every job run a workflow starts.
            shown.update({"--WORKFLOW_NAME": workflow[0], "--WORKFLOW_RUN_ID": workflow[1]})
        limit = int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns") or 1)
        run = JobRun(
            id=run_id or new_job_run_id(), job_name=name, arguments=shown, attempt=attempt,
            timeout=int(timeout or job.get("Timeout") or 2880),
            max_capacity=float(max_capacity or job.get("MaxCapacity") or 0.0625),
            glue_version=job.get("GlueVersion"), worker_type=job.get("WorkerType"),
            number_of_workers=job.get("NumberOfWorkers"), trigger_name=trigger_name,
            previous_run_id=previous_run_id, workflow=workflow,
        )
        busy = False
        with self._lock:
            running = sum(1 for r in self.runs.get(name, []) if r.state not in TERMINAL)
            if running >= limit and attempt == 0:
                if not on_busy_fail:
                    raise ServiceError("ConcurrentRunsExceededException",
                                       f"Concurrent runs exceeded for {name}: {running} of {limit} running")
                busy = True
                run.set_state("FAILED", f"ConcurrentRunsExceededException: Concurrent runs exceeded for {name}: "
                                        f"{running} of {limit} running")
            self.runs.setdefault(name, []).append(run)
            self.by_id[run.id] = run
        if on_created is not None:
            on_created(run)
        if busy:
            self._emit(run)
            self._final(run)
            return run
        threading.Thread(target=self._execute, args=(run, job, arguments), name=f"glue-job-{name}",
                         daemon=True).start()
        return run

    def stop(self, run: JobRun) -> bool:
        """Ask a run to stop; False when it already ended."""
        with self._lock:
            if run.state in TERMINAL:
                return False
            run.stop.set()
            run.set_state("STOPPING")
        return True

    def close(self) -> None:
        self._closing = True
        with self._lock:
            runs = [r for r in self.by_id.values() if r.state not in TERMINAL]
        for r in runs:
            r.stop.set()
            self._kill(r)

    @staticmethod
    def _kill(run: JobRun) -> None:
        proc = run.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the script and anything it spawned
            except (ProcessLookupError, PermissionError):
                proc.kill()

    def _execute(self, run: JobRun, job: dict[str, Any], arguments: dict[str, str]) -> None:
        state: str = "STOPPED"
        error: str | None = None
        try:
            got_slot = False
            while not run.stop.is_set():
                if self._slots.acquire(timeout=0.2):
                    got_slot = True
                    break
            if got_slot:
                try:
                    with self._lock:
                        stopped = run.stop.is_set()
                        if not stopped:
                            run.set_state("RUNNING")
                    if not stopped:
                        state, error = self._run_script(run, job, arguments)
                finally:
                    self._slots.release()
        except Exception as exc:  # the run ends, the daemon keeps serving
            log.exception("job run %s failed internally", run.id)
            state, error = "ERROR", f"Internal error in the local cloud: {type(exc).__name__}: {exc}"
        with self._lock:
            run.set_state(state, error)
        self._emit(run)
        retries = int(job.get("MaxRetries") or 0)
        if state == "FAILED" and run.attempt < retries and not self._closing:
            root = run.id.split("_attempt_")[0]
            try:
                self.start(run.job_name, arguments, timeout=run.timeout, max_capacity=run.max_capacity,
                           trigger_name=run.trigger_name, workflow=run.workflow, previous_run_id=run.id,
                           attempt=run.attempt + 1, run_id=f"{root}_attempt_{run.attempt + 1}")
                return  # the retry reports the final state
            except ServiceError as err:
                log.error("retry of %s could not start: %s", run.id, err.message)
        self._final(run)

    def _final(self, run: JobRun) -> None:
        for cb in list(self.on_final):
            try:
                cb(run)
            except Exception:
                log.exception("job run listener failed")

    def _run_script(self, run: JobRun, job: dict[str, Any], arguments: dict[str, str]) -> tuple[str, str | None]:
        command = job.get("Command") or {}
        kind = command.get("Name") or "glueetl"
        if kind != "pythonshell":
            return "FAILED", (f"The local cloud runs Python shell jobs only; job {run.job_name} has "
                              f"Command.Name={kind!r} (Spark/streaming/Ray jobs need AWS Glue)")
        script_uri = command.get("ScriptLocation") or ""
        args: dict[str, str] = dict(job.get("DefaultArguments") or {})
        args.update(arguments)
        args.update(job.get("NonOverridableArguments") or {})
        workdir = Path(tempfile.mkdtemp(prefix=f"{run.id[:20]}-", dir=self.root))
        try:
            try:
                script = self._download(script_uri, workdir / "script")
            except Exception as exc:
                return "FAILED", f"Failed to download the script {script_uri}: {exc}"
            paths: list[str] = []
            for uri in filter(None, (u.strip() for u in args.get("--extra-py-files", "").split(","))):
                try:
                    f = self._download(uri, workdir / "extra")
                except Exception as exc:
                    return "FAILED", f"Failed to download --extra-py-files entry {uri}: {exc}"
                # .py files are importable from their folder; .zip/.whl go on sys.path themselves.
                paths.append(str(f.parent) if f.suffix == ".py" else str(f))
            modules = args.get("--additional-python-modules", "")
            if modules:
                problem = self._check_modules(modules)
                if problem:
                    return "FAILED", problem
            shim = workdir / "shim"
            (shim / "awsglue").mkdir(parents=True)
            (shim / "awsglue" / "__init__.py").write_text("")
            (shim / "awsglue" / "utils.py").write_text(AWSGLUE_SHIM)
            paths.append(str(shim))  # last: a real awsglue on the path wins
            return self._spawn(run, job, script, args, paths, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _download(self, uri: str, folder: Path) -> Path:
        bucket, key = split_s3(uri)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (key.rsplit("/", 1)[-1] or "script.py")
        body = self.ctx.moto_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        target.write_bytes(body)
        return target

    def _check_modules(self, spec: str) -> str | None:
        """None when every ``--additional-python-modules`` entry is already installed, else the refusal."""
        with self._lock:
            if spec in self._module_cache:
                return self._module_cache[spec]
        code = (
            "import sys, importlib.metadata as md, re\n"
            "bad = []\n"
            "for req in filter(None, (s.strip() for s in sys.argv[1].split(','))):\n"
            "    m = re.match(r'^([A-Za-z0-9_.\\-\\[\\]]+)\\s*(==|>=)?\\s*([^\\s]*)$', req)\n"
            "    name, op, ver = (m.group(1).split('[')[0], m.group(2), m.group(3)) if m else (req, None, '')\n"
            "    try:\n"
            "        have = md.version(name)\n"
            "    except md.PackageNotFoundError:\n"
            "        bad.append(req + ' (not installed)'); continue\n"
            "    if op == '==' and ver and have != ver:\n"
            "        bad.append(f'{req} (installed: {have})')\n"
            "print('; '.join(bad))\n"
        )
        out = subprocess.run([self.ctx.python, "-c", code, spec], capture_output=True, text=True, timeout=60)
        bad = out.stdout.strip() or (out.stderr.strip()[-500:] if out.returncode else "")
        result = None
        if bad:
            result = ("--additional-python-modules: the local cloud does not install packages (no network); "
                      f"not available in its interpreter: {bad}. Install them in the environment that runs "
                      "the local cloud, or drop them from the job.")
        with self._lock:
            self._module_cache[spec] = result
        return result

    def _spawn(self, run: JobRun, job: dict[str, Any], script: Path, args: dict[str, str], paths: list[str],
               workdir: Path) -> tuple[str, str | None]:
        job_id = "j_" + hashlib.sha256(run.job_name.encode()).hexdigest()
        argv = [str(script), "--JOB_ID", job_id, "--JOB_RUN_ID", run.id, "--JOB_NAME", run.job_name]
        if run.workflow:
            argv += ["--WORKFLOW_NAME", run.workflow[0], "--WORKFLOW_RUN_ID", run.workflow[1]]
        for k, v in args.items():
            if k in ("--JOB_ID", "--JOB_RUN_ID", "--JOB_NAME", "--WORKFLOW_NAME", "--WORKFLOW_RUN_ID"):
                continue
            argv += [k if k.startswith("--") else f"--{k}", str(v)]
        env = self.ctx.child_env()
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.update({"GLUE_JOB_NAME": run.job_name, "GLUE_JOB_RUN_ID": run.id})
        out_path, err_path = workdir / "stdout", workdir / "stderr"
        limit = memory_limit_bytes(run.max_capacity)
        began = time.monotonic()
        deadline = began + run.timeout * self.minute
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([self.ctx.python, "-c", BOOTSTRAP, str(limit), *argv], cwd=str(workdir),
                                    env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            run.proc = proc
            run.pid = proc.pid
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    if run.stop.is_set() or self._closing:
                        self._kill(run)
                    elif time.monotonic() > deadline:
                        timed_out = True
                        self._kill(run)
        run.execution_time = round(time.monotonic() - began)
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        self._logs(run, stdout, stderr)
        if run.stop.is_set():
            return "STOPPED", None
        if timed_out:
            return "TIMEOUT", f"Job run timed out after {run.timeout} minutes"
        if proc.returncode == 0:
            return "SUCCEEDED", None
        return "FAILED", error_from_stderr(stderr, proc.returncode)

    def _logs(self, run: JobRun, stdout: str, stderr: str) -> None:
        try:
            self.ctx.put_logs(f"{LOG_GROUP}/output", run.id, stdout.splitlines() or [""])
            self.ctx.put_logs(f"{LOG_GROUP}/error", run.id, stderr.splitlines() or [""])
        except Exception:
            log.exception("could not write the logs of job run %s", run.id)

    def _emit(self, run: JobRun) -> None:
        """"Glue Job State Change", as Glue puts it on the default bus for terminal states."""
        messages = {
            "SUCCEEDED": ("INFO", "Job run succeeded"),
            "FAILED": ("ERROR", f"JobName:{run.job_name} and JobRunId:{run.id} failed to execute with exception "
                                f"{run.error_message}"),
            "TIMEOUT": ("WARN", "Job run timed out"),
            "STOPPED": ("INFO", "Job run stopped"),
            "ERROR": ("ERROR", f"JobName:{run.job_name} and JobRunId:{run.id} failed to execute with exception "
                               f"{run.error_message}"),
        }
        severity, message = messages.get(run.state, ("INFO", run.state))
        detail = {"jobName": run.job_name, "severity": severity, "state": run.state, "jobRunId": run.id,
                  "message": message}
        try:
            self.ctx.emit_event("aws.glue", "Glue Job State Change", detail)
        except Exception:
            log.exception("could not emit the state change of %s", run.id)


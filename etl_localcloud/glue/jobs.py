"""Glue job runs: the records ``GetJobRun`` shows and the runner that starts, retries and stops them.

A run executes as a Python shell job executes (:mod:`.job_process`). At most ``max_parallel``
scripts run at once (the machine has few cores); the others wait in ``STARTING``, as runs waiting
for capacity do on AWS. Spark (``glueetl``), streaming and Ray jobs end FAILED with a message
saying so: the local cloud runs Python shell jobs only. A run that FAILED is retried up to the
job's ``MaxRetries`` (attempt ids ``<run id>_attempt_<n>``); ``on_final`` listeners get the last
attempt.

``ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS`` (in the daemon's environment; default 60) sets how long a
timeout "minute" lasts, so that tests can see a TIMEOUT without waiting a real minute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.common import RunBook, Tracked, moto_record, new_job_run_id, utcnow
from etl_localcloud.glue.exceptions import ConcurrentRunsExceededException
from etl_localcloud.glue.job_process import (
    LOG_GROUP,
    ScriptRun,
    error_from_stderr,
    kill,
    memory_limit_bytes,
)

__all__ = ["JobRun", "RunRequest", "JobRunner", "TERMINAL", "error_from_stderr", "memory_limit_bytes"]

log = logging.getLogger("etl_localcloud.glue.jobs")

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR", "EXPIRED"})


@dataclass(frozen=True)
class RunRequest:
    """What starts a job run: ``StartJobRun``'s members, a workflow trigger's action, or a retry.

    ``timeout`` and ``max_capacity`` default to the job's; ``workflow`` is (workflow name, run id)
    for a run a workflow starts; ``attempt`` and ``run_id`` are set for retries.
    """

    job_name: str
    arguments: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None
    max_capacity: float | None = None
    trigger_name: str | None = None
    workflow: tuple[str, str] | None = None
    previous_run_id: str | None = None
    attempt: int = 0
    run_id: str | None = None

    def retry_of(self, run: JobRun) -> RunRequest:
        """The request of the next attempt after ``run`` failed."""
        root = run.id.split("_attempt_")[0]
        return dataclasses.replace(self, timeout=run.timeout, max_capacity=run.max_capacity,
                                   previous_run_id=run.id, attempt=run.attempt + 1,
                                   run_id=f"{root}_attempt_{run.attempt + 1}")


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

    @classmethod
    def create(cls, request: RunRequest, job: dict[str, Any]) -> JobRun:
        """A new run (STARTING) of ``job`` for ``request``."""
        shown = dict(request.arguments)
        if request.workflow:
            # Glue adds these to the arguments of every job run a workflow starts.
            shown.update({"--WORKFLOW_NAME": request.workflow[0], "--WORKFLOW_RUN_ID": request.workflow[1]})
        return cls(
            id=request.run_id or new_job_run_id(), job_name=request.job_name, arguments=shown,
            attempt=request.attempt, timeout=int(request.timeout or job.get("Timeout") or 2880),
            max_capacity=float(request.max_capacity or job.get("MaxCapacity") or 0.0625),
            glue_version=job.get("GlueVersion"), worker_type=job.get("WorkerType"),
            number_of_workers=job.get("NumberOfWorkers"), trigger_name=request.trigger_name,
            previous_run_id=request.previous_run_id, workflow=request.workflow,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("proc", None)
        state.pop("stop", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, stop=threading.Event(), proc=None)

    @property
    def owner(self) -> str:
        return self.job_name

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def set_state(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.last_modified = utcnow()
        if error is not None:
            self.error_message = error
        if state in TERMINAL:
            self.completed_on = self.last_modified

    def interrupt(self, reason: str) -> bool:
        """End this run FAILED with ``reason`` if it was in flight when the daemon stopped (True then)."""
        if self.finished:
            return False
        self.stop_orphan()
        self.set_state("FAILED", reason)
        return True

    def stop_orphan(self) -> None:
        """Kill this run's script if the daemon that started it died and left it running."""
        if not self.pid:
            return
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return
        if self.id.encode() in cmdline.split(b"\0"):  # the same run, not a reused pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

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

    def state_change_detail(self) -> dict[str, Any]:
        """The detail of "Glue Job State Change", as Glue puts it on the default bus for terminal states."""
        failure = (f"JobName:{self.job_name} and JobRunId:{self.id} failed to execute with exception "
                   f"{self.error_message}")
        messages = {"SUCCEEDED": ("INFO", "Job run succeeded"), "FAILED": ("ERROR", failure),
                    "TIMEOUT": ("WARN", "Job run timed out"), "STOPPED": ("INFO", "Job run stopped"),
                    "ERROR": ("ERROR", failure)}
        severity, message = messages.get(self.state, ("INFO", self.state))
        return {"jobName": self.job_name, "severity": severity, "state": self.state, "jobRunId": self.id,
                "message": message}


class JobRunner:
    """Starts, runs, stops and reports Glue job runs (the job definitions stay moto's).

    ``on_final`` callbacks get every run that reached its final state (after the last retry).
    """

    def __init__(self, ctx: CloudContext, max_parallel: int = 2) -> None:
        self.ctx = ctx
        self.root = ctx.state_dir / "glue" / "job-runs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._slots = threading.BoundedSemaphore(max_parallel)
        self.book: RunBook[JobRun] = RunBook(self.job_definition, "Job Run with id {run_id} not found")
        self._lock = self.book.lock
        self.on_final: list[Callable[[JobRun], None]] = []
        self._closing = False
        self.minute = float(os.environ.get("ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS", "60"))

    # -- records ------------------------------------------------------------------------------
    def job_definition(self, name: str) -> dict[str, Any]:
        """The job's record as moto keeps it; ``EntityNotFoundException`` when there is none."""
        return moto_record(lambda: self.ctx.moto_client("glue").get_job(JobName=name), "Job",
                           f"Job with name: {name} not found")

    def runs_of_workflow(self, key: tuple[str, str], job_name: str | None = None) -> list[JobRun]:
        """The runs the workflow run ``key`` started (of job ``job_name`` only, when given)."""
        return [r for r in self.book.all() if r.workflow == key and (job_name is None or r.job_name == job_name)]

    def active_count(self) -> int:
        return len(self.book.active())

    # -- behaviour ----------------------------------------------------------------------------
    def start(self, request: RunRequest, *, on_busy_fail: bool = False,
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
        job = self.job_definition(request.job_name)
        run = JobRun.create(request, job)
        busy = self._admit(run, job, on_busy_fail)
        if on_created is not None:
            on_created(run)
        if busy:
            self.announce(run)
            self._final(run)
            return run
        threading.Thread(target=self._execute, args=(run, job, request), name=f"glue-job-{request.job_name}",
                         daemon=True).start()
        return run

    def _admit(self, run: JobRun, job: dict[str, Any], on_busy_fail: bool) -> bool:
        """Record ``run``; True when it is recorded FAILED because the job is at its concurrency limit."""
        name = run.job_name
        limit = int((job.get("ExecutionProperty") or {}).get("MaxConcurrentRuns") or 1)
        busy = False
        with self._lock:
            running = sum(1 for r in self.book.of(name) if not r.finished)
            if running >= limit and run.attempt == 0:
                error = ConcurrentRunsExceededException(
                    f"Concurrent runs exceeded for {name}: {running} of {limit} running")
                if not on_busy_fail:
                    raise error
                busy = True
                run.set_state("FAILED", f"{error.code}: {error.message}")
            self.book.add(run)
        return busy

    def stop(self, run: JobRun) -> bool:
        """Ask a run to stop; False when it already ended."""
        with self._lock:
            if run.finished:
                return False
            run.stop.set()
            run.set_state("STOPPING")
        return True

    def close(self) -> None:
        self._closing = True
        for r in self.book.active():
            r.stop.set()
            kill(r)

    def _execute(self, run: JobRun, job: dict[str, Any], request: RunRequest) -> None:
        try:
            state, error = self._run_in_slot(run, job, request.arguments)
        except Exception as exc:  # the run ends, the daemon keeps serving
            log.exception("job run %s failed internally", run.id)
            state, error = "ERROR", f"Internal error in the local cloud: {type(exc).__name__}: {exc}"
        with self._lock:
            run.set_state(state, error)
        self.announce(run)
        retries = int(job.get("MaxRetries") or 0)
        if state == "FAILED" and run.attempt < retries and not self._closing:
            try:
                self.start(request.retry_of(run))
                return  # the retry reports the final state
            except ServiceError as err:
                log.error("retry of %s could not start: %s", run.id, err.message)
        self._final(run)

    def _run_in_slot(self, run: JobRun, job: dict[str, Any], arguments: dict[str, str]) -> tuple[str, str | None]:
        """Wait for a free slot (or a stop), then run the script; STOPPED when stopped first."""
        while not run.stop.is_set():
            if self._slots.acquire(timeout=0.2):
                break
        else:
            return "STOPPED", None
        try:
            with self._lock:
                if run.stop.is_set():
                    return "STOPPED", None
                run.set_state("RUNNING")
            script = ScriptRun(self.ctx, run, job, self.minute)
            return script.execute(arguments, self.root, lambda: self._closing)
        finally:
            self._slots.release()

    def _final(self, run: JobRun) -> None:
        for cb in list(self.on_final):
            try:
                cb(run)
            except Exception:
                log.exception("job run listener failed")

    def announce(self, run: JobRun) -> None:
        """Emit "Glue Job State Change" for ``run``'s state on the default bus."""
        try:
            self.ctx.emit_event("aws.glue", "Glue Job State Change", run.state_change_detail())
        except Exception:
            log.exception("could not emit the state change of %s", run.id)

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, list[JobRun]]:
        return self.book.snapshot()

    def restore(self, saved: dict[str, list[JobRun]], reason: str) -> list[JobRun]:
        """Take back saved runs; those in flight end FAILED with ``reason`` and are returned."""
        return self.book.restore(saved, reason)

"""Provider: AWS Glue execution (target prefix ``AWSGlue``).

moto keeps Glue's records (catalog, crawlers, jobs, workflows, triggers) but runs nothing. This
provider intercepts the operations that run things or report on runs and does them for real:

* :mod:`.crawler` -- crawls S3 targets into catalog tables (:mod:`.schema`, :mod:`.catalog`);
* :mod:`.jobs` -- runs Python shell job scripts from the local S3;
* :mod:`.workflow` -- executes workflow trigger graphs over the two.

Everything else (Create*/Update*/Delete*, the catalog's own API) goes to moto unchanged. Run
records are part of the local cloud's snapshot (:mod:`etl_localcloud.persistence`): after a
restart the history is back, and runs that were in flight end FAILED (workflow runs ERROR) with
the message ``interrupted: the local cloud stopped``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider
from etl_localcloud.glue.common import state_version, utcnow
from etl_localcloud.glue.crawler import Crawl, CrawlerRunner
from etl_localcloud.glue.jobs import TERMINAL, JobRun, JobRunner
from etl_localcloud.glue.updates import DefinitionUpdates
from etl_localcloud.glue.workflow import WorkflowEngine

__all__ = ["GlueProvider", "build"]

log = logging.getLogger("etl_localcloud.glue")


class GlueProvider(Provider):
    """Glue crawls, job runs and workflow runs on the local cloud."""

    def __init__(self, ctx: CloudContext, max_parallel_jobs: int | None = None) -> None:
        super().__init__(name="glue", target_prefix="AWSGlue")
        # Job scripts are CPU-bound pandas/pyarrow work: no more at once than there are cores (min 2).
        parallel = max_parallel_jobs or int(os.environ.get("ETL_KIT_GLUE_MAX_PARALLEL_JOBS", "0")) or max(
            2, os.cpu_count() or 2)
        self.jobs = JobRunner(ctx, max_parallel=parallel)
        self.crawlers = CrawlerRunner(ctx)
        self.workflows = WorkflowEngine(ctx, self.jobs, self.crawlers)
        self.updates = DefinitionUpdates(ctx, self.workflows.op_create_trigger)
        self.operations = {
            "UpdateJob": self.updates.op_update_job,
            "UpdateCrawler": self.updates.op_update_crawler,
            "UpdateTrigger": self.updates.op_update_trigger,
            "UpdateConnection": self.updates.op_update_connection,
            "DeleteConnection": self.updates.op_delete_connection,
            "GetConnection": self.updates.op_get_connection,
            "StartJobRun": self.jobs.op_start_job_run,
            "GetJobRun": self.jobs.op_get_job_run,
            "GetJobRuns": self.jobs.op_get_job_runs,
            "BatchStopJobRun": self.jobs.op_batch_stop_job_run,
            "StartCrawler": self.crawlers.op_start_crawler,
            "StopCrawler": self.crawlers.op_stop_crawler,
            "GetCrawler": self.crawlers.op_get_crawler,
            "GetCrawlers": self.crawlers.op_get_crawlers,
            "BatchGetCrawlers": self.crawlers.op_batch_get_crawlers,
            "GetCrawlerMetrics": self.crawlers.op_get_crawler_metrics,
            "ListCrawls": self.crawlers.op_list_crawls,
            "CreateTrigger": self.workflows.op_create_trigger,
            "StartWorkflowRun": self.workflows.op_start_workflow_run,
            "StopWorkflowRun": self.workflows.op_stop_workflow_run,
            "GetWorkflow": self.workflows.op_get_workflow,
            "BatchGetWorkflows": self.workflows.op_batch_get_workflows,
            "GetWorkflowRun": self.workflows.op_get_workflow_run,
            "GetWorkflowRuns": self.workflows.op_get_workflow_runs,
            "GetWorkflowRunProperties": self.workflows.op_get_workflow_run_properties,
            "PutWorkflowRunProperties": self.workflows.op_put_workflow_run_properties,
        }
        self.max_parallel_jobs = parallel

    def health(self) -> dict[str, Any]:
        return {"ok": True, "running_workflow_runs": self.workflows.active_count(),
                "running_job_runs": self.jobs.active_count(), "running_crawls": self.crawlers.active_count(),
                "max_parallel_jobs": self.max_parallel_jobs}

    def close(self) -> None:
        self.jobs.close()
        self.crawlers.close()

    # -- persistence (see etl_localcloud.persistence) ------------------------------------------
    def state_version(self) -> int:
        return state_version()

    def snapshot_state(self) -> dict[str, Any]:
        """The run history (job runs, crawls, workflow runs) as picklable records."""
        with self.jobs._lock:
            jobs = {name: list(runs) for name, runs in self.jobs.runs.items()}
        with self.crawlers._lock:
            crawls = {name: list(c) for name, c in self.crawlers.crawls.items()}
        with self.workflows._lock:
            workflows = {name: list(runs) for name, runs in self.workflows.runs.items()}
        return {"job_runs": jobs, "crawls": crawls, "workflow_runs": workflows}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take back the history; what was in flight when the daemon stopped ends as interrupted."""
        from etl_localcloud.persistence import INTERRUPTED

        self._interrupted: list[JobRun | Crawl] = []
        with self.jobs._lock:
            for name, runs in state.get("job_runs", {}).items():
                for run in runs:
                    if run.state not in TERMINAL:
                        _stop_orphan(run)
                        run.set_state("FAILED", INTERRUPTED)
                        self._interrupted.append(run)
                    self.jobs.by_id[run.id] = run
                self.jobs.runs[name] = list(runs)
        with self.crawlers._lock:
            for name, crawls in state.get("crawls", {}).items():
                for crawl in crawls:
                    if not crawl.finished:
                        crawl.state, crawl.error, crawl.end = "FAILED", INTERRUPTED, utcnow()
                        self._interrupted.append(crawl)
                self.crawlers.crawls[name] = list(crawls)
        with self.workflows._lock:
            for name, runs in state.get("workflow_runs", {}).items():
                for wr in runs:
                    if wr.status in ("RUNNING", "STOPPING"):
                        wr.actions = {k: (v or "FAILED") for k, v in wr.actions.items()}
                        wr.status, wr.error_message, wr.completed_on = "ERROR", INTERRUPTED, utcnow()
                        wr.starting = 0
                    self.workflows.by_id[wr.id] = wr
                self.workflows.runs[name] = list(runs)

    def start(self) -> None:
        """Announce the runs a restart interrupted, as Glue announces failed runs (rules -> SNS)."""
        interrupted = getattr(self, "_interrupted", [])
        if interrupted:
            threading.Thread(target=self._announce, args=(interrupted,), name="glue-interrupted",
                             daemon=True).start()

    def _announce(self, interrupted: list[JobRun | Crawl]) -> None:
        for item in interrupted:
            try:
                if isinstance(item, JobRun):
                    self.jobs._emit(item)
                else:
                    self.crawlers._emit(item, "Failed")
            except Exception:
                log.exception("could not announce an interrupted run")


def _stop_orphan(run: JobRun) -> None:
    """Kill the script of ``run`` if the daemon that started it died and left it running."""
    if not run.pid:
        return
    try:
        cmdline = Path(f"/proc/{run.pid}/cmdline").read_bytes()
    except OSError:
        return
    if run.id.encode() in cmdline.split(b"\0"):  # the same run, not a reused pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid, signal.SIGKILL)


def build(ctx: CloudContext) -> list[Provider]:
    """Factory used by the daemon."""
    return [GlueProvider(ctx)]

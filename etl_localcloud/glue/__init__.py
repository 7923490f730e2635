"""Provider: AWS Glue execution (target prefix ``AWSGlue``).

moto keeps Glue's records (catalog, crawlers, jobs, workflows, triggers) but runs nothing. This
provider intercepts the operations that run things or report on runs and does them for real:

* :mod:`.crawler` -- crawls S3 targets into catalog tables (:mod:`.schema`, :mod:`.catalog`);
* :mod:`.jobs` -- runs Python shell job scripts from the local S3;
* :mod:`.workflow` -- executes workflow trigger graphs over the two;
* :mod:`.updates` -- definition operations moto lacks, on moto's records.

In moto's shape: those modules are the models (records, state, behaviour), :mod:`.responses` the
thin handlers, :mod:`.exceptions` the errors named after Glue's codes. The programs a job's
process runs are real modules in :mod:`.programs`.

Everything else (Create*/Update*/Delete*, the catalog's own API) goes to moto unchanged. Run
records are part of the local cloud's snapshot (:mod:`etl_localcloud.persistence`): after a
restart the history is back, and runs that were in flight end FAILED (workflow runs ERROR) with
the message ``interrupted: the local cloud stopped``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider
from etl_localcloud.glue.common import state_version
from etl_localcloud.glue.crawler import Crawl, CrawlerRunner
from etl_localcloud.glue.jobs import JobRun, JobRunner
from etl_localcloud.glue.responses import GlueResponses
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
        self.updates = DefinitionUpdates(ctx)
        self.operations = GlueResponses(self.jobs, self.crawlers, self.workflows, self.updates).operations()
        self.max_parallel_jobs = parallel
        self._interrupted: list[JobRun | Crawl] = []

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
        return {"job_runs": self.jobs.snapshot(), "crawls": self.crawlers.snapshot(),
                "workflow_runs": self.workflows.snapshot()}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take back the history; what was in flight when the daemon stopped ends as interrupted."""
        from etl_localcloud.persistence import INTERRUPTED

        self._interrupted = [*self.jobs.restore(state.get("job_runs", {}), INTERRUPTED),
                             *self.crawlers.restore(state.get("crawls", {}), INTERRUPTED)]
        self.workflows.restore(state.get("workflow_runs", {}), INTERRUPTED)

    def start(self) -> None:
        """Announce the runs a restart interrupted, as Glue announces failed runs (rules -> SNS)."""
        if self._interrupted:
            threading.Thread(target=self._announce, args=(self._interrupted,), name="glue-interrupted",
                             daemon=True).start()

    def _announce(self, interrupted: list[JobRun | Crawl]) -> None:
        for item in interrupted:
            try:
                if isinstance(item, JobRun):
                    self.jobs.announce(item)
                else:
                    self.crawlers.announce(item, "Failed")
            except Exception:
                log.exception("could not announce an interrupted run")


def build(ctx: CloudContext) -> list[Provider]:
    """Factory used by the daemon."""
    return [GlueProvider(ctx)]

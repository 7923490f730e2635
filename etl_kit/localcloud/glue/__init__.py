"""Provider: AWS Glue execution (target prefix ``AWSGlue``).

moto keeps Glue's records (catalog, crawlers, jobs, workflows, triggers) but runs nothing. This
provider intercepts the operations that run things or report on runs and does them for real:

* :mod:`.crawler` -- crawls S3 targets into catalog tables (:mod:`.schema`, :mod:`.catalog`);
* :mod:`.jobs` -- runs Python shell job scripts from the local S3;
* :mod:`.workflow` -- executes workflow trigger graphs over the two.

Everything else (Create*/Update*/Delete*, the catalog's own API) goes to moto unchanged. Run
records live in memory for the daemon's lifetime, like moto's own state.
"""

from __future__ import annotations

import os
from typing import Any

from etl_kit.localcloud.context import CloudContext
from etl_kit.localcloud.dispatcher import Provider
from etl_kit.localcloud.glue.crawler import CrawlerRunner
from etl_kit.localcloud.glue.jobs import JobRunner
from etl_kit.localcloud.glue.updates import DefinitionUpdates
from etl_kit.localcloud.glue.workflow import WorkflowEngine

__all__ = ["GlueProvider", "build"]


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


def build(ctx: CloudContext) -> list[Provider]:
    """Factory used by the daemon."""
    return [GlueProvider(ctx)]

"""The Glue provider's handlers: each reads its request, calls the model, shapes the answer.

One method per AWS operation (``StartJobRun`` -> :meth:`GlueResponses.start_job_run`); the models
(:mod:`.jobs`, :mod:`.crawler`, :mod:`.workflow`, :mod:`.updates`) hold the state and the behaviour,
:mod:`.exceptions` the errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from etl_localcloud.core.paging import GLUE
from etl_localcloud.glue.common import batch_get
from etl_localcloud.glue.crawler import CrawlerRunner
from etl_localcloud.glue.exceptions import EntityNotFoundException, InvalidInputException
from etl_localcloud.glue.jobs import JobRunner, RunRequest
from etl_localcloud.glue.updates import DefinitionUpdates
from etl_localcloud.glue.workflow import WorkflowEngine

__all__ = ["GlueResponses", "OPERATIONS"]

Body = dict[str, Any]

# The operations the provider serves (the rest go to moto); the handler of each is its snake_case name.
OPERATIONS = (
    "UpdateJob", "UpdateCrawler", "UpdateTrigger", "UpdateConnection", "DeleteConnection", "GetConnection",
    "CreateTrigger", "CreateCrawler",
    "StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun",
    "StartCrawler", "StopCrawler", "GetCrawler", "GetCrawlers", "BatchGetCrawlers", "GetCrawlerMetrics",
    "ListCrawls",
    "StartWorkflowRun", "StopWorkflowRun", "GetWorkflow", "BatchGetWorkflows", "GetWorkflowRun",
    "GetWorkflowRuns", "GetWorkflowRunProperties", "PutWorkflowRunProperties",
)


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


class GlueResponses:
    """The handlers of :data:`OPERATIONS` over the provider's models."""

    def __init__(self, jobs: JobRunner, crawlers: CrawlerRunner, workflows: WorkflowEngine,
                 updates: DefinitionUpdates) -> None:
        self.jobs = jobs
        self.crawlers = crawlers
        self.workflows = workflows
        self.updates = updates

    def operations(self) -> dict[str, Callable[[Body], Body]]:
        """Operation name -> handler, for the dispatcher."""
        return {op: getattr(self, _snake(op)) for op in OPERATIONS}

    # -- definitions --------------------------------------------------------------------------
    def update_job(self, body: Body) -> Body:
        name = body.get("JobName", "")
        self.updates.update_job(name, dict(body.get("JobUpdate") or {}))
        return {"JobName": name}

    def update_crawler(self, body: Body) -> Body:
        self.updates.update_crawler(body.get("Name", ""), {k: v for k, v in body.items() if k != "Name"})
        return {}

    def update_trigger(self, body: Body) -> Body:
        return {"Trigger": self.updates.update_trigger(body.get("Name", ""), dict(body.get("TriggerUpdate") or {}))}

    def update_connection(self, body: Body) -> Body:
        self.updates.update_connection(body.get("Name", ""), dict(body.get("ConnectionInput") or {}))
        return {}

    def delete_connection(self, body: Body) -> Body:
        self.updates.delete_connection(body.get("ConnectionName", ""))
        return {}

    def get_connection(self, body: Body) -> Body:
        return self.updates.get_connection(body)

    def create_trigger(self, body: Body) -> Body:
        return self.updates.create_trigger(body)

    def create_crawler(self, body: Body) -> Body:
        self.updates.create_crawler(dict(body))
        return {}

    # -- job runs -----------------------------------------------------------------------------
    def start_job_run(self, body: Body) -> Body:
        request = RunRequest(body.get("JobName", ""), body.get("Arguments") or {}, timeout=body.get("Timeout"),
                             max_capacity=body.get("MaxCapacity"), previous_run_id=body.get("JobRunId"))
        return {"JobRunId": self.jobs.start(request).id}

    def get_job_run(self, body: Body) -> Body:
        return {"JobRun": self.jobs.book.find(body.get("JobName", ""), body.get("RunId", "")).as_dict()}

    def get_job_runs(self, body: Body) -> Body:
        runs = [r.as_dict() for r in self.jobs.book.newest_first(body.get("JobName", ""))]
        return GLUE.response(runs, body, "JobRuns", default_size=200)

    def batch_stop_job_run(self, body: Body) -> Body:
        name = body.get("JobName", "")
        self.jobs.job_definition(name)
        ok, errors = [], []
        for rid in body.get("JobRunIds") or []:
            try:
                run = self.jobs.book.find(name, rid)
                if not self.jobs.stop(run):
                    raise InvalidInputException(f"Job Run cannot be stopped in current state: {run.state}")
            except (EntityNotFoundException, InvalidInputException) as err:
                errors.append({"JobName": name, "JobRunId": rid,
                               "ErrorDetail": {"ErrorCode": err.code, "ErrorMessage": err.message}})
            else:
                ok.append({"JobName": name, "JobRunId": rid})
        return {"SuccessfulSubmissions": ok, "Errors": errors}

    # -- crawlers -----------------------------------------------------------------------------
    def start_crawler(self, body: Body) -> Body:
        self.crawlers.start(body.get("Name", ""))
        return {}

    def stop_crawler(self, body: Body) -> Body:
        self.crawlers.stop(body.get("Name", ""))
        return {}

    def get_crawler(self, body: Body) -> Body:
        return {"Crawler": self.crawlers.get_crawler(body.get("Name", ""))}

    def get_crawlers(self, body: Body) -> Body:
        return GLUE.response(self.crawlers.all_crawlers(), body, "Crawlers")

    def batch_get_crawlers(self, body: Body) -> Body:
        found, missing = batch_get(body.get("CrawlerNames") or [], self.crawlers.get_crawler)
        return {"Crawlers": found, "CrawlersNotFound": missing}

    def get_crawler_metrics(self, body: Body) -> Body:
        return {"CrawlerMetricsList": self.crawlers.metrics(body.get("CrawlerNameList") or [])}

    def list_crawls(self, body: Body) -> Body:
        crawls = [c.as_crawl() for c in self.crawlers.book.newest_first(body.get("CrawlerName", ""))]
        return GLUE.response(crawls, body, "Crawls", default_size=20)

    # -- workflows ----------------------------------------------------------------------------
    def start_workflow_run(self, body: Body) -> Body:
        run = self.workflows.start_run(body.get("Name", ""), body.get("RunProperties") or {})
        return {"RunId": run.id}

    def stop_workflow_run(self, body: Body) -> Body:
        self.workflows.stop_run(self.workflows.book.find(body.get("Name", ""), body.get("RunId", "")))
        return {}

    def get_workflow(self, body: Body) -> Body:
        return {"Workflow": self.workflows.workflow(body.get("Name", ""), bool(body.get("IncludeGraph")))}

    def batch_get_workflows(self, body: Body) -> Body:
        graph = bool(body.get("IncludeGraph"))
        found, missing = batch_get(body.get("Names") or [], lambda name: self.workflows.workflow(name, graph))
        return {"Workflows": found, "MissingWorkflows": missing}

    def get_workflow_run(self, body: Body) -> Body:
        run = self.workflows.book.find(body.get("Name", ""), body.get("RunId", ""))
        return {"Run": self.workflows.run_dict(run, graph=bool(body.get("IncludeGraph")))}

    def get_workflow_runs(self, body: Body) -> Body:
        graph = bool(body.get("IncludeGraph"))
        out = GLUE.response(self.workflows.book.newest_first(body.get("Name", "")), body, "Runs")
        out["Runs"] = [self.workflows.run_dict(r, graph=graph) for r in out["Runs"]]
        return out

    def get_workflow_run_properties(self, body: Body) -> Body:
        run = self.workflows.book.find(body.get("Name", ""), body.get("RunId", ""))
        return {"RunProperties": self.workflows.run_properties(run)}

    def put_workflow_run_properties(self, body: Body) -> Body:
        run = self.workflows.book.find(body.get("Name", ""), body.get("RunId", ""))
        props = body.get("RunProperties")
        if not isinstance(props, dict):
            raise InvalidInputException("RunProperties is required")
        self.workflows.put_run_properties(run, props)
        return {}

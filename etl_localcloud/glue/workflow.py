"""Glue workflow runs: the trigger graph executed for real.

A run snapshots the workflow's triggers when it starts. The start trigger's actions (the
``ON_DEMAND`` trigger; ``EVENT``/``SCHEDULED`` start triggers are treated alike) begin at once.
Every time a job run (after its last retry) or a crawl of this run ends, the ``CONDITIONAL``
triggers that are ``ACTIVATED`` and have not fired in this run are evaluated against the latest
state of each watched node *of this run* (``Logical`` ``AND``, the default, or ``ANY``); a trigger
that is satisfied fires once and starts its actions. Jobs get ``--WORKFLOW_NAME`` and
``--WORKFLOW_RUN_ID`` as Glue adds them. The run is ``COMPLETED`` when no action is running and
nothing more can fire, even when a node failed (as on AWS; ``Statistics`` say what failed).

No thread is held per run: the engine only reacts to node completions, so any number of runs
can be in flight without exhausting a pool.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.common import RunBook, Tracked, moto_record, new_workflow_run_id, utcnow
from etl_localcloud.glue.crawler import Crawl, CrawlerRunner
from etl_localcloud.glue.exceptions import (
    ConcurrentRunsExceededException,
    IllegalWorkflowStateException,
)
from etl_localcloud.glue.jobs import JobRun, JobRunner, RunRequest

__all__ = ["WorkflowRun", "WorkflowEngine"]

log = logging.getLogger("etl_localcloud.glue.workflow")


@dataclass
class WorkflowRun(Tracked):
    """One workflow run and the state of its actions."""

    workflow: str
    properties: dict[str, str]
    triggers: list[dict[str, Any]]
    id: str = field(default_factory=new_workflow_run_id)
    previous_run_id: str | None = None
    status: str = "RUNNING"
    started_on: Any = field(default_factory=utcnow)
    completed_on: Any = None
    error_message: str | None = None
    starting: int = 0  # trigger firings whose actions are being started (the run cannot end meanwhile)
    fired: set[str] = field(default_factory=set)
    actions: dict[str, str | None] = field(default_factory=dict)  # action key -> final state (None = running)
    node_state: dict[tuple[str, str], str] = field(default_factory=dict)  # (JOB|CRAWLER, name) -> last final

    @property
    def owner(self) -> str:
        return self.workflow

    @property
    def finished(self) -> bool:
        return self.status not in ("RUNNING", "STOPPING")

    @property
    def key(self) -> tuple[str, str]:
        return (self.workflow, self.id)

    def interrupt(self, reason: str) -> bool:
        """End this run ERROR with ``reason`` if it was in flight when the daemon stopped (True then).

        Its actions still running count as FAILED.
        """
        if self.finished:
            return False
        self.actions = {k: (v or "FAILED") for k, v in self.actions.items()}
        self.status, self.error_message, self.completed_on = "ERROR", reason, utcnow()
        self.starting = 0
        return True

    def statistics(self) -> dict[str, int]:
        states = list(self.actions.values())
        count = {s: states.count(s) for s in ("SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR")}
        return {"TotalActions": len(states), "TimeoutActions": count["TIMEOUT"], "FailedActions": count["FAILED"],
                "StoppedActions": count["STOPPED"], "SucceededActions": count["SUCCEEDED"],
                "RunningActions": sum(1 for s in states if s is None), "ErroredActions": count["ERROR"],
                "WaitingActions": 0}


def _uid(workflow: str, kind: str, name: str) -> str:
    return "wnode_" + hashlib.sha256(f"{workflow}\0{kind}\0{name}".encode()).hexdigest()


class WorkflowEngine:
    """Runs workflow trigger graphs on top of the job and crawler runners."""

    def __init__(self, ctx: CloudContext, jobs: JobRunner, crawlers: CrawlerRunner) -> None:
        self.ctx = ctx
        self.jobs = jobs
        self.crawlers = crawlers
        self.book: RunBook[WorkflowRun] = RunBook(
            self.workflow_record, "Workflow run with id: {run_id} not found for workflow: {owner}")
        self._lock = self.book.lock
        jobs.on_final.append(self._on_job_final)
        crawlers.on_final.append(self._on_crawl_final)

    # -- records ------------------------------------------------------------------------------
    def workflow_record(self, name: str) -> dict[str, Any]:
        """The workflow's definition as moto keeps it; ``EntityNotFoundException`` when there is none."""
        return moto_record(lambda: self.ctx.moto_client("glue").get_workflow(Name=name), "Workflow",
                           f"Workflow with name: {name} not found")

    def triggers_of(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for pg in self.ctx.moto_client("glue").get_paginator("get_triggers").paginate():
            out.extend(t for t in pg.get("Triggers", []) if t.get("WorkflowName") == name)
        return out

    def active_count(self) -> int:
        return len(self.book.active())

    # -- behaviour ----------------------------------------------------------------------------
    def start_run(self, name: str, properties: dict[str, str]) -> WorkflowRun:
        """Start a run of workflow ``name`` with its default run properties updated by ``properties``."""
        wf = self.workflow_record(name)
        triggers = self.triggers_of(name)
        props = dict(wf.get("DefaultRunProperties") or {})
        props.update(properties)
        limit = wf.get("MaxConcurrentRuns")
        with self._lock:
            runs = self.book.of(name)
            if limit and sum(1 for r in runs if not r.finished) >= int(limit):
                raise ConcurrentRunsExceededException(f"Concurrent runs exceeded for workflow: {name}")
            run = WorkflowRun(workflow=name, properties=props, triggers=triggers,
                              previous_run_id=runs[-1].id if runs else None)
            self.book.add(run)
        self.ctx.executor.submit(self._begin, run)
        return run

    def run_properties(self, run: WorkflowRun) -> dict[str, str]:
        with self._lock:
            return dict(run.properties)

    def put_run_properties(self, run: WorkflowRun, properties: dict[str, Any]) -> None:
        """Add or replace run properties (values as strings, as Glue keeps them)."""
        with self._lock:
            run.properties.update({str(k): str(v) for k, v in properties.items()})

    def stop_run(self, run: WorkflowRun) -> None:
        """Stop a running run: its job runs stop, its crawls are cancelled; it ends STOPPED."""
        with self._lock:
            if run.status != "RUNNING":
                raise IllegalWorkflowStateException(
                    f"Workflow run {run.id} is not running (status {run.status})")
            run.status = "STOPPING"
        for jr in self._job_runs(run):
            self.jobs.stop(jr)
        for c in self._crawls(run):
            if not c.finished:
                c.cancel.set()
        self._maybe_finish(run)

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, list[WorkflowRun]]:
        return self.book.snapshot()

    def restore(self, saved: dict[str, list[WorkflowRun]], reason: str) -> None:
        """Take back saved runs; those in flight end ERROR with ``reason``, their open actions FAILED."""
        self.book.restore(saved, reason)

    # -- views --------------------------------------------------------------------------------
    def workflow(self, name: str, graph: bool) -> dict[str, Any]:
        """``GetWorkflow``'s record: moto's definition, the last run here and, with ``graph``, the graph."""
        wf = self.workflow_record(name)
        wf.pop("LastRun", None)  # moto's own runs never happen: ours are the real ones
        runs = self.book.of(name)
        last = runs[-1] if runs else None
        if last is not None:
            wf["LastRun"] = self.run_dict(last, graph=graph)
        if graph:
            wf["Graph"] = self._graph(name, self.triggers_of(name), None)
        return wf

    def run_dict(self, run: WorkflowRun, graph: bool = False) -> dict[str, Any]:
        with self._lock:
            d: dict[str, Any] = {"Name": run.workflow, "WorkflowRunId": run.id, "StartedOn": run.started_on,
                                 "Status": run.status, "WorkflowRunProperties": dict(run.properties),
                                 "Statistics": run.statistics()}
            if run.previous_run_id:
                d["PreviousRunId"] = run.previous_run_id
            if run.completed_on:
                d["CompletedOn"] = run.completed_on
            if run.error_message:
                d["ErrorMessage"] = run.error_message
        if graph:
            d["Graph"] = self._graph(run.workflow, run.triggers, run)
        return d

    def _job_runs(self, run: WorkflowRun, name: str | None = None) -> list[JobRun]:
        return self.jobs.runs_of_workflow(run.key, name)

    def _crawls(self, run: WorkflowRun, name: str | None = None) -> list[Crawl]:
        return self.crawlers.crawls_of_workflow(run.key, name)

    def _graph(self, workflow: str, triggers: list[dict[str, Any]], run: WorkflowRun | None) -> dict[str, Any]:
        """Nodes (TRIGGER, JOB, CRAWLER) and edges (watched node -> trigger -> action) of the workflow."""
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, str]] = []

        def node(kind: str, name: str) -> str:
            uid = _uid(workflow, kind, name)
            if uid not in nodes:
                n: dict[str, Any] = {"Type": kind, "Name": name, "UniqueId": uid}
                if kind == "JOB":
                    n["JobDetails"] = {"JobRuns": [r.as_dict() for r in self._job_runs(run, name)]} if run else {}
                elif kind == "CRAWLER":
                    n["CrawlerDetails"] = ({"Crawls": [c.as_node_crawl() for c in self._crawls(run, name)]}
                                           if run else {})
                nodes[uid] = n
            return uid

        for t in triggers:
            tid = node("TRIGGER", t["Name"])
            nodes[tid]["TriggerDetails"] = {"Trigger": t}
            for cond in (t.get("Predicate") or {}).get("Conditions") or []:
                src = node("JOB", cond["JobName"]) if cond.get("JobName") else node("CRAWLER", cond["CrawlerName"])
                edges.append({"SourceId": src, "DestinationId": tid})
            for a in t.get("Actions") or []:
                dst = node("JOB", a["JobName"]) if a.get("JobName") else node("CRAWLER", a.get("CrawlerName", ""))
                edges.append({"SourceId": tid, "DestinationId": dst})
        return {"Nodes": list(nodes.values()), "Edges": edges}

    # -- engine -------------------------------------------------------------------------------
    def _begin(self, run: WorkflowRun) -> None:
        try:
            starters = [t for t in run.triggers if t.get("Type") != "CONDITIONAL"]
            with self._lock:
                run.fired.update(t["Name"] for t in starters)
                run.starting += 1
            try:
                for t in starters:
                    self._start_actions(run, t)
            finally:
                with self._lock:
                    run.starting -= 1
            self._maybe_finish(run)
        except Exception as exc:
            log.exception("workflow run %s failed to start", run.id)
            with self._lock:
                run.status, run.error_message, run.completed_on = "ERROR", f"{type(exc).__name__}: {exc}", utcnow()

    def _start_actions(self, run: WorkflowRun, trigger: dict[str, Any]) -> None:
        for action in trigger.get("Actions") or []:
            with self._lock:
                if run.status != "RUNNING":
                    return
            try:
                if action.get("JobName"):
                    # Register the action before the run exists: a fast job may end before start() returns.
                    request = RunRequest(action["JobName"], dict(action.get("Arguments") or {}),
                                         timeout=action.get("Timeout"), trigger_name=trigger["Name"],
                                         workflow=run.key)
                    self.jobs.start(request, on_busy_fail=True,
                                    on_created=lambda r: self._register(run, f"JOB:{r.id}"))
                elif action.get("CrawlerName"):
                    self.crawlers.start(action["CrawlerName"], workflow=run.key,
                                        on_created=lambda c: self._register(run, f"CRAWLER:{c.id}"))
            except ServiceError as err:
                # e.g. the job or crawler was deleted: the action errors, the run goes on.
                log.warning("workflow %s run %s: action %s failed to start: %s", run.workflow, run.id, action,
                            err.message)
                with self._lock:
                    run.actions[f"ERROR:{len(run.actions)}"] = "ERROR"
                    run.error_message = err.message

    def _register(self, run: WorkflowRun, key: str) -> None:
        with self._lock:
            run.actions.setdefault(key, None)

    def _on_job_final(self, jr: JobRun) -> None:
        if jr.workflow is None:
            return
        with self._lock:
            run = self.book.get(*jr.workflow)
            if run is None:
                return
            run.actions[f"JOB:{jr.id.split('_attempt_')[0]}"] = jr.state
            run.node_state[("JOB", jr.job_name)] = jr.state
        self._advance(run)

    def _on_crawl_final(self, crawl: Crawl) -> None:
        if crawl.workflow is None:
            return
        state = crawl.status
        with self._lock:
            run = self.book.get(*crawl.workflow)
            if run is None:
                return
            # Statistics use job vocabulary: a cancelled crawl counts as stopped.
            run.actions[f"CRAWLER:{crawl.id}"] = {"CANCELLED": "STOPPED"}.get(state, state)
            run.node_state[("CRAWLER", crawl.crawler)] = state
        self._advance(run)

    @staticmethod
    def _satisfied(cond: dict[str, Any], node_state: dict[tuple[str, str], str]) -> bool:
        if cond.get("JobName"):
            have, want = node_state.get(("JOB", cond["JobName"])), cond.get("State")
        else:
            have, want = node_state.get(("CRAWLER", cond.get("CrawlerName", ""))), cond.get("CrawlState")
        if have is None:
            return False
        return want == "ANY" or have == want

    def _advance(self, run: WorkflowRun) -> None:
        try:
            to_fire = []
            with self._lock:
                if run.status == "RUNNING":
                    for t in run.triggers:
                        if t.get("Type") != "CONDITIONAL" or t["Name"] in run.fired:
                            continue
                        if t.get("State") not in ("ACTIVATED", "ACTIVATING"):
                            continue  # a trigger that is not activated never fires, as on AWS
                        pred = t.get("Predicate") or {}
                        conds = pred.get("Conditions") or []
                        hits = [self._satisfied(c, run.node_state) for c in conds]
                        ok = any(hits) if pred.get("Logical") == "ANY" else (bool(hits) and all(hits))
                        if ok:
                            run.fired.add(t["Name"])
                            to_fire.append(t)
                    run.starting += 1 if to_fire else 0
            try:
                for t in to_fire:
                    self._start_actions(run, t)
            finally:
                if to_fire:
                    with self._lock:
                        run.starting -= 1
        except Exception as exc:
            log.exception("workflow run %s failed", run.id)
            with self._lock:
                run.status, run.error_message = "ERROR", f"{type(exc).__name__}: {exc}"
                run.completed_on = utcnow()
            return
        self._maybe_finish(run)

    def _maybe_finish(self, run: WorkflowRun) -> None:
        with self._lock:
            if run.status not in ("RUNNING", "STOPPING") or run.starting:
                return
            if any(s is None for s in run.actions.values()):
                return
            # Jobs still starting for this run (registered by on_created) keep it open.
            if any(not r.finished for r in self._job_runs(run)):
                return
            if any(not c.finished for c in self._crawls(run)):
                return
            run.status = "STOPPED" if run.status == "STOPPING" else "COMPLETED"
            run.completed_on = utcnow()

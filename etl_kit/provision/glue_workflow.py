"""Step ``glue_workflow``: the workflow and its trigger chain.

start (ON_DEMAND) -> csv crawler -> (SUCCEEDED) csv job -> (SUCCEEDED) parquet crawler
-> (SUCCEEDED) load job. Conditional triggers are created activated.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, const, or_none, run_delete, run_describe, run_ensure, run_plan

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "trigger_specs"]

STEP = "glue_workflow"


def trigger_specs(ctx: Ctx) -> dict[str, dict[str, Any]]:
    """Trigger name -> ``create_trigger`` arguments (without ``Name``)."""
    s = ctx.settings
    w = s.workflow

    def after(kind: str, name: str, then: dict[str, Any]) -> dict[str, Any]:
        cond: dict[str, Any] = {"LogicalOperator": "EQUALS"}
        if kind == "crawler":
            cond.update(CrawlerName=name, CrawlState="SUCCEEDED")
        else:
            cond.update(JobName=name, State="SUCCEEDED")
        return {"WorkflowName": w, "Type": "CONDITIONAL", "Predicate": {"Logical": "ANY", "Conditions": [cond]},
                "Actions": [then], "Description": f"etl-kit: after {name} succeeded"}

    return {
        f"{w}-start": {"WorkflowName": w, "Type": "ON_DEMAND", "Actions": [{"CrawlerName": s.csv_crawler}],
                       "Description": "etl-kit: workflow start"},
        f"{w}-after-{s.csv_crawler}": after("crawler", s.csv_crawler, {"JobName": s.csv_job}),
        f"{w}-after-{s.csv_job}": after("job", s.csv_job, {"CrawlerName": s.parquet_crawler}),
        f"{w}-after-{s.parquet_crawler}": after("crawler", s.parquet_crawler, {"JobName": s.load_job}),
    }


def _norm_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k in ("JobName", "CrawlerName", "Arguments") and v} for a in actions]


def _norm_predicate(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p:
        return None
    keys = ("LogicalOperator", "JobName", "State", "CrawlerName", "CrawlState")
    conds = [{k: c[k] for k in keys if c.get(k)} for c in p.get("Conditions", [])]
    return {"Logical": p.get("Logical", "AND"), "Conditions": conds}


def _resources(ctx: Ctx) -> list[Resource]:
    glue = ctx.client("glue")
    s = ctx.settings
    wf = {"MaxConcurrentRuns": s.workflow_max_concurrent_runs}

    def wf_read() -> dict[str, Any] | None:
        r = or_none(lambda: glue.get_workflow(Name=s.workflow, IncludeGraph=False))
        return None if r is None else {"MaxConcurrentRuns": r["Workflow"].get("MaxConcurrentRuns")}

    def wf_create() -> None:
        glue.create_workflow(Name=s.workflow, Description="etl-kit: CSV -> Parquet -> Redshift",
                             MaxConcurrentRuns=s.workflow_max_concurrent_runs, Tags={"etl-kit": "managed"})

    def wf_update(_: Any) -> None:
        glue.update_workflow(Name=s.workflow, MaxConcurrentRuns=s.workflow_max_concurrent_runs)

    out = [Resource("glue-workflow", s.workflow, wf_read, lambda: wf, wf_create, wf_update,
                    lambda: glue.delete_workflow(Name=s.workflow), arn=ctx.arns.workflow)]
    for name, spec in trigger_specs(ctx).items():
        conditional = spec["Type"] == "CONDITIONAL"
        desired: dict[str, Any] = {
            "WorkflowName": spec["WorkflowName"],
            "Type": spec["Type"],
            "Actions": spec["Actions"],
            "Predicate": spec.get("Predicate"),
        }
        if conditional:
            desired["State"] = "ACTIVATED"

        def read(name: str = name, conditional: bool = conditional) -> dict[str, Any] | None:
            r = or_none(lambda: glue.get_trigger(Name=name))
            if r is None:
                return None
            t = r["Trigger"]
            out = {"WorkflowName": t.get("WorkflowName"), "Type": t.get("Type"),
                   "Actions": _norm_actions(t.get("Actions", [])), "Predicate": _norm_predicate(t.get("Predicate"))}
            if conditional:
                out["State"] = t.get("State")
            return out

        def create(name: str = name, spec: dict[str, Any] = spec, conditional: bool = conditional) -> None:
            kw = dict(spec)
            if conditional:
                kw["StartOnCreation"] = True
            glue.create_trigger(Name=name, Tags={"etl-kit": "managed"}, **kw)

        def update(diffs: dict[str, Any], name: str = name, spec: dict[str, Any] = spec,
                   conditional: bool = conditional) -> None:
            if {"WorkflowName", "Type"} & set(diffs):  # not updatable: replace the trigger
                glue.delete_trigger(Name=name)
                create(name, spec, conditional)
                return
            if {"Actions", "Predicate"} & set(diffs):
                upd = {k: spec[k] for k in ("Actions", "Predicate", "Description") if k in spec}
                glue.update_trigger(Name=name, TriggerUpdate=upd)
            if conditional and "State" in diffs:
                glue.start_trigger(Name=name)

        out.append(Resource("glue-trigger", name, read, const(desired), create, update,
                            partial(glue.delete_trigger, Name=name), arn=ctx.arns.trigger(name)))
    return out


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the workflow and its triggers."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the workflow and its triggers."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the triggers and the workflow."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

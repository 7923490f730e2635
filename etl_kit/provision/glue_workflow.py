"""Step ``glue_workflow``: the workflow and its trigger chain.

start (ON_DEMAND) -> csv crawler -> (SUCCEEDED) csv job -> (SUCCEEDED) parquet crawler
-> (SUCCEEDED) load job. Conditional triggers are created activated.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from etl_kit.provision.base import TAGS, Ctx, Resource, Step, read_with

__all__ = ["STEP", "trigger_specs"]


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


def _workflow(ctx: Ctx) -> Resource:
    glue = ctx.client("glue")
    s = ctx.settings
    runs = s.workflow_max_concurrent_runs
    return Resource("glue-workflow", s.workflow,
                    read=read_with(partial(glue.get_workflow, Name=s.workflow, IncludeGraph=False),
                                   lambda r: {"MaxConcurrentRuns": r["Workflow"].get("MaxConcurrentRuns")}),
                    desired={"MaxConcurrentRuns": runs},
                    create=partial(glue.create_workflow, Name=s.workflow, MaxConcurrentRuns=runs, Tags=TAGS,
                                   Description="etl-kit: CSV -> Parquet -> Redshift"),
                    update=lambda _: glue.update_workflow(Name=s.workflow, MaxConcurrentRuns=runs),
                    delete=partial(glue.delete_workflow, Name=s.workflow), arn=ctx.arns.workflow)


def _trigger(ctx: Ctx, name: str, spec: dict[str, Any]) -> Resource:
    glue = ctx.client("glue")
    # Conditional triggers are created activated and kept so; an ON_DEMAND trigger has no state to keep.
    conditional = spec["Type"] == "CONDITIONAL"
    compared = ("WorkflowName", "Type", "Actions", "Predicate") + (("State",) if conditional else ())
    desired = {"WorkflowName": spec["WorkflowName"], "Type": spec["Type"], "Actions": spec["Actions"],
               "Predicate": spec.get("Predicate"), "State": "ACTIVATED"}

    def project(r: dict[str, Any]) -> dict[str, Any]:
        t = r["Trigger"]
        have = {"WorkflowName": t.get("WorkflowName"), "Type": t.get("Type"), "State": t.get("State"),
                "Actions": _norm_actions(t.get("Actions", [])), "Predicate": _norm_predicate(t.get("Predicate"))}
        return {k: have[k] for k in compared}

    def create() -> None:
        glue.create_trigger(Name=name, Tags=TAGS, **spec, **({"StartOnCreation": True} if conditional else {}))

    def update(diffs: dict[str, Any]) -> None:
        if {"WorkflowName", "Type"} & set(diffs):  # not updatable: replace the trigger
            glue.delete_trigger(Name=name)
            create()
            return
        if {"Actions", "Predicate"} & set(diffs):
            upd = {k: spec[k] for k in ("Actions", "Predicate", "Description") if k in spec}
            glue.update_trigger(Name=name, TriggerUpdate=upd)
        if "State" in diffs:
            glue.start_trigger(Name=name)

    return Resource("glue-trigger", name, read=read_with(partial(glue.get_trigger, Name=name), project),
                    desired={k: desired[k] for k in compared}, create=create, update=update,
                    delete=partial(glue.delete_trigger, Name=name), arn=ctx.arns.trigger(name))


STEP = Step("glue_workflow", lambda ctx: [_workflow(ctx),
                                          *(_trigger(ctx, name, spec) for name, spec in trigger_specs(ctx).items())])

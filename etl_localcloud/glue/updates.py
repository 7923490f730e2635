"""Glue definition updates moto 5.2.5 lacks: UpdateJob, UpdateCrawler, UpdateTrigger, UpdateConnection,
DeleteConnection (and GetConnection's missing ConnectionType).

They are emulated with AWS's semantics on moto's own records: UpdateJob and UpdateConnection replace the
definition (AWS: "the previous job definition is completely overwritten"), UpdateCrawler and UpdateTrigger
change only the fields given. Run history lives in the providers, so re-creating a record loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from etl_localcloud import motohooks
from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.common import as_service_error

__all__ = ["DefinitionUpdates"]

_CRAWLER_FIELDS = ("Role", "DatabaseName", "Description", "Targets", "Classifiers", "TablePrefix",
                   "SchemaChangePolicy", "RecrawlPolicy", "LineageConfiguration", "LakeFormationConfiguration",
                   "Configuration", "CrawlerSecurityConfiguration")


class DefinitionUpdates:
    """The five operations, reading and writing moto's records through the direct client."""

    def __init__(self, ctx: CloudContext, create_trigger: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.ctx = ctx
        self._create_trigger = create_trigger

    def _glue(self) -> Any:
        return self.ctx.moto_client("glue")

    def op_update_job(self, body: dict[str, Any]) -> dict[str, Any]:
        name, update = body.get("JobName", ""), dict(body.get("JobUpdate") or {})
        glue = self._glue()
        try:
            glue.get_job(JobName=name)
            glue.delete_job(JobName=name)
            glue.create_job(Name=name, **update)
        except ServiceError:
            raise
        except Exception as exc:
            raise as_service_error(exc) from None
        return {"JobName": name}

    def op_update_crawler(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("Name", "")
        glue = self._glue()
        try:
            cur = glue.get_crawler(Name=name)["Crawler"]
            spec: dict[str, Any] = {k: cur[k] for k in _CRAWLER_FIELDS if cur.get(k) not in (None, "", [], {})}
            if (cur.get("Schedule") or {}).get("ScheduleExpression"):
                spec["Schedule"] = cur["Schedule"]["ScheduleExpression"]
            spec.update({k: v for k, v in body.items() if k != "Name"})
            glue.delete_crawler(Name=name)
            glue.create_crawler(Name=name, **spec)
        except Exception as exc:
            raise as_service_error(exc) from None
        return {}

    def op_update_trigger(self, body: dict[str, Any]) -> dict[str, Any]:
        name, update = body.get("Name", ""), dict(body.get("TriggerUpdate") or {})
        glue = self._glue()
        try:
            cur = glue.get_trigger(Name=name)["Trigger"]
        except Exception as exc:
            raise as_service_error(exc) from None
        spec: dict[str, Any] = {"Name": name, "Type": cur["Type"]}
        for k in ("WorkflowName", "Description", "Actions", "Predicate", "Schedule", "EventBatchingCondition"):
            if k in update and k != "Name":
                spec[k] = update[k]
            elif cur.get(k) not in (None, "", [], {}):
                spec[k] = cur[k]
        if cur["Type"] != "ON_DEMAND":
            spec["StartOnCreation"] = cur.get("State") == "ACTIVATED"
        try:
            glue.delete_trigger(Name=name)
        except Exception as exc:
            raise as_service_error(exc) from None
        self._create_trigger(spec)
        trig = glue.get_trigger(Name=name)["Trigger"]
        return {"Trigger": trig}

    def op_delete_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("ConnectionName", "")
        try:
            motohooks.glue_delete_connection(self.ctx.account_id, self.ctx.region, name)
        except KeyError:
            raise ServiceError("EntityNotFoundException", f"Connection {name} not found.") from None
        return {}

    def op_get_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        """moto's GetConnection, with the ``ConnectionType`` moto 5.2.5 leaves out."""
        try:
            out = dict(self._glue().get_connection(**body))
        except Exception as exc:
            raise as_service_error(exc) from None
        out.pop("ResponseMetadata", None)
        conn = out.get("Connection", {})
        if "ConnectionType" not in conn:
            conn["ConnectionType"] = motohooks.glue_connection_input(
                self.ctx.account_id, self.ctx.region, body.get("Name", "")).get("ConnectionType")
        return out

    def op_update_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        name, conn_input = body.get("Name", ""), dict(body.get("ConnectionInput") or {})
        self.op_delete_connection({"ConnectionName": name})
        try:
            self._glue().create_connection(ConnectionInput=conn_input)
        except Exception as exc:
            raise as_service_error(exc) from None
        return {}

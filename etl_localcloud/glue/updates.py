"""Glue definition operations moto 5.2.5 lacks or gets wrong: UpdateJob, UpdateCrawler, UpdateTrigger,
UpdateConnection, DeleteConnection, GetConnection's missing ConnectionType, CreateTrigger's default
``Predicate.Logical`` and CreateCrawler's checks of the recrawl policy (S3 event mode's queue and target).

They are emulated with AWS's semantics on moto's own records: UpdateJob and UpdateConnection replace the
definition (AWS: "the previous job definition is completely overwritten"), UpdateCrawler and UpdateTrigger
change only the fields given. Run history lives in the providers, so re-creating a record loses nothing.
"""

from __future__ import annotations

from typing import Any

from etl_localcloud import motohooks
from etl_localcloud.context import CloudContext
from etl_localcloud.core.errors import from_client_error
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.crawl_events import check_definition
from etl_localcloud.glue.exceptions import EntityNotFoundException

__all__ = ["DefinitionUpdates"]

_CRAWLER_FIELDS = ("Role", "DatabaseName", "Description", "Targets", "Classifiers", "TablePrefix",
                   "SchemaChangePolicy", "RecrawlPolicy", "LineageConfiguration", "LakeFormationConfiguration",
                   "Configuration", "CrawlerSecurityConfiguration")
_TRIGGER_FIELDS = ("WorkflowName", "Description", "Actions", "Predicate", "Schedule", "EventBatchingCondition")


def _given(value: Any) -> bool:
    return value not in (None, "", [], {})


class DefinitionUpdates:
    """The definition operations, reading and writing moto's records through the direct client.

    moto's refusals reach the caller as the same AWS errors.
    """

    def __init__(self, ctx: CloudContext) -> None:
        self.ctx = ctx

    def _glue(self) -> Any:
        return self.ctx.moto_client("glue")

    def create_trigger(self, spec: dict[str, Any]) -> dict[str, Any]:
        """moto's CreateTrigger, with ``Predicate.Logical`` defaulted to ``AND`` as AWS does.

        moto 5.2.5 fails with a 500 on a predicate that omits ``Logical``; AWS accepts it.
        """
        pred = spec.get("Predicate")
        if isinstance(pred, dict) and pred.get("Conditions") and not pred.get("Logical"):
            spec = {**spec, "Predicate": {**pred, "Logical": "AND"}}
        try:
            return dict(self._glue().create_trigger(**spec))
        except Exception as exc:
            raise from_client_error(exc) from None

    def create_crawler(self, spec: dict[str, Any]) -> None:
        """moto's CreateCrawler after Glue's checks of the recrawl policy (:func:`.crawl_events.check_definition`)."""
        check_definition(spec, self.ctx.moto_client("sqs"))
        try:
            self._glue().create_crawler(**spec)
        except Exception as exc:
            raise from_client_error(exc) from None

    def update_job(self, name: str, update: dict[str, Any]) -> None:
        """Replace job ``name``'s definition by ``update`` (``JobUpdate``)."""
        glue = self._glue()
        try:
            glue.get_job(JobName=name)
            glue.delete_job(JobName=name)
            glue.create_job(Name=name, **update)
        except ServiceError:
            raise
        except Exception as exc:
            raise from_client_error(exc) from None

    def update_crawler(self, name: str, changes: dict[str, Any]) -> None:
        """Change the fields ``changes`` gives of crawler ``name``; the others stay."""
        glue = self._glue()
        try:
            cur = glue.get_crawler(Name=name)["Crawler"]
            spec: dict[str, Any] = {k: cur[k] for k in _CRAWLER_FIELDS if _given(cur.get(k))}
            if (cur.get("Schedule") or {}).get("ScheduleExpression"):
                spec["Schedule"] = cur["Schedule"]["ScheduleExpression"]
            spec.update(changes)
            check_definition({**spec, "Name": name}, self.ctx.moto_client("sqs"))
            glue.delete_crawler(Name=name)
            glue.create_crawler(Name=name, **spec)
        except ServiceError:
            raise
        except Exception as exc:
            raise from_client_error(exc) from None

    def update_trigger(self, name: str, update: dict[str, Any]) -> dict[str, Any]:
        """Change the fields ``update`` (``TriggerUpdate``) gives of trigger ``name``; its new record."""
        glue = self._glue()
        try:
            cur = glue.get_trigger(Name=name)["Trigger"]
        except Exception as exc:
            raise from_client_error(exc) from None
        spec: dict[str, Any] = {"Name": name, "Type": cur["Type"]}
        for k in _TRIGGER_FIELDS:
            if k in update:
                spec[k] = update[k]
            elif _given(cur.get(k)):
                spec[k] = cur[k]
        if cur["Type"] != "ON_DEMAND":
            spec["StartOnCreation"] = cur.get("State") == "ACTIVATED"
        try:
            glue.delete_trigger(Name=name)
        except Exception as exc:
            raise from_client_error(exc) from None
        self.create_trigger(spec)
        return dict(glue.get_trigger(Name=name)["Trigger"])

    def delete_connection(self, name: str) -> None:
        try:
            motohooks.glue_delete_connection(self.ctx.account_id, self.ctx.region, name)
        except KeyError:
            raise EntityNotFoundException(f"Connection {name} not found.") from None

    def get_connection(self, request: dict[str, Any]) -> dict[str, Any]:
        """moto's GetConnection answer to ``request``, with the ``ConnectionType`` moto 5.2.5 leaves out."""
        try:
            out = dict(self._glue().get_connection(**request))
        except Exception as exc:
            raise from_client_error(exc) from None
        out.pop("ResponseMetadata", None)
        conn = out.get("Connection", {})
        if "ConnectionType" not in conn:
            conn["ConnectionType"] = motohooks.glue_connection_input(
                self.ctx.account_id, self.ctx.region, request.get("Name", "")).get("ConnectionType")
        return out

    def update_connection(self, name: str, connection_input: dict[str, Any]) -> None:
        """Replace connection ``name``'s definition by ``connection_input``."""
        self.delete_connection(name)
        try:
            self._glue().create_connection(ConnectionInput=connection_input)
        except Exception as exc:
            raise from_client_error(exc) from None

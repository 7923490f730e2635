"""EventBridge: rule targets moto does not deliver (Lambda, SNS), and AWS-service events on the default bus.

Touches: ``moto.events.models.Rule.send_to_targets`` (replaced by a wrapper that hands moto only the
targets it delivers), ``Rule.targets`` / ``event_pattern`` / ``account_id`` / ``region_name`` /
``state``, ``EventPattern.matches_event``, ``moto.events.utils._BASE_EVENT_MESSAGE`` and
``moto.events.models.events_backends[account][region].put_events``.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from etl_localcloud.motohooks.event_input import target_input
from etl_localcloud.motohooks.probe import backend_lacks

__all__ = ["install_event_target_hook", "put_event", "contract"]

log = logging.getLogger("etl_localcloud.moto")

# Handlers for rule targets moto does not deliver (Lambda, SNS); set by install_event_target_hook.
_target_handlers: dict[str, Callable[[dict[str, Any], Any, str, str], None]] = {}
_hook_lock = threading.Lock()
_installed = False


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.events.models import EventPattern, Rule, events_backends  # noqa: F401
    from moto.events.utils import _BASE_EVENT_MESSAGE  # noqa: F401

    problems = []
    for attr in ("send_to_targets", "targets", "event_pattern", "account_id", "region_name", "state"):
        if not hasattr(Rule, attr) and attr not in Rule.__init__.__code__.co_names:
            problems.append(f"moto.events.models.Rule lacks {attr}")
    return problems + backend_lacks(events_backends, "EventsBackend", "put_events")


def _aws_shaped(event: Any) -> Any:
    """Fix moto's S3 event where it differs from what EventBridge delivers.

    moto puts epoch seconds in ``time`` (AWS: an ISO-8601 UTC string), spells the object's ``etag`` as
    ``eTag`` and writes ``version-id: "null"`` for unversioned buckets (AWS omits it).
    """
    if not isinstance(event, dict):
        return event
    import datetime as _dt

    event = dict(event)
    if isinstance(event.get("time"), (int, float)):
        event["time"] = _dt.datetime.fromtimestamp(event["time"], _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = event.get("detail")
    obj = detail.get("object") if isinstance(detail, dict) else None
    if event.get("source") == "aws.s3" and isinstance(obj, dict):
        obj = dict(obj)
        if "eTag" in obj:
            obj["etag"] = obj.pop("eTag")
        if obj.get("version-id") == "null":
            obj.pop("version-id")
        event["detail"] = {**detail, "object": obj}
    return event


def install_event_target_hook(handlers: dict[str, Callable[[dict[str, Any], Any, str, str], None]]) -> None:
    """Deliver events to rule targets moto ignores.

    ``handlers`` maps an ARN service (``"lambda"``, ``"sns"``) to
    ``handler(target, payload, account_id, region)``; it is called after moto's own
    delivery, for every target of that service on a rule whose pattern matches.
    """
    global _installed
    from moto.events.models import Rule

    with _hook_lock:
        _target_handlers.clear()
        _target_handlers.update(handlers)
        if _installed:
            return
        original = Rule.send_to_targets

        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            ours = [t for t in self.targets if t["Arn"].split(":")[2] in _target_handlers]
            if len(ours) < len(self.targets):
                # moto raises NotImplementedError on targets it cannot deliver: give it only its own,
                # on a shallow copy so that concurrent deliveries never see a half-edited rule.
                theirs = copy.copy(self)
                theirs.targets = [t for t in self.targets if t not in ours]
                original(theirs, original_event, transform_input)
            if not ours or getattr(self, "state", "ENABLED") != "ENABLED":
                return
            if not self.event_pattern.matches_event(original_event):
                return
            original_event = _aws_shaped(original_event)
            for target in ours:
                handler = _target_handlers[target["Arn"].split(":")[2]]
                try:
                    payload = target_input(target, original_event)
                    # the rule's ARN: the aws:SourceArn of the delivery the target's resource policy sees
                    handler({**target, "RuleArn": self.arn}, payload, self.account_id, self.region_name)
                except Exception:  # delivery is asynchronous on AWS: never fail the caller
                    log.exception("delivery to %s failed", target["Arn"])

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
        _installed = True


def put_event(account_id: str, region: str, source: str, detail_type: str, detail: dict[str, Any],
              resources: list[str] | None = None) -> None:
    """Put an AWS-service event (``aws.glue``...) on the default bus; rules then fire."""
    from moto.events.models import events_backends

    backend = events_backends[account_id][region]
    backend.put_events([
        {
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail),
            "Resources": resources or [],
            "EventBusName": "default",
        }
    ])

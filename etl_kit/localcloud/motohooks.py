"""All coupling to moto's internals lives here, and nowhere else.

moto is pinned exactly (pyproject.toml); :func:`check_contract` verifies every
internal this module touches, and ``tests/local/test_moto_contract.py`` fails loudly
when a moto upgrade moves one of them.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "MOTO_VERSION",
    "check_contract",
    "make_moto_app",
    "install_event_target_hook",
    "put_event",
    "lambda_function",
    "sns_publish",
    "reset",
    "install_s3_notification_fix",
    "glue_delete_connection",
    "glue_connection_input",
]

MOTO_VERSION = "5.2.5"
log = logging.getLogger("etl_kit.localcloud.moto")

# Handlers for rule targets moto does not deliver (Lambda, SNS); set by install_event_target_hook.
_target_handlers: dict[str, Callable[[dict[str, Any], Any, str, str], None]] = {}
_hook_lock = threading.Lock()
_installed = False


def check_contract() -> list[str]:
    """Return the list of moto internals that are missing or changed (empty = all good)."""
    problems: list[str] = []
    try:
        import moto

        if moto.__version__ != MOTO_VERSION:
            problems.append(f"moto version {moto.__version__} != pinned {MOTO_VERSION}")
        from moto.awslambda.models import lambda_backends
        from moto.events.models import EventPattern, Rule, events_backends  # noqa: F401
        from moto.events.utils import _BASE_EVENT_MESSAGE  # noqa: F401
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: F401
        from moto.sns.models import sns_backends

        for attr in ("send_to_targets", "targets", "event_pattern", "account_id", "region_name", "state"):
            if not hasattr(Rule, attr) and attr not in Rule.__init__.__code__.co_names:
                problems.append(f"moto.events.models.Rule lacks {attr}")
        for meth in ("put_events",):
            if not hasattr(events_backends["123456789012"]["us-east-1"], meth):
                problems.append(f"EventsBackend lacks {meth}")
        lb = lambda_backends["123456789012"]["us-east-1"]
        if not hasattr(lb, "get_function"):
            problems.append("LambdaBackend lacks get_function")
        import inspect

        from moto.awslambda.models import LambdaFunction

        src = inspect.getsource(LambdaFunction)
        for attr in ("code_bytes", "environment_vars", "handler", "timeout", "run_time", "function_arn"):
            if f"self.{attr}" not in src:
                problems.append(f"LambdaFunction lacks {attr}")
        from moto.glue.models import glue_backends

        if not isinstance(getattr(glue_backends["123456789012"]["us-east-1"], "connections", None), dict):
            problems.append("GlueBackend lacks the connections dict")
        from moto.s3.responses import S3Response

        if not hasattr(S3Response, "get_bucket_notification"):
            problems.append("S3Response lacks get_bucket_notification")
        if not hasattr(sns_backends["123456789012"]["us-east-1"], "publish"):
            problems.append("SNSBackend lacks publish")
    except ImportError as exc:
        problems.append(f"moto import failed: {exc}")
    return problems


def make_moto_app() -> Any:
    """moto's server as a WSGI application (what ``moto_server`` serves)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def reset() -> None:
    """Reset every moto backend (tests)."""
    from moto.moto_api import _internal

    _internal.moto_api_backend.reset()


def _transform(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """Apply a target's Input / InputPath / InputTransformer, as EventBridge does."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        # Only the simple "$.a.b" form EventBridge documents.
        node: Any = event
        for part in target["InputPath"].lstrip("$").strip(".").split("."):
            if part:
                node = node.get(part) if isinstance(node, dict) else None
        return node
    if "InputTransformer" in target:
        it = target["InputTransformer"]
        return _input_transformer(it.get("InputTemplate") or "", it.get("InputPathsMap") or {}, event)
    return event


def _variables(paths: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    from jsonpath_ng.ext import parse

    out: dict[str, Any] = {}
    for name, path in paths.items():
        matches = parse(path).find(event)
        if matches:  # a path the event lacks creates no variable: its placeholder stays as written
            out[name] = matches[0].value
    out["aws.events.event.json"] = event
    out["aws.events.event"] = {k: v for k, v in event.items() if k != "detail"}
    if "ingestion-time" in event:
        out["aws.events.event.ingestion-time"] = event["ingestion-time"]
    return out


def _render(value: Any, in_string: bool) -> str:
    """A variable's text. In a JSON value position strings get quotes (EventBridge adds them); inside a
    string literal the value goes in as it is (EventBridge does not escape it), objects and arrays without
    their inner quotes ("EventBridge removes any internal quotes to ensure a valid string")."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return text.replace('"', "") if in_string else text
    if isinstance(value, str):
        return value if in_string else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _substitute(template: str, variables: dict[str, Any], *, json_template: bool) -> str:
    out: list[str] = []
    in_string = False
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "<":
            j = template.find(">", i + 1)
            if j > 0 and template[i + 1:j] in variables:
                out.append(_render(variables[template[i + 1:j]], in_string or not json_template))
                i = j + 1
                continue
        elif json_template and in_string and c == "\\" and i + 1 < n:
            out.append(template[i:i + 2])
            i += 2
            continue
        elif json_template and c == '"':
            in_string = not in_string
        out.append(c)
        i += 1
    return "".join(out)


def _input_transformer(template: str, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """EventBridge's input transformer (Amazon EventBridge User Guide, "Amazon EventBridge input transformation").

    A template that is one JSON string (``"Job <name> failed: <error>"``) gives the text between its
    quotes with each variable's value as it is, whatever characters the value holds (AWS inserts values
    unescaped, so its output is that text in quotes). Another template gives the JSON it forms, or its
    text when a value inserted unescaped into a string breaks the JSON, as it would on AWS.
    """
    variables = _variables(paths, event)
    body = template.strip()
    if len(body) >= 2 and body[0] == body[-1] == '"':
        try:
            literal = json.loads(body)
        except ValueError:
            literal = None
        if isinstance(literal, str):
            return _substitute(literal, variables, json_template=False)
    text = _substitute(template, variables, json_template=True)
    try:
        return json.loads(text)
    except ValueError:
        return text


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
                    payload = _transform(target, original_event)
                    handler(target, payload, self.account_id, self.region_name)
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


def lambda_function(account_id: str, region: str, name: str) -> dict[str, Any]:
    """The deployed function's code and configuration, as Lambda would run it.

    Raises ``KeyError`` when no such function exists.
    """
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends[account_id][region]
    try:
        fn = backend.get_function(name)
    except Exception as exc:
        raise KeyError(name) from exc
    invoke_cfg: dict[str, Any] = {}
    for cfg in getattr(fn, "event_invoke_config", None) or []:
        invoke_cfg.update(getattr(cfg, "config", {}) or {})
    return {
        "event_invoke_config": invoke_cfg,
        "name": fn.function_name,
        "arn": fn.function_arn,
        "zip": fn.code_bytes,
        "handler": fn.handler,
        "runtime": fn.run_time,
        "timeout": int(fn.timeout or 3),
        "memory": int(getattr(fn, "memory_size", 128) or 128),
        "environment": dict(fn.environment_vars or {}),
        "code_sha256": getattr(fn, "code_sha_256", ""),
    }


def sns_publish(account_id: str, region: str, topic_arn: str, message: str, subject: str | None = None) -> None:
    """Publish to an SNS topic in-process (EventBridge -> SNS delivery)."""
    from moto.sns.models import sns_backends

    sns_backends[account_id][region].publish(message=message, arn=topic_arn, subject=subject)


def install_s3_notification_fix() -> None:
    """Show ``EventBridgeConfiguration`` in GetBucketNotificationConfiguration.

    moto 5.2.5 stores it (and delivers the events) but leaves it out of the GET response, so
    nobody could see whether a bucket sends events to EventBridge, or correct drift.
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response.get_bucket_notification, "_etl_kit", False):
        return
    original = S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        result = original(self)
        cfg = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if cfg is None or getattr(cfg, "event_bridge", None) is None:
            return result
        tag = b"<EventBridgeConfiguration></EventBridgeConfiguration>"
        if isinstance(result, tuple):
            status, headers, body = result
        else:
            status, headers, body = 200, {}, result
        raw = body.encode() if isinstance(body, str) else bytes(body or b"")
        if b"</NotificationConfiguration>" in raw:
            raw = raw.replace(b"</NotificationConfiguration>", tag + b"</NotificationConfiguration>")
        else:
            raw = (b'<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                   b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + tag + b"</NotificationConfiguration>")
        if isinstance(headers, dict):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return status, headers, raw

    get_bucket_notification._etl_kit = True  # type: ignore[attr-defined]
    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]


def glue_delete_connection(account_id: str, region: str, name: str) -> None:
    """Delete a Glue connection record (moto 5.2.5 has no DeleteConnection). ``KeyError`` if absent."""
    from moto.glue.models import glue_backends

    del glue_backends[account_id][region].connections[name]


def glue_connection_input(account_id: str, region: str, name: str) -> dict[str, Any]:
    """The ConnectionInput a Glue connection was created with. ``KeyError`` if absent."""
    from moto.glue.models import glue_backends

    return dict(glue_backends[account_id][region].connections[name].connection_input)

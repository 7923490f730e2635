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
    "install_event_source_mapping_guard",
    "sqs_send",
    "put_event",
    "lambda_function",
    "sns_publish",
    "reset",
    "install_s3_notification_fix",
    "glue_delete_connection",
    "glue_connection_input",
]

MOTO_VERSION = "5.2.5"
log = logging.getLogger("etl_localcloud.moto")

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
        from moto.awslambda.models import LambdaBackend
        from moto.sqs.models import Queue, sqs_backends

        for meth in ("create_event_source_mapping", "update_event_source_mapping", "list_event_source_mappings"):
            if not hasattr(LambdaBackend, meth):
                problems.append(f"LambdaBackend lacks {meth}")
        if "self.lambda_event_source_mappings" not in inspect.getsource(Queue):
            problems.append("sqs Queue lacks lambda_event_source_mappings")
        if not hasattr(sqs_backends["123456789012"]["us-east-1"], "send_message"):
            problems.append("SQSBackend lacks send_message")
        problems.extend(_persistence_contract())
    except ImportError as exc:
        problems.append(f"moto import failed: {exc}")
    return problems


def _persistence_contract() -> list[str]:
    """The internals the snapshots and the S3 blob store rely on."""
    import inspect

    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict
    from moto.s3.models import FakeKey, FakeMultipart, MultipartChecksumBuilder, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    problems = []
    if not isinstance(getattr(BackendDict, "_instances", None), list):
        problems.append("BackendDict lacks the _instances list")
    if not callable(get_backend):
        problems.append("moto.backends.get_backend is gone")
    if not isinstance(inspect.getattr_static(FakeKey, "value"), property):
        problems.append("FakeKey.value is no longer a property")
    key_src = inspect.getsource(FakeKey)
    for needle in ("self._value_buffer = tempfile.SpooledTemporaryFile", "self.value = value",
                   "self.contentsize = len(new_value)", "def dispose", "def __getstate__", "def __setstate__"):
        if needle not in key_src:
            problems.append(f"FakeKey changed: no {needle!r}")
    uses = [ln.strip() for ln in key_src.splitlines() if "_value_buffer." in ln]
    if any(not ln.startswith(("self._value_buffer.seek(", "self._value_buffer.read(", "r = self._value_buffer.read(",
                                 "block = self._value_buffer.read(", "self._value_buffer.close(",
                                 "self._value_buffer.truncate(", "self._value_buffer.write("))
           for ln in uses):
        problems.append(f"FakeKey uses its buffer in a new way: {uses}")
    if list(inspect.signature(FakeMultipart.complete).parameters) != ["self", "body"]:
        problems.append("FakeMultipart.complete signature changed")
    from moto.s3.responses import S3Response

    get_src = inspect.getsource(inspect.unwrap(S3Response.get_object))
    if get_src.count("key.value") != 2 or "return 200, response_headers, key.value" not in get_src:
        problems.append("S3Response.get_object no longer returns key.value as the body")
    range_src = inspect.getsource(S3Response._handle_range_header)
    if "len(response_content)" not in range_src or "response_content[begin : end + 1]" not in range_src:
        problems.append("S3Response._handle_range_header no longer slices the body")
    if "multipart.complete(body)" not in inspect.getsource(S3Backend.complete_multipart_upload):
        problems.append("S3Backend.complete_multipart_upload no longer calls multipart.complete(body)")
    for attr in ("checksum_algorithm", "checksum_type", "part_count", "addPart", "build"):
        if attr not in inspect.getsource(MultipartChecksumBuilder):
            problems.append(f"MultipartChecksumBuilder lacks {attr}")
    if "_VersionedKeyStore(dict)" not in inspect.getsource(_VersionedKeyStore):
        problems.append("_VersionedKeyStore is no longer a dict of version lists")
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


def sqs_send(account_id: str, region: str, queue_arn: str, body: str, group_id: str | None = None) -> None:
    """Send a message to a queue in-process (EventBridge -> SQS delivery, as moto itself does)."""
    from moto.sqs.models import sqs_backends

    sqs_backends[account_id][region].send_message(queue_name=queue_arn.split(":")[5], message_body=body,
                                                  group_id=group_id)


_esm_guard_installed = False


def _esm_refusal(backend: Any, spec: dict[str, Any], current: Any = None) -> Any:
    """The error AWS answers for an SQS event source mapping it refuses, or ``None``."""
    from moto.core.exceptions import JsonRESTError
    from moto.sqs.models import sqs_backends

    arn = spec.get("EventSourceArn") or (current.event_source_arn if current is not None else "")
    if not str(arn).startswith("arn:") or str(arn).split(":")[2] != "sqs":
        return None
    scaling = spec.get("ScalingConfig") or {}
    mc = scaling.get("MaximumConcurrency")
    if mc is not None and not 2 <= int(mc) <= 1000:
        return JsonRESTError("ValidationException", f"1 validation error detected: Value '{mc}' at "
                             "'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have "
                             "value between 2 and 1000")
    batch = spec.get("BatchSize", current.batch_size if current is not None else 10)
    window = spec.get("MaximumBatchingWindowInSeconds", current.max_batch_window if current is not None else None)
    if int(batch or 10) > 10 and not int(window or 0):
        return JsonRESTError("InvalidParameterValueException", "Maximum batch window in seconds must be greater "
                             "than 0 if maximum batch size is greater than 10")
    fn_name = spec.get("FunctionName") or (current.function_arn if current is not None else "")
    try:
        fn = backend.get_function(fn_name)
        queue = next(q for q in sqs_backends[backend.account_id][backend.region_name].queues.values()
                     if q.queue_arn == arn)
    except Exception:
        return None  # moto answers the missing function / queue itself
    visibility = int(getattr(queue, "visibility_timeout", None) or 30)
    if visibility < int(fn.timeout or 3):
        return JsonRESTError("InvalidParameterValueException", f"Queue visibility timeout: "
                             f"{visibility} seconds is less than Function timeout: "
                             f"{int(fn.timeout or 3)} seconds")
    if current is None:
        for esm in backend.list_event_source_mappings(arn, None):
            if esm.function_arn == fn.function_arn:
                return JsonRESTError("ResourceConflictException", f"An event source mapping with SQS arn (\" {arn} "
                                     f"\") and function (\" {fn.function_name} \") already exists. Please update "
                                     f"or delete the existing mapping with UUID {esm.uuid}")
    return None


def install_event_source_mapping_guard() -> None:
    """Make the kit's poller the only consumer of SQS event source mappings, and refuse what AWS refuses.

    moto 5.2.5 registers an SQS mapping on the queue and, on every ``send_message``, receives a batch
    itself and invokes the function through Docker (deleting the messages when that "succeeds"). The
    mapping is unregistered from the queue right after creation, so moto never consumes; the kit's
    Lambda provider polls the mappings through the API. Refused like AWS: ``MaximumConcurrency`` outside
    2..1000, ``BatchSize`` > 10 without a batching window, a queue visibility timeout shorter than the
    function timeout, a second mapping of the same queue and function.
    """
    global _esm_guard_installed
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    with _hook_lock:
        if _esm_guard_installed:
            return
        original_create = LambdaBackend.create_event_source_mapping
        original_update = LambdaBackend.update_event_source_mapping

        def create(self: Any, spec: dict[str, Any]) -> Any:
            refusal = _esm_refusal(self, spec)
            if refusal is not None:
                raise refusal
            esm = original_create(self, spec)
            for queue in sqs_backends[self.account_id][self.region_name].queues.values():
                mappings = getattr(queue, "lambda_event_source_mappings", {})
                for key in [k for k, v in mappings.items() if v is esm]:
                    del mappings[key]
            return esm

        def update(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
            current = self.get_event_source_mapping(uuid)
            if current is not None:
                refusal = _esm_refusal(self, spec, current)
                if refusal is not None:
                    raise refusal
            return original_update(self, uuid, spec)

        LambdaBackend.create_event_source_mapping = create  # type: ignore[method-assign]
        LambdaBackend.update_event_source_mapping = update  # type: ignore[method-assign]
        _esm_guard_installed = True


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


# -- persistence: S3 bodies as files, backends as a snapshot ------------------------------------------------

_blob_dir: Any = None  # pathlib.Path once install_s3_blob_store ran
_dead_blobs: set[str] = set()  # blob names of disposed keys: deleted once a snapshot no longer names them
_blob_lock = threading.Lock()
_local = threading.local()  # .adopt = (name, size) while a multipart upload completes; .restoring = True


class _Blob:
    """A FakeKey's body as an immutable file in the blob dir, opened per read (no descriptor held).

    moto only ever ``seek``s and ``read``s a key's buffer outside the value setter (which we replace),
    so this is the whole interface it needs. A new body always gets a new file: copies of a key
    (``copy.deepcopy``, versioning) never see each other's writes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.pos = 0
        self.closed = False

    @property
    def path(self) -> Any:
        return _blob_dir / self.name

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.path.stat().st_size + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed blob")
        with open(self.path, "rb") as fh:
            fh.seek(self.pos)
            data = fh.read() if size is None or size < 0 else fh.read(size)
        self.pos += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with _blob_lock:
                _dead_blobs.add(self.name)


LAZY_BODY_BYTES = 1024 * 1024  # GET bodies from this size on stream from their file


class LazyBody:
    """A GET response's body read from the object's file in chunks; ``len()`` and slicing work like bytes.

    moto's range handling takes ``len(body)`` and ``body[a:b]``; the WSGI server iterates it.
    The file is opened when moto builds the response, so a later delete cannot pull it away.
    """

    def __init__(self, fh: Any, start: int, stop: int) -> None:
        self.fh = fh
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __bool__(self) -> bool:
        return self.stop > self.start

    def __getitem__(self, item: slice) -> LazyBody:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("LazyBody supports plain slices only")
        lo, hi, _ = item.indices(len(self))
        return LazyBody(self.fh, self.start + lo, self.start + max(lo, hi))

    def __iter__(self) -> Any:
        pos = self.start
        try:
            while pos < self.stop:
                self.fh.seek(pos)
                block = self.fh.read(min(1024 * 1024, self.stop - pos))
                if not block:
                    break
                pos += len(block)
                yield block
        finally:
            self.close()

    def close(self) -> None:
        self.fh.close()


def _get_value(key: Any) -> Any:
    buf = key._value_buffer
    if getattr(_local, "lazy", False) and isinstance(buf, _Blob) and key.contentsize >= LAZY_BODY_BYTES:
        return LazyBody(open(buf.path, "rb"), 0, key.contentsize)
    with key.lock:
        buf.seek(0)
        return buf.read()


def _streaming_get_object(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_object(self: Any) -> Any:
        _local.lazy = True
        try:
            return original(self)
        finally:
            _local.lazy = False

    get_object._etl_kit = True  # type: ignore[attr-defined]
    get_object.__wrapped__ = original  # type: ignore[attr-defined]
    return get_object


def _new_blob_name() -> str:
    import uuid

    return uuid.uuid4().hex


def write_blob(chunks: Any) -> tuple[str, int]:
    """Write ``chunks`` (an iterable of bytes) to a new blob file, fsynced. Returns (name, size)."""
    import os

    name = _new_blob_name()
    size = 0
    with open(_blob_dir / name, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return name, size


def _set_value(key: Any, new_value: Any) -> None:
    adopt = getattr(_local, "adopt", None)
    old = getattr(key, "_value_buffer", None)
    if adopt is not None and not new_value:
        _local.adopt = None
        name, size = adopt
    else:
        if isinstance(new_value, str):
            new_value = new_value.encode("utf-8")
        name, size = write_blob([new_value] if new_value else [])
    key._value_buffer = _Blob(name)
    key.contentsize = size
    if old is not None:
        old.close()


def _key_getstate(key: Any) -> dict[str, Any]:
    state = key.__dict__.copy()
    buf = state.pop("_value_buffer", None)
    state.pop("lock", None)
    state["_etl_kit_blob"] = buf.name if isinstance(buf, _Blob) and not buf.closed else None
    collect = getattr(_local, "collect", None)
    if collect is not None and state["_etl_kit_blob"]:
        collect.add(state["_etl_kit_blob"])
    return state


def _key_setstate(key: Any, state: dict[str, Any]) -> None:
    import shutil

    name = state.pop("_etl_kit_blob", None)
    key.__dict__.update(state)
    key.lock = threading.Lock()
    if name is None or not (_blob_dir / name).exists():
        if name is not None:
            log.error("S3 object %s/%s: its body file %s is missing; restored empty", key.bucket_name, key.name, name)
            key.contentsize = 0
        name = write_blob([])[0]
    elif not getattr(_local, "restoring", False):
        # a copy of a live key (copy.deepcopy): its own file, so that the two never share a body
        copy_name = _new_blob_name()
        shutil.copyfile(_blob_dir / name, _blob_dir / copy_name)
        name = copy_name
    key._value_buffer = _Blob(name)
    collect = getattr(_local, "collect", None)
    if collect is not None:
        collect.add(name)


def _complete_multipart(multipart: Any, body: Any) -> tuple[bytes, str, tuple[str, str, int] | None]:
    """moto's ``FakeMultipart.complete`` without holding the object in memory.

    The parts are appended to a new blob file chunk by chunk; the full-object checksum (if any) is
    computed incrementally. The blob is handed to the key ``put_object`` creates next (``_local.adopt``).
    """
    import codecs
    import hashlib

    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, MultipartChecksumBuilder

    algo = multipart.metadata.get("x-amz-checksum-algorithm")
    builder = MultipartChecksumBuilder(algo, multipart.metadata.get("x-amz-checksum-type"))
    full = _RunningChecksum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
    md5s = bytearray()
    parts = []
    last = None
    for pn, etag in body:
        part = multipart.parts.get(pn)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(codecs.decode(part.etag.replace('"', ""), "hex"))
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML

    def chunks() -> Any:
        for part in parts:
            if builder.checksum_type == "COMPOSITE":
                builder.addPart(part.value)  # one part at a time: bounded by the part size
            buf = part._value_buffer
            buf.seek(0)
            while True:
                block = buf.read(8 * 1024 * 1024)
                if not block:
                    break
                if full is not None:
                    full.update(block)
                yield block

    name, size = write_blob(chunks())
    if full is not None:
        checksum: tuple[str, str, int] | None = (builder.checksum_type, full.value(), 1)
    else:
        builder.part_count = len(parts)
        checksum = builder.build()
    _local.adopt = (name, size)
    etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return b"", etag, checksum


class _RunningChecksum:
    """The full-object checksums moto computes (``moto.s3.utils.compute_checksum``), fed in blocks."""

    def __init__(self, algorithm: str) -> None:
        import binascii
        import hashlib

        self.algorithm = algorithm
        self.crc = 0
        self.hash: Any = None
        self.crt: Any = None
        if algorithm == "SHA1":
            self.hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
            self.hash = hashlib.sha256(usedforsecurity=False)
        elif algorithm == "CRC64NVME":
            try:
                from awscrt import checksums

                self.crt = checksums.crc64nvme
            except ImportError:  # moto falls back to CRC32 too
                pass
        elif algorithm == "CRC32C":
            try:
                import crc32c

                self.crt = crc32c.crc32c
            except ImportError:
                pass
        self._crc32 = binascii.crc32

    def update(self, block: bytes) -> None:
        if self.hash is not None:
            self.hash.update(block)
        elif self.crt is not None:
            self.crc = self.crt(block, self.crc)
        else:
            self.crc = self._crc32(block, self.crc)

    def value(self) -> str:
        import base64

        if self.hash is not None:
            raw = self.hash.digest()
        else:
            raw = self.crc.to_bytes(8 if self.algorithm == "CRC64NVME" and self.crt is not None else 4, "big")
        return base64.b64encode(raw).decode()


def install_s3_blob_store(blob_dir: Any, stream_gets: bool = True) -> None:
    """Keep every S3 object body (and upload part) as a file under ``blob_dir`` instead of in memory.

    Pickling a key (a snapshot) then records only its file's name; a completed multipart upload is
    assembled on disk (moto 5.2.5 builds it in memory, three times over). With ``stream_gets`` (moto's
    server; not its in-process mock, which wants bytes) a GET of a large object streams from its file.
    """
    global _blob_dir
    import inspect

    from moto.s3.models import FakeKey, FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    blob_dir.mkdir(parents=True, exist_ok=True)
    _blob_dir = blob_dir
    if getattr(FakeKey, "_etl_kit_blobs", False):
        return
    FakeKey.value = property(_get_value, _set_value)  # type: ignore[method-assign,assignment]
    if stream_gets:
        S3Response.get_object = _streaming_get_object(  # type: ignore[method-assign]
            inspect.unwrap(S3Response.get_object))
    FakeKey.__getstate__ = _key_getstate  # type: ignore[method-assign,assignment]
    FakeKey.__setstate__ = _key_setstate  # type: ignore[method-assign,assignment]
    FakeMultipart.complete = _complete_multipart  # type: ignore[method-assign,assignment]
    original = S3Backend.complete_multipart_upload

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            left = getattr(_local, "adopt", None)
            _local.adopt = None
            if left is not None:  # put_object refused the upload: its assembled body is garbage
                with _blob_lock:
                    _dead_blobs.add(left[0])

    S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]
    FakeKey._etl_kit_blobs = True  # type: ignore[attr-defined]


def _rebuild_key_store(raw: dict[str, list[Any]]) -> Any:
    from moto.s3.utils import _VersionedKeyStore

    store = _VersionedKeyStore()
    for name, versions in raw.items():
        dict.__setitem__(store, name, versions)
    return store


def _reduce_key_store(store: Any) -> Any:
    # moto's key store pickles (and deep-copies) only the latest version of each key: keep them all
    return _rebuild_key_store, ({name: list(dict.__getitem__(store, name)) for name in list(dict.keys(store))},)


def reducers() -> dict[type, Callable[[Any], Any]]:
    """Pickle reducers for moto types whose default pickling loses state (used by the snapshots)."""
    from moto.s3.utils import _VersionedKeyStore

    return {_VersionedKeyStore: _reduce_key_store}


def take_dead_blobs() -> set[str]:
    """Names of blob files whose keys were disposed since the last call."""
    with _blob_lock:
        out = set(_dead_blobs)
        _dead_blobs.clear()
        return out


def backends_state() -> dict[str, dict[str, dict[str, Any]]]:
    """Every moto backend in use: ``{service: {account: {region: backend}}}`` (live objects, to pickle)."""
    from moto.core.base_backend import BackendDict

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for bd in list(BackendDict._instances):  # type: ignore[misc]
        if bd.service_name in ("moto_api",):
            continue
        accounts = {acct: dict(asb.items()) for acct, asb in list(bd.items())}
        if accounts:
            out.setdefault(bd.service_name, {}).update(accounts)
    return out


def restore_backends(state: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Put unpickled backends back where moto looks them up. Returns the services restored."""
    from moto.backends import get_backend

    done = []
    for service, accounts in state.items():
        try:
            bd = get_backend(service)  # type: ignore[call-overload]
        except Exception as exc:
            log.error("cannot restore moto service %s: %s", service, exc)
            continue
        for acct, regions in accounts.items():
            for region, backend in regions.items():
                bd[acct][region] = backend
        done.append(service)
    return done


class restoring:
    """Context manager: unpickled S3 keys adopt their snapshot's body files instead of copying them."""

    def __enter__(self) -> None:
        _local.restoring = True

    def __exit__(self, *exc: Any) -> None:
        _local.restoring = False


class collecting_blobs:
    """Context manager: the names of the blob files the keys pickled inside it refer to (``.names``)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __enter__(self) -> collecting_blobs:
        _local.collect = self.names
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.collect = None

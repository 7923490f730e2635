"""Lambda: deployed functions as the kit's runtime runs them, and the guard on SQS event source mappings.

Touches: ``moto.awslambda.models.lambda_backends[account][region].get_function``, ``LambdaFunction``'s
``code_bytes`` / ``environment_vars`` / ``handler`` / ``timeout`` / ``run_time`` / ``function_arn``
(and ``memory_size``, ``code_sha_256``, ``event_invoke_config`` when present),
``LambdaBackend.create_event_source_mapping`` / ``update_event_source_mapping`` (wrapped),
``list_event_source_mappings``, ``get_event_source_mapping``, and the SQS side of a mapping:
``moto.sqs.models.Queue.lambda_event_source_mappings``, ``sqs_backends[...].queues``.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from etl_localcloud.motohooks.probe import backend_lacks

__all__ = ["lambda_function", "install_event_source_mapping_guard", "contract"]

_hook_lock = threading.Lock()
_esm_guard_installed = False


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction, lambda_backends
    from moto.sqs.models import Queue

    problems = backend_lacks(lambda_backends, "LambdaBackend", "get_function")
    src = inspect.getsource(LambdaFunction)
    for attr in ("code_bytes", "environment_vars", "handler", "timeout", "run_time", "function_arn"):
        if f"self.{attr}" not in src:
            problems.append(f"LambdaFunction lacks {attr}")
    for meth in ("create_event_source_mapping", "update_event_source_mapping", "list_event_source_mappings"):
        if not hasattr(LambdaBackend, meth):
            problems.append(f"LambdaBackend lacks {meth}")
    if "self.lambda_event_source_mappings" not in inspect.getsource(Queue):
        problems.append("sqs Queue lacks lambda_event_source_mappings")
    return problems


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
        "role": str(getattr(fn, "role", "") or ""),
    }



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

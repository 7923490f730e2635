"""Requests checked against the AWS service model before a provider sees them, as AWS's front end does.

A JSON-protocol request names its operation in ``X-Amz-Target``; botocore's service model (the
same one boto3 builds its clients from) says which operations exist and what each input holds.
AWS answers a malformed request with a 400 and its error shape: ``UnknownOperationException``,
``SerializationException`` (a body that is not JSON, or a value of the wrong type) and
``ValidationException`` ("1 validation error detected: ..." for missing members and values out of
their length or range). Checks that boto3 already makes on the client are repeated here for callers
that do not use boto3; patterns are left to the providers.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["RequestError", "service_model", "check_request"]


class RequestError(Exception):
    """A malformed request: AWS's error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@functools.cache
def service_model(service: str, target_prefix: str) -> Any:
    """botocore's model of ``service`` when its JSON target prefix is ``target_prefix``, else None."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return None
    return model if model.metadata.get("targetPrefix") == target_prefix else None


def _path(parent: str, name: str) -> str:
    member = name[:1].lower() + name[1:]
    return f"{parent}.{member}" if parent else member


def _check(shape: Any, value: Any, where: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    expected = {"structure": dict, "map": dict, "list": list, "string": str, "blob": str, "boolean": bool}
    if kind in expected and not isinstance(value, expected[kind]):
        raise RequestError("SerializationException", f"Unexpected value type for '{where or 'body'}': "
                                                     f"expected {kind}, got {type(value).__name__}")
    if kind in ("integer", "long") and (isinstance(value, bool) or not isinstance(value, int)):
        raise RequestError("SerializationException", f"Unexpected value type for '{where}': expected {kind}")
    if kind in ("float", "double", "timestamp") and (isinstance(value, bool) or not isinstance(value, (int, float))) \
            and not (kind == "timestamp" and isinstance(value, str)):
        raise RequestError("SerializationException", f"Unexpected value type for '{where}': expected {kind}")
    size = len(value) if kind in ("string", "list", "map", "blob") else None
    number = value if kind in ("integer", "long", "float", "double") else None
    for bound, bad, what in (("min", lambda b: size is not None and size < b, "length greater than or equal to"),
                             ("max", lambda b: size is not None and size > b, "length less than or equal to"),
                             ("min", lambda b: number is not None and number < b, "value greater than or equal to"),
                             ("max", lambda b: number is not None and number > b, "value less than or equal to")):
        if bound in meta and bad(meta[bound]):
            errors.append(f"Value at '{where}' failed to satisfy constraint: Member must have {what} {meta[bound]}")
    if kind == "string" and "enum" in meta and value not in meta["enum"]:
        errors.append(f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum value "
                      f"set: [{', '.join(meta['enum'])}]")
    if kind == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(f"Value null at '{_path(where, name)}' failed to satisfy constraint: Member must not "
                              "be null")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _path(where, name), errors)
    elif kind == "list":
        for i, item in enumerate(value):
            _check(shape.member, item, f"{where}.{i + 1}.member", errors)
    elif kind == "map":
        for k, item in value.items():
            _check(shape.value, item, f"{where}.{k}", errors)


def check_request(model: Any, operation: str, body: Any) -> None:
    """Raise :class:`RequestError` when ``body`` is not a valid input of ``operation`` (AWS's 400s)."""
    if operation not in model.operation_names:
        raise RequestError("UnknownOperationException", f"Unknown operation {operation} for service "
                                                         f"{model.metadata.get('serviceId', model.service_name)}.")
    if not isinstance(body, dict):
        raise RequestError("SerializationException", "The request body must be a JSON object.")
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return
    errors: list[str] = []
    _check(shape, body, "", errors)
    if errors:
        n = len(errors)
        raise RequestError("ValidationException",
                           f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(errors))

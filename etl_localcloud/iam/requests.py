"""A signed HTTP request read as IAM reads it: who signed it, which operation it is, its parameters.

The operation comes from botocore's service model, the one boto3 builds its clients from: the
``X-Amz-Target`` header (JSON protocol), the ``Action`` parameter (query / EC2 protocols), or the
method, path and query string matched against each operation's ``requestUri`` (REST protocols), the
most specific match winning (required query members present count). Which actions and resources the
operation is authorised as is :mod:`etl_localcloud.iam.resources`' business.
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = ["Signed", "Operation", "signer", "operation"]

# signing name -> botocore service name, where they differ
_SERVICES = {"monitoring": "cloudwatch", "email": "ses"}
_CRED = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]*)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Signed:
    """The signature's claims: access key, region, service (signing name) and session token."""

    access_key_id: str
    region: str
    service: str
    token: str


@dataclass
class Operation:
    """The operation a request calls, with every input parameter the request carries."""

    service: str  # botocore service name
    name: str  # e.g. "GetObject"; "" when the model has no such operation
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def signer(environ: dict[str, Any]) -> Signed | None:
    """Who signed the request (SigV4 header or presigned query), or None for an unsigned request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN", "")
    m = _CRED.search(auth)
    if m is None:
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        cred = query.get("X-Amz-Credential", "")
        parts = cred.split("/")
        if len(parts) < 5:
            return None
        return Signed(parts[0], parts[2], parts[3], query.get("X-Amz-Security-Token", token))
    return Signed(m.group(1), m.group(2), m.group(3), token)


@functools.cache
def _model(service: str) -> Any:
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    try:
        return botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return None


@dataclass(frozen=True)
class _Route:
    name: str
    method: str
    path: re.Pattern[str]
    literals: tuple[tuple[str, str | None], ...]  # query keys the URI fixes (value None: presence only)
    required_query: tuple[str, ...]  # required members carried in the query string
    required_headers: tuple[str, ...]  # required members carried in headers (lower case)
    labels: dict[str, str]  # regex group -> member name


def _route(name: str, op: Any) -> _Route:
    uri = op.http.get("requestUri", "/")
    path, _, query = uri.partition("?")
    labels: dict[str, str] = {}
    rx, pos = "", 0
    for m in re.finditer(r"\{([^}]+)\}", path):
        group = f"g{len(labels)}"
        labels[group] = m.group(1).rstrip("+")
        rx += re.escape(path[pos:m.start()]) + (f"(?P<{group}>.+)" if m.group(1).endswith("+")
                                                 else f"(?P<{group}>[^/]+)")
        pos = m.end()
    rx += re.escape(path[pos:])
    literals = tuple((k, v if "=" in part else None) for part in query.split("&") if part
                     for k, _, v in [part.partition("=")] if k != "x-id")
    shape = op.input_shape
    required: dict[str, tuple[str, ...]] = {"querystring": (), "header": ()}
    if shape is not None:
        for where in required:
            required[where] = tuple(m.serialization.get("name", n) for n, m in shape.members.items()
                                    if m.serialization.get("location") == where and n in shape.required_members)
    return _Route(name, op.http.get("method", "POST"), re.compile(rx.rstrip("/") + "/?"), literals,
                  required["querystring"], tuple(h.lower() for h in required["header"]), labels)


@functools.cache
def _routes(service: str) -> tuple[_Route, ...]:
    model = _model(service)
    if model is None:
        return ()
    return tuple(_route(n, model.operation_model(n)) for n in model.operation_names)


def _rest(service: str, method: str, path: str, query: dict[str, str],
          headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    best: tuple[int, str, dict[str, str]] = (-1, "", {})
    for r in _routes(service):
        if r.method != method:
            continue
        m = r.path.fullmatch(path)
        if m is None:
            continue
        if any(k not in query or (v is not None and query[k] != v) for k, v in r.literals):
            continue
        if any(k not in query for k in r.required_query) or any(h not in headers for h in r.required_headers):
            continue
        score = len(r.literals) + len(r.required_query) + len(r.required_headers)
        if score > best[0]:
            best = (score, r.name, {r.labels[g]: unquote(v) for g, v in m.groupdict().items()})
    return best[1], best[2]


def _body(environ: dict[str, Any]) -> bytes:
    """Read the body and put it back for whoever handles the request next."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    data = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    return {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}


def operation(environ: dict[str, Any], signing_name: str) -> Operation:
    """The operation ``environ`` calls on the service it is signed for."""
    service = _SERVICES.get(signing_name, signing_name)
    model = _model(service)
    protocol = model.protocol if model is not None else ""
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    headers = _headers(environ)
    target = headers.get("x-amz-target", "")
    if target and "." in target:
        raw = _body(environ)
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            params = {}
        return Operation(service, target.split(".", 1)[1], protocol or "json",
                         params if isinstance(params, dict) else {}, headers)
    if protocol in ("query", "ec2"):
        params = dict(query)
        if "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params.update(parse_qsl(_body(environ).decode(errors="replace"), keep_blank_values=True))
        return Operation(service, params.get("Action", ""), protocol, params, headers)
    method = environ.get("REQUEST_METHOD", "GET")
    name, labels = _rest(service, method, environ.get("PATH_INFO", "/"), query, headers)
    params = {**query, **labels}
    if service == "s3" and name == "DeleteObjects":
        params["Delete"] = _body(environ)
    elif protocol == "rest-json" and method in ("POST", "PUT") and "json" in environ.get("CONTENT_TYPE", "json"):
        try:
            body = json.loads(_body(environ) or b"{}")
            if isinstance(body, dict):
                params = {**body, **params}
        except ValueError:
            pass
    return Operation(service, name, protocol, params, headers)

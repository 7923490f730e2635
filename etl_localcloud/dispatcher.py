"""The local cloud's front door: one WSGI app in front of moto's server.

Requests for operations a kit provider implements (chosen by ``X-Amz-Target`` for
JSON-protocol services, or by method and path for REST ones) go to that provider;
everything else goes to moto unchanged. This is the only routing table.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["ServiceError", "Provider", "RestRoute", "Dispatcher", "json_default", "INTERNAL_MESSAGE"]

log = logging.getLogger("etl_localcloud")

# What AWS says for an error of its own; the details go to the daemon log, never to the caller.
INTERNAL_MESSAGE = ("The request processing has failed because of an unknown error, exception or failure "
                    "(local cloud: see daemon.log in the state dir).")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ServiceError(Exception):
    """An AWS-shaped error a provider returns: the same codes AWS uses."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status



def json_default(o: Any) -> Any:
    """JSON-protocol encoding: timestamps as epoch seconds, decimals as numbers."""
    if isinstance(o, _dt.datetime):
        if o.tzinfo is None:
            o = o.replace(tzinfo=_dt.UTC)
        return o.timestamp()
    if isinstance(o, _dt.date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, (bytes, bytearray)):
        import base64

        return base64.b64encode(o).decode()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass
class RestRoute:
    """A REST operation served by a provider: method + path regex -> handler(match, body, query)."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[[re.Match[str], bytes, dict[str, str], dict[str, str]], tuple[int, dict[str, str], bytes]]


@dataclass
class Provider:
    """Base class for the kit's providers.

    Subclasses set ``name`` and ``target_prefix`` (e.g. ``"AWSGlue"``), and either
    fill ``operations`` (operation name -> ``handler(body: dict) -> dict``) for JSON
    services or ``rest_routes`` for REST ones. ``health()`` reports the provider's
    state for ``etl-kit local status``; ``close()`` stops its background work.
    """

    name: str = "provider"
    target_prefix: str = ""
    operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    rest_routes: list[RestRoute] = field(default_factory=list)

    def health(self) -> dict[str, Any]:
        return {"ok": True}

    def close(self) -> None:
        """Stop background work (threads, subprocesses)."""


class Dispatcher:
    """WSGI app routing provider operations to providers and the rest to moto."""

    HEALTH_PATH = "/_etl_kit/health"
    IAM_PATH = "/_etl_kit/iam"  # POST {"enforce": bool}: switch IAM enforcement while running

    def __init__(self, moto_app: WsgiApp, providers: list[Provider], info: dict[str, Any] | None = None,
                 iam: Any = None) -> None:
        self.moto_app = moto_app
        self.iam = iam  # etl_localcloud.iam.Enforcer: authorises session-signed requests before any routing
        self.providers = providers
        self.info = info or {}
        from etl_localcloud.validation import service_model

        self._json_ops: dict[tuple[str, str], Provider] = {}
        self._models: dict[str, Any] = {}  # target prefix -> the AWS service model its requests are checked with
        for p in providers:
            for op in p.operations:
                self._json_ops[(p.target_prefix, op)] = p
            if p.target_prefix and p.operations:
                model = service_model(p.name, p.target_prefix)
                if model is not None:
                    self._models[p.target_prefix] = model
        self.started = _dt.datetime.now(_dt.UTC)
        self.requests = 0
        self._lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return environ["wsgi.input"].read(length) if length else b""

    @staticmethod
    def _respond(start_response: Callable[..., Any], status: int, headers: dict[str, str], body: bytes) -> list[bytes]:
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
                  403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
                  500: "Internal Server Error"}
        hdrs = [(k, v) for k, v in headers.items()]
        hdrs.append(("Content-Length", str(len(body))))
        start_response(f"{status} {reason.get(status, 'Status')}", hdrs)
        return [body]

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": True,
            "started": self.started.isoformat(),
            "uptime_seconds": round((_dt.datetime.now(_dt.UTC) - self.started).total_seconds(), 1),
            "requests": self.requests,
            "providers": {},
            **self.info,
        }
        if self.iam is not None:
            out["iam"] = self.iam.health()
        for p in self.providers:
            try:
                h = p.health()
            except Exception as exc:  # a broken provider must not break status
                h = {"ok": False, "error": str(exc)}
            out["providers"][p.name] = h
            out["ok"] = out["ok"] and bool(h.get("ok", False))
        return out

    # -- WSGI ----------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.requests += 1
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == self.HEALTH_PATH:
            body = json.dumps(self.health(), default=json_default).encode()
            return self._respond(start_response, 200, {"Content-Type": "application/json"}, body)

        if path == self.IAM_PATH and method == "POST" and self.iam is not None:
            return self._switch_iam(environ, start_response)
        if self.iam is not None:
            refused = self.iam.refusal(environ)
            if refused is not None:
                return self._respond(start_response, *refused)
        if environ.get("HTTP_X_ETL_KIT_DIRECT"):
            # A provider reading moto's own state (CloudContext.moto_client): no provider in between.
            return self.moto_app(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target and "." in target:
            prefix, op = target.split(".", 1)
            provider = self._json_ops.get((prefix, op))
            if provider is not None:
                return self._json_call(provider, op, environ, start_response)
            model = self._models.get(prefix)
            if model is not None and op not in model.operation_names:
                return self._json_error(start_response, 400, "UnknownOperationException",
                                        f"Unknown operation {op} for service {prefix}.")
        for p in self.providers:
            for route in p.rest_routes:
                if route.method == method:
                    m = route.pattern.fullmatch(path)
                    if m:
                        return self._rest_call(route, m, environ, start_response)
        return self.moto_app(environ, start_response)

    def _switch_iam(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            wanted = json.loads(self._read_body(environ) or b"{}").get("enforce")
        except (ValueError, AttributeError):
            wanted = None
        if not isinstance(wanted, bool):
            return self._json_error(start_response, 400, "ValidationException", 'expected {"enforce": true|false}')
        self.iam.switch(wanted)
        self.info["iam_enforcement"] = wanted
        body = json.dumps(self.iam.health()).encode()
        return self._respond(start_response, 200, {"Content-Type": "application/json"}, body)

    def _json_error(self, start_response: Any, status: int, code: str, message: str) -> list[bytes]:
        payload = json.dumps({"__type": code, "message": message, "Message": message}).encode()
        return self._respond(start_response, status, {"Content-Type": "application/x-amz-json-1.1",
                                                      "x-amzn-ErrorType": code}, payload)

    def _json_call(self, provider: Provider, op: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        from etl_localcloud.validation import RequestError, check_request

        ctype = {"Content-Type": "application/x-amz-json-1.1"}
        try:
            raw = self._read_body(environ)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:  # also bytes that are not UTF-8
                raise RequestError("SerializationException", "The request body is not valid JSON.") from None
            model = self._models.get(provider.target_prefix)
            if model is not None:
                check_request(model, op, body)
            elif not isinstance(body, dict):
                raise RequestError("SerializationException", "The request body must be a JSON object.")
            result = provider.operations[op](body)
            return self._respond(start_response, 200, ctype, json.dumps(result, default=json_default).encode())
        except RequestError as err:
            return self._json_error(start_response, 400, err.code, err.message)
        except ServiceError as err:
            return self._json_error(start_response, err.status, err.code, err.message)
        except Exception:  # the daemon keeps serving whatever a provider does; details only in its log
            log.error("provider %s failed on %s: %s", provider.name, op, traceback.format_exc())
            return self._json_error(start_response, 500, "InternalFailure", INTERNAL_MESSAGE)

    def _rest_call(self, route: RestRoute, m: re.Match[str], environ: dict[str, Any],
                   start_response: Any) -> list[bytes]:
        from urllib.parse import parse_qsl

        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        try:
            status, hdrs, body = route.handler(m, self._read_body(environ), query, headers)
            return self._respond(start_response, status, hdrs, body)
        except ServiceError as err:
            payload = json.dumps({"Type": "User", "Message": err.message, "message": err.message}).encode()
            return self._respond(start_response, err.status,
                                 {"Content-Type": "application/json", "x-amzn-ErrorType": err.code}, payload)
        except Exception:
            log.error("REST provider failed on %s: %s", route.pattern.pattern, traceback.format_exc())
            payload = json.dumps({"Type": "Service", "Message": INTERNAL_MESSAGE, "message": INTERNAL_MESSAGE}).encode()
            return self._respond(start_response, 500,
                                 {"Content-Type": "application/json", "x-amzn-ErrorType": "ServiceException"}, payload)

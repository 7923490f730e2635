"""moto's server as a WSGI app, and its backends as a whole (reset, snapshot, restore).

Touches: ``moto.moto_server.werkzeug_app.DomainDispatcherApplication`` / ``create_backend_app``,
``moto.moto_api._internal.moto_api_backend.reset``, ``moto.core.base_backend.BackendDict._instances``
(every backend dict moto made) and ``moto.backends.get_backend``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["make_moto_app", "reset", "backends_state", "restore_backends", "contract"]

log = logging.getLogger("etl_localcloud.moto")


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: F401

    problems = []
    if not isinstance(getattr(BackendDict, "_instances", None), list):
        problems.append("BackendDict lacks the _instances list")
    if not callable(get_backend):
        problems.append("moto.backends.get_backend is gone")
    return problems


def make_moto_app() -> Any:
    """moto's server as a WSGI application (what ``moto_server`` serves)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def reset() -> None:
    """Reset every moto backend (tests)."""
    from moto.moto_api import _internal

    _internal.moto_api_backend.reset()


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

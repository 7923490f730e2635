"""The local cloud: moto's server plus the providers and an embedded PostgreSQL, on 127.0.0.1.

Started from a :class:`~etl_localcloud.spec.CloudSpec` (``up(spec)``); it owns its identity
(:mod:`etl_localcloud.identity`) and writes where it serves into its state dir. The names below load on
first use, so that a program run as ``python -m etl_localcloud.<module>`` (a Lambda invocation) pays only
for what it imports; the server's dependencies (the ``local`` extra) load in the daemon process only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etl_localcloud.errors import CloudError
    from etl_localcloud.identity import ACCOUNT_ID, ADMIN, CloudAddress, Credentials, read_address
    from etl_localcloud.manager import down, health, missing_requirements, repair, status, up, warehouse_info
    from etl_localcloud.spec import CloudSpec, free_port

_HOME = {
    "CloudError": "errors",
    "ACCOUNT_ID": "identity", "ADMIN": "identity", "CloudAddress": "identity", "Credentials": "identity",
    "read_address": "identity",
    "down": "manager", "health": "manager", "missing_requirements": "manager", "repair": "manager",
    "status": "manager", "up": "manager", "warehouse_info": "manager",
    "CloudSpec": "spec", "free_port": "spec",
}

__all__ = ["ACCOUNT_ID", "ADMIN", "CloudAddress", "CloudError", "CloudSpec", "Credentials", "down", "free_port",
           "health", "missing_requirements", "read_address", "repair", "status", "up", "warehouse_info"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'etl_localcloud' has no attribute {name!r}")
    return getattr(importlib.import_module(f"etl_localcloud.{_HOME[name]}"), name)

"""Glue connections where moto's API falls short (moto 5.2.5 has no DeleteConnection).

Touches: ``moto.glue.models.glue_backends[account][region].connections`` (a dict of records with
``connection_input``).
"""

from __future__ import annotations

from typing import Any

from etl_localcloud.motohooks.probe import SAMPLE_ACCOUNT, SAMPLE_REGION

__all__ = ["glue_delete_connection", "glue_connection_input", "contract"]


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.glue.models import glue_backends

    if not isinstance(getattr(glue_backends[SAMPLE_ACCOUNT][SAMPLE_REGION], "connections", None), dict):
        return ["GlueBackend lacks the connections dict"]
    return []


def glue_delete_connection(account_id: str, region: str, name: str) -> None:
    """Delete a Glue connection record (moto 5.2.5 has no DeleteConnection). ``KeyError`` if absent."""
    from moto.glue.models import glue_backends

    del glue_backends[account_id][region].connections[name]


def glue_connection_input(account_id: str, region: str, name: str) -> dict[str, Any]:
    """The ConnectionInput a Glue connection was created with. ``KeyError`` if absent."""
    from moto.glue.models import glue_backends

    return dict(glue_backends[account_id][region].connections[name].connection_input)

"""Provider package (being built): see etl_kit/localcloud/daemon.py PROVIDER_FACTORIES."""

from __future__ import annotations

from etl_kit.localcloud.context import CloudContext
from etl_kit.localcloud.dispatcher import Provider


def build(ctx: CloudContext) -> list[Provider]:
    return []

"""Providers 6 and 7: ``redshift-serverless`` and the Redshift Data API on the embedded PostgreSQL.

See :mod:`.serverless` (namespaces, workgroups), :mod:`.data_api` (statements),
:mod:`.sqltranslate` (Redshift SQL -> PostgreSQL) and :mod:`.copy` (COPY from S3).
"""

from __future__ import annotations

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider

__all__ = ["build"]


def build(ctx: CloudContext) -> list[Provider]:
    """Both providers, sharing one store of namespaces and workgroups."""
    from etl_localcloud.redshift.data_api import DataApiProvider
    from etl_localcloud.redshift.serverless import ServerlessProvider, ServerlessStore

    store = ServerlessStore(ctx.state_dir)
    return [ServerlessProvider(ctx, store), DataApiProvider(ctx, store)]

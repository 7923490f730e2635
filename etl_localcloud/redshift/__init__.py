"""Providers 6 and 7: ``redshift-serverless`` and the Redshift Data API on the embedded PostgreSQL.

Each service as moto lays one out: a model (:mod:`.serverless_models`, :mod:`.data_models`), thin
handlers (:mod:`.serverless`, :mod:`.data_api`) and errors named after AWS's codes (:mod:`.exceptions`);
:mod:`.pgadmin` is what both do to PostgreSQL as its superuser; :mod:`.sqltranslate` turns Redshift SQL
into PostgreSQL and :mod:`.copy` runs COPY from S3.
"""

from __future__ import annotations

from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider

__all__ = ["build"]


def build(ctx: CloudContext) -> list[Provider]:
    """Both providers, sharing one store of namespaces and workgroups."""
    from etl_localcloud.redshift.data_api import DataApiProvider
    from etl_localcloud.redshift.serverless import ServerlessProvider
    from etl_localcloud.redshift.serverless_models import ServerlessStore

    store = ServerlessStore(ctx.state_dir)
    return [ServerlessProvider(ctx, store), DataApiProvider(ctx, store)]

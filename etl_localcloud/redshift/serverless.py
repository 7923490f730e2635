"""Provider: ``redshift-serverless`` namespaces and workgroups (moto has no backend for it).

Thin handlers, as moto's ``responses.py``: each reads the request's members, calls
:class:`~.serverless_models.ServerlessBackend` and shapes AWS's response. Errors are the
classes of :mod:`.exceptions`; lists page as :data:`~etl_localcloud.core.paging.REDSHIFT_SERVERLESS`.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.paging import REDSHIFT_SERVERLESS
from etl_localcloud.dispatcher import Provider
from etl_localcloud.redshift.serverless_models import ServerlessBackend, ServerlessStore

__all__ = ["ServerlessProvider"]

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ServerlessProvider(Provider):
    """``RedshiftServerless.*`` operations on :class:`ServerlessBackend`."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore) -> None:
        super().__init__(name="redshift-serverless", target_prefix="RedshiftServerless")
        self.ctx = ctx
        self.store = store
        self.backend = ServerlessBackend(ctx, store)
        operations: dict[str, Handler] = {
            "CreateNamespace": self.create_namespace,
            "GetNamespace": self.get_namespace,
            "ListNamespaces": self.list_namespaces,
            "UpdateNamespace": self.update_namespace,
            "DeleteNamespace": self.delete_namespace,
            "CreateWorkgroup": self.create_workgroup,
            "GetWorkgroup": self.get_workgroup,
            "ListWorkgroups": self.list_workgroups,
            "UpdateWorkgroup": self.update_workgroup,
            "DeleteWorkgroup": self.delete_workgroup,
            "GetCredentials": self.get_credentials,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }
        self.operations = {k: self._after_restore(v) for k, v in operations.items()}

    def _after_restore(self, fn: Handler) -> Handler:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            self.store.ready.wait(30)
            return fn(body)
        return op

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """After a restart: re-create what lives outside the state directory (moto's secrets), in the background.

        The daemon calls ``start`` before it serves requests, and the secrets are written
        through the daemon's own endpoint, so this must not block.
        """
        if self.store.namespaces:
            threading.Thread(target=self.backend.restore, name="redshift-serverless-restore", daemon=True).start()
        else:
            self.store.ready.set()

    def health(self) -> dict[str, Any]:
        with self.store.lock:
            return {"ok": True, "namespaces": len(self.store.namespaces), "workgroups": len(self.store.workgroups)}

    # -- shapes ------------------------------------------------------------------------
    @staticmethod
    def _ns_out(ns: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ns.items() if v is not None}

    def _wg_out(self, wg: dict[str, Any]) -> dict[str, Any]:
        self.backend.settle(wg)
        out = {k: v for k, v in wg.items() if v is not None and not k.startswith("_")}
        pg = self.ctx.postgres
        port = pg.port if pg else 5439
        out["endpoint"] = {"address": pg.host if pg else "127.0.0.1", "port": port, "vpcEndpoints": []}
        out["port"] = port
        return out

    def _list(self, records: dict[str, dict[str, Any]], shape: Callable[[dict[str, Any]], dict[str, Any]],
              key: str, body: dict[str, Any]) -> dict[str, Any]:
        """One page of ``records`` (oldest first) under ``key``."""
        with self.store.lock:
            items = [shape(r) for r in sorted(records.values(), key=lambda r: r["creationDate"])]
        return REDSHIFT_SERVERLESS.response(items, body, key)

    # -- namespaces --------------------------------------------------------------------
    def create_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"namespace": self._ns_out(self.backend.create_namespace(body))}

    def get_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"namespace": self._ns_out(self.store.namespace(body.get("namespaceName")))}

    def list_namespaces(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._list(self.store.namespaces, self._ns_out, "namespaces", body)

    def update_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"namespace": self._ns_out(self.backend.update_namespace(body))}

    def delete_namespace(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = self.backend.delete_namespace(body.get("namespaceName"))
        return {"namespace": {**self._ns_out(ns), "status": "DELETING"}}

    # -- workgroups --------------------------------------------------------------------
    def create_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"workgroup": self._wg_out(self.backend.create_workgroup(body))}

    def get_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"workgroup": self._wg_out(self.store.workgroup(body.get("workgroupName")))}

    def list_workgroups(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._list(self.store.workgroups, self._wg_out, "workgroups", body)

    def update_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            return {"workgroup": self._wg_out(self.backend.update_workgroup(body))}

    def delete_workgroup(self, body: dict[str, Any]) -> dict[str, Any]:
        out = self._wg_out(self.backend.delete_workgroup(body.get("workgroupName")))
        return {"workgroup": {**out, "status": "DELETING"}}

    def get_credentials(self, body: dict[str, Any]) -> dict[str, Any]:
        """Temporary credentials: a PostgreSQL login role ``IAMR:local`` valid for ``durationSeconds``."""
        user, pw, expires = self.backend.get_credentials(body.get("workgroupName"), body.get("durationSeconds"))
        return {"dbUser": user, "dbPassword": pw, "expiration": expires,
                "nextRefreshTime": expires - _dt.timedelta(seconds=60)}

    # -- tags --------------------------------------------------------------------------
    def tag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        self.backend.tag_resource(body.get("resourceArn"), body.get("tags") or [])
        return {}

    def untag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        self.backend.untag_resource(body.get("resourceArn"), body.get("tagKeys") or [])
        return {}

    def list_tags_for_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = self.backend.tags_of(body.get("resourceArn"))
        return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}

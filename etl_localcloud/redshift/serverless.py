"""Provider: ``redshift-serverless`` namespaces and workgroups (moto has no backend for it).

Thin handlers, as moto's ``responses.py``: each reads the request's members, calls
:class:`~.serverless_models.ServerlessBackend` and shapes AWS's response. Errors are the
classes of :mod:`.exceptions`; lists page as :data:`~etl_localcloud.core.paging.REDSHIFT_SERVERLESS`.
A workgroup's endpoint is the front of :mod:`etl_localcloud.redshift.front` (one port for every
workgroup, kept across restarts), which speaks to Redshift drivers and relays to the embedded PostgreSQL.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.paging import REDSHIFT_SERVERLESS
from etl_localcloud.dispatcher import Provider
from etl_localcloud.iam.resources import register_resolver
from etl_localcloud.redshift.serverless_models import ServerlessBackend, ServerlessStore

__all__ = ["ServerlessProvider"]

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Kind:
    """How the handlers of one kind of resource read its name and shape its record."""

    key: str  # the response member: "namespace" / "workgroup"
    name_member: str  # the request member naming it
    records: Callable[[], dict[str, dict[str, Any]]]
    find: Callable[[str | None], dict[str, Any]]
    shape: Callable[[dict[str, Any]], dict[str, Any]]


class ServerlessProvider(Provider):
    """``RedshiftServerless.*`` operations on :class:`ServerlessBackend`."""

    def __init__(self, ctx: CloudContext, store: ServerlessStore) -> None:
        super().__init__(name="redshift-serverless", target_prefix="RedshiftServerless")
        self.ctx = ctx
        self.store = store
        self.backend = backend = ServerlessBackend(ctx, store)
        operations: dict[str, Handler] = {"GetCredentials": self.get_credentials, "TagResource": self.tag_resource,
                                          "UntagResource": self.untag_resource,
                                          "ListTagsForResource": self.list_tags_for_resource}
        for kind, create, update, delete in (
                (_Kind("namespace", "namespaceName", lambda: store.namespaces, store.namespace, self._ns_out),
                 backend.create_namespace, backend.update_namespace, backend.delete_namespace),
                (_Kind("workgroup", "workgroupName", lambda: store.workgroups, store.workgroup, self._wg_out),
                 backend.create_workgroup, backend.update_workgroup, backend.delete_workgroup)):
            noun = kind.key.capitalize()
            operations.update({f"Create{noun}": self._one(kind, create), f"Update{noun}": self._one(kind, update),
                               f"Get{noun}": self._get(kind), f"List{noun}s": self._list(kind),
                               f"Delete{noun}": self._delete(kind, delete)})
        self.operations = {k: self._after_restore(v) for k, v in operations.items()}
        # IAM checks Data API and credential calls on the workgroup's ARN (its id is generated)
        register_resolver("redshift-serverless:workgroup", self._workgroup_arn)

    def _workgroup_arn(self, account: str, region: str, name: str) -> str | None:
        wg = self.store.workgroups.get(name)
        return str(wg["workgroupArn"]) if wg else None

    def _after_restore(self, fn: Handler) -> Handler:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            self.store.ready.wait(30)
            return fn(body)
        return op

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Open the workgroup endpoint; after a restart re-create what lives outside the state directory.

        The daemon calls ``start`` before it serves requests, and the secrets are written
        through the daemon's own endpoint, so restoring them happens in the background.
        """
        self.backend.start_front()
        if self.store.namespaces:
            threading.Thread(target=self.backend.restore, name="redshift-serverless-restore", daemon=True).start()
        else:
            self.store.ready.set()

    def close(self) -> None:
        self.backend.close_front()

    def health(self) -> dict[str, Any]:
        with self.store.lock:
            out: dict[str, Any] = {"ok": True, "namespaces": len(self.store.namespaces),
                                   "workgroups": len(self.store.workgroups)}
        front = self.backend.front
        if front is not None:
            out["endpoint"] = f"{front.host}:{front.port}"
            if front.tls_files is not None:
                out["trust_bundle"] = str(front.tls_files.trust_bundle)
        return out

    # -- shapes ------------------------------------------------------------------------
    @staticmethod
    def _ns_out(ns: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ns.items() if v is not None}

    def _wg_out(self, wg: dict[str, Any]) -> dict[str, Any]:
        self.backend.settle(wg)
        out = {k: v for k, v in wg.items() if v is not None and not k.startswith("_")}
        address, port = self.backend.endpoint()
        out["endpoint"] = {"address": address, "port": port, "vpcEndpoints": []}
        out["port"] = port
        return out

    # -- namespaces and workgroups -------------------------------------------------------
    def _one(self, kind: _Kind, change: Handler) -> Handler:
        """Create / Update: the backend changes the record; the answer is its shape."""
        def op(body: dict[str, Any]) -> dict[str, Any]:
            with self.store.lock:
                return {kind.key: kind.shape(change(body))}
        return op

    def _get(self, kind: _Kind) -> Handler:
        def op(body: dict[str, Any]) -> dict[str, Any]:
            with self.store.lock:
                return {kind.key: kind.shape(kind.find(body.get(kind.name_member)))}
        return op

    def _list(self, kind: _Kind) -> Handler:
        """One page of the records (oldest first), as :data:`REDSHIFT_SERVERLESS` pages."""
        def op(body: dict[str, Any]) -> dict[str, Any]:
            with self.store.lock:
                items = [kind.shape(r) for r in sorted(kind.records().values(), key=lambda r: r["creationDate"])]
            return REDSHIFT_SERVERLESS.response(items, body, kind.key + "s")
        return op

    def _delete(self, kind: _Kind, delete: Callable[[str | None], dict[str, Any]]) -> Handler:
        """Delete (outside the store's lock: a namespace's database is dropped after): the last record, DELETING."""
        def op(body: dict[str, Any]) -> dict[str, Any]:
            return {kind.key: {**kind.shape(delete(body.get(kind.name_member))), "status": "DELETING"}}
        return op

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

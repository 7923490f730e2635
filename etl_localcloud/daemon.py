"""The local cloud daemon: moto's server, the kit's providers and the embedded PostgreSQL.

Started by ``etl-kit local up`` (see :mod:`etl_localcloud.manager`) as
``python -m etl_localcloud.daemon --state-dir DIR --host HOST --port PORT --region REGION``.

Its state persists under the state dir (:mod:`etl_localcloud.persistence`): it is restored
before the first request is served and snapshotted while it serves and when it stops. A watchdog
(:mod:`etl_localcloud.supervisor`) restarts the embedded PostgreSQL when it dies;
``POST /_etl_kit/repair`` (what ``etl-kit local up`` calls when a part is down) restarts it at once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from etl_localcloud import motohooks
from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Dispatcher, Provider, WsgiApp
from etl_localcloud.iam import Enforcer
from etl_localcloud.identity import ACCOUNT_ID, ADMIN, CloudAddress
from etl_localcloud.motohooks import iam as moto_iam
from etl_localcloud.persistence import GatedApp, Persister, PersistingApp, prepare_state_dir
from etl_localcloud.runtime_envs import RuntimeTable
from etl_localcloud.spec import ERROR_FILE, REPAIR_PATH, STATE_FILE, CloudSpec

__all__ = ["PROVIDER_FACTORIES", "build_app", "main"]

log = logging.getLogger("etl_localcloud")

# "module:callable" -> callable(ctx) returning a Provider or a list of them.
PROVIDER_FACTORIES = (
    "etl_localcloud.lambda_runtime:build",
    "etl_localcloud.glue:build",
    "etl_localcloud.redshift:build",
)


class _StateHealth(Provider):
    """The persister's figures in the health document (part ``state``)."""

    def __init__(self, persister: Persister) -> None:
        super().__init__(name="state")
        self.persister = persister

    def health(self) -> dict[str, Any]:
        return self.persister.health()


class FrontDoor:
    """Outermost WSGI layer: ``POST /_etl_kit/repair`` restarts what is down, the rest passes on."""

    def __init__(self, app: WsgiApp, dispatcher: Dispatcher) -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.repairers: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == REPAIR_PATH and environ.get("REQUEST_METHOD") == "POST":
            repaired = {r.name: bool(r.repair()) for r in self.repairers if not r.health().get("ok")}
            body = json.dumps({"repaired": repaired, "health": self.dispatcher.health()}, default=str).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def _load_providers(ctx: CloudContext) -> list[Provider]:
    providers: list[Provider] = []
    for spec in PROVIDER_FACTORIES:
        mod_name, attr = spec.split(":")
        module = importlib.import_module(mod_name)
        made = getattr(module, attr)(ctx)
        providers.extend(made if isinstance(made, list) else [made])
    return providers


def build_app(ctx: CloudContext, state_root: Path) -> tuple[FrontDoor, list[Provider], Persister]:
    """moto's WSGI app behind the dispatcher, with every provider and hook installed and state persisted.

    ``state_root`` holds the snapshot and the S3 bodies; call ``persister.restore()`` before serving.
    """
    problems = motohooks.check_contract()
    if problems:
        # Fail loudly: a moved internal would make the providers act, not emulate.
        raise RuntimeError("moto internals changed: " + "; ".join(problems))
    motohooks.install_s3_notification_fix()
    moto_iam.install_bucket_policy_handover()
    providers = [*_load_providers(ctx), ctx.runtimes]
    persister = Persister(state_root, providers)
    info = {"endpoint": ctx.endpoint, "region": ctx.region, "account_id": ctx.account_id, "pid": os.getpid(),
            "state_dir": str(ctx.state_dir), "iam_enforcement": bool(ctx.iam and ctx.iam.enabled)}
    if ctx.postgres is not None:
        info["postgres"] = f"{ctx.postgres.host}:{ctx.postgres.port}"
    dispatcher = Dispatcher(GatedApp(motohooks.make_moto_app(), persister.gate), [*providers, _StateHealth(persister)],
                            info=info, iam=ctx.iam)
    return FrontDoor(PersistingApp(dispatcher, persister), dispatcher), providers, persister


def _warm_up() -> None:
    try:
        from etl_localcloud.redshift import pgbinary

        pgbinary.warm_up()
    except Exception as exc:  # only a speed-up: the COPY that needs these reports any real problem
        log.debug("warm-up failed: %s", exc)


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.chmod(0o600)  # holds the warehouse password
    tmp.replace(state_dir / STATE_FILE)


def _record_iam_switches(ctx: CloudContext, state: dict[str, Any]) -> None:
    """Keep ``daemon.json``'s ``iam_enforcement`` true to the daemon (``etl-kit local up`` may switch it)."""

    def switched(enforcing: bool) -> None:
        state["iam_enforcement"] = enforcing
        _write_state(ctx.state_dir, state)

    if ctx.iam is not None:
        ctx.iam.listeners.append(switched)


def _start_postgres(ctx: CloudContext, front: FrontDoor, state: dict[str, Any]) -> Any:
    """Start the embedded PostgreSQL and its watchdog; returns (server, supervisor)."""
    from etl_localcloud.postgres import EmbeddedPostgres
    from etl_localcloud.supervisor import PostgresSupervisor

    pg = EmbeddedPostgres(ctx.state_dir)
    ctx.postgres = pg.start()
    front.dispatcher.info["postgres"] = f"{ctx.postgres.host}:{ctx.postgres.port}"

    def restarted(info: Any) -> None:  # a new port (the old one was taken) must reach daemon.json
        front.dispatcher.info["postgres"] = f"{info.host}:{info.port}"
        state["postgres"] = info.__dict__
        _write_state(ctx.state_dir, state)

    supervisor = PostgresSupervisor(ctx, pg, on_restart=restarted)
    front.dispatcher.providers.append(supervisor)
    front.repairers.append(supervisor)
    return pg, supervisor


def _parse(argv: list[str] | None) -> tuple[CloudSpec, bool]:
    parser = argparse.ArgumentParser(prog="etl_localcloud.daemon")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--no-postgres", action="store_true", help="run without the warehouse (tests)")
    parser.add_argument("--iam-enforcement", choices=("on", "off"), default="on",
                        help="authorise the pipeline's role sessions against IAM (default on)")
    args = parser.parse_args(argv)
    spec = CloudSpec(state_dir=Path(args.state_dir).resolve(), port=args.port, region=args.region, host=args.host,
                     iam_enforcement=args.iam_enforcement == "on")
    return spec, not args.no_postgres


def main(argv: list[str] | None = None) -> int:
    """Serve the local cloud of ``--state-dir`` until SIGTERM/SIGINT; 2 when it cannot start (see daemon.error)."""
    spec, with_postgres = _parse(argv)
    state_dir = spec.state_dir
    from etl_localcloud.postgres import secure_state_dir

    secure_state_dir(state_dir)  # 0700 (0710 for a root-run server's group): data, passwords, the socket
    state_root = prepare_state_dir(state_dir)
    for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"):  # read by glibc at our start; not for children
        os.environ.pop(var, None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    (state_dir / ERROR_FILE).unlink(missing_ok=True)

    def fail(msg: str) -> int:
        (state_dir / ERROR_FILE).write_text(msg)
        log.error(msg)
        return 2

    from werkzeug.serving import make_server

    ctx = CloudContext(endpoint=spec.endpoint, region=spec.region, account_id=ACCOUNT_ID, state_dir=state_dir,
                       python=sys.executable, runtimes=RuntimeTable(daemon_python=sys.executable),
                       iam=Enforcer(ACCOUNT_ID, spec.region, spec.iam_enforcement, frozenset({ADMIN.access_key_id})))
    try:
        app, providers, persister = build_app(ctx, state_root)
        restored = persister.restore()
    except Exception as exc:
        log.exception("could not build the local cloud")
        return fail(f"could not build the local cloud: {exc}")
    log.info("state: %s", restored)
    try:
        server = make_server(spec.host, spec.port, app, threaded=True)
    except OSError as exc:
        return fail(f"port {spec.port} on {spec.host} is in use ({exc.strerror}); "
                    "stop the program using it or set local_port in params")

    address = CloudAddress(endpoint=spec.endpoint, region=spec.region, account_id=ACCOUNT_ID, credentials=ADMIN,
                           pid=os.getpid(), state_dir=str(state_dir))
    state: dict[str, Any] = {**address.to_json(), "port": spec.port, "started": time.time(), "postgres": None,
                             "iam_enforcement": spec.iam_enforcement}
    pg = None
    if with_postgres:
        try:
            pg, supervisor = _start_postgres(ctx, app, state)
            providers.append(supervisor)
        except Exception as exc:
            server.server_close()
            return fail(f"embedded PostgreSQL failed to start: {exc}")

    stopping = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    for p in providers:
        start = getattr(p, "start", None)
        if callable(start):
            start()
    persister.start()
    _record_iam_switches(ctx, state)
    state["postgres"] = ctx.postgres.__dict__ if ctx.postgres else None
    _write_state(state_dir, state)
    log.info("local cloud ready on %s (postgres %s)", spec.endpoint, app.dispatcher.info.get("postgres"))
    # the first COPY would otherwise pay for pyarrow's Parquet reader and compute kernels (~0.3 s)
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        _shut_down(state_dir, persister, providers, ctx, pg)
    return 0


def _shut_down(state_dir: Path, persister: Persister, providers: list[Provider], ctx: CloudContext,
               pg: Any) -> None:
    log.info("local cloud stopping")
    try:
        # before the providers stop their runs: what still runs is restored as interrupted, not as stopped
        persister.close()
    except Exception:
        log.exception("the last state snapshot failed (the previous one stays)")
    for p in providers:
        try:
            p.close()
        except Exception:
            log.exception("provider %s failed to close", p.name)
    ctx.executor.shutdown(wait=False, cancel_futures=True)
    if pg is not None:
        pg.stop()
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    log.info("local cloud stopped")


if __name__ == "__main__":
    sys.exit(main())

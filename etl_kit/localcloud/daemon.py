"""The local cloud daemon: moto's server, the kit's providers and the embedded PostgreSQL.

Started by ``etl-kit local up`` (see :mod:`etl_kit.localcloud.manager`) as
``python -m etl_kit.localcloud.daemon --state-dir DIR --port PORT --region REGION``.
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

from etl_kit.config import LOCAL_ACCOUNT_ID
from etl_kit.localcloud import motohooks
from etl_kit.localcloud.context import CloudContext
from etl_kit.localcloud.dispatcher import Dispatcher, Provider

__all__ = ["PROVIDER_FACTORIES", "build_app", "main"]

log = logging.getLogger("etl_kit.localcloud")

# "module:callable" -> callable(ctx) returning a Provider or a list of them.
PROVIDER_FACTORIES = (
    "etl_kit.localcloud.lambda_runtime:build",
    "etl_kit.localcloud.glue:build",
    "etl_kit.localcloud.redshift:build",
)

STATE_FILE = "daemon.json"
ERROR_FILE = "daemon.error"


def _load_providers(ctx: CloudContext) -> list[Provider]:
    providers: list[Provider] = []
    for spec in PROVIDER_FACTORIES:
        mod_name, attr = spec.split(":")
        module = importlib.import_module(mod_name)
        made = getattr(module, attr)(ctx)
        providers.extend(made if isinstance(made, list) else [made])
    return providers


def build_app(ctx: CloudContext) -> tuple[Dispatcher, list[Provider]]:
    """moto's WSGI app behind the dispatcher, with every provider and hook installed."""
    problems = motohooks.check_contract()
    if problems:
        # Fail loudly: a moved internal would make the providers act, not emulate.
        raise RuntimeError("moto internals changed: " + "; ".join(problems))
    motohooks.install_s3_notification_fix()
    providers = _load_providers(ctx)
    info = {"endpoint": ctx.endpoint, "region": ctx.region, "account_id": ctx.account_id, "pid": os.getpid(),
            "state_dir": str(ctx.state_dir)}
    if ctx.postgres is not None:
        info["postgres"] = f"{ctx.postgres.host}:{ctx.postgres.port}"
    return Dispatcher(motohooks.make_moto_app(), providers, info=info), providers


def _warm_up() -> None:
    try:
        from etl_kit.localcloud.redshift import pgbinary

        pgbinary.warm_up()
    except Exception as exc:  # only a speed-up: the COPY that needs these reports any real problem
        log.debug("warm-up failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="etl_kit.localcloud.daemon")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--no-postgres", action="store_true", help="run without the warehouse (tests)")
    args = parser.parse_args(argv)

    state_dir = Path(args.state_dir).resolve()
    from etl_kit.localcloud.postgres import secure_state_dir

    secure_state_dir(state_dir)  # 0700: data files, passwords and the server's socket live here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    (state_dir / ERROR_FILE).unlink(missing_ok=True)

    def fail(msg: str) -> int:
        (state_dir / ERROR_FILE).write_text(msg)
        log.error(msg)
        return 2

    from werkzeug.serving import make_server

    endpoint = f"http://127.0.0.1:{args.port}"
    ctx = CloudContext(endpoint=endpoint, region=args.region, account_id=LOCAL_ACCOUNT_ID, state_dir=state_dir,
                       python=sys.executable)
    try:
        app, providers = build_app(ctx)
    except Exception as exc:
        return fail(f"could not build the local cloud: {exc}")
    try:
        server = make_server("127.0.0.1", args.port, app, threaded=True)
    except OSError as exc:
        return fail(f"port {args.port} on 127.0.0.1 is in use ({exc.strerror}); "
                    "stop the program using it or set local_port in params")

    pg = None
    if not args.no_postgres:
        from etl_kit.localcloud.postgres import EmbeddedPostgres

        try:
            pg = EmbeddedPostgres(state_dir)
            ctx.postgres = pg.start()
            app.info["postgres"] = f"{ctx.postgres.host}:{ctx.postgres.port}"
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
    state = {"pid": os.getpid(), "endpoint": endpoint, "port": args.port, "region": args.region,
             "started": time.time(), "postgres": ctx.postgres.__dict__ if ctx.postgres else None,
             "state_dir": str(state_dir)}
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.chmod(0o600)  # holds the warehouse password
    tmp.replace(state_dir / STATE_FILE)
    log.info("local cloud ready on %s (postgres %s)", endpoint, app.info.get("postgres"))
    # the first COPY would otherwise pay for pyarrow's Parquet reader and compute kernels (~0.3 s)
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        log.info("local cloud stopping")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())

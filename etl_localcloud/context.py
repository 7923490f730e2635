"""What every local-cloud provider is given: names, the warehouse, and clients to the cloud itself."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_localcloud.identity import ADMIN

if TYPE_CHECKING:
    from etl_localcloud.runtime_envs import RuntimeTable

__all__ = ["PostgresInfo", "CloudContext"]


def _runtime_table() -> RuntimeTable:
    from etl_localcloud.runtime_envs import RuntimeTable

    return RuntimeTable()


def _mark_direct(request: Any, **_: Any) -> None:
    """Tell the dispatcher to hand this request straight to moto."""
    request.headers["X-Etl-Kit-Direct"] = "1"


@dataclass(frozen=True)
class PostgresInfo:
    """Where the embedded PostgreSQL listens and who may log in."""

    host: str
    port: int
    user: str
    password: str
    admin_db: str = "postgres"
    bin_dir: str = ""
    socket_dir: str = ""  # the superuser logs in over this unix socket only (TCP refuses it)

    def dsn(self, database: str | None = None) -> str:
        """The superuser's connection string: over the unix socket when there is one."""
        db = database or self.admin_db
        host = self.socket_dir or self.host
        return f"host={host} port={self.port} user={self.user} password={self.password} dbname={db}"


@dataclass
class CloudContext:
    """Shared by the providers of one daemon.

    Providers read and write moto's state through ordinary boto3 clients pointed at
    the daemon's own endpoint (``ctx.client("glue")``), and reach moto internals only
    through :mod:`etl_localcloud.motohooks`.
    """

    endpoint: str
    region: str
    account_id: str
    state_dir: Path
    postgres: PostgresInfo | None = None
    python: str = ""  # the daemon's interpreter (what a runtime falls back to, saying so)
    iam: Any = None  # etl_localcloud.iam.Enforcer: the enforcement point and the role sessions
    # the pinned runtimes Lambda code and Glue Python shell scripts run on (etl_localcloud.runtime_envs)
    runtimes: RuntimeTable = field(default_factory=_runtime_table)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=32,
                                                                                     thread_name_prefix="provider"))
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` against this local cloud (cached, thread-safe)."""
        return self._client(service, direct=False)

    def moto_client(self, service: str) -> Any:
        """A boto3 client that talks to moto directly, bypassing every provider.

        Providers use it to read and write the records moto keeps (a job's definition, a
        crawler's record) without re-entering their own handlers.
        """
        return self._client(service, direct=True)

    def role_session(self, who: Any) -> Any:
        """Credentials of a session of the service role ``who`` (:class:`etl_localcloud.iam.ServiceRole`).

        The trust policy is checked while IAM is enforced; raises :class:`etl_localcloud.iam.AssumeRefused`
        when the service may not assume the role.
        """
        return self.iam.sessions.session(who, check_trust=bool(self.iam.enabled))

    def session_client(self, service: str, session: Any, *, direct: bool = False) -> Any:
        """A boto3 client signed with ``session``'s keys (so the enforcement point authorises its calls)."""
        return self._client(service, direct=direct, session=session)

    def _client(self, service: str, *, direct: bool, session: Any = None) -> Any:
        import boto3
        from botocore.config import Config

        key = f"{'direct:' if direct else ''}{service}{':' + session.access_key_id if session else ''}"
        creds = ({"aws_access_key_id": session.access_key_id, "aws_secret_access_key": session.secret_access_key,
                  "aws_session_token": session.session_token} if session else ADMIN.boto3_kwargs())
        with self._lock:
            if key not in self._clients:
                c = boto3.Session(region_name=self.region, **creds).client(
                    service, endpoint_url=self.endpoint,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=50))
                if direct:
                    c.meta.events.register("before-send.*.*", _mark_direct)
                self._clients[key] = c
            return self._clients[key]

    def child_env(self, session: Any = None) -> dict[str, str]:
        """Environment for a subprocess (Lambda code, Glue script) so that its boto3 calls reach this cloud.

        With ``session`` (an assumed-role session) its keys are the process's credentials, as Lambda and
        Glue hand them over: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``.
        """
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ETL_KIT_"))}
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ADMIN.access_key_id,
            "AWS_SECRET_ACCESS_KEY": ADMIN.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "PYTHONUNBUFFERED": "1",
        })
        if session is not None:
            env.update({"AWS_ACCESS_KEY_ID": session.access_key_id, "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
                        "AWS_SESSION_TOKEN": session.session_token})
        return env

    def emit_event(self, source: str, detail_type: str, detail: dict[str, Any],
                   resources: list[str] | None = None) -> None:
        """Put an AWS service event on the default bus (rules on it fire)."""
        from etl_localcloud import motohooks

        motohooks.put_event(self.account_id, self.region, source, detail_type, detail, resources)

    def put_logs(self, group: str, stream: str, lines: list[str]) -> None:
        """Append lines to a CloudWatch Logs stream, creating group and stream as needed."""
        import time

        logs = self.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line or " "} for line in lines] or [{"timestamp": now, "message": " "}]
        for i in range(0, len(events), 5000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 5000])

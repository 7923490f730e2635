"""The one client factory: the only switch between the ``aws`` and ``local`` targets.

Nothing in the kit creates a boto3 client any other way. For ``local`` it points every
client at the local cloud's endpoint with fixed fake credentials (and starts the daemon
on demand); for ``aws`` it uses the caller's session, profile and region.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from etl_kit.config import LOCAL_ACCOUNT_ID, Settings
from etl_kit.exceptions import CredentialsError, aws_errors

__all__ = ["LOCAL_CREDENTIALS", "get_session", "client", "account_id", "local_env"]

# Fake, fixed credentials for the local cloud (moto accepts any).
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def get_session(settings: Settings, session: boto3.Session | None = None) -> boto3.Session:
    """Return the boto3 session for the target (the given one wins on ``aws``)."""
    if session is not None:
        return session
    if settings.target == "local":
        return boto3.Session(region_name=settings.region, **LOCAL_CREDENTIALS)
    return boto3.Session(profile_name=settings.aws_profile, region_name=settings.region)


def client(
    service: str,
    settings: Settings,
    session: boto3.Session | None = None,
    *,
    ensure_local: bool = True,
    read_timeout: int = 60,
) -> Any:  # a botocore client; typed Any so every service method type-checks
    """Create (or reuse) a boto3 client for ``service`` on the configured target.

    Parameters
    ----------
    service
        The boto3 service name, e.g. ``"glue"``.
    settings
        The kit's settings; ``settings.target`` chooses the endpoint.
    session
        An optional boto3 session (``aws`` target).
    ensure_local
        On the ``local`` target, start the local cloud daemon if it is not running.
    """
    cfg = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
        user_agent_extra="etl-kit",
    )
    if settings.target == "local":
        if ensure_local:
            from etl_localcloud import ensure_running

            ensure_running(settings)
        key: tuple[Any, ...] = ("local", service, settings.local_endpoint, settings.region, read_timeout)
        with _lock:
            if key not in _cache:
                _cache[key] = boto3.Session(region_name=settings.region, **LOCAL_CREDENTIALS).client(
                    service, endpoint_url=settings.local_endpoint, config=cfg
                )
            return _cache[key]
    sess = get_session(settings, session)
    if sess.region_name is None:
        raise CredentialsError("No AWS region: set `region` in params or AWS_REGION in the environment.")
    return sess.client(service, config=cfg)


def account_id(settings: Settings, session: boto3.Session | None = None) -> str:
    """The account id of the target (moto's fixed id on ``local``)."""
    if settings.target == "local":
        return LOCAL_ACCOUNT_ID
    with aws_errors("identify caller with sts:GetCallerIdentity", "current credentials"):
        return str(client("sts", settings, session).get_caller_identity()["Account"])


def local_env(settings: Settings) -> dict[str, str]:
    """Environment variables that point any boto3 program at the local cloud."""
    return {
        "AWS_ENDPOINT_URL": settings.local_endpoint,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
    }

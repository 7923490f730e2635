"""The one client factory: the only switch between the ``aws`` and ``local`` targets.

Nothing in the kit creates a boto3 client any other way. It only resolves endpoints: for ``local`` it
points every client at the endpoint the running local cloud wrote into its state dir, with the
credentials it gave (:func:`etl_kit.local.address`), and never starts it; for ``aws`` it uses the
caller's session, profile and region.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from etl_kit import local
from etl_kit.config import Settings
from etl_kit.exceptions import CredentialsError, aws_errors

__all__ = ["get_session", "client", "account_id", "local_env"]

_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def get_session(settings: Settings, session: boto3.Session | None = None) -> boto3.Session:
    """Return the boto3 session for the target (the given one wins on ``aws``).

    Raises
    ------
    LocalCloudError
        On ``local``, when the local cloud is not running (naming how to start it).
    """
    if session is not None:
        return session
    if settings.target == "local":
        return boto3.Session(region_name=settings.region, **local.address(settings).credentials.boto3_kwargs())
    return boto3.Session(profile_name=settings.aws_profile, region_name=settings.region)


def client(
    service: str,
    settings: Settings,
    session: boto3.Session | None = None,
    *,
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
    read_timeout
        Seconds to wait for a response.

    Raises
    ------
    LocalCloudError
        On ``local``, when the local cloud is not running: start it with ``etl-kit local up`` (or notebook 00).
    """
    cfg = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
        user_agent_extra="etl-kit",
    )
    if settings.target == "local":
        where = local.address(settings)
        creds = where.credentials.boto3_kwargs()
        key: tuple[Any, ...] = ("local", service, where.endpoint, settings.region, read_timeout, *creds.values())
        with _lock:
            if key not in _cache:
                _cache[key] = boto3.Session(region_name=settings.region, **creds).client(
                    service, endpoint_url=where.endpoint, config=cfg
                )
            return _cache[key]
    sess = get_session(settings, session)
    if sess.region_name is None:
        raise CredentialsError("No AWS region: set `region` in params or AWS_REGION in the environment.")
    return sess.client(service, config=cfg)


def account_id(settings: Settings, session: boto3.Session | None = None) -> str:
    """The account id of the target (the one the running local cloud reports on ``local``)."""
    if settings.target == "local":
        return local.address(settings).account_id
    with aws_errors("identify caller with sts:GetCallerIdentity", "current credentials"):
        return str(client("sts", settings, session).get_caller_identity()["Account"])


def local_env(settings: Settings) -> dict[str, str]:
    """Environment variables that point any boto3 program at the running local cloud."""
    where = local.address(settings)
    return {
        "AWS_ENDPOINT_URL": where.endpoint,
        "AWS_ACCESS_KEY_ID": where.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": where.credentials.secret_access_key,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
    }

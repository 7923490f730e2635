"""Temporary credentials of a service's role, obtained as the service obtains them: STS AssumeRole.

Lambda assumes the function's role (session name: the function's name), Glue the job's role
(``GlueJobRunnerSession``) and the crawler's role (the crawler's name). The role's trust policy is
evaluated first, with the service as principal and ``aws:SourceAccount`` / ``aws:SourceArn`` set as the
service sets them; a role that does not trust the service cannot be assumed, as on AWS. A session is
reused until five minutes before it expires.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from etl_localcloud.iam.policy import Caller, Check, UnsupportedPolicy, evaluate
from etl_localcloud.motohooks import iam as moto_iam
from etl_localcloud.motohooks.iam import Session

__all__ = ["RoleSessions", "AssumeRefused", "Session", "ServiceRole"]

SESSION_SECONDS = 3600
_REUSE_MARGIN = 300.0


class AssumeRefused(Exception):
    """The service cannot assume the role (missing, or its trust policy does not allow the service)."""


@dataclass(frozen=True)
class ServiceRole:
    """A role a service assumes: which role, by which service, in which session, for which resource."""

    role_arn: str
    service: str  # e.g. "lambda.amazonaws.com"
    session_name: str
    source_arn: str = ""  # the function / job / crawler on whose behalf the service assumes it


class RoleSessions:
    """Assumes service roles in moto's STS and caches the sessions."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self._cache: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    def trusted(self, who: ServiceRole) -> str | None:
        """None when ``who.service`` may assume the role, else why not."""
        trust = moto_iam.role_trust(self.account, who.role_arn)
        if trust is None:
            return f"role {who.role_arn} does not exist"
        context: dict[str, tuple[str, ...]] = {"aws:sourceaccount": (self.account,)}
        if who.source_arn:
            context["aws:sourcearn"] = (who.source_arn,)
        check = Check("sts:AssumeRole", who.role_arn, context, trust)
        try:
            decision = evaluate(check, Caller(self.account, service=who.service), [])
        except UnsupportedPolicy as exc:
            return f"the trust policy of {who.role_arn} cannot be evaluated: {exc}"
        if not decision.allowed:
            return f"the trust policy of {who.role_arn} does not allow {who.service} to assume it"
        return None

    def session(self, who: ServiceRole, *, check_trust: bool = True) -> Session:
        """Credentials of a session of ``who.role_arn``.

        Raises
        ------
        AssumeRefused
            The role does not exist or does not trust the service (only with ``check_trust``).
        """
        problem = self.trusted(who) if check_trust else None
        if problem:
            raise AssumeRefused(problem)
        key = (who.role_arn, who.session_name)
        with self._lock:
            s = self._cache.get(key)
            if s is not None and _seconds_left(s) > _REUSE_MARGIN:
                return s
            s = moto_iam.assume_role(self.account, self.region, who.role_arn, who.session_name, SESSION_SECONDS)
            self._cache[key] = s
            return s


def _seconds_left(s: Session) -> float:
    import datetime as _dt

    return (s.expiration - _dt.datetime.now(_dt.UTC).replace(tzinfo=None)).total_seconds()

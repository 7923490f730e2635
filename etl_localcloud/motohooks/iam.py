"""What IAM enforcement reads of moto's state: roles and their policies, STS sessions, resource policies.

Touches: ``moto.iam.models.iam_backends`` (``get_role``, ``Role.policies``, ``Role.managed_policies``,
``Role.assume_role_policy_document``, ``ManagedPolicy.default_version``), ``moto.sts.models.sts_backends``
(``assume_role``, ``assumed_roles``), and the resource policies moto keeps: ``FakeBucket.policy`` (S3),
``Topic._policy_json`` (SNS), ``Queue.policy`` (SQS), ``FakeSecret.policy`` / ``.arn`` (Secrets Manager) and
``LambdaFunction.policy.wire_format()`` (Lambda). Read in-process: one authorisation must not cost a round
trip per policy. Replaces ``FakeBucket.get_permission`` (see :func:`install_bucket_policy_handover`).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Session", "contract", "install_bucket_policy_handover", "assume_role", "find_session", "role_trust",
           "role_documents", "resource_policy", "secret_arn", "role_id"]


@dataclass(frozen=True)
class Session:
    """Temporary credentials of an assumed-role session, as STS returns them."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str
    expiration: _dt.datetime  # UTC, naive (moto's)

    @property
    def arn(self) -> str:
        """``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``."""
        account = self.role_arn.split(":")[4]
        return f"arn:aws:sts::{account}:assumed-role/{self.role_arn.rsplit('/', 1)[-1]}/{self.session_name}"

    def expired(self) -> bool:
        return _dt.datetime.now(_dt.UTC).replace(tzinfo=None) >= self.expiration


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.iam.models import Role
    from moto.sts.models import AssumedRole, STSBackend

    problems = []
    if not callable(getattr(STSBackend, "assume_role", None)):
        problems.append("STSBackend.assume_role is gone")
    if "expiration" not in AssumedRole.__init__.__code__.co_names:
        problems.append("AssumedRole.expiration is gone")
    from moto.s3.models import FakeBucket

    if not callable(getattr(FakeBucket, "get_permission", None)):
        problems.append("FakeBucket.get_permission is gone")
    for attr in ("assume_role_policy_document", "policies", "managed_policies"):
        if attr not in Role.__init__.__code__.co_names:
            problems.append(f"Role.{attr} is gone")
    return problems


def install_bucket_policy_handover() -> None:
    """Leave bucket policies to the enforcement point (:mod:`etl_localcloud.iam`).

    moto 5.2.5 applies a bucket policy's Deny statements to every caller whatever their ``Principal`` and
    whatever a condition other than ``StringEquals`` says, so a Deny naming one role refused everyone.
    """
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _iam(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def _sts(account: str) -> Any:
    from moto.sts.models import sts_backends

    return sts_backends[account]["aws"]


def assume_role(account: str, region: str, role_arn: str, session_name: str, duration: int = 3600) -> Session:
    """A new session of ``role_arn`` (STS AssumeRole; the trust policy is checked by the caller)."""
    r = _sts(account).assume_role(region_name=region, role_session_name=session_name, role_arn=role_arn,
                                  policy=None, duration=duration, external_id=None)
    return Session(r.access_key_id, r.secret_access_key, r.session_token, r.role_arn, r.session_name,
                   r.expiration.replace(tzinfo=None))


def find_session(account: str, access_key_id: str) -> Session | None:
    """The assumed-role session whose access key is ``access_key_id``, or None."""
    for r in list(_sts(account).assumed_roles):
        if r.access_key_id == access_key_id:
            return Session(r.access_key_id, r.secret_access_key, r.session_token, r.role_arn, r.session_name,
                           r.expiration.replace(tzinfo=None))
    return None


def role_id(account: str, role_arn: str) -> str:
    """The role's unique id (``AROA...``), the first part of its sessions' ``aws:userid``."""
    role = _role(account, role_arn)
    return str(getattr(role, "id", "") or role_arn)


def _role(account: str, role_arn: str) -> Any:
    name = role_arn.rsplit("/", 1)[-1]
    try:
        return _iam(account).get_role(name)
    except Exception:
        return None


def role_trust(account: str, role_arn: str) -> dict[str, Any] | None:
    """The role's trust policy, or None when the role does not exist."""
    role = _role(account, role_arn)
    if role is None:
        return None
    doc = role.assume_role_policy_document
    return json.loads(doc) if isinstance(doc, str) else dict(doc)


def role_documents(account: str, role_arn: str) -> list[tuple[str, dict[str, Any]]]:
    """The role's identity policies as (name, document): inline ones, then attached managed ones."""
    role = _role(account, role_arn)
    if role is None:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    for name, doc in list(role.policies.items()):
        out.append((name, json.loads(doc) if isinstance(doc, str) else doc))
    for arn, policy in list(role.managed_policies.items()):
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            doc = version.document
            out.append((arn, json.loads(doc) if isinstance(doc, str) else doc))
    return out


def _loads(doc: Any) -> dict[str, Any] | None:
    if not doc:
        return None
    if isinstance(doc, bytes):
        doc = doc.decode()
    return json.loads(doc) if isinstance(doc, str) else dict(doc)


def _bucket_policy(account: str, region: str, name: str) -> Any:
    from moto.s3.models import s3_backends

    try:
        return s3_backends[account]["aws"].get_bucket(name).policy
    except Exception:
        return None


def _topic_policy(account: str, region: str, arn: str) -> Any:
    from moto.sns.models import sns_backends

    try:
        return sns_backends[account][region].get_topic(arn)._policy_json
    except Exception:
        return None


def _queue_policy(account: str, region: str, name: str) -> Any:
    from moto.sqs.models import sqs_backends

    try:
        return sqs_backends[account][region].get_queue(name).policy
    except Exception:
        return None


def _secret(account: str, region: str, secret_id: str) -> Any:
    from moto.secretsmanager.models import secretsmanager_backends

    try:
        return secretsmanager_backends[account][region].secrets[secret_id]
    except Exception:
        return None


def _secret_policy(account: str, region: str, secret_id: str) -> Any:
    secret = _secret(account, region, secret_id)
    return getattr(secret, "policy", None) if secret is not None else None


def _function_policy(account: str, region: str, name: str) -> Any:
    from moto.awslambda.models import lambda_backends

    try:
        return lambda_backends[account][region].get_function(name).policy.wire_format()
    except Exception:
        return None


_RESOURCE_POLICIES = {"s3": _bucket_policy, "sns": _topic_policy, "sqs": _queue_policy,
                      "secretsmanager": _secret_policy, "lambda": _function_policy}


def resource_policy(service: str, account: str, region: str, ident: str) -> dict[str, Any] | None:
    """The resource policy of ``ident`` (bucket name, topic ARN, queue name, secret id, function name), or None."""
    reader = _RESOURCE_POLICIES.get(service)
    if reader is None:
        return None
    try:
        return _loads(reader(account, region, ident))
    except ValueError:
        return None


def secret_arn(account: str, region: str, secret_id: str) -> str | None:
    """The full ARN of the secret named or (partially) ARN'd ``secret_id``, or None when there is none."""
    secret = _secret(account, region, secret_id)
    return getattr(secret, "arn", None) if secret is not None else None

"""Step ``iam``: the five roles, their trust policies and least-privilege inline policies.

A role an earlier etl-kit made that nothing uses any more (:data:`~etl_kit.provision.policies.LEGACY_ROLES`:
the EventBridge role) is removed by ``ensure`` and ``delete`` and shown as ``delete`` by ``plan``.

The documents come from :mod:`etl_kit.provision.policies` (pure, linted by the unit tests).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, Step, read_with, tag_list
from etl_kit.provision.policies import (
    INLINE_POLICY_NAME,
    LEGACY_ROLES,
    ROLE_SERVICES,
    dumps,
    role_policies,
    trust_policy,
)

__all__ = ["STEP", "role_arn"]


def role_arn(settings: Settings, account: str, key: str) -> str:
    """ARN of the role ``key`` (``lambda``, ``crawler``, ``csv_job``, ``load_job``, ``redshift``)."""
    from etl_kit.provision.policies import Arns

    return Arns(settings, account).role(getattr(settings, ROLE_SERVICES[key][0]))


def _role(ctx: Ctx, key: str, name: str, trust: dict[str, Any]) -> Resource:
    iam = ctx.client("iam")

    def delete() -> None:
        for pol in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=name, PolicyName=pol)
        for att in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
            iam.detach_role_policy(RoleName=name, PolicyArn=att["PolicyArn"])
        iam.delete_role(RoleName=name)

    return Resource("iam-role", name,
                    read=read_with(partial(iam.get_role, RoleName=name),
                                   lambda r: {"AssumeRolePolicyDocument": r["Role"]["AssumeRolePolicyDocument"]}),
                    desired={"AssumeRolePolicyDocument": trust},
                    create=partial(iam.create_role, RoleName=name, AssumeRolePolicyDocument=dumps(trust),
                                   Description=f"etl-kit {key} role", Tags=tag_list()),
                    update=lambda _: iam.update_assume_role_policy(RoleName=name, PolicyDocument=dumps(trust)),
                    delete=delete, arn=ctx.arns.role(name))


def _inline_policy(ctx: Ctx, role: str, document: dict[str, Any]) -> Resource:
    iam = ctx.client("iam")
    put = partial(iam.put_role_policy, RoleName=role, PolicyName=INLINE_POLICY_NAME, PolicyDocument=dumps(document))
    return Resource("iam-role-policy", f"{role}/{INLINE_POLICY_NAME}",
                    read=read_with(partial(iam.get_role_policy, RoleName=role, PolicyName=INLINE_POLICY_NAME),
                                   lambda r: {"PolicyDocument": r["PolicyDocument"]}),
                    desired={"PolicyDocument": document}, create=put, update=lambda _: put(),
                    arn=ctx.arns.role(role), part_of=role)


def _resources(ctx: Ctx) -> list[Resource]:
    docs = role_policies(ctx.settings, ctx.account)
    out: list[Resource] = []
    for key, (attr, services) in ROLE_SERVICES.items():
        name = getattr(ctx.settings, attr)
        out += [_role(ctx, key, name, trust_policy(services, ctx.account)), _inline_policy(ctx, name, docs[key])]
    return out


def _propagate(ctx: Ctx, changes: list[Change]) -> None:
    if not ctx.local and any(c.action == "create" and c.resource_type == "iam-role" for c in changes):
        time.sleep(10)  # IAM is eventually consistent: new roles are not assumable by services at once


def _legacy(ctx: Ctx) -> list[Resource]:
    """The roles nothing uses any more, to remove (their desired state is absent)."""
    return [_role(ctx, key, getattr(ctx.settings, attr), {}) for key, attr in LEGACY_ROLES.items()]


STEP = Step("iam", _resources, legacy=_legacy, after_ensure=_propagate)

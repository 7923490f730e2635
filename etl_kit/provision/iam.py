"""Step ``iam``: the six roles, their trust policies and least-privilege inline policies.

The documents come from :mod:`etl_kit.provision.policies` (pure, linted by the unit tests).
"""

from __future__ import annotations

import time
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.provision.base import Change, Ctx, Resource, const, or_none, run_delete, run_describe, run_ensure, run_plan
from etl_kit.provision.policies import INLINE_POLICY_NAME, ROLE_SERVICES, dumps, role_policies, trust_policy

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "role_arn"]

STEP = "iam"
TAGS = [{"Key": "etl-kit", "Value": "managed"}]


def role_arn(settings: Settings, account: str, key: str) -> str:
    """ARN of the role ``key`` (``lambda``, ``crawler``, ``csv_job``, ``load_job``, ``redshift``, ``events``)."""
    from etl_kit.provision.policies import Arns

    return Arns(settings, account).role(getattr(settings, ROLE_SERVICES[key][0]))


def _resources(ctx: Ctx) -> list[Resource]:
    iam = ctx.client("iam")
    docs = role_policies(ctx.settings, ctx.account)
    out: list[Resource] = []
    for key, (attr, services) in ROLE_SERVICES.items():
        name = getattr(ctx.settings, attr)
        trust = trust_policy(services, ctx.account)
        inline = docs[key]

        def read_role(name: str = name) -> dict[str, Any] | None:
            r = or_none(lambda: iam.get_role(RoleName=name))
            return None if r is None else {"AssumeRolePolicyDocument": r["Role"]["AssumeRolePolicyDocument"]}

        def create_role(name: str = name, trust: dict[str, Any] = trust, key: str = key) -> None:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=dumps(trust),
                            Description=f"etl-kit {key} role", Tags=TAGS)

        def update_role(_: Any, name: str = name, trust: dict[str, Any] = trust) -> None:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=dumps(trust))

        def delete_role(name: str = name) -> None:
            for pol in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
                iam.delete_role_policy(RoleName=name, PolicyName=pol)
            for att in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=name, PolicyArn=att["PolicyArn"])
            iam.delete_role(RoleName=name)

        def read_pol(name: str = name) -> dict[str, Any] | None:
            r = or_none(lambda: iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME))
            return None if r is None else {"PolicyDocument": r["PolicyDocument"]}

        def put_pol(_: Any = None, name: str = name, inline: dict[str, Any] = inline) -> None:
            iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=dumps(inline))

        arn = ctx.arns.role(name)
        out.append(Resource("iam-role", name, read_role, const({"AssumeRolePolicyDocument": trust}),
                            create_role, update_role, delete_role, arn=arn))
        out.append(Resource("iam-role-policy", f"{name}/{INLINE_POLICY_NAME}", read_pol,
                            const({"PolicyDocument": inline}), put_pol, put_pol, lambda: None,
                            arn=arn, sub=True))
    return out


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct the six roles and their inline policies."""
    ctx = Ctx(settings, session)
    changes = run_ensure(STEP, _resources(ctx))
    if not ctx.local and any(c.action == "create" and c.resource_type == "iam-role" for c in changes):
        time.sleep(10)  # IAM is eventually consistent: new roles are not assumable by services at once
    return changes


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the roles."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Delete the roles (inline and attached policies first)."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

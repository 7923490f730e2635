"""Shared machinery of the provisioning modules.

Every AWS concern is a list of :class:`Resource` records (read / create / update /
delete callables plus the desired state). :func:`run_plan`, :func:`run_ensure` and
:func:`run_delete` turn such a list into :class:`Change` records, so that ``plan``
and ``ensure`` of every module share one comparison and cannot disagree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import boto3

from etl_kit.clients import account_id, client
from etl_kit.config import Settings
from etl_kit.exceptions import AwsError, EtlKitError, ResourceNotFound, WaitTimeout, aws_errors
from etl_kit.provision.policies import Arns

__all__ = [
    "Action",
    "Change",
    "Ctx",
    "Resource",
    "diff",
    "norm_json",
    "is_missing",
    "run_plan",
    "run_ensure",
    "run_delete",
    "run_describe",
    "wait_until",
    "or_none",
    "const",
    "paginate",
]

Action = Literal["create", "update", "no-change", "delete", "skip"]

# Error codes meaning "this resource is not there" across services.
_MISSING_CODES = {
    "NoSuchBucket", "NoSuchKey", "NotFound", "404", "NoSuchEntity", "EntityNotFoundException",
    "ResourceNotFoundException", "NotFoundException", "NoSuchEntityException", "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue", "NoSuchBucketPolicy", "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError", "InvalidGroup.NotFound", "InvalidVpcEndpointId.NotFound",
    "InvalidVpcID.NotFound", "NoSuchTagSet",
}


@dataclass(frozen=True)
class Change:
    """One line of a plan or of an apply report.

    Attributes
    ----------
    step
        The provisioning step (``"s3"``, ``"iam"``, ...).
    resource_type
        E.g. ``"s3-bucket"``, ``"iam-role"``.
    name
        The resource's name.
    action
        ``create``, ``update``, ``no-change``, ``delete`` or ``skip``.
    diffs
        For ``update``: field -> ``{"actual": ..., "desired": ...}``; for ``skip``: ``{"reason": ...}``.
    arn
        The resource's ARN (or id) when known.
    """

    step: str
    resource_type: str
    name: str
    action: Action
    diffs: dict[str, Any] = field(default_factory=dict)
    arn: str = ""

    def __str__(self) -> str:
        text = f"{self.action:<9} {self.resource_type:<24} {self.name}"
        if self.action == "update":
            text += "  (" + ", ".join(sorted(self.diffs)) + ")"
        elif self.action == "skip" and self.diffs.get("reason"):
            text += f"  ({self.diffs['reason']})"
        return text


class Ctx:
    """Per-call context: settings, session, account, ARNs and cached clients."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None) -> None:
        self.settings = settings
        self.session = session
        self._clients: dict[str, Any] = {}

    @cached_property
    def account(self) -> str:
        return account_id(self.settings, self.session)

    @cached_property
    def arns(self) -> Arns:
        return Arns(self.settings, self.account)

    @property
    def local(self) -> bool:
        return self.settings.target == "local"

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = client(service, self.settings, self.session)
        return self._clients[service]


@dataclass
class Resource:
    """One managed resource.

    Attributes
    ----------
    resource_type, name, arn
        What the change records show.
    read
        Returns the resource's current comparable state (a dict), or ``None`` when absent.
    desired
        The desired comparable state (only these keys are compared).
    create, update, delete
        Side effects; ``update`` receives the diffs.
    is_data
        Deleting it loses user data (kept with ``keep_data``).
    skip
        A reason to skip this resource on this target (e.g. e-mail subscriptions on local).
    delete_skip
        A reason never to delete it in teardown (e.g. shared log groups).
    sub
        A part of another resource (a bucket's encryption): deleted with it, absent from teardown and inventory.
    """

    resource_type: str
    name: str
    read: Callable[[], dict[str, Any] | None]
    desired: Callable[[], dict[str, Any]]
    create: Callable[[], None]
    update: Callable[[dict[str, Any]], None]
    delete: Callable[[], None]
    arn: str = ""
    is_data: bool = False
    skip: str = ""
    delete_skip: str = ""
    sub: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def norm_json(value: Any) -> Any:
    """Normalise JSON documents (strings or dicts) for comparison: parsed, keys sorted, singletons unwrapped."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: norm_json(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [norm_json(v) for v in value]
        if len(items) == 1 and not isinstance(items[0], (dict, list)):
            return items[0]
        return items
    return value


def diff(actual: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Fields of ``desired`` whose value differs in ``actual``, as ``{field: {"actual", "desired"}}``."""
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = actual.get(key)
        if norm_json(have) != norm_json(want):
            out[key] = {"actual": have, "desired": want}
    return out


def is_missing(err: BaseException) -> bool:
    """True when a (botocore or translated) error means "not found"."""
    from botocore.exceptions import ClientError

    if isinstance(err, ResourceNotFound):
        return True
    if isinstance(err, AwsError):
        return err.code in _MISSING_CODES
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "")) in _MISSING_CODES
    return False


def _state(step: str, r: Resource) -> tuple[Change, dict[str, Any] | None]:
    if r.skip:
        return Change(step, r.resource_type, r.name, "skip", {"reason": r.skip}, r.arn), None
    with aws_errors(f"read {r.resource_type}", r.name):
        actual = r.read()
    if actual is None:
        return Change(step, r.resource_type, r.name, "create", {}, r.arn), None
    d = diff(actual, r.desired())
    return Change(step, r.resource_type, r.name, "update" if d else "no-change", d, r.arn), actual


def run_plan(step: str, resources: list[Resource]) -> list[Change]:
    """What :func:`run_ensure` would do, changing nothing."""
    return [_state(step, r)[0] for r in resources]


def run_ensure(step: str, resources: list[Resource]) -> list[Change]:
    """Create missing resources and put drifted fields back, in list order.

    A part (``sub``) of a resource created in this run is reported as ``create`` too.
    """
    changes: list[Change] = []
    created: set[str] = set()
    for r in resources:
        ch, _ = _state(step, r)
        if r.sub and r.name.split("/")[0] in created and ch.action == "update":
            ch = Change(step, r.resource_type, r.name, "create", {}, r.arn)
            with aws_errors(f"create {r.resource_type}", r.name):
                r.update({})
            changes.append(ch)
            continue
        if ch.action == "create" and not r.sub:
            created.add(r.name)
        if ch.action == "create":
            with aws_errors(f"create {r.resource_type}", r.name):
                r.create()
        elif ch.action == "update":
            with aws_errors(f"update {r.resource_type}", r.name):
                r.update(ch.diffs)
        changes.append(ch)
    return changes


def run_delete(step: str, resources: list[Resource], *, keep_data: bool = False) -> list[Change]:
    """Delete resources in reverse list order, tolerating absent ones."""
    changes: list[Change] = []
    for r in reversed(resources):
        if r.sub:
            continue
        if r.skip:
            changes.append(Change(step, r.resource_type, r.name, "skip", {"reason": r.skip}, r.arn))
            continue
        if r.delete_skip or (keep_data and r.is_data):
            reason = r.delete_skip or "keep_data"
            changes.append(Change(step, r.resource_type, r.name, "skip", {"reason": reason}, r.arn))
            continue
        try:
            with aws_errors(f"read {r.resource_type}", r.name):
                present = r.read() is not None
        except EtlKitError as err:
            if not is_missing(err):
                raise
            present = False
        if not present:
            changes.append(Change(step, r.resource_type, r.name, "skip", {"reason": "absent"}, r.arn))
            continue
        try:
            with aws_errors(f"delete {r.resource_type}", r.name):
                r.delete()
        except EtlKitError as err:
            if not is_missing(err):
                raise
        changes.append(Change(step, r.resource_type, r.name, "delete", {}, r.arn))
    return changes


def run_describe(resources: list[Resource]) -> dict[str, Any]:
    """Inventory: ``{name: {"type", "arn", "exists"}}``."""
    out: dict[str, Any] = {}
    for r in resources:
        if r.sub:
            continue
        if r.skip:
            out[r.name] = {"type": r.resource_type, "arn": r.arn, "exists": False, "skipped": r.skip}
            continue
        try:
            with aws_errors(f"read {r.resource_type}", r.name):
                exists = r.read() is not None
        except EtlKitError as err:
            if not is_missing(err):
                raise
            exists = False
        out[r.name] = {"type": r.resource_type, "arn": r.arn, "exists": exists, **r.extra}
    return out


def const(value: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """A callable returning ``value`` (a resource's fixed desired state)."""
    return lambda: value


def or_none(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; return ``None`` when it fails with a "not found" error."""
    from botocore.exceptions import ClientError

    try:
        return fn()
    except ClientError as err:
        if is_missing(err):
            return None
        raise


def wait_until(
    what: str, probe: Callable[[], bool], *, timeout: float = 900.0, interval: float = 5.0, local: bool = False
) -> None:
    """Poll ``probe`` until it returns True; raise :class:`WaitTimeout` naming ``what``."""
    if local:
        interval = min(interval, 0.2)
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{what} not ready after {timeout:.0f}s; check it in the console and re-run provision")
        time.sleep(interval)


def paginate(c: Any, op: str, key: str, **kw: Any) -> Iterator[Any]:
    """Yield ``key`` items over every page of ``op``."""
    for page in c.get_paginator(op).paginate(**kw):
        yield from page.get(key, [])

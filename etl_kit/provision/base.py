"""The step runner: provisioning as data.

A step module only declares its resources: a list of :class:`Resource` specs (type, name, how to read
the resource, its desired configuration, how to create / update / delete it, what it is part of and what
it waits for). A :class:`Step` turns such a list into ``plan`` / ``ensure`` / ``describe`` / ``delete``,
written once here, so that the plan of every step is exactly what its apply does: both start from one
comparison (:func:`diff`), absent resources are read as "to create" (:func:`or_none`), and every AWS
error is translated into the kit's own, naming the resource (:func:`etl_kit.exceptions.aws_errors`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from typing import Any, Literal

import boto3

from etl_kit.clients import account_id, client
from etl_kit.config import Settings
from etl_kit.exceptions import EtlKitError, WaitTimeout, aws_errors, is_not_found
from etl_kit.provision.policies import Arns

__all__ = [
    "Action",
    "Change",
    "Ctx",
    "Resource",
    "Step",
    "TAGS",
    "tag_list",
    "diff",
    "norm_json",
    "run_plan",
    "run_ensure",
    "run_delete",
    "run_describe",
    "wait_until",
    "or_none",
    "read_with",
    "const",
    "paginate",
]

Action = Literal["create", "update", "no-change", "delete", "skip"]
TAGS = {"etl-kit": "managed"}  # every resource the kit creates carries this tag


def tag_list(key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """:data:`TAGS` as the list of pairs most APIs take (Redshift Serverless spells them ``key`` / ``value``)."""
    return [{key: k, value: v} for k, v in TAGS.items()]


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


def _nothing(*_: Any) -> None:
    """The side effect of a resource that has none for this operation (a part goes with its whole)."""


@dataclass
class Resource:
    """The spec of one managed resource.

    Attributes
    ----------
    resource_type, name, arn
        What the change records show.
    read
        Returns the resource's current comparable state (a dict), or ``None`` when absent.
    create
        Creates it in its desired state.
    desired
        The desired comparable state (only these keys are compared), or a callable returning it when it
        can only be known once the resources before it exist. ``{}``: only its existence matters.
    update
        Puts drifted fields back; receives the diffs.
    delete
        Deletes it (teardown).
    part_of
        The name of the resource this one is a part of (a bucket's encryption, a role's inline policy):
        deleted with it, absent from teardown and inventory, reported ``create`` when its whole is created.
    is_data
        Deleting it loses user data (kept with ``keep_data``).
    skip
        A reason never to manage it on this target (e.g. e-mail subscriptions on local).
    delete_skip
        A reason never to delete it in teardown (e.g. shared log groups).
    waits_for
        Returns what it still waits for (``""`` when nothing): asked when its turn comes in plan or
        ensure, after the resources before it are in place (the Glue connection needs the workgroup's
        endpoint); while it waits it is reported ``skip``.
    extra
        More facts for the inventory.
    """

    resource_type: str
    name: str
    _: KW_ONLY
    read: Callable[[], dict[str, Any] | None]
    create: Callable[[], None]
    desired: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    update: Callable[[dict[str, Any]], None] = _nothing
    delete: Callable[[], None] = _nothing
    arn: str = ""
    part_of: str = ""
    is_data: bool = False
    skip: str = ""
    delete_skip: str = ""
    waits_for: Callable[[], str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def want(self) -> dict[str, Any]:
        """The desired comparable state."""
        return self.desired() if callable(self.desired) else self.desired

    def change(self, step: str, action: Action, diffs: dict[str, Any] | None = None) -> Change:
        """A change record of this resource."""
        return Change(step, self.resource_type, self.name, action, diffs or {}, self.arn)

    def call(self, verb: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one of its side effects with AWS errors translated into the kit's, naming it."""
        with aws_errors(f"{verb} {self.resource_type}", self.name):
            return fn(*args)


@dataclass(frozen=True)
class Step:
    """A provisioning step: its name and its resources, with ``plan`` / ``ensure`` / ``describe`` / ``delete``.

    Attributes
    ----------
    name
        The step's name (:data:`etl_kit.provision.STEP_NAMES`).
    resources
        Declares the step's resources, in creation order (teardown deletes in reverse).
    legacy
        Resources a former layout left behind, whose desired state is absent: removed by ``ensure`` and
        ``delete``, reported by ``plan`` as ``delete`` when present.
    after_ensure
        Runs after ``ensure`` with its changes (IAM: wait for new roles to propagate).
    inventory
        More entries for ``describe`` (the network: the VPC and subnets in use).
    """

    name: str
    resources: Callable[[Ctx], list[Resource]]
    _: KW_ONLY
    legacy: Callable[[Ctx], list[Resource]] | None = None
    after_ensure: Callable[[Ctx, list[Change]], None] | None = None
    inventory: Callable[[Ctx], dict[str, Any]] | None = None

    def _legacy(self, ctx: Ctx) -> list[Resource]:
        return self.legacy(ctx) if self.legacy else []

    def plan(self, settings: Settings, session: boto3.Session | None = None) -> list[Change]:
        """What :meth:`ensure` would change; changes nothing."""
        ctx = Ctx(settings, session)
        gone = [r.change(self.name, "delete", {"reason": "left by a former layout"})
                for r in self._legacy(ctx) if _present(r)]
        return run_plan(self.name, self.resources(ctx)) + gone

    def ensure(self, settings: Settings, session: boto3.Session | None = None) -> list[Change]:
        """Create missing resources, put drifted fields back and remove what a former layout left."""
        ctx = Ctx(settings, session)
        changes = run_ensure(self.name, self.resources(ctx))
        changes += [c for c in run_delete(self.name, self._legacy(ctx)) if c.action == "delete"]
        if self.after_ensure:
            self.after_ensure(ctx, changes)
        return changes

    def describe(self, settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
        """Inventory: ``{name: {"type", "arn", "exists", ...}}``."""
        ctx = Ctx(settings, session)
        out = run_describe(self.resources(ctx))
        if self.inventory:
            out.update(self.inventory(ctx))
        return out

    def delete(self, settings: Settings, session: boto3.Session | None = None, *,
               keep_data: bool = False) -> list[Change]:
        """Delete any former layout's leftovers, then the resources in reverse order (tolerating absent ones).

        Leftovers go first: they may still use a current resource (a VPC endpoint its security group).
        """
        ctx = Ctx(settings, session)
        changes = [c for c in run_delete(self.name, self._legacy(ctx)) if c.action == "delete"]
        return changes + run_delete(self.name, self.resources(ctx), keep_data=keep_data)


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


def _state(step: str, r: Resource) -> Change:
    if r.skip:
        return r.change(step, "skip", {"reason": r.skip})
    waiting = r.call("read", r.waits_for) if r.waits_for else ""
    if waiting:
        return r.change(step, "skip", {"reason": waiting})
    actual = r.call("read", r.read)
    if actual is None:
        return r.change(step, "create")
    d = diff(actual, r.want())
    return r.change(step, "update" if d else "no-change", d)


def _present(r: Resource) -> bool:
    """Whether ``r`` exists; a "not found" error on reading counts as absent."""
    try:
        return r.call("read", r.read) is not None
    except EtlKitError as err:
        if not is_not_found(err):
            raise
        return False


def run_plan(step: str, resources: list[Resource]) -> list[Change]:
    """What :func:`run_ensure` would do, changing nothing."""
    return [_state(step, r) for r in resources]


def run_ensure(step: str, resources: list[Resource]) -> list[Change]:
    """Create missing resources and put drifted fields back, in list order.

    Each resource is read when its turn comes, so it sees what the ones before it created. A part of a
    resource created in this run is reported as ``create`` too.
    """
    changes: list[Change] = []
    created: set[str] = set()
    for r in resources:
        ch = _state(step, r)
        if ch.action == "update" and r.part_of in created:
            ch = r.change(step, "create")
            r.call("create", r.update, {})
        elif ch.action == "create":
            r.call("create", r.create)
            if not r.part_of:
                created.add(r.name)
        elif ch.action == "update":
            r.call("update", r.update, ch.diffs)
        changes.append(ch)
    return changes


def run_delete(step: str, resources: list[Resource], *, keep_data: bool = False) -> list[Change]:
    """Delete resources in reverse list order, tolerating absent ones (parts go with their whole)."""
    changes: list[Change] = []
    for r in reversed(resources):
        reason = r.skip or r.delete_skip or ("keep_data" if keep_data and r.is_data else "")
        if r.part_of:
            continue
        if reason:
            changes.append(r.change(step, "skip", {"reason": reason}))
            continue
        if not _present(r):
            changes.append(r.change(step, "skip", {"reason": "absent"}))
            continue
        try:
            r.call("delete", r.delete)
        except EtlKitError as err:
            if not is_not_found(err):
                raise
        changes.append(r.change(step, "delete"))
    return changes


def run_describe(resources: list[Resource]) -> dict[str, Any]:
    """Inventory: ``{name: {"type", "arn", "exists"}}``."""
    out: dict[str, Any] = {}
    for r in resources:
        if r.part_of:
            continue
        if r.skip:
            out[r.name] = {"type": r.resource_type, "arn": r.arn, "exists": False, "skipped": r.skip}
            continue
        out[r.name] = {"type": r.resource_type, "arn": r.arn, "exists": _present(r), **r.extra}
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
        if is_not_found(err):
            return None
        raise


def read_with(get: Callable[[], Any],
              project: Callable[[Any], dict[str, Any] | None] = lambda _: {}) -> Callable[[], dict[str, Any] | None]:
    """A resource's ``read``: call ``get``; ``None`` when it is not found, else ``project(response)``.

    The default projection ``{}`` says only "it exists".
    """

    def read() -> dict[str, Any] | None:
        response = or_none(get)
        return None if response is None else project(response)

    return read


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

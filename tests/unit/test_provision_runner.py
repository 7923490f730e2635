"""The step runner (etl_kit.provision.base.Step) over resource specs, on an in-memory account.

The resources here are specs written for the test, over a dict that plays the account; what is checked is
what the runner does with any spec: its change records, the order of side effects, the account it leaves.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from etl_kit.config import Settings
from etl_kit.exceptions import AccessDenied
from etl_kit.provision.base import Change, Ctx, Resource, Step

pytestmark = pytest.mark.unit
SETTINGS = Settings()


class Account:
    """Resources by name, each a dict of settings, and the log of calls made."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def read(self, name: str) -> dict[str, Any] | None:
        if name not in self.items:
            raise ClientError({"Error": {"Code": "NoSuchEntity", "Message": f"{name} not found"}}, "Get")
        return dict(self.items[name])

    def spec(self, name: str, want: dict[str, Any], *, part_of: str = "", **kw: Any) -> Resource:
        """A resource ``name`` whose desired settings are ``want``."""
        from etl_kit.provision.base import read_with

        def create() -> None:
            self.calls.append(f"create {name}")
            self.items[name] = dict(want)

        def update(diffs: dict[str, Any]) -> None:
            self.calls.append(f"update {name} {sorted(diffs)}")
            self.items[name] = dict(want)

        def delete() -> None:
            self.calls.append(f"delete {name}")
            del self.items[name]

        return Resource("thing", name, read=read_with(lambda: self.read(name), dict), desired=want,
                        create=create, update=update, delete=delete, part_of=part_of, **kw)


def _actions(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.name, c.action) for c in changes]


def test_plan_ensure_converge_and_drift_is_put_back() -> None:
    acct = Account()
    step = Step("demo", lambda ctx: [acct.spec("a", {"size": 1}), acct.spec("b", {"size": 2})])
    assert _actions(step.plan(SETTINGS)) == [("a", "create"), ("b", "create")]
    assert acct.calls == []  # a plan changes nothing
    assert _actions(step.ensure(SETTINGS)) == [("a", "create"), ("b", "create")]
    assert acct.items == {"a": {"size": 1}, "b": {"size": 2}}
    assert _actions(step.ensure(SETTINGS)) == [("a", "no-change"), ("b", "no-change")]

    acct.items["b"]["size"] = 7
    [_, drift] = step.plan(SETTINGS)
    assert (drift.action, drift.diffs) == ("update", {"size": {"actual": 7, "desired": 2}})
    assert _actions(step.ensure(SETTINGS)) == [("a", "no-change"), ("b", "update")]
    assert acct.items["b"] == {"size": 2} and acct.calls[-1] == "update b ['size']"


def test_a_part_of_a_resource_created_in_the_same_run_is_reported_created() -> None:
    acct = Account()
    # Creating the bucket gives it a default setting (as S3 gives new buckets SSE-S3); the part puts its own.
    bucket = acct.spec("bucket", {})
    setting = acct.spec("bucket/encryption", {"algo": "kms"}, part_of="bucket")
    original_create = bucket.create

    def create_with_default() -> None:
        original_create()
        acct.items["bucket/encryption"] = {"algo": "AES256"}

    bucket.create = create_with_default
    step = Step("demo", lambda ctx: [bucket, setting])
    assert _actions(step.ensure(SETTINGS)) == [("bucket", "create"), ("bucket/encryption", "create")]
    assert acct.items["bucket/encryption"] == {"algo": "kms"}
    acct.items["bucket/encryption"] = {"algo": "AES256"}  # drift on an existing whole is an update
    assert _actions(step.ensure(SETTINGS)) == [("bucket", "no-change"), ("bucket/encryption", "update")]


def test_a_resource_waits_for_what_it_needs_and_is_ensured_once_that_exists() -> None:
    acct = Account()

    def resources(ctx: Ctx) -> list[Resource]:
        endpoint = acct.spec("workgroup", {"port": 5439})
        connection = acct.spec("connection", {"url": "jdbc:5439"},
                               waits_for=lambda: "" if "workgroup" in acct.items else "no workgroup endpoint yet")
        return [endpoint, connection]

    step = Step("demo", resources)
    [_, waiting] = step.plan(SETTINGS)
    assert (waiting.action, waiting.diffs) == ("skip", {"reason": "no workgroup endpoint yet"})
    assert _actions(step.ensure(SETTINGS)) == [("workgroup", "create"), ("connection", "create")]
    assert acct.calls == ["create workgroup", "create connection"]


def test_delete_runs_in_reverse_keeps_data_and_shared_and_tolerates_absence() -> None:
    acct = Account()

    def resources(ctx: Ctx) -> list[Resource]:
        return [
            acct.spec("warehouse", {}, is_data=True),
            acct.spec("shared-logs", {}, delete_skip="shared with the account"),
            acct.spec("role", {}),
            acct.spec("role/policy", {"doc": 1}, part_of="role"),
            acct.spec("function", {}),
        ]

    step = Step("demo", resources)
    step.ensure(SETTINGS)
    kept = step.delete(SETTINGS, keep_data=True)
    assert [(c.name, c.action, c.diffs.get("reason")) for c in kept] == [
        ("function", "delete", None), ("role", "delete", None), ("shared-logs", "skip", "shared with the account"),
        ("warehouse", "skip", "keep_data")]
    # A part is never deleted on its own: it goes with its whole (here the account keeps its record).
    assert "delete role/policy" not in acct.calls and set(acct.items) == {"warehouse", "shared-logs", "role/policy"}
    again = step.delete(SETTINGS)
    assert [(c.name, c.action, c.diffs.get("reason")) for c in again] == [
        ("function", "skip", "absent"), ("role", "skip", "absent"), ("shared-logs", "skip", "shared with the account"),
        ("warehouse", "delete", None)]
    assert step.describe(SETTINGS) == {
        "warehouse": {"type": "thing", "arn": "", "exists": False},
        "shared-logs": {"type": "thing", "arn": "", "exists": True},
        "role": {"type": "thing", "arn": "", "exists": False},
        "function": {"type": "thing", "arn": "", "exists": False},
    }


def test_what_a_former_layout_left_is_planned_as_delete_and_removed() -> None:
    acct = Account()
    acct.items["old-dlq"] = {}
    step = Step("demo", lambda ctx: [acct.spec("queue", {})], legacy=lambda ctx: [acct.spec("old-dlq", {})])
    assert _actions(step.plan(SETTINGS)) == [("queue", "create"), ("old-dlq", "delete")]
    assert "old-dlq" in acct.items
    assert _actions(step.ensure(SETTINGS)) == [("queue", "create"), ("old-dlq", "delete")]
    assert set(acct.items) == {"queue"}
    assert _actions(step.ensure(SETTINGS)) == [("queue", "no-change")]  # absent leftovers say nothing
    assert _actions(step.plan(SETTINGS)) == [("queue", "no-change")]


def test_an_aws_error_names_the_resource_and_the_operation() -> None:
    def denied() -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "GetRole")

    step = Step("demo", lambda ctx: [Resource("iam-role", "loader-role", read=denied, create=lambda: None)])
    with pytest.raises(AccessDenied) as exc:
        step.plan(SETTINGS)
    assert "read iam-role" in str(exc.value) and "'loader-role'" in str(exc.value)
    assert isinstance(exc.value.__cause__, ClientError)

"""Provision the whole pipeline: ordered steps with ``plan`` / ``ensure`` / ``describe`` / ``delete``.

Each step module declares its resources as one :class:`~etl_kit.provision.base.Step` (``STEP``); the
step runner in :mod:`etl_kit.provision.base` gives every step the same four operations.
:func:`apply_all` runs the steps in :data:`STEPS` order (idempotent; drift is put back and reported),
:func:`teardown_all` in reverse order, :func:`plan_all` changes nothing and :func:`inventory` lists ARNs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.exceptions import ConfigError, CredentialsError, EtlKitError
from etl_kit.provision import events, glue, glue_jobs, glue_workflow, iam, lambda_, logs, network, redshift, s3, sns
from etl_kit.provision.base import Change, Step

__all__ = [
    "STEPS",
    "STEP_NAMES",
    "Change",
    "InjectedFailure",
    "plan_all",
    "apply_all",
    "teardown_all",
    "inventory",
    "preflight",
    "console_links",
    "idle_cost",
]

# Seed order (S3, IAM, Lambda, crawlers, jobs, workflow, SNS, EventBridge, Redshift) adjusted for
# dependencies: network first (the workgroup needs it), logs before what writes to them, SNS before the
# Lambda that publishes, Redshift before job 2 (its connection and secret), EventBridge last (its
# targets must exist).
STEPS: tuple[Step, ...] = (
    network.STEP,
    s3.STEP,
    iam.STEP,
    logs.STEP,
    sns.STEP,
    lambda_.STEP,
    glue.STEP,
    redshift.STEP,
    glue_jobs.STEP,
    glue_workflow.STEP,
    events.STEP,
)
STEP_NAMES = tuple(step.name for step in STEPS)


class InjectedFailure(EtlKitError):
    """Raised by :func:`apply_all` after the step named in ``fail_after_step`` (tests)."""


def _select(only: Iterable[str] | None) -> list[Step]:
    if only is None:
        return list(STEPS)
    wanted = set(only)
    unknown = wanted - set(STEP_NAMES)
    if unknown:
        raise ConfigError(f"unknown provisioning steps {sorted(unknown)}; expected some of {list(STEP_NAMES)}")
    return [step for step in STEPS if step.name in wanted]


def preflight(settings: Settings, session: boto3.Session | None = None) -> str:
    """Check credentials and region before touching anything; return the account id.

    Raises
    ------
    CredentialsError
        No usable credentials, or the session's region differs from ``region`` in params.
    """
    from etl_kit.clients import account_id, get_session

    if settings.target == "aws":
        sess = get_session(settings, session)
        if sess.region_name and sess.region_name != settings.region:
            raise CredentialsError(
                f"the boto3 session is in region {sess.region_name!r} but params say region {settings.region!r}; "
                "make them agree"
            )
    return account_id(settings, session)


def plan_all(settings: Settings, session: boto3.Session | None = None, *,
             only: Iterable[str] | None = None) -> list[Change]:
    """Every step's plan (create / update with differing fields / no-change / skip); changes nothing."""
    preflight(settings, session)
    return [c for step in _select(only) for c in step.plan(settings, session)]


def idle_cost(settings: Settings, session: boto3.Session | None = None) -> list[Any]:
    """The monthly cost of the planned resources while no file arrives (:func:`etl_kit.pricing.idle_monthly`),
    with the endpoints and AZs read from the target's VPC (aws prices on either target)."""
    from etl_kit.pricing import idle_monthly
    from etl_kit.provision.base import Ctx

    endpoints, subnets = network.planned_endpoints(Ctx(settings, session))
    return idle_monthly(settings, endpoints, subnets)


def apply_all(
    settings: Settings,
    session: boto3.Session | None = None,
    *,
    fail_after_step: str | None = None,
    progress: bool = True,
    only: Iterable[str] | None = None,
) -> list[Change]:
    """Run every step's ``ensure`` in order.

    Parameters
    ----------
    fail_after_step
        Raise :class:`InjectedFailure` right after this step (to test convergence).
    progress
        Show a tqdm progress bar.
    only
        Run just these steps (names from :data:`STEP_NAMES`).
    """
    if fail_after_step is not None and fail_after_step not in STEP_NAMES:
        raise ConfigError(f"fail_after_step {fail_after_step!r} is not one of {list(STEP_NAMES)}")
    preflight(settings, session)

    def ensure(step: Step) -> list[Change]:
        changes = step.ensure(settings, session)
        if step.name == fail_after_step:
            raise InjectedFailure(f"injected failure after step {step.name!r}")
        return changes

    return _run(_select(only), ensure, "provision", progress)


def teardown_all(
    settings: Settings,
    session: boto3.Session | None = None,
    *,
    keep_data: bool = False,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    progress: bool = False,
    only: Iterable[str] | None = None,
) -> list[Change]:
    """Delete everything in reverse step order; tolerant of absent and half-created resources.

    Parameters
    ----------
    keep_data
        Keep the project bucket and its contents, the Data Catalog database and the warehouse.
    yes
        Do not ask before deleting data.
    confirm
        Asked (with a description) before deleting data unless ``yes`` or ``keep_data``;
        declining raises :class:`EtlKitError` and deletes nothing.
    """
    preflight(settings, session)
    if not keep_data and not yes:
        question = (f"Delete bucket {settings.bucket} with all its objects, the catalog database "
                    f"{settings.glue_database} and the warehouse {settings.redshift_workgroup}?")
        if confirm is None or not confirm(question):
            raise EtlKitError("teardown not confirmed: nothing deleted (pass yes=True / --yes, or keep_data)")
    return _run(list(reversed(_select(only))), lambda step: step.delete(settings, session, keep_data=keep_data),
                "teardown", progress)


def _run(steps: list[Step], run: Callable[[Step], list[Change]], desc: str, progress: bool) -> list[Change]:
    """Run ``run`` over ``steps`` in order, with a progress bar; the changes of every step, in order."""
    changes: list[Change] = []
    bar = _bar(len(steps), desc, progress)
    try:
        for step in steps:
            bar.set_postfix_str(step.name)
            changes.extend(run(step))
            bar.update(1)
    finally:
        bar.close()
    return changes


def console_links(settings: Settings, kind: str, name: str) -> str:
    """AWS console URL of a resource (``""`` on the local target or for unknown kinds)."""
    if settings.target != "aws":
        return ""
    r = settings.region
    base = f"https://{r}.console.aws.amazon.com"
    urls = {
        "s3-bucket": f"https://s3.console.aws.amazon.com/s3/buckets/{name}?region={r}",
        "iam-role": f"https://console.aws.amazon.com/iam/home#/roles/details/{name}",
        "lambda-function": f"{base}/lambda/home?region={r}#/functions/{name}",
        "glue-crawler": f"{base}/glue/home?region={r}#/v2/data-catalog/crawlers/view/{name}",
        "glue-job": f"{base}/gluestudio/home?region={r}#/editor/job/{name}/details",
        "glue-workflow": f"{base}/glue/home?region={r}#/v2/etl-configuration/workflows/view/{name}",
        "glue-database": f"{base}/glue/home?region={r}#/v2/data-catalog/databases/view/{name}",
        "sns-topic": f"{base}/sns/v3/home?region={r}#/topics",
        "events-rule": f"{base}/events/home?region={r}#/eventbus/default/rules/{name}",
        "redshift-workgroup": f"{base}/redshiftv2/home?region={r}#serverless-workgroup?workgroup={name}",
        "log-group": f"{base}/cloudwatch/home?region={r}#logsV2:log-groups",
    }
    return urls.get(kind, "")


def inventory(settings: Settings, session: boto3.Session | None = None, *,
              only: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{step: {name: {"type", "arn", "exists", ...}}}`` with console links on ``aws``."""
    out: dict[str, dict[str, Any]] = {}
    for step in _select(only):
        items = step.describe(settings, session)
        for res_name, info in items.items():
            if isinstance(info, dict) and "type" in info:
                link = console_links(settings, info["type"], res_name)
                if link:
                    info["console"] = link
        out[step.name] = items
    return out


class _NoBar:
    def set_postfix_str(self, s: str) -> None:
        pass

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step")

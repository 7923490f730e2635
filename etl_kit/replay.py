"""Run failed or rejected objects again, exactly once: ``etl-kit replay KEY | --failed | --dlq``.

A replay does not start a workflow run itself: it hands the Lambda an EventBridge-shaped "Object
Created" event for the object with the detail-type ``Object Replay Requested`` (``Object Replay
Forced`` with ``force``), so it goes through the same claim take-over as any delivery (see
:mod:`etl_runtime.lambda_handler`): of two replays racing for the object, one starts a run and
the other is skipped as a duplicate; a replay may take over a failed, rejected or abandoned attempt,
never a running one, and a succeeded one only when forced.

The event goes to the durable intake queue (``settings.intake_queue``) when it exists, else straight
to the function (``lambda:InvokeFunction``, synchronously, so the Lambda's decision is known).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.exceptions import PipelineError, ResourceNotFound, WarehouseError, is_not_found
from etl_runtime.lambda_handler import FORCED_REPLAY_DETAIL_TYPE, REPLAY_DETAIL_TYPE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Attempt", "Replayed", "attempts", "newest_attempts", "replay_event", "replay_object", "replay_failed",
           "replay_dlq", "parse_target", "results_frame",
           "failed_identities"]

@dataclass(frozen=True)
class Attempt:
    """One ledger row: one attempt at an object identity (bucket, key, etag)."""

    bucket: str
    key: str
    etag: str
    run_id: str
    attempt: int
    state: str
    reason: str
    message: str
    finished_at: str


@dataclass
class Replayed:
    """What became of one replay: ``queued`` (sent to the intake queue), ``started`` / ``skipped`` (the
    Lambda's decision when invoked directly), or ``not replayed`` (with the reason)."""

    bucket: str
    key: str
    etag: str
    outcome: str
    run_id: str = ""
    detail: str = ""
    via: str = ""


def parse_target(target: str, settings: Settings) -> tuple[str, str]:
    """``s3://bucket/key`` or a key in the pipeline's bucket -> (bucket, key)."""
    if target.startswith("s3://"):
        bucket, _, key = target[5:].partition("/")
        if not bucket or not key:
            raise PipelineError(f"{target!r} is not an object URI: expected s3://<bucket>/<key>")
        return bucket, key
    if not target:
        raise PipelineError("no object given: pass a source key (input/...) or an s3:// URI")
    return settings.bucket_name(), target


def _ledger(settings: Settings) -> str:
    return f'"{settings.redshift_schema}"."{settings.ledger_table}"'


def _attempts(df: pd.DataFrame) -> list[Attempt]:
    return [Attempt(bucket=str(r["bucket"]), key=str(r["key"]), etag=str(r["etag"]), run_id=str(r["run_id"] or ""),
                    attempt=int(r["attempt"] or 0), state=str(r["state"]), reason=str(r["reason"] or ""),
                    message=str(r["message"] or ""), finished_at=str(r["finished_at"] or ""))
            for r in df.to_dict(orient="records")]


def attempts(settings: Settings, bucket: str, key: str, etag: str | None = None) -> list[Attempt]:
    """The ledger's attempts at an object (all versions, or the one ``etag``), newest first."""
    from etl_kit.warehouse import query

    sql = (f'SELECT * FROM {_ledger(settings)} WHERE "bucket" = :b AND "key" = :k'
           + (' AND "etag" = :e' if etag is not None else "") + ' ORDER BY "attempt" DESC, "finished_at" DESC')
    params = {"b": bucket, "k": key, **({"e": etag} if etag is not None else {})}
    return _attempts(query(sql, settings, parameters=params))


def newest_attempts(settings: Settings, state: str | None = None) -> list[Attempt]:
    """Each object identity's newest attempt (its state), optionally only those in ``state``."""
    from etl_kit.warehouse import query

    sql = (f'SELECT * FROM (SELECT l.*, ROW_NUMBER() OVER (PARTITION BY "bucket", "key", "etag" ORDER BY "attempt" '
           f'DESC, "finished_at" DESC) AS newest FROM {_ledger(settings)} l) t WHERE newest = 1'
           + (' AND "state" = :s' if state else "") + ' ORDER BY "finished_at"')
    return _attempts(query(sql, settings, parameters={"s": state} if state else None))


def replay_event(settings: Settings, bucket: str, key: str, head: dict[str, Any], *, force: bool = False) -> dict[
        str, Any]:
    """The EventBridge-shaped "Object Created" event the Lambda takes as a replay of ``s3://bucket/key``."""
    obj: dict[str, Any] = {"key": key, "size": int(head.get("ContentLength") or 0),
                           "etag": str(head.get("ETag") or "").strip('"')}
    if head.get("VersionId") and head["VersionId"] != "null":
        obj["version-id"] = head["VersionId"]
    return {
        "version": "0", "id": str(uuid.uuid4()), "source": "etl-kit.replay",
        "detail-type": FORCED_REPLAY_DETAIL_TYPE if force else REPLAY_DETAIL_TYPE,
        "account": "", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": settings.region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj, "reason": "Replay",
                   "requester": "etl-kit replay"},
    }


def _head(settings: Settings, bucket: str, key: str) -> dict[str, Any]:
    try:
        return dict(client("s3", settings).head_object(Bucket=bucket, Key=key))
    except Exception as exc:
        if is_not_found(exc):
            raise ResourceNotFound(f"s3://{bucket}/{key} does not exist: nothing to replay (check the key; a "
                                   "source key looks like input/<name>.csv)", code="NoSuchKey",
                                   resource=f"s3://{bucket}/{key}") from exc
        raise


def _send(settings: Settings, event: dict[str, Any]) -> Replayed:
    """Put the event on the intake queue, or (no queue yet) invoke the function with it."""
    d = event["detail"]
    out = Replayed(d["bucket"]["name"], d["object"]["key"], d["object"]["etag"], "")
    sqs = client("sqs", settings)
    try:
        url = sqs.get_queue_url(QueueName=settings.intake_queue)["QueueUrl"]
    except Exception as exc:
        if not is_not_found(exc):
            raise
        url = ""
    if url:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
        out.outcome, out.via = "queued", f"sqs:{settings.intake_queue}"
        out.detail = "the Lambda takes it from the queue"
        return out
    resp = client("lambda", settings).invoke(FunctionName=settings.lambda_function, Payload=json.dumps(event))
    payload = json.loads(resp["Payload"].read() or b"{}")
    out.via = f"lambda:{settings.lambda_function}"
    if resp.get("FunctionError"):
        raise PipelineError(f"the Lambda {settings.lambda_function} failed on the replay of s3://{out.bucket}/"
                            f"{out.key}: {payload.get('errorMessage') or payload}; nothing was started")
    out.outcome, out.run_id = str(payload.get("status") or ""), str(payload.get("run_id") or "")
    out.detail = str(payload.get("reason") or (f"attempt {payload.get('attempt')}" if payload.get("attempt") else ""))
    return out


def replay_object(settings: Settings, target: str, *, force: bool = False) -> Replayed:
    """Run one object again through the claim take-over (see the module docstring).

    Parameters
    ----------
    target
        A source key in the pipeline's bucket (``input/...``) or an ``s3://`` URI.
    force
        Also replay an object that is loaded (job 2 then upserts it again: its rows are replaced,
        never duplicated).

    Raises
    ------
    ResourceNotFound
        The object does not exist.
    PipelineError
        The object is loaded (and not ``force``): the message names the object and the run.
    """
    bucket, key = parse_target(target, settings)
    head = _head(settings, bucket, key)
    etag = str(head.get("ETag") or "").strip('"')
    loaded = [a for a in _attempts_or_none(settings, bucket, key, etag) if a.state == "loaded"]
    if loaded and not force:
        a = loaded[0]
        raise PipelineError(
            f"s3://{bucket}/{key} (ETag {etag}) is already loaded by run {a.run_id} (attempt {a.attempt}, "
            f"{a.finished_at}): a replay would change nothing. Use --force to load it again (its rows are "
            "replaced, never duplicated)")
    return _send(settings, replay_event(settings, bucket, key, head, force=force))


def _attempts_or_none(settings: Settings, bucket: str, key: str, etag: str) -> list[Attempt]:
    try:
        return attempts(settings, bucket, key, etag)
    except WarehouseError as exc:
        if "does not exist" in str(exc):  # no ledger table yet: nothing was ever loaded
            return []
        raise


def failed_identities(runs: list[dict[str, Any]], newest: list[Attempt]) -> list[Attempt]:
    """The object identities whose newest attempt failed, from the ledger and the workflow runs.

    Parameters
    ----------
    runs
        Workflow runs (``get_workflow_runs``): an identity whose newest run ended unsuccessfully and has
        no ledger row of its own (a crawler failed, a job was killed or stopped before it wrote one)
        failed too.
    newest
        Each identity's newest ledger attempt (:func:`newest_attempts`).

    Returns
    -------
    list of Attempt
        One per identity, the ledger's row where there is one (``state = failed``).
    """
    from etl_runtime.lambda_handler import run_verdict

    ledger = {(a.bucket, a.key, a.etag): a for a in newest}
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in runs:
        p = r.get("WorkflowRunProperties") or {}
        ident = (p.get("source_bucket", ""), p.get("source_key", ""), p.get("source_etag", ""))
        if all(ident) and (ident not in latest or str(r.get("StartedOn")) > str(latest[ident].get("StartedOn"))):
            latest[ident] = r
    out = [a for a in newest if a.state == "failed"]
    for ident, r in latest.items():
        led = ledger.get(ident)
        if run_verdict(r) != "failed" or (led is not None and (led.run_id == r.get("WorkflowRunId")
                                                               or led.state in ("loaded", "failed"))):
            continue  # ended well, recorded by the ledger already, or loaded by an earlier attempt
        out.append(Attempt(*ident, run_id=str(r.get("WorkflowRunId")), attempt=0, state="failed",
                           reason="run_failed", message=f"workflow run {r.get('WorkflowRunId')} ended "
                           f"{r.get('Status')} with {r.get('Statistics')}", finished_at=str(r.get("CompletedOn"))))
    return out


def _workflow_runs(settings: Settings) -> list[dict[str, Any]]:
    glue = client("glue", settings)
    runs: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"Name": settings.workflow, "MaxResults": 1000}
    while True:
        page = glue.get_workflow_runs(**kw)
        runs += page.get("Runs", [])
        if not page.get("NextToken"):
            return runs
        kw["NextToken"] = page["NextToken"]


def replay_failed(settings: Settings, *, progress: bool = True) -> list[Replayed]:
    """Replay every object whose newest attempt failed (and that is still the same version).

    Failed attempts come from the ledger and from the workflow runs Glue still keeps (a run that failed
    before anything wrote a ledger row). An object overwritten since its failed attempt is not
    replayed: its new version has an event (and a run) of its own.
    """
    from tqdm import tqdm  # the text bar: JupyterLab and papermill outputs show it as one line (no ipywidgets)

    failed = failed_identities(_workflow_runs(settings), _newest_or_none(settings, None))
    out: list[Replayed] = []
    for a in tqdm(failed, desc="replay failed", unit="object", disable=not progress):
        try:
            head = _head(settings, a.bucket, a.key)
        except ResourceNotFound as exc:
            out.append(Replayed(a.bucket, a.key, a.etag, "not replayed", a.run_id, str(exc)))
            continue
        now = str(head.get("ETag") or "").strip('"')
        if now != a.etag:
            out.append(Replayed(a.bucket, a.key, a.etag, "not replayed", a.run_id,
                                f"overwritten since (ETag now {now}): the new version has its own run"))
            continue
        out.append(_send(settings, replay_event(settings, a.bucket, a.key, head)))
    return out


def _newest_or_none(settings: Settings, state: str | None) -> list[Attempt]:
    try:
        return newest_attempts(settings, state)
    except WarehouseError as exc:
        if "does not exist" in str(exc):
            return []
        raise


def _queue(settings: Settings, name: str, role: str) -> str:
    try:
        return str(client("sqs", settings).get_queue_url(QueueName=name)["QueueUrl"])
    except Exception as exc:
        if is_not_found(exc):
            raise ResourceNotFound(f"the {role} SQS queue {name!r} does not exist: provision the durable intake "
                                   "(etl-kit provision --params ...) first", code="QueueDoesNotExist",
                                   resource=name) from exc
        raise


def replay_dlq(settings: Settings, *, progress: bool = True, visibility_timeout: int = 60) -> dict[str, int]:
    """Move every message of the intake DLQ back to the intake queue (bodies unchanged).

    A receive / send / delete loop (works on AWS and the local cloud alike; AWS's StartMessageMoveTask
    would need the DLQ's redrive permission): a message is deleted from the DLQ only after the send
    succeeded, so a failure part-way loses nothing (the message reappears in the DLQ after
    ``visibility_timeout``). At most the number of messages present at the start are moved, so
    messages that fail again and return to the DLQ meanwhile are not cycled.

    Returns
    -------
    dict
        ``{"moved": n, "dlq_left": approximate messages left in the DLQ}``.
    """
    from tqdm import tqdm  # the text bar: JupyterLab and papermill outputs show it as one line (no ipywidgets)

    sqs = client("sqs", settings)
    dlq = _queue(settings, settings.intake_dlq, "intake dead-letter")
    intake = _queue(settings, settings.intake_queue, "intake")

    def depth() -> int:
        attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0))

    budget, moved = depth(), 0
    with tqdm(total=budget, desc=f"{settings.intake_dlq} -> {settings.intake_queue}", unit="msg",
              disable=not progress) as bar:
        while moved < budget:
            msgs = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=min(10, budget - moved), WaitTimeSeconds=1,
                                       VisibilityTimeout=visibility_timeout,
                                       MessageAttributeNames=["All"]).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                extra = {"MessageAttributes": m["MessageAttributes"]} if m.get("MessageAttributes") else {}
                sqs.send_message(QueueUrl=intake, MessageBody=m["Body"], **extra)
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
                moved += 1
                bar.update(1)
    return {"moved": moved, "dlq_left": depth()}


def results_frame(results: list[Replayed]) -> pd.DataFrame:
    """The replays as a table (one row each)."""
    import pandas as pd

    return pd.DataFrame([asdict(r) for r in results],
                        columns=["bucket", "key", "etag", "outcome", "run_id", "detail", "via"])

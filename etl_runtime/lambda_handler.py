"""Lambda ``start-workflow-function``: start the Glue workflow for one uploaded CSV object.

Stdlib and boto3 only (of the runtime only :mod:`etl_runtime.awsutil`; no pyarrow, which Lambda's
python runtime lacks), Python 3.9 compatible. Shipped inside the whole runtime package; the handler is
``etl_runtime.lambda_handler.handler``. Locally the env var ``AWS_ENDPOINT_URL``
points the plain ``boto3.client(...)`` calls at the local cloud.

Environment
-----------
WORKFLOW_NAME (required), BUCKET (optional: only objects of this bucket act), INPUT_PREFIX (``input/``),
STATE_PREFIX (``_etl_kit/``), TOPIC_ARN (optional SNS topic), BACKOFF_BASE_SECONDS (``2``),
BACKOFF_MAX_SECONDS (``900``): the delay before a waiting SQS record is tried again.

Events: an SQS batch from the intake queue's event source mapping (each body an EventBridge event),
or, directly, an EventBridge "Object Created" event (``detail.bucket.name``, ``detail.object.key``...)
or a classic S3 notification (``Records[].s3``; keys URL-encoded with ``+`` for space). Only ``.csv`` /
``.csv.gz`` objects under INPUT_PREFIX act; zero-byte objects and folder markers are skipped.

Dedupe, with retries: each attempt at an object identity (bucket, key, version-or-etag) is a claim
object ``<STATE_PREFIX>claims/<sha256(bucket\\0key\\0version-or-etag)>/<n>.json`` (n = 1, 2, ...) created
with ``If-None-Match: *`` (S3 conditional write, :func:`put_if_absent`; moto 5.2.5 enforces it with
``PreconditionFailed``), so of two deliveries racing for attempt n exactly one wins. A delivery that
finds attempt n taken asks how that attempt ended (``glue:GetWorkflowRun``): still running or succeeded
(or rejected for its content) -> skipped as ``duplicate``; ended unsuccessfully (a failed, timed-out or
stopped node, run STOPPED/ERROR), or claimed but never started within CLAIM_LEASE_SECONDS (``900``, the
longest a Lambda can run) -> it races for attempt n+1. A replay event (detail-type
``Object Replay Requested`` / ``Object Replay Forced``, sent by ``etl-kit replay``) may also take over a
rejected attempt or one whose run is no longer known, and with force a succeeded one. A claim written
before attempts existed (``claims/<sha256>.json``) counts as attempt 0.
If the workflow cannot be started the claim is released (deleted) and the error re-raised, so the retried
event takes the same attempt again. A release that fails (``s3:DeleteObject`` refused, ...) is logged as an
error naming the claim and the cause, and the claim is marked ``start_failed`` instead: the retried event
then reads that attempt as ``failed`` and takes the next one, rather than skipping as a duplicate of an
attempt that never started.

Waiting (SQS batches): ``StartWorkflowRun`` is tried once, never with a sleep. A record that cannot start
now (``ConcurrentRunsExceededException``, throttling, a transient or unexpected error) is reported in
``batchItemFailures`` and its message is made visible again after an exponential backoff with jitter
on its ``ApproximateReceiveCount`` (``ChangeMessageVisibility``), so events wait in the queue until a run
slot is free. A body that is not an event is retried at once, so the queue's redrive moves it to the DLQ
after ``maxReceiveCount`` receives. Started, skipped and duplicate records are successes (deleted).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, NoReturn, Optional, Tuple
from urllib.parse import unquote_plus

import boto3

from etl_runtime.awsutil import error_code, iso_now

__all__ = ["handler", "parse_event", "should_process", "claim_key", "take_claim", "claim_verdict",
           "run_verdict", "delivery_kind", "ObjectRef", "backoff_seconds", "WAIT_CODES"]

# Error codes meaning "not now": the record waits in the queue (logged, not notified).
WAIT_CODES = frozenset({
    "ConcurrentRunsExceededException", "ThrottlingException", "Throttling", "TooManyRequestsException",
    "RequestLimitExceeded", "ServiceUnavailable", "ServiceUnavailableException", "InternalServiceException",
    "InternalFailure", "InternalError", "OperationTimeoutException", "SlowDown", "RequestTimeout",
})
MAX_VISIBILITY_SECONDS = 43200  # SQS refuses a longer visibility timeout (12 hours)


class ObjectRef(Dict[str, Any]):
    """bucket, key, size, etag, version_id, event_time, raw_key, source ("eventbridge" | "s3")."""


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default) or default


def parse_event(event: Dict[str, Any]) -> List[ObjectRef]:
    """The objects named by an EventBridge "Object Created" event or an S3 notification.

    S3 notification keys are URL-encoded (``+`` for space) and decoded here. EventBridge keys are
    kept raw in ``key`` and decoded in ``decoded_key``; the handler uses the decoded one only when
    the raw key does not exist.
    """
    out: List[ObjectRef] = []
    if isinstance(event.get("detail"), dict) and "bucket" in event["detail"]:
        d = event["detail"]
        obj = d.get("object") or {}
        raw_key = str(obj.get("key", ""))
        out.append(ObjectRef(
            bucket=str((d.get("bucket") or {}).get("name", "")), key=raw_key, decoded_key=unquote_plus(raw_key),
            size=obj.get("size"), etag=str(obj.get("etag") or obj.get("eTag") or "").strip('"'),
            version_id=str(obj.get("version-id") or obj.get("versionId") or ""),
            event_time=str(event.get("time") or ""), source="eventbridge",
            event_name=str(event.get("detail-type") or ""),
        ))
    for rec in event.get("Records") or []:
        s3 = rec.get("s3") or {}
        obj = s3.get("object") or {}
        key = unquote_plus(str(obj.get("key", "")))
        out.append(ObjectRef(
            bucket=str((s3.get("bucket") or {}).get("name", "")), key=key, decoded_key=key, size=obj.get("size"),
            etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
            version_id=str(obj.get("versionId") or ""), event_time=str(rec.get("eventTime") or ""), source="s3",
            event_name=str(rec.get("eventName") or ""),
        ))
    return out


def should_process(ref: Dict[str, Any], *, input_prefix: str = "input/", bucket: str = "") -> Tuple[bool, str]:
    """Whether an object should start the workflow, and why not.

    Returns
    -------
    (bool, reason)
        reason is "" when it should act, else e.g. ``"not under input/"``, ``"not a .csv or .csv.gz"``.
    """
    key = str(ref.get("key") or "")
    if bucket and ref.get("bucket") != bucket:
        return False, f"bucket {ref.get('bucket')!r} is not {bucket!r}"
    if not key:
        return False, "no object key in the event"
    if key.endswith("/"):
        return False, "folder marker"
    if not key.startswith(input_prefix):
        return False, f"not under {input_prefix}"
    if not key.lower().endswith((".csv", ".csv.gz")):
        return False, "not a .csv or .csv.gz object"
    size = ref.get("size")
    if size is not None and int(size) == 0:
        return False, "zero-byte object"
    return True, ""


def claim_key(bucket: str, key: str, version_or_etag: str, state_prefix: str = "_etl_kit/",
              attempt: Optional[int] = None) -> str:
    """The durable claim key of attempt ``attempt`` at an object identity (bucket, key, version id or ETag).

    Without ``attempt``: the single claim key used before attempts were numbered (read as attempt 0).
    """
    h = hashlib.sha256(f"{bucket}\0{key}\0{version_or_etag}".encode()).hexdigest()
    if attempt is None:
        return f"{state_prefix}claims/{h}.json"
    return f"{state_prefix}claims/{h}/{int(attempt)}.json"


# Replay events (``etl-kit replay``) are EventBridge-shaped "Object Created" events with one of these
# detail-types; anything else is an ordinary delivery.
REPLAY_DETAIL_TYPE = "Object Replay Requested"
FORCED_REPLAY_DETAIL_TYPE = "Object Replay Forced"
MAX_CLAIM_ATTEMPTS = 100
_RUN_FAILURES = ("FailedActions", "TimeoutActions", "StoppedActions", "ErroredActions")
# which ended attempts a delivery may take over, by kind of delivery
_TAKE_OVER = {
    "event": ("failed", "abandoned"),
    "replay": ("failed", "abandoned", "rejected", "unknown"),
    "force": ("failed", "abandoned", "rejected", "unknown", "succeeded"),
}


def delivery_kind(ref: Dict[str, Any]) -> str:
    """``event`` (an ordinary delivery), ``replay`` or ``force`` (from ``etl-kit replay [--force]``)."""
    name = str(ref.get("event_name") or "")
    return {REPLAY_DETAIL_TYPE: "replay", FORCED_REPLAY_DETAIL_TYPE: "force"}.get(name, "event")


def run_verdict(run: Optional[Dict[str, Any]]) -> str:
    """How a workflow run ended, for the claim take-over.

    Returns
    -------
    str
        ``running`` (RUNNING/STOPPING), ``failed`` (STOPPED/ERROR, or COMPLETED with a failed, timed-out,
        stopped or errored action), ``rejected`` (job 1 rejected the file for its content: the same bytes
        would be rejected again), ``succeeded``, or ``unknown`` (no such run).
    """
    if not run:
        return "unknown"
    status = str(run.get("Status") or "")
    if status in ("RUNNING", "STOPPING", ""):
        return "running"
    if status in ("STOPPED", "ERROR"):
        return "failed"
    if (run.get("WorkflowRunProperties") or {}).get("job1_state") == "rejected":
        return "rejected"
    stats = run.get("Statistics") or {}
    if any(int(stats.get(k) or 0) for k in _RUN_FAILURES):
        return "failed"
    return "succeeded"


def claim_verdict(claim: Dict[str, Any], glue: Any, workflow: str, *, lease_seconds: float,
                  now: Optional[datetime] = None) -> str:
    """How the attempt recorded in ``claim`` ended (see :func:`run_verdict`), plus ``starting`` (claimed,
    no run id yet) and ``abandoned`` (claimed more than ``lease_seconds`` ago and never started)."""
    run_id = str(claim.get("run_id") or "")
    if claim.get("start_failed"):
        return "failed"  # its start failed and the claim could not be released (see _Delivery._release)
    if not run_id:
        try:
            claimed = datetime.fromisoformat(str(claim.get("claimed_at") or ""))
        except ValueError:
            return "abandoned"  # not a claim this function wrote: nothing is running for it
        if claimed.tzinfo is None:
            claimed = claimed.replace(tzinfo=timezone.utc)
        age = ((now or datetime.now(timezone.utc)) - claimed).total_seconds()
        return "abandoned" if age > lease_seconds else "starting"
    try:
        run = glue.get_workflow_run(Name=str(claim.get("workflow") or workflow), RunId=run_id)["Run"]
    except Exception as exc:
        if error_code(exc) == "EntityNotFoundException":
            return "unknown"
        raise  # throttled or refused: fail the invocation so the event is delivered again
    return run_verdict(run)


_CONDITIONAL = threading.local()  # set while this thread's put_if_absent call is in flight


def _if_none_match(request: Any, **_: Any) -> None:
    if getattr(_CONDITIONAL, "on", False):
        request.headers["If-None-Match"] = "*"


def put_if_absent(s3: Any, **kwargs: Any) -> Any:
    """``s3.put_object(**kwargs)`` that succeeds only when the key does not exist yet (S3 conditional write).

    The condition travels as the ``If-None-Match: *`` header, added before signing, not as the ``IfNoneMatch``
    parameter: boto3 knows that parameter only from 1.35 (August 2024), and the boto3 a Lambda runtime ships
    can be older (python3.12's is 1.34.145, see etl_localcloud/runtimes.py), where the parameter fails
    validation. S3 honours the header whatever the SDK's version. Thread-safe: botocore signs in the calling
    thread, and only this thread's call carries the header.
    """
    s3.meta.events.register_first("before-sign.s3.PutObject", _if_none_match, unique_id="etl-kit-if-none-match")
    _CONDITIONAL.on = True
    try:
        return s3.put_object(**kwargs)
    finally:
        _CONDITIONAL.on = False


def _read_claim(s3: Any, bucket: str, ckey: str) -> Optional[Dict[str, Any]]:
    """The claim's body, or None when there is no such claim."""
    try:
        body = s3.get_object(Bucket=bucket, Key=ckey)["Body"].read()
    except Exception as exc:
        # S3 answers 403 instead of 404 for a missing key unless s3:ListBucket applies to the request,
        # and the function's ListBucket is conditioned on s3:prefix (absent from GetObject); it may read
        # every claim, so a 403 here means the claim does not exist
        if error_code(exc) in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):
            return None
        raise
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def take_claim(s3: Any, glue: Any, *, bucket: str, ident: Tuple[str, str, str], claim: Dict[str, Any],
               kind: str = "event") -> Dict[str, Any]:
    """Claim the next attempt at an object identity, or say which attempt holds it.

    Parameters
    ----------
    ident
        ``(key, version-or-etag, state_prefix)``.
    claim
        The claim body (``attempt`` and ``claim_key`` are added).
    kind
        :func:`delivery_kind` of the event: which ended attempts it may take over.

    Returns
    -------
    dict
        ``{won: True, claim_key, attempt}`` or ``{won: False, attempt, run_id, verdict}``.
    """
    key, ident_value, state_prefix = ident
    workflow = _env("WORKFLOW_NAME")
    lease = float(_env("CLAIM_LEASE_SECONDS", "900"))
    allowed = _TAKE_OVER.get(kind, _TAKE_OVER["event"])
    legacy = _read_claim(s3, bucket, claim_key(bucket, key, ident_value, state_prefix))
    if legacy is not None:
        verdict = claim_verdict(legacy, glue, workflow, lease_seconds=lease)
        if verdict not in allowed:
            return {"won": False, "attempt": 0, "run_id": str(legacy.get("run_id") or ""), "verdict": verdict}
    attempt, vanished = 1, 0
    while attempt <= MAX_CLAIM_ATTEMPTS:
        ckey = claim_key(bucket, key, ident_value, state_prefix, attempt)
        body = dict(claim, attempt=attempt, claim_key=ckey, workflow=workflow)
        try:
            put_if_absent(s3, Bucket=bucket, Key=ckey, Body=json.dumps(body).encode("utf-8"),
                          ContentType="application/json")
            claim.update(attempt=attempt, claim_key=ckey, workflow=workflow)
            return {"won": True, "claim_key": ckey, "attempt": attempt}
        except Exception as exc:
            if error_code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise
        held = _read_claim(s3, bucket, ckey)
        if held is None:  # released (its start failed) between our write and our read: race for it again
            vanished += 1
            if vanished > 5:
                raise RuntimeError(f"claim {ckey} keeps appearing and vanishing; retry the event")
            time.sleep(0.05 * vanished)
            continue
        verdict = claim_verdict(held, glue, workflow, lease_seconds=lease)
        if verdict not in allowed:
            return {"won": False, "attempt": attempt, "run_id": str(held.get("run_id") or ""), "verdict": verdict}
        attempt += 1
    return {"won": False, "attempt": attempt - 1, "run_id": "", "verdict": "too many attempts"}


def _log(**fields: Any) -> None:
    fields.setdefault("ts", iso_now())
    print(json.dumps(fields, default=str, sort_keys=True), flush=True)


def _notify(sns: Any, topic: str, subject: str, body: str) -> None:
    if not topic:
        return
    try:
        sns.publish(TopicArn=topic, Subject=subject[:100], Message=body)
    except Exception as exc:  # a notification failure must not change the outcome
        _log(decision="notify_failed", error=str(exc))


_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def _process_one(ref: ObjectRef, *, s3: Any, glue: Any, sns: Any, context: Any) -> Dict[str, Any]:
    """Start the workflow for one object named by an event, or say why not (``status`` skipped); a run
    that cannot start raises after releasing its claim (``status`` waiting or failed in the log)."""
    d = _Delivery(ref, s3=s3, glue=glue, sns=sns)
    why = d.refusal()
    if why:
        return d.skipped(why)
    head = d.head()
    if head is None:
        return d.skipped("object no longer exists")
    ok, why = should_process(dict(ref, key=d.key, size=head.get("ContentLength")), input_prefix=d.input_prefix)
    if not ok:
        return d.skipped(why)
    etag = str(head.get("ETag") or ref.get("etag") or "").strip('"')
    event_etag = str(ref.get("etag") or "")
    if event_etag and etag and event_etag != etag:
        # Overwritten since this event: the newer version has an event of its own, which starts its run.
        return d.skipped(f"superseded: overwritten since the event (event ETag {event_etag}, now {etag})")
    version = str(head.get("VersionId") or ref.get("version_id") or "")
    if version == "null":
        version = ""
    claim = d.claim(etag, version)
    if claim is None:
        return d.result
    props = {
        "source_bucket": d.bucket, "source_key": d.key, "source_etag": etag, "source_version_id": version,
        "source_size": str(head.get("ContentLength", ref.get("size") or "")),
        "event_time": str(ref.get("event_time") or ""), "claim_key": claim["claim_key"],
        "claim_attempt": str(claim["attempt"]), "delivery": claim["delivery"],
    }
    return d.start(claim, props)


class _Delivery:
    """One object of one event on its way to a workflow run: the settings, the outcome so far and the steps."""

    def __init__(self, ref: ObjectRef, *, s3: Any, glue: Any, sns: Any) -> None:
        self.ref, self.s3, self.glue, self.sns = ref, s3, glue, sns
        self.workflow = _env("WORKFLOW_NAME")
        self.input_prefix = _env("INPUT_PREFIX", "input/")
        self.state_prefix = _env("STATE_PREFIX", "_etl_kit/")
        self.topic = _env("TOPIC_ARN")
        self.bucket, self.key = ref["bucket"], ref["key"]
        self.result: Dict[str, Any] = {"status": "skipped", "reason": "", "run_id": "", "bucket": self.bucket,
                                       "key": self.key, "etag": str(ref.get("etag") or "")}

    def skipped(self, reason: str, run_id: str = "") -> Dict[str, Any]:
        """Log, notify and return the outcome ``skipped`` with its reason."""
        bucket, key = self.bucket, self.key
        self.result.update(status="skipped", reason=reason, run_id=run_id)
        _log(decision="skipped", **self.result)
        _notify(self.sns, self.topic, f"etl-kit: skipped {key.rsplit('/', 1)[-1]}",
                f"Skipped s3://{bucket}/{key}: {reason}." + (f"\nExisting workflow run: {run_id}" if run_id else ""))
        return self.result

    def refusal(self) -> str:
        """Why the event's object does not start the workflow ("" when it may)."""
        ref = self.ref
        ok, why = should_process(ref, input_prefix=self.input_prefix, bucket=_env("BUCKET"))
        if not ok and ref.get("decoded_key") != self.key and ref.get("source") == "eventbridge":
            # fall through: the decoded key may qualify; decided after head_object
            ok, _ = should_process(dict(ref, key=ref["decoded_key"]), input_prefix=self.input_prefix,
                                   bucket=_env("BUCKET"))
        return "" if ok else why

    def head(self) -> Optional[Dict[str, Any]]:
        """Confirm the object (and its identity) with head_object; EventBridge keys may need decoding (the
        decoded key is then the object's key). None when the object no longer exists."""
        decoded = self.ref.get("decoded_key")
        try:
            return dict(self.s3.head_object(Bucket=self.bucket, Key=self.key))
        except Exception as exc:
            if error_code(exc) not in _NOT_FOUND:
                raise
            if decoded in (None, self.key):
                return None
        try:
            head = dict(self.s3.head_object(Bucket=self.bucket, Key=decoded))
        except Exception as exc2:
            if error_code(exc2) not in _NOT_FOUND:
                raise
            return None
        self.key = self.result["key"] = str(decoded)
        return head

    def claim(self, etag: str, version: str) -> Optional[Dict[str, Any]]:
        """Claim the next attempt at the object (see :func:`take_claim`); the claim, or None when another
        attempt holds it (the outcome is then ``skipped`` as a duplicate)."""
        ref, kind = self.ref, delivery_kind(self.ref)
        claim = {"bucket": self.bucket, "key": self.key, "etag": etag, "version_id": version, "run_id": "",
                 "claimed_at": datetime.now(timezone.utc).isoformat(), "event_time": ref.get("event_time", ""),
                 "delivery": kind}
        taken = take_claim(self.s3, self.glue, bucket=self.bucket, ident=(self.key, version or etag, self.state_prefix),
                           claim=claim, kind=kind)
        if not taken["won"]:
            if taken["verdict"] in ("running", "starting", "succeeded", "rejected"):
                self.skipped("duplicate", taken["run_id"])
            else:
                self.skipped(f"duplicate (attempt {taken['attempt']}: {taken['verdict']})", taken["run_id"])
            return None
        self.result["attempt"] = taken["attempt"]
        return claim

    def start(self, claim: Dict[str, Any], props: Dict[str, str]) -> Dict[str, Any]:
        """Start the workflow run once, never with a sleep, and record its id in the claim.

        When no run slot is free the error goes up to the entry point, which (for an SQS record) makes the
        message reappear later, so the event waits in the queue, not in this function.
        """
        run_id = ""
        last: Optional[BaseException] = None
        try:
            run_id = self.glue.start_workflow_run(Name=self.workflow, RunProperties=props)["RunId"]
        except Exception as exc:
            last = exc
        if not run_id:
            self._not_started(claim, last)
        claim["run_id"] = run_id
        claim["started_at"] = datetime.now(timezone.utc).isoformat()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=claim["claim_key"], Body=json.dumps(claim).encode("utf-8"),
                               ContentType="application/json")
        except Exception as exc:  # the run has started; a stale claim body only loses the run id
            _log(decision="claim_update_failed", error=str(exc), claim_key=claim["claim_key"])
        self.result.update(status="started", reason="", run_id=run_id, key=self.key)
        _log(decision="started", workflow=self.workflow, **self.result)
        _notify(self.sns, self.topic, f"etl-kit: started {self.workflow}",
                f"Started workflow {self.workflow} run {run_id}\nfor s3://{self.bucket}/{self.key} "
                f"({props['source_size']} bytes, ETag {claim['etag']}).")
        return self.result

    def _release(self, claim: Dict[str, Any], cause: str) -> str:
        """Delete the claim of a run that did not start, so the retried event can take the attempt again.

        Returns "" when released. When the delete fails, the failure is logged as an error (the claim's key
        and why) and the claim is marked ``start_failed`` (:func:`claim_verdict` reads it as ``failed``), so
        the retried event takes the next attempt instead of skipping this one as a duplicate; the error
        text is returned for the notification.
        """
        ckey = claim["claim_key"]
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=ckey)
            return ""
        except Exception as exc:
            error = f"{error_code(exc) or type(exc).__name__}: {exc}"
        _log(level="ERROR", decision="claim_release_failed", claim_key=ckey, bucket=self.bucket, error=error,
             start_error=cause)
        marked = dict(claim, start_failed=cause, release_error=error, run_id="")
        try:
            self.s3.put_object(Bucket=self.bucket, Key=ckey, Body=json.dumps(marked).encode("utf-8"),
                               ContentType="application/json")
        except Exception as exc:  # the claim then holds the attempt until its lease ends (CLAIM_LEASE_SECONDS)
            _log(level="ERROR", decision="claim_mark_failed", claim_key=ckey, bucket=self.bucket,
                 error=f"{error_code(exc) or type(exc).__name__}: {exc}")
        return error

    def _not_started(self, claim: Dict[str, Any], last: Optional[BaseException]) -> NoReturn:
        """Release the claim so the retry can act, log (and, unless waiting for a run slot, notify), raise."""
        reason = f"{error_code(last) or type(last).__name__}: {last}" if last else "no run id returned"
        release_error = self._release(claim, reason)
        if release_error:
            self.result["claim_release_error"] = release_error
        if last is not None and error_code(last) in WAIT_CODES:
            # Waiting for a free run slot is the normal state of a burst: logged, not notified.
            self.result.update(status="waiting", reason=reason)
            _log(decision="waiting", **self.result)
        else:
            self.result.update(status="failed", reason=reason)
            _log(decision="failed", **self.result)
            _notify(self.sns, self.topic, f"etl-kit: FAILED to start {self.workflow}",
                    f"Could not start workflow {self.workflow} for s3://{self.bucket}/{self.key}: {reason}\n"
                    + (f"Its claim {claim['claim_key']} could not be released ({release_error}); it is marked "
                       "as a failed start instead.\n" if release_error else "") +
                    "The event stays in the intake queue and is retried; after the queue's maxReceiveCount "
                    "it moves to the intake DLQ (etl-kit replay --dlq).")
        raise last if last is not None else RuntimeError(reason)


class _Poison(Exception):
    """An SQS record whose body is not an event this function understands."""


def backoff_seconds(receive_count: int) -> int:
    """Seconds before a waiting record is tried again: exponential in its receive count, capped, jittered.

    ``min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (receive_count - 1))`` times a random factor in
    [0.5, 1) (so a burst does not come back at once), at least 1 and at most SQS's 12 hours.
    """
    base = float(_env("BACKOFF_BASE_SECONDS", "2"))
    cap = float(_env("BACKOFF_MAX_SECONDS", "900"))
    delay = min(cap, base * 2 ** min(max(int(receive_count), 1) - 1, 30)) * (0.5 + random.random() / 2)
    return int(max(1, min(MAX_VISIBILITY_SECONDS, round(delay))))


def _record_event(record: Dict[str, Any]) -> Dict[str, Any]:
    try:
        doc = json.loads(record.get("body") or "")
    except (TypeError, ValueError):
        raise _Poison("the message body is not JSON") from None
    if not isinstance(doc, dict):
        raise _Poison("the message body is not a JSON object")
    return doc


def _is_sqs_batch(event: Dict[str, Any]) -> bool:
    recs = event.get("Records")
    return bool(recs) and isinstance(recs, list) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in recs)


def _set_visibility(sqs: Any, waits: List[Tuple[Dict[str, Any], int]]) -> None:
    """Make each waiting message reappear after its delay (ChangeMessageVisibilityBatch, 10 at a time)."""
    by_queue: Dict[str, List[Tuple[Dict[str, Any], int]]] = {}
    for rec, delay in waits:
        if rec.get("receiptHandle"):  # without one only the queue's visibility timeout brings it back
            by_queue.setdefault(str(rec.get("eventSourceARN") or ""), []).append((rec, delay))
    for arn, items in by_queue.items():
        parts = arn.split(":")
        if len(parts) < 6:
            continue
        # The queue's URL from its ARN with the client's own endpoint (no sqs:GetQueueUrl needed).
        url = f"{sqs.meta.endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"
        for i in range(0, len(items), 10):
            entries = [{"Id": str(n), "ReceiptHandle": rec["receiptHandle"], "VisibilityTimeout": delay}
                       for n, (rec, delay) in enumerate(items[i:i + 10])]
            try:
                r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
                failed = r.get("Failed") or []
            except Exception as exc:  # the message still reappears after the queue's visibility timeout
                failed = [{"Id": e["Id"], "Message": str(exc)} for e in entries]
            for f in failed:
                _log(decision="visibility_not_changed", queue=arn, error=f.get("Message", ""))


def _handle_sqs(records: List[Dict[str, Any]], *, s3: Any, glue: Any, sns: Any, sqs: Any,
                context: Any) -> Dict[str, Any]:
    """Process an SQS batch; the records that must wait or failed come back as ``batchItemFailures``."""
    waits: List[Tuple[Dict[str, Any], int]] = []
    busy = ""  # once no run slot is free, the rest of the batch waits without asking again
    for rec in records:
        count = int((rec.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        ids = {"message_id": rec.get("messageId"), "receive_count": count}
        try:
            event = _record_event(rec)
            if event.get("Event") == "s3:TestEvent":
                _log(decision="skipped", reason="s3:TestEvent", **ids)
                continue
            refs = parse_event(event)
            if not refs:
                raise _Poison("the message names no S3 object")
            if busy:
                waits.append((rec, backoff_seconds(count)))
                _log(decision="waiting", reason=busy, **ids)
                continue
            for ref in refs:
                _process_one(ref, s3=s3, glue=glue, sns=sns, context=context)
        except _Poison as exc:
            # Retried at once: it cannot get better, so it reaches the DLQ after maxReceiveCount receives.
            waits.append((rec, 0))
            _log(decision="poison", reason=str(exc), body=str(rec.get("body"))[:200], **ids)
        except Exception as exc:
            code = error_code(exc)
            if code == "ConcurrentRunsExceededException":
                busy = f"{code}: {exc}"
            elif code not in WAIT_CODES:
                _log(decision="record_failed", error=f"{code or type(exc).__name__}: {exc}", **ids)
            waits.append((rec, backoff_seconds(count)))
    if waits:
        _set_visibility(sqs, waits)
    return {"batchItemFailures": [{"itemIdentifier": str(rec.get("messageId"))} for rec, _ in waits]}


def handler(event: Dict[str, Any], context: Any = None, *, s3: Any = None, glue: Any = None,
            sns: Any = None, sqs: Any = None) -> Dict[str, Any]:
    """Lambda entry point.

    Returns
    -------
    dict
        For an SQS batch: ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` (the records
        that wait in the queue). For a direct event: ``{status: started|skipped, reason, run_id, bucket,
        key}`` (for several records, the first such dict plus ``results`` with one per record); a
        failure to start raises.
    """
    s3 = s3 or boto3.client("s3")
    glue = glue or boto3.client("glue")
    if sns is None and _env("TOPIC_ARN"):
        sns = boto3.client("sns")
    if _is_sqs_batch(event):
        return _handle_sqs(event["Records"], s3=s3, glue=glue, sns=sns, sqs=sqs or boto3.client("sqs"),
                           context=context)
    refs = parse_event(event)
    if not refs:
        res = {"status": "skipped", "reason": "event names no S3 object", "run_id": "", "bucket": "", "key": ""}
        _log(decision="skipped", **res)
        return res
    results = [_process_one(r, s3=s3, glue=glue, sns=sns, context=context) for r in refs]
    if len(results) == 1:
        return results[0]
    out = dict(results[0])
    out["results"] = results
    return out

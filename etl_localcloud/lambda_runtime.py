"""Provider: Lambda execution (``lambda.invoke`` and EventBridge rule targets).

moto stores functions but runs their code only through Docker. Here the deployed zip
(exactly what ``create_function``/``update_function_code`` received) is unpacked and the
handler runs in a subprocess with the function's environment, its timeout and the local
endpoint, like a Lambda runtime, on the Python of its declared runtime with the boto3 that runtime
ships (:mod:`etl_localcloud.runtimes`; the daemon's Python only where that is missing, said in the
invocation's log). Output goes to CloudWatch Logs ``/aws/lambda/<name>``.
Asynchronous invocations (``InvocationType=Event`` and EventBridge targets) are retried
``MaximumRetryAttempts`` times (default 2, as Lambda does) and then sent to the
function's on-failure destination; the retry delays are seconds here instead of minutes.

SQS event source mappings run for real (:class:`SqsMappings`): a poller per enabled mapping receives
from the queue through the SQS API, invokes the function with an SQS event of Lambda's shape and
honours ``BatchSize``, ``MaximumBatchingWindowInSeconds``, ``ScalingConfig.MaximumConcurrency`` and
``FunctionResponseTypes: ["ReportBatchItemFailures"]``: successes are deleted, failed items stay until
their visibility timeout, a function error fails the whole batch. The queue's redrive policy (applied
by moto on receive) moves messages received ``maxReceiveCount`` times to the DLQ. Mappings created,
updated, disabled or deleted through the API take effect within a second.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import re
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from etl_localcloud import motohooks
from etl_localcloud.context import CloudContext
from etl_localcloud.dispatcher import Provider, RestRoute, ServiceError
from etl_localcloud.iam import AssumeRefused, ServiceRole

__all__ = ["LambdaProvider", "SqsMappings", "build", "RUNNER"]

log = logging.getLogger("etl_localcloud.lambda")

# Runs each invocation in its own process (the Lambda runtime's contract): python RUNNER ... (by path: the
# runtime's Python has nothing of the local cloud installed)
RUNNER = str(Path(__file__).with_name("lambda_runner.py"))


class LambdaProvider(Provider):
    """Runs deployed Lambda code for ``Invoke`` and for EventBridge rule targets."""

    def __init__(self, ctx: CloudContext, max_parallel: int = 4) -> None:
        super().__init__(name="lambda", target_prefix="")
        self.ctx = ctx
        self.code_root = ctx.state_dir / "lambda"
        self.code_root.mkdir(parents=True, exist_ok=True)
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._lock = threading.Lock()
        self.stats = {"invocations": 0, "errors": 0, "timeouts": 0, "async_pending": 0, "sqs_batches": 0,
                      "sqs_deleted": 0, "sqs_item_failures": 0, "sqs_batch_failures": 0}
        self._procs: set[subprocess.Popen[bytes]] = set()
        # Async invocations wait and retry (seconds at a time): they get their own pool, so a burst of
        # uploads can never starve the workflow engine's short tasks on the shared executor.
        self._async_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda-async")
        self._mappings = SqsMappings(self)
        self.rest_routes = [
            RestRoute("POST", re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations"), self._rest_invoke),
        ]

    def start(self) -> None:
        motohooks.install_event_target_hook({"lambda": self._on_event_target, "sns": self._on_sns_target,
                                             "sqs": self._on_sqs_target})
        motohooks.install_event_source_mapping_guard()
        self._mappings.start()

    def health(self) -> dict[str, Any]:
        return {"ok": True, **self.stats, "sqs_pollers": self._mappings.active()}

    def count(self, **deltas: int) -> None:
        """Add to the provider's counters (thread-safe)."""
        with self._lock:
            for k, v in deltas.items():
                self.stats[k] = self.stats.get(k, 0) + v

    def close(self) -> None:
        self._mappings.close()
        self._async_pool.shutdown(wait=False, cancel_futures=True)
        for p in list(self._procs):
            if p.poll() is None:
                p.kill()

    # -- code --------------------------------------------------------------------------
    def _function(self, name_or_arn: str) -> dict[str, Any]:
        name = unquote(name_or_arn)
        if name.startswith("arn:"):
            name = name.split(":")[6]
        try:
            return motohooks.lambda_function(self.ctx.account_id, self.ctx.region, name)
        except KeyError:
            raise ServiceError("ResourceNotFoundException",
                               f"Function not found: arn:aws:lambda:{self.ctx.region}:{self.ctx.account_id}"
                               f":function:{name}", 404) from None

    def _code_dir(self, fn: dict[str, Any]) -> Path:
        import hashlib

        digest = hashlib.sha256(fn["zip"]).hexdigest()[:16]
        target = self.code_root / f"{fn['name']}-{digest}"
        with self._lock:
            if not target.exists():
                tmp = Path(tempfile.mkdtemp(dir=self.code_root))
                with zipfile.ZipFile(io.BytesIO(fn["zip"])) as zf:
                    zf.extractall(tmp)
                tmp.rename(target)
        return target

    # -- execution ---------------------------------------------------------------------
    def session(self, fn: dict[str, Any]) -> Any:
        """The function's role session, as Lambda assumes it (session name: the function's name).

        Raises
        ------
        AssumeRefused
            The role does not exist or does not trust ``lambda.amazonaws.com`` (with what Lambda says).
        """
        try:
            return self.ctx.role_session(ServiceRole(fn["role"], "lambda.amazonaws.com", fn["name"], fn["arn"]))
        except AssumeRefused as exc:
            raise AssumeRefused(f"The role defined for the function cannot be assumed by Lambda. ({exc})") from None

    def run(self, name_or_arn: str, event: Any) -> dict[str, Any]:
        """Run the function once; returns ``{"ok", "result" | "errorMessage"..., "logs", "request_id"}``."""
        fn = self._function(name_or_arn)
        if not fn["zip"]:
            raise ServiceError("InvalidParameterValueException",
                               f"Function {fn['name']} has no zip code (image functions are not emulated)")
        runtime = self.ctx.runtimes.for_lambda(fn["runtime"])  # waits while its environment is first built
        request_id = str(uuid.uuid4())
        stream = f"{_dt.datetime.now(_dt.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        try:
            session = self.session(fn)
        except AssumeRefused as exc:
            res: dict[str, Any] = {"ok": False, "errorType": "InvalidParameterValueException",
                                   "errorMessage": str(exc)}
            return self._finish(fn, res, b"", _Timing(time.time(), False), (request_id, stream),
                                runtime.banner())
        code_dir = self._code_dir(fn)
        env = self.ctx.child_env(session)
        env.update({str(k): str(v) for k, v in fn["environment"].items()})
        env.update({
            "AWS_LAMBDA_FUNCTION_NAME": fn["name"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn["memory"]),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn['runtime']}",
            "ETL_KIT_FUNCTION_ARN": fn["arn"],
            "ETL_KIT_REQUEST_ID": request_id,
            "ETL_KIT_LOG_STREAM": stream,
        })
        with self._slots:
            started = time.time()
            deadline = started + fn["timeout"]
            with tempfile.TemporaryDirectory(dir=self.code_root) as tmp:
                event_path = Path(tmp) / "event.json"
                result_path = Path(tmp) / "result.json"
                event_path.write_text(json.dumps(event, default=str))
                proc = subprocess.Popen(
                    [runtime.python, RUNNER, str(code_dir), fn["handler"], str(event_path),
                     str(result_path), str(deadline)],
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
                self._procs.add(proc)
                try:
                    output, _ = proc.communicate(timeout=fn["timeout"])
                    timed_out = False
                except subprocess.TimeoutExpired:
                    proc.kill()
                    output, _ = proc.communicate()
                    timed_out = True
                finally:
                    self._procs.discard(proc)
                if timed_out:
                    res = {"ok": False, "errorType": "Sandbox.Timedout",
                           "errorMessage": f"Task timed out after {fn['timeout']:.2f} seconds"}
                elif result_path.exists():
                    res = json.loads(result_path.read_text())
                else:
                    res = {"ok": False, "errorType": "Runtime.ExitError",
                           "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                                           f"exit status {proc.returncode}"}
        return self._finish(fn, res, output, _Timing(started, timed_out), (request_id, stream), runtime.banner())

    def _finish(self, fn: dict[str, Any], res: dict[str, Any], output: bytes, timing: _Timing,
                ids: tuple[str, str], banner: str) -> dict[str, Any]:
        """Write the invocation's log, count it, and complete its result."""
        request_id, stream = ids
        elapsed, timed_out = time.time() - timing.started, timing.timed_out
        lines = [f"START RequestId: {request_id} Version: $LATEST", banner]
        lines += output.decode(errors="replace").splitlines()
        if not res["ok"]:
            lines.append(f"[ERROR] {res.get('errorType')}: {res.get('errorMessage')}")
        lines.append(f"END RequestId: {request_id}")
        lines.append(f"REPORT RequestId: {request_id}\tDuration: {elapsed * 1000:.2f} ms\t"
                     f"Memory Size: {fn['memory']} MB")
        try:
            self.ctx.put_logs(f"/aws/lambda/{fn['name']}", stream, lines)
        except Exception:
            log.exception("could not write Lambda logs")
        with self._lock:
            self.stats["invocations"] += 1
            self.stats["errors"] += 0 if res["ok"] else 1
            self.stats["timeouts"] += 1 if timed_out else 0
        res["logs"] = "\n".join(lines)
        res["request_id"] = request_id
        res["function"] = fn
        return res

    def invoke_async(self, name_or_arn: str, event: Any) -> None:
        """Queue an asynchronous invocation with Lambda's retry and on-failure semantics."""
        fn = self._function(name_or_arn)  # unknown functions fail now, like AWS
        with self._lock:
            self.stats["async_pending"] += 1
        self._async_pool.submit(self._async_worker, fn["name"], event)

    def _async_worker(self, name: str, event: Any) -> None:
        try:
            cfg: dict[str, Any] = {}
            attempts = 0
            while True:
                try:
                    res = self.run(name, event)
                except ServiceError as err:
                    log.error("async invoke of %s failed: %s", name, err.message)
                    return
                cfg = res["function"].get("event_invoke_config") or {}
                max_retries = int(cfg.get("MaximumRetryAttempts", 2))
                if res["ok"]:
                    self._destination(cfg, "OnSuccess", name, event, res, attempts)
                    return
                if attempts >= max_retries:
                    self._destination(cfg, "OnFailure", name, event, res, attempts)
                    return
                attempts += 1
                time.sleep(min(8.0, 1.0 * 2 ** (attempts - 1)))
        finally:
            with self._lock:
                self.stats["async_pending"] -= 1

    def _destination(self, cfg: dict[str, Any], which: str, name: str, event: Any, res: dict[str, Any],
                     retries: int) -> None:
        dest = ((cfg.get("DestinationConfig") or {}).get(which) or {}).get("Destination")
        if not dest:
            return
        record = {
            "version": "1.0",
            "timestamp": _dt.datetime.now(_dt.UTC).isoformat(),
            "requestContext": {"requestId": res["request_id"], "functionArn": res["function"]["arn"],
                               "condition": "Success" if res["ok"] else "RetriesExhausted",
                               "approximateInvokeCount": retries + 1},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": None if res["ok"] else "Unhandled"},
            "responsePayload": res.get("result") if res["ok"] else
            {"errorMessage": res.get("errorMessage"), "errorType": res.get("errorType")},
        }
        service = dest.split(":")[2]
        try:
            if service == "sqs":
                sqs = self.ctx.client("sqs")
                url = sqs.get_queue_url(QueueName=dest.split(":")[5])["QueueUrl"]
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record, default=str))
            elif service == "sns":
                self.ctx.client("sns").publish(TopicArn=dest, Message=json.dumps(record, default=str))
        except Exception:
            log.exception("could not deliver to %s destination %s", which, dest)

    # -- entry points ---------------------------------------------------------------------
    def _rest_invoke(self, m: re.Match[str], body: bytes, query: dict[str, str],
                     headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        name = m.group("name")
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            raise ServiceError("InvalidRequestContentException", "Could not parse request body into json") from None
        if kind == "DryRun":
            self._function(name)
            return 204, {}, b""
        if kind == "Event":
            self.invoke_async(name, event)
            return 202, {"Content-Type": "application/json"}, b""
        res = self.run(name, event)
        hdrs = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if headers.get("x-amz-log-type") == "Tail":
            import base64

            hdrs["X-Amz-Log-Result"] = base64.b64encode(res["logs"].encode()[-4096:]).decode()
        if res["ok"]:
            return 200, hdrs, json.dumps(res.get("result"), default=str).encode()
        hdrs["X-Amz-Function-Error"] = "Unhandled"
        payload = {k: res.get(k) for k in ("errorMessage", "errorType", "stackTrace") if res.get(k) is not None}
        return 200, hdrs, json.dumps(payload).encode()

    def _delivery_refused(self, target: dict[str, Any], action: str) -> str | None:
        """Why EventBridge may not deliver to ``target`` (its resource policy, for the rule), or None."""
        iam = self.ctx.iam
        if iam is None:
            return None
        return iam.service_refusal("events.amazonaws.com", action, target["Arn"], target.get("RuleArn", ""))

    def _on_event_target(self, target: dict[str, Any], payload: Any, account_id: str, region: str) -> None:
        # not yet checked against the function's policy: moto's stored add_permission statements did not match
        # in the contract test (to finish; docs/local-cloud.md says so)
        self.invoke_async(target["Arn"], payload)

    def _on_sqs_target(self, target: dict[str, Any], payload: Any, account_id: str, region: str) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        refused = self._delivery_refused(target, "sqs:SendMessage")
        if refused:
            # EventBridge sends what it could not deliver to the target's dead-letter queue, if it may
            self.count(delivery_denied=1)
            dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
            log.error("EventBridge rule %s could not send to %s: %s", target.get("RuleArn"), target["Arn"], refused)
            if dlq and not self._delivery_refused({**target, "Arn": dlq}, "sqs:SendMessage"):
                motohooks.sqs_send(account_id, region, dlq, body, group)
            return
        motohooks.sqs_send(account_id, region, target["Arn"], body, group)

    def _on_sns_target(self, target: dict[str, Any], payload: Any, account_id: str, region: str) -> None:
        message = payload if isinstance(payload, str) else json.dumps(payload)
        refused = self._delivery_refused(target, "sns:Publish")
        if refused:
            log.error("EventBridge rule %s could not publish to %s: %s", target.get("RuleArn"), target["Arn"], refused)
            self.count(delivery_denied=1)
            return
        motohooks.sns_publish(account_id, region, target["Arn"], message)


@dataclass(frozen=True)
class _Timing:
    """When an invocation started and whether it timed out."""

    started: float
    timed_out: bool


@dataclass(frozen=True)
class _Mapping:
    """What a poller needs from an enabled SQS event source mapping (a change restarts the poller)."""

    uuid: str
    function_arn: str
    queue_arn: str
    batch_size: int
    window: float
    concurrency: int
    report_failures: bool


# Lambda's default SQS concurrency starts at five pollers; locally that is also the ceiling without a
# ScalingConfig (the provider runs at most ``max_parallel`` functions at once anyway).
DEFAULT_POLLERS = 5
MAX_BATCH_BYTES = 6 * 1024 * 1024 - 256 * 1024  # Lambda's 6 MB payload, less one message of headroom


class SqsMappings:
    """Pollers for the enabled SQS event source mappings, reconciled with the Lambda API every second."""

    def __init__(self, provider: LambdaProvider, interval: float = 1.0) -> None:
        self.provider = provider
        self.interval = interval
        self._stop = threading.Event()
        self._pollers: dict[str, _Poller] = {}
        self._stopping: list[_Poller] = []  # told to stop; a worker may still finish a receive or an invoke
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sqs-mappings", daemon=True)
            self._thread.start()

    def active(self) -> list[str]:
        """The UUIDs of the mappings being polled (a stopped mapping's until its last worker has ended)."""
        self._stopping = [p for p in self._stopping if p.alive()]
        return sorted(set(self._pollers) | {p.mapping.uuid for p in self._stopping})

    def close(self) -> None:
        self._stop.set()
        for poller in list(self._pollers.values()):
            poller.stop()
        self._pollers.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as exc:  # the server may not answer yet while the daemon starts
                log.debug("event source mappings not read: %s", exc)

    def _wanted(self) -> dict[str, _Mapping]:
        lam = self.provider.ctx.client("lambda")
        out: dict[str, _Mapping] = {}
        marker = ""
        while True:
            page = lam.list_event_source_mappings(**({"Marker": marker} if marker else {}))
            for m in page.get("EventSourceMappings", []):
                arn = str(m.get("EventSourceArn", ""))
                if m.get("State") != "Enabled" or arn.split(":")[2:3] != ["sqs"]:
                    continue
                concurrency = (m.get("ScalingConfig") or {}).get("MaximumConcurrency") or DEFAULT_POLLERS
                out[m["UUID"]] = _Mapping(
                    uuid=m["UUID"], function_arn=m["FunctionArn"], queue_arn=arn, batch_size=int(m.get("BatchSize")
                                                                                                  or 10),
                    window=float(m.get("MaximumBatchingWindowInSeconds") or 0), concurrency=int(concurrency),
                    report_failures="ReportBatchItemFailures" in (m.get("FunctionResponseTypes") or []))
            marker = page.get("NextMarker") or ""
            if not marker:
                return out

    def reconcile(self) -> None:
        """Start pollers for new or changed mappings, stop those of deleted, disabled or changed ones."""
        wanted = self._wanted()
        for key, poller in list(self._pollers.items()):
            if wanted.get(key) != poller.mapping:
                poller.stop()
                self._stopping.append(poller)
                del self._pollers[key]
        for key, mapping in wanted.items():
            if key not in self._pollers and not self._stop.is_set():
                self._pollers[key] = _Poller(self.provider, mapping)


class _Poller:
    """``MaximumConcurrency`` workers, each receiving a batch, invoking the function and deleting successes."""

    def __init__(self, provider: LambdaProvider, mapping: _Mapping) -> None:
        self.provider = provider
        self.mapping = mapping
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, name=f"sqs-poller-{mapping.uuid[:8]}-{i}", daemon=True)
                         for i in range(mapping.concurrency)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> bool:
        """Whether a worker still runs (a receive or an invocation in flight when it was stopped)."""
        return any(t.is_alive() for t in self._threads)

    def _worker(self) -> None:
        parts = self.mapping.queue_arn.split(":")
        url, last_error = "", ""
        while not self._stop.is_set():
            try:
                if not url:  # Lambda's pollers know the queue by ARN: no GetQueueUrl of the role's
                    url = self.provider.ctx.client("sqs").get_queue_url(
                        QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
                # Lambda reads and deletes the queue's messages with the function's execution role
                sqs = self.provider.ctx.session_client("sqs", self.provider.session(
                    self.provider._function(self.mapping.function_arn)))
                batch = self._collect(sqs, url)
                if batch and not self._stop.is_set():
                    self._deliver(sqs, url, batch)
                elif batch:  # stopped mid-receive: give the messages back at once
                    sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(batch[:10])])
            except Exception as exc:  # queue deleted, function missing, access denied: try again later
                if str(exc) != last_error:  # said once, not every second
                    log.warning("event source mapping %s (%s): %s", self.mapping.uuid, self.mapping.queue_arn, exc)
                    last_error = str(exc)
                url = ""
                self._stop.wait(1.0)

    def _receive(self, sqs: Any, url: str, n: int, wait: int) -> list[dict[str, Any]]:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=max(1, min(10, n)), WaitTimeSeconds=wait,
                                AttributeNames=["All"], MessageAttributeNames=["All"])
        return list(r.get("Messages", []))

    def _collect(self, sqs: Any, url: str) -> list[dict[str, Any]]:
        """One batch: up to BatchSize messages, gathered for at most the batching window."""
        size = self.mapping.batch_size
        batch = self._receive(sqs, url, size, 1)
        if not batch:
            return []
        deadline = time.monotonic() + self.mapping.window
        while len(batch) < size and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or sum(len(m.get("Body", "")) for m in batch) >= MAX_BATCH_BYTES:
                break
            batch += self._receive(sqs, url, size - len(batch), 1 if left >= 1 else 0)
        return batch

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        import base64

        attrs = {k: v for k, v in (m.get("Attributes") or {}).items()
                 if k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                          "MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "AWSTraceHeader")}
        mattrs = {}
        for name, v in (m.get("MessageAttributes") or {}).items():
            binary = v.get("BinaryValue")
            mattrs[name] = {"stringValue": v.get("StringValue"),
                            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
                            "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
        rec = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m.get("Body", ""),
               "attributes": attrs, "messageAttributes": mattrs, "md5OfBody": m.get("MD5OfBody", ""),
               "eventSource": "aws:sqs", "eventSourceARN": self.mapping.queue_arn,
               "awsRegion": self.mapping.queue_arn.split(":")[3]}
        if m.get("MD5OfMessageAttributes"):
            rec["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
        return rec

    def failed_ids(self, res: dict[str, Any], ids: set[str]) -> set[str] | None:
        """The message ids to keep, or ``None`` when the whole batch failed (Lambda's rules)."""
        if not res.get("ok"):
            return None
        if not self.mapping.report_failures:
            return set()
        result = res.get("result")
        if result is None or result == [] or result == {}:
            return set()
        if not isinstance(result, dict):
            return None  # not a valid batch response
        items = result.get("batchItemFailures")
        if items is None:
            return set()
        if not isinstance(items, list):
            return None
        keep: set[str] = set()
        for item in items:
            ident = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not isinstance(ident, str) or ident not in ids:
                return None  # empty, null, misnamed or unknown identifier: the batch failed
            keep.add(ident)
        return keep

    def _deliver(self, sqs: Any, url: str, batch: list[dict[str, Any]]) -> None:
        res = self.provider.run(self.mapping.function_arn, {"Records": [self._record(m) for m in batch]})
        keep = self.failed_ids(res, {m["MessageId"] for m in batch})
        if keep is None:  # every message reappears after its visibility timeout
            self.provider.count(sqs_batches=1, sqs_batch_failures=1)
            log.info("function %s failed a batch of %d from %s: %s", self.mapping.function_arn, len(batch),
                     self.mapping.queue_arn, res.get("errorMessage") or res.get("result"))
            return
        done = [m for m in batch if m["MessageId"] not in keep]
        for i in range(0, len(done), 10):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i:i + 10])])
        self.provider.count(sqs_batches=1, sqs_deleted=len(done), sqs_item_failures=len(keep))


def build(ctx: CloudContext) -> list[Provider]:
    """Factory used by the daemon."""
    return [LambdaProvider(ctx)]

"""The local cloud's state on disk: it survives ``local down``/``up`` and a crash of the daemon.

Design
------
Everything lives under ``<state_dir>/cloud/`` (mode 0700):

* ``s3-blobs/<uuid>``: the body of every S3 object version and upload part, one immutable file each
  (:func:`motohooks.install_s3_blob_store`). moto's ``FakeKey`` reads its body from that file; a new
  body is always a new file, written and fsynced before the request is answered. A completed
  multipart upload is assembled part by part on disk, never in memory.
* ``snapshot.pickle``: one pickle of every moto backend in use (S3 buckets and key metadata: ETags,
  versions, tags, ACLs, bucket policy/notification/versioning config; IAM; SQS queues *with their
  messages*; SNS; EventBridge rules and targets; Lambda functions with their code zip and event source
  mappings; the Glue catalog, crawlers, jobs, workflows, triggers and connections; Secrets Manager;
  CloudWatch Logs) plus the kit providers' own state (Glue job runs, crawls and workflow runs). A key
  pickles as its metadata and its blob's name, so a snapshot stays small whatever the objects weigh.
  It is written to a temporary file, fsynced, renamed over the old one, and the directory fsynced:
  a crash leaves either the old snapshot or the new one, never half of one.

When snapshots are taken
    After every request that can change state (anything but GET/HEAD and the JSON ``Get*``/``List*``/
    ``Describe*`` operations), debounced by :attr:`Persister.debounce` seconds; when a provider's
    run state changes (polled); and on shutdown. Requests to moto hold a shared lock
    (:class:`Gate`), a snapshot the exclusive one while it pickles (milliseconds), so a snapshot
    never sees half a request.

What a crash can lose
    A request that writes an S3 object, a Lambda function or any other REST resource, or sends
    SQS messages, is answered only after a snapshot that contains it is on disk (group commit:
    concurrent requests share one snapshot), so an acknowledged S3 put or SQS send is never lost.
    Other control-plane changes (JSON/query APIs: IAM, Glue, EventBridge...) and run state can lose
    at most the last debounce window. Runs that were in flight (Glue job runs, crawls, workflow
    runs) cannot be resumed: on restart they end FAILED (workflow runs ERROR) with the message
    :data:`INTERRUPTED`, so that retry and replay can act; a job script still running from the
    killed daemon is killed. Asynchronous Lambda invocations queued in memory are lost; events
    that wait in an SQS queue (the durable intake) are not.

Restore
    :meth:`Persister.restore` runs before the daemon serves: it unpickles the snapshot, puts the
    backends where moto looks them up, hands each provider its state, and deletes blob files no
    restored key refers to (bodies of puts that were never acknowledged, and of deleted keys).
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from etl_localcloud import motohooks

__all__ = ["INTERRUPTED", "Gate", "Persister", "PersistingApp", "GatedApp", "prepare_state_dir", "write_atomically"]

log = logging.getLogger("etl_localcloud.persistence")

INTERRUPTED = "interrupted: the local cloud stopped"
SNAPSHOT = "snapshot.pickle"
FORMAT = 1

_READ_PREFIXES = ("Get", "List", "Describe", "BatchGet", "Search", "Lookup", "Filter")
# JSON operations that are answered only once durable (besides every REST write)
_DURABLE_TARGETS = ("AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch", "AmazonSQS.DeleteMessage",
                    "AmazonSQS.DeleteMessageBatch")
# long polls must not hold the gate (a snapshot would wait for them): moto's own lock protects them
_UNGATED_TARGETS = ("AmazonSQS.ReceiveMessage",)
# changes not worth a snapshot: after a crash a received message is simply visible again (at-least-once)
_UNTRACKED_TARGETS = ("AmazonSQS.ReceiveMessage", "AmazonSQS.ChangeMessageVisibility",
                      "AmazonSQS.ChangeMessageVisibilityBatch")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def prepare_state_dir(state_dir: Path) -> Path:
    """Create ``state_dir`` (and ``cloud/`` in it) readable by its owner only. Returns ``cloud/``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700 | (state_dir.stat().st_mode & 0o011))  # keep the traversal bit a root-run server needs
    root = state_dir / "cloud"
    root.mkdir(exist_ok=True)
    root.chmod(0o700)
    return root


class Gate:
    """A shared/exclusive lock: requests share it, a snapshot takes it alone (reader-preferring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# -- pickling what moto holds ------------------------------------------------------------------------------

_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


def _weak_values(items: dict[Any, Any]) -> weakref.WeakValueDictionary[Any, Any]:
    return weakref.WeakValueDictionary(items)


def _defaultdict(factory: Any, items: dict[Any, Any]) -> collections.defaultdict[Any, Any]:
    return collections.defaultdict(factory, items)


class _Pickler(pickle.Pickler):
    """Pickles moto's objects: locks and events come back new, lambdas as the type they build."""

    _moto = motohooks.reducers()

    def reducer_override(self, obj: Any) -> Any:
        special = self._moto.get(type(obj))
        if special is not None:
            return special(obj)
        if isinstance(obj, _RLOCK):
            return threading.RLock, ()
        if isinstance(obj, _LOCK):
            return threading.Lock, ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, threading.Event):
            return threading.Event, ()
        if isinstance(obj, weakref.WeakValueDictionary):
            return _weak_values, (dict(obj.items()),)
        if isinstance(obj, collections.defaultdict) and getattr(obj.default_factory, "__name__", "") == "<lambda>":
            made = obj.default_factory()  # type: ignore[misc]
            if made != type(made)():
                raise pickle.PicklingError(f"defaultdict with an unpicklable factory making {made!r}")
            return _defaultdict, (type(made), dict(obj))
        return NotImplemented


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600): temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Persister:
    """Snapshots moto's backends and the providers' state; restores them at start.

    Providers take part by defining ``snapshot_state() -> Any`` (picklable) and
    ``restore_state(state) -> None``, and optionally ``state_version() -> int`` (polled: a change
    triggers a snapshot).
    """

    def __init__(self, root: Path, providers: Iterable[Any] = (), debounce: float = 1.0,
                 poll: float = 0.5, stream_gets: bool = True) -> None:
        self.root = root
        self.blobs = root / "s3-blobs"
        self.path = root / SNAPSHOT
        self.debounce = debounce
        self.poll = poll
        self.gate = Gate()
        self.providers = {p.name: p for p in providers if callable(getattr(p, "snapshot_state", None))}
        self._cond = threading.Condition()
        self._marked = 0  # generation of the latest change
        self._durable = 0  # generation the snapshot on disk contains
        self._first_dirty: float | None = None
        self._urgent = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pending_dead: set[str] = set()
        self._versions: dict[str, Any] = {}  # provider versions last polled
        self._snapshot_versions: dict[str, Any] = {}  # ... and as of the snapshot on disk
        self.stats: dict[str, Any] = {"snapshots": 0, "last_snapshot_seconds": 0.0, "last_snapshot_bytes": 0,
                                      "errors": 0, "restored_from": None}
        motohooks.install_s3_blob_store(self.blobs, stream_gets=stream_gets)

    # -- restore ----------------------------------------------------------------------------------------
    def restore(self) -> dict[str, Any]:
        """Load the last snapshot (if any) into moto and the providers; sweep unreferenced blobs."""
        report: dict[str, Any] = {"restored": False}
        names: set[str] = set()
        if self.path.exists():
            with motohooks.restoring(), motohooks.collecting_blobs() as collected:
                data = pickle.loads(self.path.read_bytes())
            names = collected.names
            if data.get("format") != FORMAT:
                raise RuntimeError(f"{self.path} has format {data.get('format')}, expected {FORMAT}; "
                                   "move it away to start empty")
            report["services"] = motohooks.restore_backends(data.get("moto", {}))
            for name, state in (data.get("providers") or {}).items():
                provider = self.providers.get(name)
                if provider is not None:
                    provider.restore_state(state)
            report.update(restored=True, written=data.get("written"))
            self.stats["restored_from"] = data.get("written")
        swept = 0
        for f in self.blobs.iterdir():
            if f.name not in names:
                f.unlink(missing_ok=True)
                swept += 1
        report["orphan_blobs_removed"] = swept
        self._versions = self._snapshot_versions = self._provider_versions()
        return report

    # -- snapshots ---------------------------------------------------------------------------------------
    def mark(self) -> int:
        """Record a change; returns its generation (see :meth:`wait_durable`)."""
        with self._cond:
            self._marked += 1
            if self._first_dirty is None:
                self._first_dirty = time.monotonic()
            self._cond.notify_all()
            return self._marked

    def wait_durable(self, generation: int, timeout: float = 30.0) -> bool:
        """Block until a snapshot containing change ``generation`` is on disk (snapshots at once)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._durable < generation and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.error("state snapshot did not complete within %.0f s", timeout)
                    return False
                self._cond.wait(left)
            return self._durable >= generation

    def snapshot(self) -> None:
        """Write a snapshot of everything now."""
        with self.gate.exclusive():
            with self._cond:
                generation = self._marked
                self._first_dirty = None
                self._urgent = False
            data, names = self._pickle()
            versions = self._provider_versions()
        started = time.monotonic()
        write_atomically(self.path, data)
        self.stats.update(snapshots=self.stats["snapshots"] + 1, last_snapshot_bytes=len(data),
                          last_snapshot_seconds=round(time.monotonic() - started, 4))
        with self._cond:
            self._durable = max(self._durable, generation)
            self._snapshot_versions = versions
            self._cond.notify_all()
        self._collect_garbage(names)

    def _pickle(self) -> tuple[bytes, set[str]]:
        for attempt in range(5):
            try:
                with motohooks.collecting_blobs() as collected:
                    state = {"format": FORMAT, "written": time.time(), "moto": motohooks.backends_state(),
                             "providers": {n: p.snapshot_state() for n, p in self.providers.items()}}
                    return dumps(state), collected.names
            except RuntimeError as exc:  # a change outside the gate (a long poll, an in-process event)
                if attempt == 4:
                    raise
                log.debug("snapshot retried: %s", exc)
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def _collect_garbage(self, referenced: set[str]) -> None:
        self._pending_dead |= motohooks.take_dead_blobs()
        for name in self._pending_dead - referenced:
            (self.blobs / name).unlink(missing_ok=True)
        self._pending_dead &= referenced

    def _provider_versions(self) -> dict[str, Any]:
        out = {}
        for name, p in self.providers.items():
            fn = getattr(p, "state_version", None)
            out[name] = fn() if callable(fn) else None
        return out

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._urgent:
                    self._cond.wait(self.poll)
                if self._stop:
                    return
            versions = self._provider_versions()
            if versions != self._versions:
                self._versions = versions
                self.mark()
            with self._cond:
                # wait out the debounce window unless someone waits for durability (or we stop)
                while not (self._urgent or self._stop) and self._first_dirty is not None:
                    left = self.debounce - (time.monotonic() - self._first_dirty)
                    if left <= 0:
                        break
                    self._cond.wait(left)
                dirty = self._marked > self._durable
            if dirty:
                try:
                    self.snapshot()
                    _release_memory()  # what the requests just snapshotted freed (cheap: milliseconds)
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("state snapshot failed (the previous one stays)")
                    time.sleep(1.0)

    def start(self) -> None:
        """Start the background snapshot thread."""
        self._thread = threading.Thread(target=self._loop, name="state-snapshots", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and write a last snapshot (``local down``)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._versions = self._provider_versions()
        self.snapshot()

    def health(self) -> dict[str, Any]:
        """Snapshot figures; ``saved`` is True when the snapshot on disk holds every change made so far."""
        pending = max(0, self._marked - self._durable)
        return {"ok": self.stats["errors"] == 0 or pending == 0, **self.stats, "pending_changes": pending,
                "saved": pending == 0 and self._provider_versions() == self._snapshot_versions}


_TRIM_AFTER_BYTES = 4 * 1024 * 1024


def _content_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _release_memory() -> None:
    """Hand the freed request buffers back to the system (glibc keeps them in its arenas otherwise)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _target(environ: dict[str, Any]) -> str:
    return str(environ.get("HTTP_X_AMZ_TARGET", ""))


class GatedApp:
    """moto's WSGI app, each request inside the persister's shared gate."""

    def __init__(self, app: WsgiApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if _target(environ) in _UNGATED_TARGETS:
            return self.app(environ, start_response)
        with self.gate.shared():
            # moto builds the whole response inside the call; iterating it afterwards only streams the body
            return self.app(environ, start_response)


class PersistingApp:
    """The outermost WSGI layer: records changes and answers writes once they are durable."""

    def __init__(self, app: WsgiApp, persister: Persister) -> None:
        self.app = app
        self.persister = persister

    @staticmethod
    def _classify(environ: dict[str, Any]) -> tuple[bool, bool]:
        """(changes state, must be durable before the answer)."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD", "OPTIONS"):
            return False, False
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_etl_kit/"):
            return False, False
        target = _target(environ)
        if target:
            op = target.split(".", 1)[-1]
            if op.startswith(_READ_PREFIXES) or target in _UNTRACKED_TARGETS or target.startswith("RedshiftData."):
                return False, False  # (the Data API's statements live in memory, as documented)
            return True, target in _DURABLE_TARGETS
        if path in ("", "/"):
            return True, False  # query protocol (IAM, SNS...): the action is in the body
        if path.endswith("/invocations"):
            return False, False  # Lambda Invoke: the function's own requests record what it changes
        return True, True  # REST: S3 objects and buckets, Lambda functions...

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        changes, durable = self._classify(environ)
        if not changes:
            return self.app(environ, start_response)  # reads stream through untouched
        status: list[str] = []

        def recording_start_response(st: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(st)
            return start_response(st, headers, exc_info) if exc_info else start_response(st, headers)

        body = list(self.app(environ, recording_start_response))
        if _content_length(environ) >= _TRIM_AFTER_BYTES:
            _release_memory()
        generation = self.persister.mark()
        if durable and status and status[0][:1] == "2":
            self.persister.wait_durable(generation)
        return body

"""Glue crawlers that crawl: list the S3 targets, classify, group into tables, write the catalog.

moto keeps the crawler records (``CreateCrawler``, ``GetCrawler``...); this module owns the crawls.
``GetCrawler``/``GetCrawlers``/``BatchGetCrawlers`` return moto's record with ``State``,
``LastCrawl`` and ``CrawlElapsedTime`` from the crawls here. A crawl started by a workflow while
the crawler is busy waits for the running crawl to end instead of failing (see the docs'
fidelity table); ``StartCrawler`` on a busy crawler raises ``CrawlerRunningException`` as on AWS.
A crawler in S3 event mode (``CRAWL_EVENT_MODE``) reads only what its queue's events name
(:mod:`.crawl_events`); every crawl logs how many objects it read and in which mode.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from etl_localcloud.context import CloudContext
from etl_localcloud.core.errors import client_error_code
from etl_localcloud.dispatcher import ServiceError
from etl_localcloud.glue.catalog import CatalogWriter, Found, glob_to_regex, group_tables
from etl_localcloud.glue.common import RunBook, Tracked, iso, moto_record, role_session, split_s3, utcnow
from etl_localcloud.glue.crawl_events import (
    EVENT_MODE,
    EventBatch,
    EventQueue,
    S3Event,
    definition_hash,
    event_target,
    in_target,
    merge_found,
    split_by_table,
    target_prefix,
)
from etl_localcloud.glue.exceptions import (
    CrawlerNotRunningException,
    CrawlerRunningException,
    CrawlerStoppingException,
)
from etl_localcloud.glue.schema import CSV_SAMPLE_BYTES, S3RangeFile, infer_csv, infer_parquet
from etl_localcloud.iam import AssumeRefused

__all__ = ["Crawl", "CrawlerRunner"]

log = logging.getLogger("etl_localcloud.glue.crawler")

LOG_GROUP = "/aws-glue/crawlers"
CRAWLER_SESSION_NAME = "AWS-Crawler"  # the role session name Glue gives a crawl
_SMALL_PARQUET = 1024 * 1024  # smaller Parquet objects are fetched whole, larger ones by footer ranges


def _root(path: str) -> tuple[str, str]:
    """The table name and location a target's own objects get (``s3://b/input/`` -> ``input``)."""
    bucket, key = split_s3(path)
    name = key.rstrip("/").rsplit("/", 1)[-1] if key.strip("/") else bucket
    return name, (f"s3://{bucket}/{key.rstrip('/')}/" if key.strip("/") else f"s3://{bucket}/")


def _skipped(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether a listing leaves the object at ``rel`` (below the include path) out: hidden, or excluded."""
    base = rel.rsplit("/", 1)[-1]
    return not base or base.startswith(("_", ".")) or any(p.match(rel) for p in patterns)


@dataclass
class _Events:
    """An event-mode crawl's messages, and why it lists the whole target instead (``""``: it does not)."""

    queue: EventQueue
    batch: EventBatch
    events: list[S3Event]
    listing: str
    lost: int = 0  # events in the DLQ, purged once the listing crawl has covered them


@dataclass(frozen=True)
class _RoleClients:
    """The clients a crawl in flight reads with: its role's session (Glue's crawls run as their role)."""

    s3: Any
    sqs: Any


def _location_hash(location: str) -> str:
    """Eight digits from ``location``, the same in every process (``hash()`` of a str is salted per process)."""
    return f"{int(hashlib.sha256(location.encode()).hexdigest(), 16) % 10**8:08d}"


@dataclass
class Crawl(Tracked):
    """One crawl of a crawler: ``ListCrawls`` shape plus what the workflow graph shows."""

    crawler: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "RUNNING"  # RUNNING | COMPLETED | FAILED | STOPPED (ListCrawls vocabulary)
    start: Any = field(default_factory=utcnow)
    end: Any = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    workflow: tuple[str, str] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    definition: str = ""  # digest of the crawler's definition it ran with (event mode lists after a change)
    mode: str = ""  # "listing" (the whole target) or "events" (what the queue named)
    read: int = 0  # objects read (classified)

    @property
    def status(self) -> str:
        """``LastCrawl.Status`` / workflow crawl state: SUCCEEDED | FAILED | CANCELLED | RUNNING."""
        return {"COMPLETED": "SUCCEEDED", "FAILED": "FAILED", "STOPPED": "CANCELLED"}.get(self.state, "RUNNING")

    @property
    def owner(self) -> str:
        return self.crawler

    @property
    def finished(self) -> bool:
        return self.state != "RUNNING"

    def interrupt(self, reason: str) -> bool:
        """End this crawl FAILED with ``reason`` if it was in flight when the daemon stopped (True then)."""
        if self.finished:
            return False
        self.state, self.error, self.end = "FAILED", reason, utcnow()
        return True

    def seconds(self) -> float:
        return ((self.end or utcnow()) - self.start).total_seconds()

    def as_crawl(self) -> dict[str, Any]:
        """``ListCrawls`` entry."""
        d: dict[str, Any] = {"CrawlId": self.id, "State": self.state, "StartTime": self.start,
                             "LogGroup": LOG_GROUP, "LogStream": self.crawler, "MessagePrefix": self.id,
                             "DPUHour": round(self.seconds() / 3600, 6),
                             "Summary": json.dumps(self._summary())}
        if self.end:
            d["EndTime"] = self.end
        if self.error:
            d["ErrorMessage"] = self.error
        return d

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (kind, action) in {"tablesCreated": ("TABLE", "ADD"), "tablesUpdated": ("TABLE", "UPDATE"),
                                    "tablesDeleted": ("TABLE", "DELETE"),
                                    "partitionsCreated": ("PARTITION", "ADD")}.items():
            if self.counts.get(key):
                out.setdefault(kind, {})[action] = {"Count": self.counts[key]}
        return out

    def as_node_crawl(self) -> dict[str, Any]:
        """``CrawlerNodeDetails.Crawls`` entry of a workflow graph."""
        d: dict[str, Any] = {"State": self.status, "StartedOn": self.start, "LogGroup": LOG_GROUP,
                             "LogStream": self.crawler}
        if self.end:
            d["CompletedOn"] = self.end
        if self.error:
            d["ErrorMessage"] = self.error
        return d


class CrawlerRunner:
    """Runs crawls in background threads (the crawler records stay moto's).

    ``on_final`` callbacks get every finished crawl.
    """

    def __init__(self, ctx: CloudContext, max_parallel: int = 4) -> None:
        self.ctx = ctx
        self.book: RunBook[Crawl] = RunBook(self.crawler_record, "Crawl {run_id} of crawler {owner} not found")
        self._lock = self.book.lock
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._busy: dict[str, threading.Lock] = {}  # one crawl at a time per crawler
        self.on_final: list[Callable[[Crawl], None]] = []
        self._closing = False
        self._clients: dict[str, _RoleClients] = {}  # crawl id -> its role's clients, while it runs

    # -- records ----------------------------------------------------------------------------
    def crawler_record(self, name: str) -> dict[str, Any]:
        """The crawler's definition as moto keeps it; ``EntityNotFoundException`` when there is none."""
        return moto_record(lambda: self.ctx.moto_client("glue").get_crawler(Name=name), "Crawler",
                           f"Crawler with name {name} not found")

    def get_crawler(self, name: str) -> dict[str, Any]:
        """``GetCrawler``'s record: moto's definition with the state and last crawl of the crawls here."""
        return self._patch(self.crawler_record(name))

    def all_crawlers(self) -> list[dict[str, Any]]:
        """Every crawler's record, as :meth:`get_crawler` gives it."""
        return [self._patch(dict(r)) for r in self.ctx.moto_client("glue").get_crawlers()["Crawlers"]]

    def _patch(self, rec: dict[str, Any]) -> dict[str, Any]:
        crawls = self.book.of(rec["Name"])
        active = [c for c in crawls if not c.finished]
        done = [c for c in crawls if c.finished]
        if active:
            rec["State"] = "STOPPING" if any(c.cancel.is_set() for c in active) else "RUNNING"
        else:
            rec["State"] = "READY"
        if done:
            last = done[-1]
            lc: dict[str, Any] = {"Status": last.status, "LogGroup": LOG_GROUP, "LogStream": last.crawler,
                                  "MessagePrefix": last.id, "StartTime": last.start}
            if last.error:
                lc["ErrorMessage"] = last.error
            rec["LastCrawl"] = lc
            rec["CrawlElapsedTime"] = int(last.seconds() * 1000)
        else:
            rec.pop("LastCrawl", None)
            rec["CrawlElapsedTime"] = int(active[-1].seconds() * 1000) if active else 0
        return rec

    def metrics(self, names: list[str]) -> list[dict[str, Any]]:
        """``GetCrawlerMetrics`` entries of ``names`` (every crawler when empty)."""
        names = names or [c["Name"] for c in self.ctx.moto_client("glue").get_crawlers()["Crawlers"]]
        out = []
        for name in names:
            self.crawler_record(name)
            done = [c for c in self.book.of(name) if c.finished]
            times = sorted(c.seconds() for c in done)
            last = done[-1] if done else None
            counts = last.counts if last else {}
            out.append({"CrawlerName": name, "TimeLeftSeconds": 0.0, "StillEstimating": False,
                        "LastRuntimeSeconds": last.seconds() if last else 0.0,
                        "MedianRuntimeSeconds": times[len(times) // 2] if times else 0.0,
                        "TablesCreated": counts.get("tablesCreated", 0),
                        "TablesUpdated": counts.get("tablesUpdated", 0),
                        "TablesDeleted": counts.get("tablesDeleted", 0)})
        return out

    def crawls_of_workflow(self, key: tuple[str, str], crawler: str | None = None) -> list[Crawl]:
        """The crawls the workflow run ``key`` started (of ``crawler`` only, when given)."""
        return [c for c in self.book.all() if c.workflow == key and (crawler is None or c.crawler == crawler)]

    def active_count(self) -> int:
        return len(self.book.active())

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, list[Crawl]]:
        return self.book.snapshot()

    def restore(self, saved: dict[str, list[Crawl]], reason: str) -> list[Crawl]:
        """Take back saved crawls; those in flight end FAILED with ``reason`` and are returned."""
        return self.book.restore(saved, reason)

    # -- engine -----------------------------------------------------------------------------
    def start(self, name: str, workflow: tuple[str, str] | None = None,
              on_created: Callable[[Crawl], None] | None = None) -> Crawl:
        """Start a crawl; from a workflow a busy crawler queues it, otherwise ``CrawlerRunningException``."""
        record = self.crawler_record(name)
        crawl = Crawl(crawler=name, workflow=workflow)
        with self._lock:
            if workflow is None and any(not c.finished for c in self.book.of(name)):
                raise CrawlerRunningException(f"Crawler with name {name} has already started")
            self.book.add(crawl)
            busy = self._busy.setdefault(name, threading.Lock())
        if on_created is not None:
            on_created(crawl)
        threading.Thread(target=self._run, args=(crawl, record, busy), name=f"glue-crawl-{name}",
                         daemon=True).start()
        return crawl

    def stop(self, name: str) -> None:
        """Ask the running crawl of ``name`` to stop."""
        self.crawler_record(name)
        active = [c for c in self.book.of(name) if not c.finished]
        if not active:
            raise CrawlerNotRunningException(f"Crawler with name {name} isn't running")
        if all(c.cancel.is_set() for c in active):
            raise CrawlerStoppingException(f"Crawler with name {name} is stopping")
        for c in active:
            c.cancel.set()

    def close(self) -> None:
        self._closing = True
        for c in self.book.all():
            c.cancel.set()

    def _run(self, crawl: Crawl, record: dict[str, Any], busy: threading.Lock) -> None:
        lines = [f"BENCHMARK : Running Start Crawl for Crawler {crawl.crawler}"]
        with busy, self._slots:
            crawl.start = utcnow()
            self.announce(crawl, "Started")
            try:
                writer = self._crawl(crawl, record, lines)
                crawl.counts = dict(writer.counts) if writer else {}
                final = "STOPPED" if crawl.cancel.is_set() else "COMPLETED"
            except Exception as exc:
                code = client_error_code(exc)
                crawl.error = f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ServiceError):
                    crawl.error = f"{exc.code}: {exc.message}"
                final = "FAILED"
                lines.append(f"ERROR : Crawler failed: {crawl.error}")
                if not isinstance(exc, ServiceError) and not code:
                    log.exception("crawl %s of %s failed", crawl.id, crawl.crawler)
            lines.append("BENCHMARK : Finished writing to Catalog")
            lines.append(f"BENCHMARK : Crawler has finished running and is in state READY ({final})")
            try:
                # Logs first: whoever sees the crawler READY can read them.
                self.ctx.put_logs(LOG_GROUP, crawl.crawler, [f"[{crawl.id}] {ln}" for ln in lines])
            except Exception:
                log.exception("could not write crawler logs")
            crawl.end = utcnow()
            crawl.state = final
        if crawl.state == "COMPLETED":
            self.announce(crawl, "Succeeded")
        elif crawl.state == "FAILED":
            self.announce(crawl, "Failed")
        for cb in list(self.on_final):
            try:
                cb(crawl)
            except Exception:
                log.exception("crawl listener failed")

    def _session(self, record: dict[str, Any]) -> Any:
        """The crawler role's session: a crawl reads S3, its event queue and writes the catalog as its role."""
        try:
            return role_session(self.ctx, str(record.get("Role") or ""), f"crawler/{record.get('Name')}",
                                CRAWLER_SESSION_NAME)
        except AssumeRefused as exc:
            raise ServiceError("AccessDeniedException", str(exc)) from None

    def _role(self, crawl: Crawl) -> _RoleClients:
        return self._clients[crawl.id]

    def _crawl(self, crawl: Crawl, record: dict[str, Any], lines: list[str]) -> CatalogWriter | None:
        session = self._session(record)
        glue = self.ctx.session_client("glue", session, direct=True)
        self._clients[crawl.id] = _RoleClients(s3=self.ctx.session_client("s3", session, direct=True),
                                               sqs=self.ctx.session_client("sqs", session, direct=True))
        try:
            return self._crawl_as_role(crawl, record, lines, glue)
        finally:
            self._clients.pop(crawl.id, None)

    def _crawl_as_role(self, crawl: Crawl, record: dict[str, Any], lines: list[str], glue: Any) -> CatalogWriter:
        db = record.get("DatabaseName") or "default"
        moto_record(lambda: glue.get_database(Name=db), "Database", f"Database {db} not found")
        writer = CatalogWriter(glue, record, lines)
        crawl.definition = definition_hash(record)
        events = None
        if (record.get("RecrawlPolicy") or {}).get("RecrawlBehavior") == EVENT_MODE:
            events = self._receive(crawl, record, writer)
            if not events.listing:
                self._event_crawl(crawl, record, events, writer)
                return writer
            lines.append(f"INFO : The crawl is not running in S3 event mode: {events.listing}")
        crawl.mode = "listing"
        self._list_crawl(crawl, record, writer)
        if events is not None and not crawl.cancel.is_set():
            events.queue.delete(events.batch.receipts)  # the listing covered what they named
            if events.lost:
                events.queue.purge_dlq()
        lines.append(f"BENCHMARK : Listing crawl read {crawl.read} object(s)")
        return writer

    def _list_crawl(self, crawl: Crawl, record: dict[str, Any], writer: CatalogWriter) -> None:
        """List and read every object of every target; tables from what is found (the seed's crawl)."""
        lines = writer.log
        targets = (record.get("Targets") or {}).get("S3Targets") or []
        kept: set[str] = set()
        roots: list[str] = []
        for target in targets:
            if crawl.cancel.is_set():
                return
            path = target.get("Path", "")
            roots.append(path)
            found = self._classify_target(crawl, path, target.get("Exclusions") or [], lines)
            if crawl.cancel.is_set():
                return
            root_name, location = _root(path)
            for plan in group_tables(found, root_name, location, record.get("TablePrefix") or ""):
                if plan.name in kept:  # two targets yielding one name: Glue adds a hash suffix
                    plan.name = f"{plan.name}_{_location_hash(plan.location)}"
                writer.apply(plan)
                kept.add(plan.name)
        if not crawl.cancel.is_set():
            writer.vanished(kept, roots)
        if not kept:
            lines.append("INFO : No objects to classify under the crawler's targets; no table written")

    # -- S3 event mode ----------------------------------------------------------------------------
    def _receive(self, crawl: Crawl, record: dict[str, Any], writer: CatalogWriter) -> _Events:
        """The queue's messages, and whether this crawl must list instead (first crawl, changed, events lost)."""
        target = event_target(record)
        queue = EventQueue(self._role(crawl).sqs, target["EventQueueArn"], target.get("DlqEventQueueArn"))
        patterns = [glob_to_regex(p) for p in target.get("Exclusions") or []]
        path = target.get("Path", "")
        batch = queue.receive()
        events = [e for e in batch.latest()
                  if in_target(path, e.bucket, e.key) and not _skipped(e.key[len(target_prefix(path)):], patterns)]
        done = [c for c in self.book.of(crawl.crawler) if c.state == "COMPLETED" and c is not crawl]
        lost = queue.lost()
        listing = ""
        if not done:
            listing = "the crawler's first crawl lists its whole target"
        elif done[-1].definition != crawl.definition:
            listing = "the crawler's definition changed since its last crawl"
        elif lost:
            listing = f"{lost} event(s) were lost to the dead-letter queue"
        elif any(not e.created for e in events) and writer.delete_behavior != "LOG":
            listing = f"objects were removed and the DeleteBehavior is {writer.delete_behavior}"
        if batch.unreadable:
            writer.log.append(f"WARN : {batch.unreadable} message(s) of {queue.arn} are not S3 events; consumed")
        return _Events(queue, batch, events, listing, lost)

    def _event_crawl(self, crawl: Crawl, record: dict[str, Any], events: _Events, writer: CatalogWriter) -> None:
        """Read the objects the events name and merge them into the crawler's tables; delete the messages."""
        lines = writer.log
        crawl.mode = "events"
        lines.append("INFO : The crawl is running by consuming Amazon S3 events.")
        lines.append(f"INFO : {len(events.batch.receipts)} message(s) received, {len(events.events)} object "
                     "event(s) under the target")
        s3 = self._role(crawl).s3
        objs: dict[str, list[dict[str, Any]]] = {}
        for e in events.events:
            if not e.created:
                lines.append(f"INFO : s3://{e.bucket}/{e.key} was removed; DeleteBehavior LOG keeps the catalog")
                continue
            try:
                size = int(s3.head_object(Bucket=e.bucket, Key=e.key)["ContentLength"])
            except Exception as exc:
                if client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    lines.append(f"INFO : s3://{e.bucket}/{e.key} named by an event no longer exists; skipped")
                    continue
                if client_error_code(exc) not in ("403", "AccessDenied", "Forbidden"):
                    raise
                size = -1  # the read below says why it may not (a HEAD's 403 carries no message)
            objs.setdefault(e.bucket, []).append({"Key": e.key, "Size": size})
        path = event_target(record)["Path"]
        found = [f for bucket, items in objs.items()
                 for f in self._classify_objects(crawl, bucket, target_prefix(path), items, [], lines)]
        if not crawl.cancel.is_set():
            self._merge(record, path, found, writer)
            events.queue.delete(events.batch.receipts)
        lines.append(f"BENCHMARK : Event crawl read {crawl.read} object(s)")

    def _merge(self, record: dict[str, Any], path: str, found: list[Found], writer: CatalogWriter) -> None:
        """Objects under the crawler's tables join them; the others make tables as a listing would."""
        tables = [t for pg in writer.glue.get_paginator("get_tables").paginate(DatabaseName=writer.db)
                  for t in pg.get("TableList", [])]
        own = [t for t in tables if (t.get("Parameters") or {}).get("UPDATED_BY_CRAWLER") == record["Name"]]
        by_table, loose = split_by_table(own, found)
        for t in own:
            if t["Name"] in by_table:
                merge_found(writer, t, by_table[t["Name"]])
        root_name, location = _root(path)
        taken = {t["Name"] for t in tables}
        for plan in group_tables(loose, root_name, location, record.get("TablePrefix") or ""):
            if plan.name in taken:  # a table of that name holds another location: Glue adds a hash suffix
                plan.name = f"{plan.name}_{_location_hash(plan.location)}"
            writer.apply(plan)
        if not found:
            writer.log.append("INFO : No new objects to classify; the catalog is unchanged")

    def _classify_target(self, crawl: Crawl, path: str, exclusions: list[str], lines: list[str]) -> list[Found]:
        s3 = self._role(crawl).s3
        bucket, key = split_s3(path)
        prefix = target_prefix(path)
        objs: list[dict[str, Any]] = []
        for pg in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objs.extend(pg.get("Contents", []))
        if not objs and key and not key.endswith("/"):
            # The include path names a single object.
            for pg in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                objs.extend(o for o in pg.get("Contents", []) if o["Key"] == key)
            prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        return self._classify_objects(crawl, bucket, prefix, objs, [glob_to_regex(p) for p in exclusions], lines)

    def _classify_objects(self, crawl: Crawl, bucket: str, prefix: str, objs: list[dict[str, Any]],
                          patterns: list[re.Pattern[str]], lines: list[str]) -> list[Found]:
        """Read and classify ``objs`` (``Key``/``Size``) found below ``prefix``; counts what it reads."""
        s3 = self._role(crawl).s3
        found: list[Found] = []
        for o in objs:
            if crawl.cancel.is_set():
                break
            rel = o["Key"][len(prefix):]
            if o["Size"] == 0 or _skipped(rel, patterns):
                continue
            crawl.read += 1
            try:
                schema = self._classify(s3, bucket, o["Key"], int(o["Size"]))
            except Exception as exc:
                lines.append(f"WARN : Could not read s3://{bucket}/{o['Key']}: {type(exc).__name__}: {exc}")
                continue
            if schema is None:
                lines.append(f"WARN : s3://{bucket}/{o['Key']} was not classified (only CSV and Parquet are)")
                continue
            found.append(Found(bucket, o["Key"], rel.split("/")[:-1], int(o["Size"]), schema))
        return found

    @staticmethod
    def _classify(s3: Any, bucket: str, key: str, size: int) -> Any:
        head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{CSV_SAMPLE_BYTES - 1}")["Body"].read()
        if head[:4] == b"PAR1" or key.endswith(".parquet"):
            if size <= _SMALL_PARQUET:
                import io

                data = head if len(head) >= size else s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                return infer_parquet(io.BytesIO(data))
            return infer_parquet(S3RangeFile(s3, bucket, key, size))
        if key.lower().endswith((".json", ".avro", ".orc", ".xml")):
            return None
        return infer_csv(head, complete=len(head) >= size, object_size=size)

    def announce(self, crawl: Crawl, state: str) -> None:
        """"Glue Crawler State Change" with the detail fields Glue sends (values are strings, as on AWS)."""
        link = (f"https://console.aws.amazon.com/cloudwatch/home?region={self.ctx.region}#logEventViewer:"
                f"group={LOG_GROUP};stream={crawl.crawler}")
        detail: dict[str, Any] = {"crawlerName": crawl.crawler, "accountId": self.ctx.account_id, "state": state,
                                  "message": f"Crawler {state}", "startTime": iso(crawl.start)}
        if state == "Succeeded":
            for k in ("tablesCreated", "tablesUpdated", "tablesDeleted", "partitionsCreated", "partitionsUpdated",
                      "partitionsDeleted"):
                detail[k] = str(crawl.counts.get(k, 0))
            detail.update({"warningMessage": "N/A", "completionDate": iso(crawl.end),
                           "runningTime (sec)": str(round(crawl.seconds())), "cloudWatchLogLink": link})
        elif state == "Failed":
            detail.update({"errorMessage": crawl.error or "Internal Service Exception", "cloudWatchLogLink": link})
        try:
            self.ctx.emit_event("aws.glue", "Glue Crawler State Change", detail)
        except Exception:
            log.exception("could not emit crawler state change")

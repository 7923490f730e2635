"""Glue's S3 event mode (``RecrawlPolicy`` ``CRAWL_EVENT_MODE``): a crawl reads only what the events name.

As AWS documents it ("Accelerating crawls using Amazon S3 event notifications"): the crawler's single
S3 target names an SQS queue (``EventQueueArn``) that receives the bucket's object events; a crawl
receives the queue's messages (at most 100,000), reads the objects they name and merges them into the
catalog, then deletes the messages. The first crawl, and the first after a change of the crawler's
definition, lists the whole target ("The crawl is not running in S3 event mode"), as does a crawl whose
events were lost (messages in the ``DlqEventQueueArn`` queue, which the crawl then purges).

Merging (what differs from a listing crawl, see docs/local-cloud.md): an object under an existing table
of the crawler adds its partition when new and its columns that the table lacks (appended; the existing
columns keep their names and types; ``UpdateBehavior`` LOG only logs the new columns); objects no table
covers are grouped into new tables as a listing crawl groups them. An event naming an object that no
longer exists is logged and consumed. Removal events with ``DeleteBehavior`` LOG are logged; with another
DeleteBehavior the crawl lists the target (the deleted object's table may have to go).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from etl_localcloud.core.errors import client_error_code
from etl_localcloud.glue.catalog import CatalogWriter, Found, TablePlan, merge_type
from etl_localcloud.glue.common import split_s3
from etl_localcloud.glue.exceptions import InvalidInputException

__all__ = ["EVENT_MODE", "check_definition", "EventQueue", "S3Event", "definition_hash", "event_target", "merge_found",
           "EventBatch", "in_target", "target_prefix", "split_by_table"]

EVENT_MODE = "CRAWL_EVENT_MODE"
MAX_MESSAGES = 100_000  # Glue's limit of messages consumed per crawl
_DEFINITION = ("DatabaseName", "Targets", "SchemaChangePolicy", "RecrawlPolicy", "Configuration", "TablePrefix",
               "Classifiers")


def definition_hash(record: dict[str, Any]) -> str:
    """A digest of the crawler's fields that shape a crawl: a change makes the next crawl list everything."""
    picked = {k: record.get(k) for k in _DEFINITION}
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


def event_target(record: dict[str, Any]) -> dict[str, Any]:
    """The single S3 target of an event-mode crawler; ``InvalidInputException`` as Glue refuses the others."""
    targets = (record.get("Targets") or {}).get("S3Targets") or []
    if len(targets) != 1 or any((record.get("Targets") or {}).get(k) for k in
                                ("JdbcTargets", "DynamoDBTargets", "CatalogTargets", "MongoDBTargets")):
        raise InvalidInputException(f"Crawler {record.get('Name')}: a crawler in S3 event mode (CRAWL_EVENT_MODE) "
                                    "supports a single Amazon S3 target only")
    target = targets[0]
    if not target.get("EventQueueArn"):
        raise InvalidInputException("Event queue ARN is required when event crawler is selected.")
    if target.get("SampleSize"):
        raise InvalidInputException(f"Crawler {record.get('Name')}: Amazon S3 sampling (SampleSize) is not supported "
                                    "in S3 event mode")
    return dict(target)


def check_definition(spec: dict[str, Any], sqs: Any) -> None:
    """Refuse, as Glue's CreateCrawler / UpdateCrawler do, a recrawl policy its targets cannot serve.

    ``CRAWL_EVENT_MODE``: one S3 target with an ``EventQueueArn`` of an existing queue (and DLQ), no
    sampling. ``CRAWL_NEW_FOLDERS_ONLY``: a SchemaChangePolicy of LOG / LOG.
    """
    behavior = (spec.get("RecrawlPolicy") or {}).get("RecrawlBehavior")
    if behavior == EVENT_MODE:
        target = event_target(spec)
        EventQueue(sqs, target["EventQueueArn"], target.get("DlqEventQueueArn"))
    elif behavior == "CRAWL_NEW_FOLDERS_ONLY":
        policy = spec.get("SchemaChangePolicy") or {}
        if policy.get("UpdateBehavior", "UPDATE_IN_DATABASE") != "LOG" or \
                policy.get("DeleteBehavior", "DEPRECATE_IN_DATABASE") != "LOG":
            raise InvalidInputException('The SchemaChangePolicy for "Crawl new folders only" Amazon S3 target can '
                                        "have only LOG DeleteBehavior value and LOG UpdateBehavior value.")


@dataclass(frozen=True)
class S3Event:
    """One object event of a message: ``created`` or not (removed), the object, the message's receipt."""

    bucket: str
    key: str
    created: bool
    receipt: str


@dataclass
class EventBatch:
    """What a crawl received: the object events, every receipt to delete, and the messages it could not read."""

    events: list[S3Event] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)
    unreadable: int = 0

    def latest(self) -> list[S3Event]:
        """The last event of each object (a later removal outweighs a creation, and the reverse)."""
        last: dict[tuple[str, str], S3Event] = {}
        for e in self.events:
            last[(e.bucket, e.key)] = e
        return list(last.values())


def _records(body: str) -> list[dict[str, Any]] | None:
    """The S3 event records of a message body (raw, or wrapped by SNS); ``[]`` for S3's test event."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
            doc = json.loads(doc["Message"])
    except (TypeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    return records if isinstance(records, list) else None


class EventQueue:
    """The crawler's event queue (and DLQ) in the local SQS, by ARN."""

    def __init__(self, sqs: Any, queue_arn: str, dlq_arn: str | None) -> None:
        self.sqs = sqs
        self.arn = queue_arn
        self.url = self._url(queue_arn)
        self.dlq_url = self._url(dlq_arn) if dlq_arn else None

    def _url(self, arn: str) -> str:
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise InvalidInputException(f"{arn} is not an SQS queue ARN")
        try:
            return str(self.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
        except Exception as exc:
            if client_error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise InvalidInputException(f"SQS queue {arn} does not exist or the role provided does not have "
                                            "access to it.") from None
            raise

    def receive(self) -> EventBatch:
        """Every message now in the queue (up to Glue's 100,000), parsed; nothing is deleted yet."""
        batch = EventBatch()
        while len(batch.receipts) < MAX_MESSAGES:
            msgs = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                            VisibilityTimeout=300).get("Messages", [])
            if not msgs:
                return batch
            for m in msgs:
                batch.receipts.append(m["ReceiptHandle"])
                records = _records(m.get("Body", ""))
                if records is None:
                    batch.unreadable += 1
                    continue
                for r in records:
                    s3 = r.get("s3") or {}
                    batch.events.append(S3Event((s3.get("bucket") or {}).get("name", ""),
                                                unquote_plus((s3.get("object") or {}).get("key", "")),
                                                str(r.get("eventName", "")).startswith("ObjectCreated"),
                                                m["ReceiptHandle"]))
        return batch

    def delete(self, receipts: list[str]) -> None:
        """Delete the consumed messages."""
        for i in range(0, len(receipts), 10):
            entries = [{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(receipts[i:i + 10])]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def lost(self) -> int:
        """How many events sit in the DLQ (events the crawler never consumed: the queue cannot be trusted)."""
        if not self.dlq_url:
            return 0
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attrs.values())

    def purge_dlq(self) -> None:
        if self.dlq_url:
            self.sqs.purge_queue(QueueUrl=self.dlq_url)


def _covering(tables: list[dict[str, Any]], bucket: str, key: str) -> dict[str, Any] | None:
    """The table whose location holds ``s3://bucket/key`` most closely."""
    path = f"s3://{bucket}/{key}"
    best = None
    for t in tables:
        loc = (t.get("StorageDescriptor") or {}).get("Location", "").rstrip("/") + "/"
        if path.startswith(loc) and (best is None or len(loc) > len(best[0])):
            best = (loc, t)
    return best[1] if best else None


def _merge_columns(old: list[dict[str, Any]], found: list[Found]) -> list[dict[str, Any]]:
    """The table's columns, then the columns of ``found`` it lacks (types unified among the new objects)."""
    cols = [dict(c) for c in old]
    have = {c["Name"]: i for i, c in enumerate(cols)}
    for f in found:
        for name, typ in f.schema.columns:
            if name not in have:
                have[name] = len(cols)
                cols.append({"Name": name, "Type": typ})
            elif have[name] >= len(old):  # a new column seen in several new objects
                cols[have[name]]["Type"] = merge_type(cols[have[name]]["Type"], typ)
    return cols


def merge_found(writer: CatalogWriter, table: dict[str, Any], found: list[Found]) -> None:
    """Merge objects under ``table``'s location into it: new partitions and new columns, stats added."""
    loc = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
    depth = len(table.get("PartitionKeys") or [])
    fits = []
    for f in found:
        folders = f"s3://{f.bucket}/{f.key}"[len(loc):].split("/")[:-1]
        if len(folders) != depth:
            writer.log.append(f"WARN : s3://{f.bucket}/{f.key} is {len(folders)} folder(s) below table "
                              f"{table['Name']}, which has {depth} partition key(s); not added")
            continue
        fits.append(Found(f.bucket, f.key, folders, f.size, f.schema))
    if fits:
        writer.merge(TablePlan(table["Name"], loc, fits, [k["Name"] for k in table.get("PartitionKeys") or []]),
                     table, _merge_columns(table["StorageDescriptor"].get("Columns") or [], fits))


def split_by_table(tables: list[dict[str, Any]], found: list[Found]) -> tuple[dict[str, list[Found]], list[Found]]:
    """``found`` by the existing table that covers each object, and the objects no table covers."""
    by_table: dict[str, list[Found]] = {}
    loose: list[Found] = []
    for f in found:
        t = _covering(tables, f.bucket, f.key)
        if t is None:
            loose.append(f)
        else:
            by_table.setdefault(t["Name"], []).append(f)
    return by_table, loose


def target_prefix(path: str) -> str:
    """The key prefix a folder target ``path`` lists (``s3://b/input`` -> ``input/``)."""
    key = split_s3(path)[1]
    return key if (not key or key.endswith("/")) else key + "/"


def in_target(path: str, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` is under the target ``path``."""
    return bucket == split_s3(path)[0] and key.startswith(target_prefix(path))

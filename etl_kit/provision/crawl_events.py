"""The crawlers' S3 event queues (``crawl_mode: events``, issue 13): what a crawl costs stays flat.

With ``RecrawlPolicy`` ``CRAWL_EVENT_MODE`` a Glue crawler does not list its S3 target on every run: the
bucket sends its ``s3:ObjectCreated:*`` notifications for the crawler's prefix to an SQS queue of the
crawler's own, and a crawl reads only the objects the queue's messages name (AWS: "Accelerating crawls
using Amazon S3 event notifications"). Per crawler this module declares:

* the queue ``<crawler>-events`` (14 days' retention; a message the crawler fails to consume
  ``MAX_RECEIVES`` times moves to the DLQ) with a policy letting only this bucket, in this account,
  send to it (``aws:SourceArn`` / ``aws:SourceAccount``);
* the DLQ ``<crawler>-events-dlq`` (the target's ``DlqEventQueueArn``);
* the bucket's ``QueueConfigurations`` entry (prefix filter = the crawler's prefix), next to its
  ``EventBridgeConfiguration`` (step ``s3`` puts both, after the queues exist: S3 checks its
  destinations when the configuration is put).

Glue's own rules, which these follow: one S3 target per event-mode crawler, a folder path, no sampling;
the first crawl (and the first after a change of the crawler's definition) lists the whole target.
With ``crawl_mode: full`` none of this exists (the seed's CRAWL_EVERYTHING) and an apply removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etl_kit.provision.base import Ctx, Resource, or_none
from etl_kit.provision.policies import s3_queue_policy

__all__ = ["CrawlTarget", "crawl_targets", "recrawl_policy", "s3_target", "queue_resources", "legacy_queues",
           "queue_configurations", "EVENTS", "MAX_RECEIVES"]

EVENTS = ["s3:ObjectCreated:*"]
MAX_RECEIVES = 5  # receives of one message before SQS moves it to the DLQ (the crawl then lists everything)
_RETENTION = str(14 * 24 * 3600)  # SQS's longest: an idle crawler loses no event for two weeks
# Glue exclude globs: the CSV crawler ignores everything that is not CSV, the Parquet one everything not Parquet.
INPUT_EXCLUSIONS = ["**.{json,parquet,avro,orc,txt,zip,gz,tmp,crc}", "**/_*", "_*"]
OUTPUT_EXCLUSIONS = ["**.{csv,json,txt,tmp,crc}", "**/_*", "_*"]


@dataclass(frozen=True)
class CrawlTarget:
    """One crawler's single S3 target: its name, the prefix it crawls, what it excludes, what it finds."""

    crawler: str
    prefix: str
    exclusions: tuple[str, ...]
    what: str


def crawl_targets(ctx: Ctx) -> list[CrawlTarget]:
    """The two crawlers and their targets (the CSV crawler over ``input/``, the Parquet one over ``output/``)."""
    s = ctx.settings
    return [CrawlTarget(s.csv_crawler, s.input_prefix, tuple(INPUT_EXCLUSIONS), "CSV files"),
            CrawlTarget(s.parquet_crawler, s.output_prefix, tuple(OUTPUT_EXCLUSIONS), "Parquet files")]


def _events(ctx: Ctx) -> bool:
    return ctx.settings.crawl_mode == "events"


def recrawl_policy(ctx: Ctx) -> dict[str, str]:
    """``CRAWL_EVENT_MODE`` with ``crawl_mode: events``, else the seed's ``CRAWL_EVERYTHING``."""
    return {"RecrawlBehavior": "CRAWL_EVENT_MODE" if _events(ctx) else "CRAWL_EVERYTHING"}


def s3_target(ctx: Ctx, t: CrawlTarget) -> dict[str, Any]:
    """The crawler's ``S3Targets`` entry, with its event queue and DLQ in events mode."""
    out: dict[str, Any] = {"Path": f"s3://{ctx.arns.bucket}/{t.prefix}", "Exclusions": list(t.exclusions)}
    if _events(ctx):
        out["EventQueueArn"] = ctx.arns.queue(ctx.arns.crawler_queue(t.crawler))
        out["DlqEventQueueArn"] = ctx.arns.queue(ctx.arns.crawler_dlq(t.crawler))
    return out


def _queues(ctx: Ctx, t: CrawlTarget) -> list[Resource]:
    from etl_kit.provision.sns import queue_resource  # sns builds on base only; imported late to keep s3 light

    a = ctx.arns
    queue, dlq = a.crawler_queue(t.crawler), a.crawler_dlq(t.crawler)
    redrive = f'{{"deadLetterTargetArn":"{a.queue(dlq)}","maxReceiveCount":"{MAX_RECEIVES}"}}'
    policy = s3_queue_policy(a.queue(queue), a.s3(a.bucket), ctx.account)
    main = queue_resource(ctx, queue, policy, {"MessageRetentionPeriod": _RETENTION, "RedrivePolicy": redrive})
    delete = main.delete

    def unhook_then_delete() -> None:
        _unhook(ctx, a.queue(queue))
        delete()

    main.delete = unhook_then_delete
    return [queue_resource(ctx, dlq, None, {"MessageRetentionPeriod": _RETENTION}), main]


def _unhook(ctx: Ctx, queue_arn: str) -> None:
    """Take ``queue_arn`` out of the bucket's notifications (a kept bucket must not send to a deleted queue)."""
    s3 = ctx.client("s3")
    bucket = ctx.arns.bucket
    current = or_none(lambda: s3.get_bucket_notification_configuration(Bucket=bucket))
    if current is None or not any(q.get("QueueArn") == queue_arn for q in current.get("QueueConfigurations", [])):
        return
    keep = {k: v for k, v in current.items() if k != "ResponseMetadata"}
    keep["QueueConfigurations"] = [q for q in current["QueueConfigurations"] if q.get("QueueArn") != queue_arn]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=keep)


def queue_resources(ctx: Ctx) -> list[Resource]:
    """Each crawler's event queue and DLQ (none with ``crawl_mode: full``)."""
    return [r for t in crawl_targets(ctx) for r in _queues(ctx, t)] if _events(ctx) else []


def legacy_queues(ctx: Ctx) -> list[Resource]:
    """The event queues an events-mode apply left, removed when ``crawl_mode`` is ``full``."""
    return [] if _events(ctx) else [r for t in crawl_targets(ctx) for r in _queues(ctx, t)]


def queue_configurations(ctx: Ctx) -> list[dict[str, Any]]:
    """The bucket's ``QueueConfigurations``: each crawler's prefix to its queue ([] with ``full``)."""
    if not _events(ctx):
        return []
    a = ctx.arns
    return [{"Id": f"{t.crawler}-events", "QueueArn": a.queue(a.crawler_queue(t.crawler)), "Events": EVENTS,
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": t.prefix}]}}}
            for t in crawl_targets(ctx)]

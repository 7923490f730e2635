"""The cost benchmark of a crawl per file (issue 13, part 4): S3 event mode against the full crawl.

In one local cloud, one bucket holds N objects under ``input/`` (put directly, not through the pipeline) and
two crawlers cover that prefix: the seed's design (``CRAWL_EVERYTHING``: every crawl lists and reads the whole
prefix) and ``CRAWL_EVENT_MODE`` (the bucket's object-created events to an SQS queue; a crawl reads what they
name). For each N a new file arrives ``repeat`` times and both crawlers crawl it; the duration of each crawl
(GetCrawlerMetrics ``LastRuntimeSeconds``) and the objects it read (its log) are recorded, and priced with
:mod:`etl_kit.pricing` as :mod:`etl_kit.cost` prices a run: the crawler's DPU time with its 10-minute minimum,
plus the S3 LIST/GET and SQS requests the crawl makes.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Any

__all__ = ["crawl_part", "crawl_growth", "md_crawl", "CRAWL_SIZES", "QUICK_CRAWL_SIZES"]

CRAWL_SIZES = (10, 100, 1_000)
QUICK_CRAWL_SIZES = (10, 100)
ROLE = "arn:aws:iam::123456789012:role/glue-crawler-role"
MODES = {"full": "CRAWL_EVERYTHING", "events": "CRAWL_EVENT_MODE"}
_HEADER = "Region,Country,Item Type,Sales Channel,Order Priority,Order Date,Order ID,Units Sold,Unit Price\r\n"


def _csv(n: int) -> bytes:
    """A small sales CSV (the pipeline's input shape), distinct per ``n``."""
    rows = "".join(f"Europe,France,Snacks,Online,H,3/2/2013,{n * 10 + i},{i + 1},152.58\r\n" for i in range(20))
    return (_HEADER + rows).encode()


class _Rig:
    """A bucket, its event queue and DLQ, and one crawler per mode (own database each) in a local cloud."""

    def __init__(self, settings: Any) -> None:
        from etl_kit.clients import client

        self.s3, self.sqs, self.glue, self.logs = (client(s, settings) for s in ("s3", "sqs", "glue", "logs"))
        tag = uuid.uuid4().hex[:8]
        self.bucket = f"bench-crawl-{tag}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue = self._queue(f"bench-crawl-{tag}-dlq")
        dlq_arn = self.queue
        self.queue = self._queue(f"bench-crawl-{tag}", {"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={
            "QueueConfigurations": [{"Id": "events-crawler", "QueueArn": self.queue, "Events": ["s3:ObjectCreated:*"],
                                     "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "input/"}]}}}]})
        self.crawlers = {mode: self._crawler(f"bench-{mode}-{tag}", behavior, dlq_arn)
                         for mode, behavior in MODES.items()}
        self.objects = 0

    def _queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"]
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def _crawler(self, name: str, behavior: str, dlq_arn: str) -> str:
        target: dict[str, Any] = {"Path": f"s3://{self.bucket}/input/"}
        if behavior == "CRAWL_EVENT_MODE":
            target.update(EventQueueArn=self.queue, DlqEventQueueArn=dlq_arn)
        database = name.replace("-", "_")
        self.glue.create_database(DatabaseInput={"Name": database})
        self.glue.create_crawler(Name=name, Role=ROLE, DatabaseName=database, Targets={"S3Targets": [target]},
                                 RecrawlPolicy={"RecrawlBehavior": behavior},
                                 SchemaChangePolicy={"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"})
        return name

    def fill(self, total: int) -> None:
        """Put objects directly until ``input/`` holds ``total``."""
        while self.objects < total:
            self.s3.put_object(Bucket=self.bucket, Key=f"input/sales_{self.objects:06d}.csv", Body=_csv(self.objects))
            self.objects += 1

    def crawl(self, mode: str) -> dict[str, Any]:
        """One crawl of ``mode``'s crawler to its end: seconds, objects read, what it logged of its mode."""
        name = self.crawlers[mode]
        before = len(self.glue.list_crawls(CrawlerName=name)["Crawls"])
        self.glue.start_crawler(Name=name)
        deadline = time.monotonic() + 600
        while (self.glue.get_crawler(Name=name)["Crawler"]["State"] != "READY"
               or len(self.glue.list_crawls(CrawlerName=name)["Crawls"]) <= before):
            if time.monotonic() > deadline:
                raise TimeoutError(f"crawl of {name} did not end within 600 s")
            time.sleep(0.05)
        crawler = self.glue.get_crawler(Name=name)["Crawler"]
        last = crawler["LastCrawl"]
        if last["Status"] != "SUCCEEDED":
            raise RuntimeError(f"crawl of {name} ended {last['Status']}: {last.get('ErrorMessage')}")
        seconds = self.glue.get_crawler_metrics(CrawlerNameList=[name])["CrawlerMetricsList"][0]["LastRuntimeSeconds"]
        lines = [e["message"] for e in self.logs.filter_log_events(
            logGroupName=last["LogGroup"], logStreamNames=[last["LogStream"]])["events"]
            if e["message"].startswith(f"[{last['MessagePrefix']}]")]
        read = next(int(ln.split("crawl read ")[1].split()[0]) for ln in lines if "crawl read " in ln)
        return {"seconds": float(seconds), "read": read,
                "event_mode": any("consuming Amazon S3 events" in ln for ln in lines)}


def _price(mode: str, seconds: float, objects: int, read: int) -> dict[str, float]:
    """One crawl priced as :mod:`etl_kit.cost` prices a crawl, plus its S3 and SQS requests."""
    from etl_kit import pricing
    from etl_kit.cost import crawl_requests

    crawl = pricing.crawler(f"crawler ({mode})", seconds)
    lists, gets, sqs = crawl_requests(mode, objects, read)
    lines = [crawl, pricing.requests("S3 LIST", lists, "s3_put_request", "list of the prefix"),
             pricing.requests("S3 GET", gets, "s3_get_request", "objects read"),
             pricing.requests("SQS", sqs, "sqs_request", "S3's send, receives, delete, DLQ depth")]
    return {"crawler_usd": crawl.usd, "requests_usd": sum(x.usd for x in lines[1:]), "usd": pricing.total(lines)}


def _measure_size(rig: _Rig, objects: int, repeat: int) -> list[dict[str, Any]]:
    """Fill to ``objects``, catch both crawlers up (untimed), then time ``repeat`` arrivals of one more file."""
    rig.fill(objects)
    for mode in MODES:
        rig.crawl(mode)  # the first event crawl lists; later ones consume the seeding's events
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(repeat):
        rig.fill(rig.objects + 1)
        for mode in MODES:
            runs[mode].append(rig.crawl(mode))
    out = []
    for mode, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        read = max(r["read"] for r in rs)
        out.append({"mode": mode, "objects": objects, "seconds": round(seconds, 4),
                    "seconds_all": [round(r["seconds"], 4) for r in rs], "read": read,
                    "event_mode": all(r["event_mode"] for r in rs), **_price(mode, seconds, rig.objects, read)})
    return out


def crawl_part(settings: Any, sizes: list[int], repeat: int = 3) -> list[dict[str, Any]]:
    """Both crawl modes at each bucket size (objects already in ``input/``) in ``settings``' running local cloud.

    Each row: mode, objects, median seconds of ``repeat`` crawls of one new file, objects read, USD per file
    (crawler DPU time with its minimum + requests) and the ratios against the full crawl at that size.
    """
    rig = _Rig(settings)
    rows: list[dict[str, Any]] = []
    for n in sorted(sizes):
        measured = _measure_size(rig, max(n, rig.objects), repeat)
        base = next(r for r in measured if r["mode"] == "full")
        for r in measured:
            r["seconds_vs_full"] = round(r["seconds"] / base["seconds"], 3) if base["seconds"] else None
            r["usd_vs_full"] = round(r["usd"] / base["usd"], 4) if base["usd"] else None
        rows.extend(measured)
    return rows


def crawl_growth(rows: list[dict[str, Any]], mode: str = "events") -> tuple[float | None, str]:
    """How much ``mode``'s crawl duration grew from the smallest to the largest bucket (0.1 = 10%)."""
    rs = sorted((r for r in rows if r.get("mode") == mode and r.get("seconds")), key=lambda r: r["objects"])
    if len(rs) < 2:
        return None, ""
    return round(rs[-1]["seconds"] / rs[0]["seconds"] - 1, 3), f"{rs[0]['objects']:,} -> {rs[-1]['objects']:,} objects"


def md_crawl(rows: list[dict[str, Any]]) -> list[str]:
    """The crawl cost table (markdown lines)."""
    lines = ["", "## Crawl cost per file: S3 event mode against the full crawl (same run, same bucket)", "",
             "Each crawl follows the arrival of one file; seconds are the median of the crawls at that size "
             "(GetCrawlerMetrics LastRuntimeSeconds). USD per file = the crawl's DPU time at "
             "etl_kit.pricing's crawler price with its 10-minute minimum (2 DPUs assumed) + its S3 and SQS "
             "requests.", "",
             "| objects in bucket | mode | seconds | objects read | crawler USD | requests USD | USD per file "
             "| seconds vs full | USD vs full |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['objects']:,} | {r['mode']}{'' if r['mode'] == 'full' or r['event_mode'] else ' (listed)'} "
                     f"| {r['seconds']:.3f} | {r['read']:,} | {r['crawler_usd']:.4f} | {r['requests_usd']:.7f} "
                     f"| {r['usd']:.6f} | {r['seconds_vs_full']:.3f} | {r['usd_vs_full']:.4f} |")
    return lines

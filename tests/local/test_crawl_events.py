"""Glue crawlers in S3 event mode on the local cloud: a crawl reads only what the bucket's events name.

Plain boto3 against the session's cloud: a bucket whose object-created events go to an SQS queue, a crawler
with ``RecrawlPolicy`` CRAWL_EVENT_MODE on that queue, and assertions on the catalog, the queue and the
crawl's own log (which says how many objects it read and in which mode).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import wait_for
from tests.local._pipeline_helpers import service_role

pytestmark = pytest.mark.local

ROLE = "arn:aws:iam::123456789012:role/glue-crawler-role"
CSV = b"id,name\n1,x\n2,y\n"
CSV_WIDER = b"id,name,extra\n3,z,1.5\n"


@dataclass
class Setup:
    """A bucket sending ``data/`` object events to a queue, and a database, with the clients to use them."""

    s3: Any
    sqs: Any
    glue: Any
    logs: Any
    bucket: str
    database: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str

    def crawler(self, name: str, mode: str = "CRAWL_EVENT_MODE", **target: Any) -> str:
        s3_target = {"Path": f"s3://{self.bucket}/data/", **target}
        if mode == "CRAWL_EVENT_MODE":
            s3_target.update(EventQueueArn=self.queue_arn, DlqEventQueueArn=self.dlq_arn)
        self.glue.create_crawler(Name=name, Role=ROLE, DatabaseName=self.database,
                                 Targets={"S3Targets": [s3_target]}, RecrawlPolicy={"RecrawlBehavior": mode},
                                 SchemaChangePolicy={"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"})
        return name

    def crawl(self, name: str) -> list[str]:
        """Run a crawl to its end; the lines of its log (SUCCEEDED asserted)."""
        before = len(self.glue.list_crawls(CrawlerName=name)["Crawls"])
        self.glue.start_crawler(Name=name)
        wait_for(f"crawl of {name}", lambda: (c := self.glue.get_crawler(Name=name)["Crawler"])["State"] == "READY"
                 and len(self.glue.list_crawls(CrawlerName=name)["Crawls"]) > before and c)
        last = self.glue.get_crawler(Name=name)["Crawler"]["LastCrawl"]
        assert last["Status"] == "SUCCEEDED", last
        events = self.logs.filter_log_events(logGroupName=last["LogGroup"], logStreamNames=[last["LogStream"]])
        return [e["message"] for e in events["events"] if e["message"].startswith(f"[{last['MessagePrefix']}]")]

    def columns(self, table: str = "data") -> list[str]:
        return [c["Name"] for c in self.glue.get_table(DatabaseName=self.database, Name=table)["Table"][
            "StorageDescriptor"]["Columns"]]

    def partitions(self, table: str = "data") -> list[str]:
        parts = self.glue.get_partitions(DatabaseName=self.database, TableName=table)["Partitions"]
        return sorted(p["Values"][0] for p in parts)

    def waiting(self, url: str) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def _crawler_role(iam: Any) -> None:
    """``ROLE``, which Glue may assume, with what an event-mode crawler reads and writes (IAM is enforced)."""
    service_role(iam, ROLE.rsplit("/", 1)[-1], "glue.amazonaws.com", [{"Effect": "Allow", "Resource": "*", "Action": [
        "s3:GetObject", "s3:ListBucket", "glue:*", "logs:*", "sqs:ReceiveMessage", "sqs:DeleteMessage",
        "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:PurgeQueue", "sqs:ChangeMessageVisibility"]}])


@pytest.fixture
def setup(boto: Callable[[str], Any]) -> Setup:
    s3, sqs, glue = boto("s3"), boto("sqs"), boto("glue")
    _crawler_role(boto("iam"))
    tag = uuid.uuid4().hex[:10]
    bucket, database = f"crawl-events-{tag}", f"db_{tag}"
    s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": database})
    dlq_url = sqs.create_queue(QueueName=f"q-{tag}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"q-{tag}", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "EventBridgeConfiguration": {},
        "QueueConfigurations": [{"Id": "crawler", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "data/"}]}}}]})
    return Setup(s3, sqs, glue, boto("logs"), bucket, database, url, arn, dlq_url, dlq_arn)


def _read(lines: list[str]) -> str:
    return next(ln for ln in lines if "crawl read" in ln)


def test_event_crawl_reads_only_the_new_object_and_merges_it(setup: Setup) -> None:
    s3, b = setup.s3, setup.bucket
    s3.put_object(Bucket=b, Key="data/day=1/a.csv", Body=CSV)
    s3.put_object(Bucket=b, Key="data/day=1/b.csv", Body=CSV)
    s3.put_object(Bucket=b, Key="data/day=1/broken.parquet", Body=b"PAR1 not parquet at all PAR1")
    s3.put_object(Bucket=b, Key="elsewhere/x.csv", Body=CSV)  # outside the prefix filter: no event
    name = setup.crawler(f"events-{b}")

    first = setup.crawl(name)  # the first crawl lists the whole target, as Glue's does
    assert any("not running in S3 event mode" in ln for ln in first)
    assert "Listing crawl read 3 object(s)" in _read(first)
    assert any("broken.parquet" in ln for ln in first)  # a listing crawl trips on the corrupt object
    assert setup.columns() == ["id", "name"] and setup.partitions() == ["1"]
    assert setup.waiting(setup.queue_url) == 0  # the listing consumed the events it covered

    s3.put_object(Bucket=b, Key="data/day=2/c.csv", Body=CSV_WIDER)  # a new partition with a new column
    second = setup.crawl(name)
    assert any("running by consuming Amazon S3 events" in ln for ln in second)
    assert "Event crawl read 1 object(s)" in _read(second)
    assert not any("broken.parquet" in ln or "a.csv" in ln for ln in second)  # nothing old is re-read
    assert setup.columns() == ["id", "name", "extra"]  # the existing columns keep their place
    assert setup.partitions() == ["1", "2"]
    params = setup.glue.get_table(DatabaseName=setup.database, Name="data")["Table"]["Parameters"]
    assert params["recordCount"] == "5" and params["objectCount"] == "3"
    assert setup.waiting(setup.queue_url) == 0  # the consumed messages are deleted

    third = setup.crawl(name)  # no event: nothing read, catalog unchanged
    assert "Event crawl read 0 object(s)" in _read(third)
    assert setup.partitions() == ["1", "2"]


def test_copy_multipart_and_an_event_for_a_deleted_object(setup: Setup) -> None:
    s3, b = setup.s3, setup.bucket
    s3.put_object(Bucket=b, Key="data/day=1/a.csv", Body=CSV)
    name = setup.crawler(f"events-{b}")
    setup.crawl(name)
    s3.put_object(Bucket=b, Key="data/day=3/gone.csv", Body=CSV)
    s3.delete_object(Bucket=b, Key="data/day=3/gone.csv")  # its created event stays in the queue
    s3.copy_object(Bucket=b, Key="data/day=4/copy.csv", CopySource={"Bucket": b, "Key": "data/day=1/a.csv"})
    up = s3.create_multipart_upload(Bucket=b, Key="data/day=5/multi.csv")
    part = s3.upload_part(Bucket=b, Key="data/day=5/multi.csv", UploadId=up["UploadId"], PartNumber=1, Body=CSV)
    s3.complete_multipart_upload(Bucket=b, Key="data/day=5/multi.csv", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    lines = setup.crawl(name)
    assert any("gone.csv named by an event no longer exists" in ln for ln in lines)
    assert "Event crawl read 2 object(s)" in _read(lines)
    assert setup.partitions() == ["1", "4", "5"]
    assert setup.waiting(setup.queue_url) == 0


def test_lost_events_or_a_changed_definition_make_a_listing_crawl(setup: Setup) -> None:
    s3, b = setup.s3, setup.bucket
    s3.put_object(Bucket=b, Key="data/day=1/a.csv", Body=CSV)
    name = setup.crawler(f"events-{b}")
    setup.crawl(name)
    setup.sqs.send_message(QueueUrl=setup.dlq_url, MessageBody=json.dumps({"Records": []}))  # an event lost
    s3.put_object(Bucket=b, Key="data/day=2/a.csv", Body=CSV)
    lines = setup.crawl(name)
    assert any("event(s) were lost to the dead-letter queue" in ln for ln in lines)
    assert "Listing crawl read 2 object(s)" in _read(lines)
    assert setup.waiting(setup.dlq_url) == 0 and setup.partitions() == ["1", "2"]
    assert "Event crawl read 0 object(s)" in _read(setup.crawl(name))  # trusted again

    setup.glue.update_crawler(Name=name, TablePrefix="t_")
    lines = setup.crawl(name)
    assert any("definition changed since its last crawl" in ln for ln in lines)
    assert setup.partitions("t_data") == ["1", "2"]


def test_glue_refuses_what_event_mode_cannot_serve(setup: Setup) -> None:
    glue, b = setup.glue, setup.bucket
    with pytest.raises(ClientError) as err:
        glue.create_crawler(Name=f"noq-{b}", Role=ROLE, DatabaseName=setup.database,
                            Targets={"S3Targets": [{"Path": f"s3://{b}/data/"}]},
                            RecrawlPolicy={"RecrawlBehavior": "CRAWL_EVENT_MODE"})
    assert err.value.response["Error"]["Code"] == "InvalidInputException"
    assert "Event queue ARN is required" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        glue.create_crawler(Name=f"two-{b}", Role=ROLE, DatabaseName=setup.database,
                            Targets={"S3Targets": [{"Path": f"s3://{b}/data/", "EventQueueArn": setup.queue_arn},
                                                   {"Path": f"s3://{b}/more/", "EventQueueArn": setup.queue_arn}]},
                            RecrawlPolicy={"RecrawlBehavior": "CRAWL_EVENT_MODE"})
    assert "single Amazon S3 target" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        glue.create_crawler(Name=f"gone-{b}", Role=ROLE, DatabaseName=setup.database,
                            Targets={"S3Targets": [{"Path": f"s3://{b}/data/",
                                                    "EventQueueArn": setup.queue_arn + "-missing"}]},
                            RecrawlPolicy={"RecrawlBehavior": "CRAWL_EVENT_MODE"})
    assert "does not exist" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        glue.get_crawler(Name=f"gone-{b}")
    name = setup.crawler(f"full-{b}", mode="CRAWL_EVERYTHING")
    with pytest.raises(ClientError) as err:
        glue.update_crawler(Name=name, RecrawlPolicy={"RecrawlBehavior": "CRAWL_EVENT_MODE"})
    assert "Event queue ARN is required" in err.value.response["Error"]["Message"]


def _last_crawl_lines(settings: Any, name: str) -> list[str]:
    from etl_kit.clients import client

    last = client("glue", settings).get_crawler(Name=name)["Crawler"]["LastCrawl"]
    events = client("logs", settings).filter_log_events(logGroupName=last["LogGroup"],
                                                        logStreamNames=[last["LogStream"]])["events"]
    return [e["message"] for e in events if e["message"].startswith(f"[{last['MessagePrefix']}]")]


def test_the_pipeline_loads_in_event_mode_and_its_crawls_read_only_the_new_files(pipeline: Any, s3: Any,
                                                                                  boto: Callable[[str], Any]) -> None:
    from tests.local._pipeline_helpers import csv_bytes, outcome, put, row, wait_idle

    glue, sqs = boto("glue"), boto("sqs")
    for name in (pipeline.csv_crawler, pipeline.parquet_crawler):
        crawler = glue.get_crawler(Name=name)["Crawler"]
        assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVENT_MODE"}
        assert crawler["Targets"]["S3Targets"][0]["EventQueueArn"].endswith(f":{name}-events")
    bucket = pipeline.bucket_name()
    for n in range(2):
        key = f"input/events/sales_{uuid.uuid4().hex[:8]}.csv"
        etag = put(s3, pipeline, key, csv_bytes([row(7_000_000 + 10 * n + i) for i in range(5)]))
        assert outcome(pipeline, bucket, key, etag).state == "loaded"
    wait_idle(pipeline)
    inputs = s3.list_objects_v2(Bucket=bucket, Prefix=pipeline.input_prefix)["KeyCount"]
    for name in (pipeline.csv_crawler, pipeline.parquet_crawler):
        lines = _last_crawl_lines(pipeline, name)
        assert any("running by consuming Amazon S3 events" in ln for ln in lines), lines
        read = int(_read(lines).split("crawl read ")[1].split()[0])
        assert 1 <= read < inputs, lines  # the new file, never the whole prefix
        url = sqs.get_queue_url(QueueName=f"{name}-events")["QueueUrl"]
        assert int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"]) == 0
    table = glue.get_table(DatabaseName=pipeline.glue_database, Name="input")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][:2] == ["region", "country"]


def test_crawl_mode_full_removes_the_queues_and_events_brings_them_back(pipeline: Any,
                                                                        boto: Callable[[str], Any]) -> None:
    from etl_kit.provision import apply_all, plan_all

    s3, sqs, glue = boto("s3"), boto("sqs"), boto("glue")
    bucket, steps = pipeline.bucket_name(), ["s3", "iam", "glue_crawlers"]
    crawlers = (pipeline.csv_crawler, pipeline.parquet_crawler)

    def queues() -> set[str]:
        urls = sqs.list_queues().get("QueueUrls", [])
        return {u.rsplit("/", 1)[-1] for u in urls} & {f"{c}-events{x}" for c in crawlers for x in ("", "-dlq")}

    full = pipeline.model_copy(update={"crawl_mode": "full"})
    try:
        apply_all(full, progress=False, only=steps)
        assert queues() == set()
        cfg = s3.get_bucket_notification_configuration(Bucket=bucket)
        assert "QueueConfigurations" not in cfg and "EventBridgeConfiguration" in cfg
        for c in crawlers:
            crawler = glue.get_crawler(Name=c)["Crawler"]
            assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVERYTHING"}
            assert "EventQueueArn" not in crawler["Targets"]["S3Targets"][0]
        assert {ch.action for ch in plan_all(full, only=steps)} <= {"no-change", "skip"}  # skip: local-only
    finally:
        apply_all(pipeline, progress=False, only=steps)
    assert len(queues()) == 4
    cfg = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert sorted(q["Filter"]["Key"]["FilterRules"][0]["Value"] for q in cfg["QueueConfigurations"]) == [
        pipeline.input_prefix, pipeline.output_prefix]
    assert {ch.action for ch in plan_all(pipeline, only=steps)} <= {"no-change", "skip"}

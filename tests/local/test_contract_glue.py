"""Contract tests of the local cloud's Glue provider, driven with plain boto3 only.

The module starts its own local cloud (own state dir and port); test bodies import no etl_kit code.
``ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS`` makes a job "minute" two seconds so a TIMEOUT is quick.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from etl_localcloud.spec import CloudSpec, free_port
from tests.local._pipeline_helpers import service_role

pytestmark = pytest.mark.local

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/glue-role"


@pytest.fixture(scope="module")
def glue_endpoint() -> Iterator[str]:
    """The endpoint of a local cloud of this module's own, whose Glue minute lasts two seconds (job timeouts)."""
    from etl_localcloud import down, up

    old = os.environ.get("ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS")
    os.environ["ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS"] = "2"  # read by the daemon at start
    # Not pytest's tmp_path: other pytest sessions on the machine prune those while the daemon runs.
    state = tempfile.mkdtemp(prefix="etl-kit-glue-")
    os.chmod(state, 0o755)
    spec = CloudSpec(state_dir=Path(state), port=free_port(), region=REGION)
    try:
        up(spec)
    finally:
        if old is None:
            os.environ.pop("ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS", None)
        else:
            os.environ["ETL_KIT_GLUE_TIMEOUT_MINUTE_SECONDS"] = old
    yield spec.endpoint
    down(spec)
    shutil.rmtree(state, ignore_errors=True)


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def clients(glue_endpoint: str) -> dict[str, Any]:
    """Plain boto3 clients against ``glue_endpoint``, by service name; ``ROLE`` exists and Glue may assume it.

    The local cloud enforces IAM for job runs and crawls (docs/local-cloud.md): the contract's role gets the
    services these tests use, as a test account's broad role would.
    """
    out = {s: _client(glue_endpoint, s) for s in ("s3", "glue", "logs", "events", "sqs", "iam")}
    service_role(out["iam"], ROLE.rsplit("/", 1)[-1], "glue.amazonaws.com", [
        {"Effect": "Allow", "Resource": "*", "Action": ["s3:*", "glue:*", "logs:*", "events:*", "sqs:*"]}])
    return out


@pytest.fixture()
def bucket(clients: dict[str, Any]) -> str:
    name = f"glue-test-{uuid.uuid4().hex[:10]}"
    clients["s3"].create_bucket(Bucket=name)
    return name


@pytest.fixture()
def database(clients: dict[str, Any]) -> str:
    name = f"db_{uuid.uuid4().hex[:8]}"
    clients["glue"].create_database(DatabaseInput={"Name": name})
    return name


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``fn`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def crawl(glue: Any, name: str) -> dict[str, Any]:
    glue.start_crawler(Name=name)
    return wait_for(lambda: (c := glue.get_crawler(Name=name)["Crawler"])["State"] == "READY"
                    and "LastCrawl" in c and c)


def job_run(glue: Any, job: str, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    def done() -> Any:
        r = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        return r if r["JobRunState"] not in ("STARTING", "RUNNING", "STOPPING", "WAITING") else None
    return wait_for(done, timeout)


def make_job(clients: dict[str, Any], bucket: str, name: str, script: str, **kw: Any) -> str:
    key = f"scripts/{name}.py"
    clients["s3"].put_object(Bucket=bucket, Key=key, Body=script.encode())
    clients["glue"].create_job(Name=name, Role=ROLE, MaxCapacity=kw.pop("MaxCapacity", 0.0625),
                               Command={"Name": "pythonshell", "ScriptLocation": f"s3://{bucket}/{key}",
                                        "PythonVersion": "3.9"}, **kw)
    return name


SALES_CSV = (
    "Region,Country,Item Type,Order Date,Order ID,Units Sold,Unit Price\r\n"
    "Asia,Japan ,Cereal,7/27/2012,443368995,1593,205.70\r\n"
    "Europe,France,Snacks,3/2/2013,667593514,4611,152.58\r\n"
    "Africa,Kenya,Fruits,11/15/2014,940995585,360,9.33\r\n"
)


# -- crawlers ------------------------------------------------------------------------------------
def test_crawler_over_csv_makes_the_right_table(clients: dict[str, Any], bucket: str, database: str) -> None:
    glue, s3 = clients["glue"], clients["s3"]
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"input/sales-{i}.csv", Body=SALES_CSV.encode())
    s3.put_object(Bucket=bucket, Key="input/_SUCCESS", Body=b"")
    glue.create_crawler(Name=f"csv-{bucket}", Role=ROLE, DatabaseName=database,
                        Targets={"S3Targets": [{"Path": f"s3://{bucket}/input/"}]})
    glue.start_crawler(Name=f"csv-{bucket}")
    with pytest.raises(ClientError) as err:
        glue.start_crawler(Name=f"csv-{bucket}")
    assert err.value.response["Error"]["Code"] == "CrawlerRunningException"
    c = wait_for(lambda: (c := glue.get_crawler(Name=f"csv-{bucket}")["Crawler"])["State"] == "READY"
                 and "LastCrawl" in c and c)
    assert c["LastCrawl"]["Status"] == "SUCCEEDED"
    assert c["LastCrawl"]["LogGroup"] == "/aws-glue/crawlers"

    t = glue.get_table(DatabaseName=database, Name="input")["Table"]
    sd = t["StorageDescriptor"]
    assert [(col["Name"], col["Type"]) for col in sd["Columns"]] == [
        ("region", "string"), ("country", "string"), ("item type", "string"), ("order date", "string"),
        ("order id", "bigint"), ("units sold", "bigint"), ("unit price", "double")]
    assert sd["Location"] == f"s3://{bucket}/input/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    assert sd["SerdeInfo"]["Parameters"]["field.delim"] == ","
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert t["Parameters"]["classification"] == "csv"
    assert t["Parameters"]["skip.header.line.count"] == "1"
    assert t["Parameters"]["recordCount"] == "9"
    assert t["Parameters"]["objectCount"] == "3"
    assert t["TableType"] == "EXTERNAL_TABLE"
    crawls = glue.list_crawls(CrawlerName=f"csv-{bucket}")["Crawls"]
    assert crawls[0]["State"] == "COMPLETED"
    logs = clients["logs"].get_log_events(logGroupName="/aws-glue/crawlers", logStreamName=f"csv-{bucket}")
    assert any("Created table input" in e["message"] for e in logs["events"])


def test_crawler_over_quoted_semicolon_gzip_csv(clients: dict[str, Any], bucket: str, database: str) -> None:
    import gzip

    body = gzip.compress(b'name;amount;note\n"Smith; J";12;"said ""hi"""\n"Doe";7;x\n')
    clients["s3"].put_object(Bucket=bucket, Key="raw/people/p.csv.gz", Body=body)
    clients["glue"].create_crawler(Name=f"gz-{bucket}", Role=ROLE, DatabaseName=database, TablePrefix="src_",
                                   Targets={"S3Targets": [{"Path": f"s3://{bucket}/raw/people"}]})
    assert crawl(clients["glue"], f"gz-{bucket}")["LastCrawl"]["Status"] == "SUCCEEDED"
    t = clients["glue"].get_table(DatabaseName=database, Name="src_people")["Table"]
    sd = t["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [("name", "string"), ("amount", "bigint"),
                                                               ("note", "string")]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert sd["SerdeInfo"]["Parameters"]["separatorChar"] == ";"
    assert t["Parameters"]["compressionType"] == "gzip"


def test_crawler_over_parquet_makes_the_right_table(clients: dict[str, Any], bucket: str, database: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "order_id": pa.array([1, 2, 3], pa.int64()),
        "total_revenue": pa.array([decimal.Decimal("10.50"), decimal.Decimal("3.25"), None], pa.decimal128(12, 2)),
        "order_date": pa.array([dt.date(2012, 7, 27)] * 3, pa.date32()),
        "country": pa.array(["Japan", "France", "Kenya"]),
        "unit_price": pa.array([1.5, 2.5, 3.5], pa.float64()),
    })
    for i in range(2):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        clients["s3"].put_object(Bucket=bucket, Key=f"output/part-{i}.parquet", Body=buf.getvalue())
    clients["glue"].create_crawler(Name=f"pq-{bucket}", Role=ROLE, DatabaseName=database,
                                   Targets={"S3Targets": [{"Path": f"s3://{bucket}/output/"}]})
    assert crawl(clients["glue"], f"pq-{bucket}")["LastCrawl"]["Status"] == "SUCCEEDED"
    t = clients["glue"].get_table(DatabaseName=database, Name="output")["Table"]
    sd = t["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == [
        ("order_id", "bigint"), ("total_revenue", "decimal(12,2)"), ("order_date", "date"),
        ("country", "string"), ("unit_price", "double")]
    assert sd["Location"] == f"s3://{bucket}/output/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert t["Parameters"]["classification"] == "parquet"
    assert t["Parameters"]["recordCount"] == "6"


def test_crawler_partitions_exclusions_and_empty_target(clients: dict[str, Any], bucket: str, database: str) -> None:
    glue, s3 = clients["glue"], clients["s3"]
    for day in ("2024-01-01", "2024-01-02"):
        s3.put_object(Bucket=bucket, Key=f"events/day={day}/e.csv", Body=SALES_CSV.encode())
    s3.put_object(Bucket=bucket, Key="events/day=2024-01-03/skip.tmp", Body=b"junk,1\nx,2\n")
    glue.create_crawler(Name=f"part-{bucket}", Role=ROLE, DatabaseName=database,
                        Targets={"S3Targets": [{"Path": f"s3://{bucket}/events/", "Exclusions": ["**.tmp"]},
                                               {"Path": f"s3://{bucket}/nothing-here/"}]})
    assert crawl(glue, f"part-{bucket}")["LastCrawl"]["Status"] == "SUCCEEDED"
    t = glue.get_table(DatabaseName=database, Name="events")["Table"]
    assert t["PartitionKeys"] == [{"Name": "day", "Type": "string"}]
    parts = glue.get_partitions(DatabaseName=database, TableName="events")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == ["2024-01-01", "2024-01-02"]
    names = [x["Name"] for x in glue.get_tables(DatabaseName=database)["TableList"]]
    assert names == ["events"]  # the empty target made no table


def test_crawler_schema_change_policy(clients: dict[str, Any], bucket: str, database: str) -> None:
    glue, s3 = clients["glue"], clients["s3"]
    s3.put_object(Bucket=bucket, Key="data/a.csv", Body=b"id,name\n1,x\n2,y\n")
    name = f"policy-{bucket}"
    glue.create_crawler(Name=name, Role=ROLE, DatabaseName=database,
                        Targets={"S3Targets": [{"Path": f"s3://{bucket}/data/"}]},
                        SchemaChangePolicy={"UpdateBehavior": "LOG", "DeleteBehavior": "DELETE_FROM_DATABASE"})
    crawl(glue, name)
    s3.put_object(Bucket=bucket, Key="data/a.csv", Body=b"id,name,extra\n1,x,2.5\n2,y,3.5\n")
    crawl(glue, name)
    cols = glue.get_table(DatabaseName=database, Name="data")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in cols] == ["id", "name"]  # LOG: the table is left as it was
    s3.delete_object(Bucket=bucket, Key="data/a.csv")
    crawl(glue, name)
    with pytest.raises(ClientError) as err:
        glue.get_table(DatabaseName=database, Name="data")
    assert err.value.response["Error"]["Code"] == "EntityNotFoundException"


# -- jobs ----------------------------------------------------------------------------------------
FAILING = """
import argparse, sys
class FileRejected(Exception):
    pass
args, _ = argparse.ArgumentParser().parse_known_args()
print("checking the file")
print("progress to stderr", file=sys.stderr)
raise FileRejected("s3://b/input/x.csv: header lacks Order ID")
"""


def test_failing_job_reports_its_error_and_logs(clients: dict[str, Any], bucket: str, glue_endpoint: str) -> None:
    from etl_localcloud.manager import health

    glue = clients["glue"]
    job = make_job(clients, bucket, f"fail-{bucket}", FAILING)
    rid = glue.start_job_run(JobName=job, Arguments={"--source": "x"})["JobRunId"]
    r = job_run(glue, job, rid)
    assert r["JobRunState"] == "FAILED"
    # the traceback's last line as the job's Python prints it: 3.9 (Glue's) names the script's own class
    # __main__.FileRejected, 3.11 (the daemon's, when python3.9 is missing) FileRejected
    runtimes = (health(glue_endpoint) or {})["providers"]["runtimes"]["runtimes"]
    on_39 = runtimes["glue-pythonshell-3.9-analytics"]["pinned"]
    prefix = "__main__." if on_39 else ""
    assert r["ErrorMessage"] == prefix + "FileRejected: s3://b/input/x.csv: header lacks Order ID"
    assert r["Arguments"] == {"--source": "x"}
    assert r["CompletedOn"] >= r["StartedOn"]
    out = clients["logs"].get_log_events(logGroupName="/aws-glue/python-jobs/output", logStreamName=rid)["events"]
    err = clients["logs"].get_log_events(logGroupName="/aws-glue/python-jobs/error", logStreamName=rid)["events"]
    assert any("checking the file" in e["message"] for e in out)
    assert any("FileRejected" in e["message"] for e in err)
    assert glue.get_job_runs(JobName=job)["JobRuns"][0]["Id"] == rid


def test_job_retries_then_fails(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    job = make_job(clients, bucket, f"retry-{bucket}", "import sys\nsys.exit(3)\n", MaxRetries=1)
    rid = glue.start_job_run(JobName=job)["JobRunId"]
    wait_for(lambda: len(glue.get_job_runs(JobName=job)["JobRuns"]) == 2
             and all(r["JobRunState"] == "FAILED" for r in glue.get_job_runs(JobName=job)["JobRuns"]))
    retry = glue.get_job_runs(JobName=job)["JobRuns"][0]
    assert retry["Id"] == f"{rid}_attempt_1" and retry["Attempt"] == 1 and retry["PreviousRunId"] == rid
    assert "exit code 3" in retry["ErrorMessage"]


def test_hanging_job_times_out(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    job = make_job(clients, bucket, f"hang-{bucket}", "import time\ntime.sleep(600)\n", Timeout=1)
    rid = glue.start_job_run(JobName=job)["JobRunId"]
    r = job_run(glue, job, rid, timeout=20)
    assert r["JobRunState"] == "TIMEOUT"
    assert "timed out" in r["ErrorMessage"]


def test_memory_hungry_job_fails_with_memory_error(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    job = make_job(clients, bucket, f"mem-{bucket}", "x = bytearray(4 * 1024 ** 3)\n")
    r = job_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])
    assert r["JobRunState"] == "FAILED"
    assert "MemoryError" in r["ErrorMessage"]


def test_extra_py_files_and_additional_modules(clients: dict[str, Any], bucket: str) -> None:
    import zipfile

    glue, s3 = clients["glue"], clients["s3"]
    s3.put_object(Bucket=bucket, Key="libs/helper_one.py", Body=b"VALUE = 1\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("helper_two/__init__.py", "VALUE = 2\n")
    s3.put_object(Bucket=bucket, Key="libs/helpers.zip", Body=buf.getvalue())
    script = ("import helper_one, helper_two, sys\n"
              "from awsglue.utils import getResolvedOptions\n"
              "args = getResolvedOptions(sys.argv, ['JOB_NAME', 'flag'])\n"
              "assert helper_one.VALUE + helper_two.VALUE == 3 and args['flag'] == 'on', args\n")
    extra = f"s3://{bucket}/libs/helper_one.py,s3://{bucket}/libs/helpers.zip"
    job = make_job(clients, bucket, f"extra-{bucket}", script,
                   DefaultArguments={"--extra-py-files": extra, "--additional-python-modules": "boto3,pyarrow"})
    r = job_run(glue, job, glue.start_job_run(JobName=job, Arguments={"--flag": "on"})["JobRunId"])
    assert r["JobRunState"] == "SUCCEEDED", r.get("ErrorMessage")
    rid = glue.start_job_run(JobName=job, Arguments={"--flag": "on",
                                                     "--additional-python-modules": "no-such-pkg-xyz==1.0"})
    r = job_run(glue, job, rid["JobRunId"])
    assert r["JobRunState"] == "FAILED"
    assert "no-such-pkg-xyz==1.0" in r["ErrorMessage"] and "additional-python-modules" in r["ErrorMessage"]


def test_spark_jobs_are_refused_clearly(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    clients["s3"].put_object(Bucket=bucket, Key="scripts/spark.py", Body=b"print(1)\n")
    glue.create_job(Name=f"spark-{bucket}", Role=ROLE, GlueVersion="4.0", WorkerType="G.1X", NumberOfWorkers=2,
                    Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/spark.py"})
    r = job_run(glue, f"spark-{bucket}", glue.start_job_run(JobName=f"spark-{bucket}")["JobRunId"])
    assert r["JobRunState"] == "FAILED" and "Python shell jobs only" in r["ErrorMessage"]


def test_concurrency_limits_and_stop(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    job = make_job(clients, bucket, f"slow-{bucket}", "import time\ntime.sleep(30)\n",
                   ExecutionProperty={"MaxConcurrentRuns": 1})
    rid = glue.start_job_run(JobName=job)["JobRunId"]
    with pytest.raises(ClientError) as err:
        glue.start_job_run(JobName=job)
    assert err.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
    out = glue.batch_stop_job_run(JobName=job, JobRunIds=[rid, "jr_unknown"])
    assert out["SuccessfulSubmissions"] == [{"JobName": job, "JobRunId": rid}]
    assert out["Errors"][0]["ErrorDetail"]["ErrorCode"] == "EntityNotFoundException"
    assert job_run(glue, job, rid)["JobRunState"] == "STOPPED"

    glue.create_trigger(Name=f"slow-start-{bucket}", WorkflowName=_workflow(glue, f"wf-slow-{bucket}", 1),
                        Type="ON_DEMAND", Actions=[{"JobName": job}])
    run_id = glue.start_workflow_run(Name=f"wf-slow-{bucket}")["RunId"]
    with pytest.raises(ClientError) as err:
        glue.start_workflow_run(Name=f"wf-slow-{bucket}")
    assert err.value.response["Error"]["Code"] == "ConcurrentRunsExceededException"
    wait_for(lambda: glue.get_workflow_run(Name=f"wf-slow-{bucket}", RunId=run_id)["Run"]["Statistics"]
             ["RunningActions"] == 1)
    glue.stop_workflow_run(Name=f"wf-slow-{bucket}", RunId=run_id)
    run = wait_for(lambda: (r := glue.get_workflow_run(Name=f"wf-slow-{bucket}", RunId=run_id)["Run"])
                   ["Status"] == "STOPPED" and r)
    assert run["Statistics"]["StoppedActions"] == 1


def _workflow(glue: Any, name: str, max_runs: int | None = None, props: dict[str, str] | None = None) -> str:
    kw: dict[str, Any] = {"DefaultRunProperties": props} if props else {}
    if max_runs:
        kw["MaxConcurrentRuns"] = max_runs
    glue.create_workflow(Name=name, **kw)
    return name


def test_unknown_names_get_aws_error_codes(clients: dict[str, Any]) -> None:
    glue = clients["glue"]
    calls = [
        lambda: glue.start_job_run(JobName="no-such-job"),
        lambda: glue.get_job_runs(JobName="no-such-job"),
        lambda: glue.start_crawler(Name="no-such-crawler"),
        lambda: glue.get_crawler(Name="no-such-crawler"),
        lambda: glue.stop_crawler(Name="no-such-crawler"),
        lambda: glue.start_workflow_run(Name="no-such-workflow"),
        lambda: glue.get_workflow(Name="no-such-workflow"),
        lambda: glue.get_workflow_run_properties(Name="no-such-workflow", RunId="wr_x"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "EntityNotFoundException"


# -- workflows -----------------------------------------------------------------------------------
JOB1 = """
import argparse, csv, io, json, boto3
import pyarrow as pa, pyarrow.parquet as pq
p = argparse.ArgumentParser()
p.add_argument("--WORKFLOW_NAME"); p.add_argument("--WORKFLOW_RUN_ID"); p.add_argument("--bucket")
args, _ = p.parse_known_args()
glue, s3 = boto3.client("glue"), boto3.client("s3")
props = glue.get_workflow_run_properties(Name=args.WORKFLOW_NAME, RunId=args.WORKFLOW_RUN_ID)["RunProperties"]
body = s3.get_object(Bucket=args.bucket, Key=props["input_key"])["Body"].read().decode()
rows = list(csv.DictReader(io.StringIO(body)))
table = pa.table({"order_id": [int(r["Order ID"]) for r in rows], "country": [r["Country"].strip() for r in rows]})
buf = io.BytesIO(); pq.write_table(table, buf)
s3.put_object(Bucket=args.bucket, Key="output/part-0.parquet", Body=buf.getvalue())
glue.put_workflow_run_properties(Name=args.WORKFLOW_NAME, RunId=args.WORKFLOW_RUN_ID,
                                 RunProperties={"rows": str(len(rows))})
"""

JOB2 = """
import json, sys, boto3
from awsglue.utils import getResolvedOptions
args = getResolvedOptions(sys.argv, ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "bucket", "stage"])
props = boto3.client("glue").get_workflow_run_properties(Name=args["WORKFLOW_NAME"],
                                                          RunId=args["WORKFLOW_RUN_ID"])["RunProperties"]
boto3.client("s3").put_object(Bucket=args["bucket"], Key="marker/" + args["WORKFLOW_RUN_ID"] + ".json",
                              Body=json.dumps({"props": props, "stage": args["stage"]}))
"""


def test_four_node_workflow_runs_in_order(clients: dict[str, Any], bucket: str, database: str) -> None:
    glue, s3 = clients["glue"], clients["s3"]
    s3.put_object(Bucket=bucket, Key="input/sales.csv", Body=SALES_CSV.encode())
    wf = _workflow(glue, f"wf-{bucket}", props={"stage": "default", "input_key": "input/other.csv"})
    c1, c2 = f"c1-{bucket}", f"c2-{bucket}"
    for name, path in ((c1, "input/"), (c2, "output/")):
        glue.create_crawler(Name=name, Role=ROLE, DatabaseName=database,
                            Targets={"S3Targets": [{"Path": f"s3://{bucket}/{path}"}]})
    j1 = make_job(clients, bucket, f"j1-{bucket}", JOB1, DefaultArguments={"--bucket": bucket},
                  ExecutionProperty={"MaxConcurrentRuns": 5})
    j2 = make_job(clients, bucket, f"j2-{bucket}", JOB2, DefaultArguments={"--bucket": bucket})
    glue.create_trigger(Name=f"t0-{bucket}", WorkflowName=wf, Type="ON_DEMAND", Actions=[{"CrawlerName": c1}])
    chain = [({"CrawlerName": c1, "CrawlState": "SUCCEEDED"}, {"JobName": j1}),
             ({"JobName": j1, "State": "SUCCEEDED"}, {"CrawlerName": c2}),
             ({"CrawlerName": c2, "CrawlState": "SUCCEEDED"}, {"JobName": j2, "Arguments": {"--stage": "load"}})]
    for i, (cond, action) in enumerate(chain, 1):
        glue.create_trigger(Name=f"t{i}-{bucket}", WorkflowName=wf, Type="CONDITIONAL", StartOnCreation=True,
                            Predicate={"Conditions": [{"LogicalOperator": "EQUALS", **cond}]}, Actions=[action])

    run_id = glue.start_workflow_run(Name=wf, RunProperties={"input_key": "input/sales.csv"})["RunId"]
    run = wait_for(lambda: (r := glue.get_workflow_run(Name=wf, RunId=run_id, IncludeGraph=True)["Run"])
                   ["Status"] != "RUNNING" and r, timeout=60)
    assert run["Status"] == "COMPLETED"
    assert run["Statistics"]["SucceededActions"] == 4 and run["Statistics"]["TotalActions"] == 4
    assert run["Statistics"]["FailedActions"] == 0 and run["Statistics"]["RunningActions"] == 0
    assert run["WorkflowRunProperties"] == {"stage": "default", "input_key": "input/sales.csv", "rows": "3"}
    assert run["CompletedOn"] >= run["StartedOn"]

    nodes = {n["Name"]: n for n in run["Graph"]["Nodes"]}
    assert {n["Type"] for n in nodes.values()} == {"TRIGGER", "JOB", "CRAWLER"}
    assert len(nodes) == 8 and len(run["Graph"]["Edges"]) == 7
    ids = {n["UniqueId"]: n["Name"] for n in nodes.values()}
    edges = {(ids[e["SourceId"]], ids[e["DestinationId"]]) for e in run["Graph"]["Edges"]}
    assert (f"t0-{bucket}", c1) in edges and (c1, f"t1-{bucket}") in edges and (f"t1-{bucket}", j1) in edges
    crawls = {c: nodes[c]["CrawlerDetails"]["Crawls"] for c in (c1, c2)}
    runs = {j: nodes[j]["JobDetails"]["JobRuns"] for j in (j1, j2)}
    assert all(len(v) == 1 and v[0]["State"] == "SUCCEEDED" for v in crawls.values())
    assert all(len(v) == 1 and v[0]["JobRunState"] == "SUCCEEDED" for v in runs.values())
    # in order: each node started after its predecessor ended
    timeline = [(crawls[c1][0]["StartedOn"], crawls[c1][0]["CompletedOn"]),
                (runs[j1][0]["StartedOn"], runs[j1][0]["CompletedOn"]),
                (crawls[c2][0]["StartedOn"], crawls[c2][0]["CompletedOn"]),
                (runs[j2][0]["StartedOn"], runs[j2][0]["CompletedOn"])]
    for (_, prev_end), (next_start, _) in itertools.pairwise(timeline):
        assert next_start >= prev_end
    assert runs[j2][0]["Arguments"] == {"--stage": "load", "--WORKFLOW_NAME": wf, "--WORKFLOW_RUN_ID": run_id}
    assert runs[j1][0]["TriggerName"] == f"t1-{bucket}"

    marker = json.loads(s3.get_object(Bucket=bucket, Key=f"marker/{run_id}.json")["Body"].read())
    assert marker == {"props": run["WorkflowRunProperties"], "stage": "load"}
    assert glue.get_table(DatabaseName=database, Name="output")["Table"]["Parameters"]["classification"] == "parquet"
    got = glue.get_workflow(Name=wf, IncludeGraph=True)["Workflow"]
    assert got["LastRun"]["WorkflowRunId"] == run_id and len(got["Graph"]["Nodes"]) == 8
    assert glue.get_workflow_runs(Name=wf)["Runs"][0]["WorkflowRunId"] == run_id


def test_failed_node_takes_the_failure_branch(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    wf = _workflow(glue, f"wf-fail-{bucket}")
    bad = make_job(clients, bucket, f"bad-{bucket}", "raise RuntimeError('nope')\n")
    cleanup = make_job(clients, bucket, f"cleanup-{bucket}", "print('cleaning')\n")
    never = make_job(clients, bucket, f"never-{bucket}", "print('should not run')\n")
    glue.create_trigger(Name=f"fs-{bucket}", WorkflowName=wf, Type="ON_DEMAND", Actions=[{"JobName": bad}])
    for name, state, job in ((f"ff-{bucket}", "FAILED", cleanup), (f"fo-{bucket}", "SUCCEEDED", never)):
        glue.create_trigger(Name=name, WorkflowName=wf, Type="CONDITIONAL", StartOnCreation=True,
                            Predicate={"Logical": "ANY", "Conditions": [
                                {"LogicalOperator": "EQUALS", "JobName": bad, "State": state}]},
                            Actions=[{"JobName": job}])
    run_id = glue.start_workflow_run(Name=wf)["RunId"]
    run = wait_for(lambda: (r := glue.get_workflow_run(Name=wf, RunId=run_id)["Run"])["Status"] != "RUNNING"
                   and r, timeout=30)
    assert run["Status"] == "COMPLETED"  # as on AWS, even though a node failed
    assert run["Statistics"] == {**run["Statistics"], "TotalActions": 2, "FailedActions": 1, "SucceededActions": 1}
    assert glue.get_job_runs(JobName=never)["JobRuns"] == []


def test_state_change_events_reach_sqs_through_a_rule(clients: dict[str, Any], bucket: str, database: str) -> None:
    glue, sqs, events = clients["glue"], clients["sqs"], clients["events"]
    url = sqs.create_queue(QueueName=f"glue-events-{bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    job = make_job(clients, bucket, f"ev-{bucket}", "print('ok')\n")
    bad = make_job(clients, bucket, f"evbad-{bucket}", "raise KeyError('order_id')\n")
    crawler = f"evc-{bucket}"
    glue.create_crawler(Name=crawler, Role=ROLE, DatabaseName=database,
                        Targets={"S3Targets": [{"Path": f"s3://{bucket}/none/"}]})
    events.put_rule(Name=f"glue-{bucket}", EventPattern=json.dumps({
        "source": ["aws.glue"], "detail-type": ["Glue Job State Change", "Glue Crawler State Change"],
        "detail": {"jobName": [job, bad]}}))
    events.put_rule(Name=f"crawl-{bucket}", EventPattern=json.dumps({
        "source": ["aws.glue"], "detail-type": ["Glue Crawler State Change"], "detail": {"crawlerName": [crawler]}}))
    for rule in (f"glue-{bucket}", f"crawl-{bucket}"):
        events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    # as on AWS, EventBridge sends only if the queue's policy lets the rules
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": arn}]})})
    ok = glue.start_job_run(JobName=job)["JobRunId"]
    ko = glue.start_job_run(JobName=bad)["JobRunId"]
    crawl(glue, crawler)

    got: list[dict[str, Any]] = []

    def drain() -> bool:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(json.loads(m["Body"]))
        return len(got) >= 4

    wait_for(drain, timeout=30)
    by = {(e["detail-type"], e["detail"].get("jobRunId") or e["detail"]["state"]): e for e in got}
    succeeded = by[("Glue Job State Change", ok)]["detail"]
    assert succeeded == {"jobName": job, "severity": "INFO", "state": "SUCCEEDED", "jobRunId": ok,
                         "message": "Job run succeeded"}
    failed = by[("Glue Job State Change", ko)]
    assert failed["source"] == "aws.glue" and failed["detail"]["state"] == "FAILED"
    assert failed["detail"]["severity"] == "ERROR" and "KeyError: 'order_id'" in failed["detail"]["message"]
    started = by[("Glue Crawler State Change", "Started")]["detail"]
    assert started["crawlerName"] == crawler and started["message"] == "Crawler Started"
    done = by[("Glue Crawler State Change", "Succeeded")]["detail"]
    assert done["tablesCreated"] == "0" and done["message"] == "Crawler Succeeded" and "completionDate" in done


def test_many_workflow_runs_at_once_all_complete(clients: dict[str, Any], bucket: str) -> None:
    glue = clients["glue"]
    wf = _workflow(glue, f"wf-many-{bucket}")
    job = make_job(clients, bucket, f"tiny-{bucket}", "pass\n", ExecutionProperty={"MaxConcurrentRuns": 200})
    glue.create_trigger(Name=f"tiny-start-{bucket}", WorkflowName=wf, Type="ON_DEMAND", Actions=[{"JobName": job}])
    ids = [glue.start_workflow_run(Name=wf)["RunId"] for _ in range(100)]

    def all_done() -> bool:
        runs = []
        token: dict[str, str] = {}
        while True:
            resp = glue.get_workflow_runs(Name=wf, MaxResults=100, **token)
            runs += resp["Runs"]
            if not resp.get("NextToken"):
                break
            token = {"NextToken": resp["NextToken"]}
        return len(runs) == 100 and all(r["Status"] == "COMPLETED" for r in runs)

    wait_for(all_done, timeout=120, every=0.5)
    stats = [glue.get_workflow_run(Name=wf, RunId=i)["Run"]["Statistics"] for i in ids[:5]]
    assert all(s["SucceededActions"] == 1 for s in stats)

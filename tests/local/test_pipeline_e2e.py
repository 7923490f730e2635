"""The pipeline end to end on the local target, driven by a plain ``put_object`` into ``input/``.

Every case asserts the object's terminal state (loaded / rejected with a reason / skipped), the message,
and that no row was lost or duplicated (rows read = rows loaded + rows quarantined; the table holds
exactly the accepted rows).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from etl_kit.config import Settings
from tests.local._pipeline_helpers import (
    HEADER,
    csv_bytes,
    decisions,
    lambda_lines,
    ledger_rows,
    outcome,
    put,
    row,
    runs_for,
    sentinel,
    stable_number,
    table_rows,
    wait_idle,
)

pytestmark = pytest.mark.local


def _ids(base: int, n: int) -> list[int]:
    return list(range(base, base + n))


def test_a_sales_csv_flows_through_every_node_exactly_once(pipeline: Settings, s3, boto) -> None:
    sqs = boto("sqs")
    qurl = sqs.get_queue_url(QueueName=pipeline.notification_queue)["QueueUrl"]
    sqs.purge_queue(QueueUrl=qurl)
    good = [row(i, units=str(i % 50 + 1), price="19.99") for i in _ids(1_000_000, 40)]
    bad = [row(1_000_100, units="ten"), row(1_000_101, order_date="2/30/2014"), row(1_000_102, country="  ")]
    key = "input/happy/sales.csv"
    etag = put(s3, pipeline, key, csv_bytes(good + bad))
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)

    assert out.state == "loaded", out
    nodes = {n["Name"]: n for n in out.run["Graph"]["Nodes"]}
    order = []
    for name in (pipeline.csv_crawler, pipeline.csv_job, pipeline.parquet_crawler, pipeline.load_job):
        n = nodes[name]
        runs = (n.get("JobDetails") or {}).get("JobRuns") or (n.get("CrawlerDetails") or {}).get("Crawls")
        assert len(runs) == 1
        state = runs[0].get("JobRunState") or runs[0].get("State")
        assert state == "SUCCEEDED", (name, runs[0])
        order.append((runs[0]["StartedOn"], name))
    assert [n for _, n in sorted(order)] == [pipeline.csv_crawler, pipeline.csv_job, pipeline.parquet_crawler,
                                            pipeline.load_job]
    props = out.run["WorkflowRunProperties"]
    # Parquet with the contract's schema under output/
    import io

    import pyarrow.parquet as pq

    body = s3.get_object(Bucket=pipeline.bucket_name(), Key=props["output_key"])["Body"].read()
    schema = pq.read_schema(io.BytesIO(body))
    assert props["output_key"].startswith(pipeline.output_prefix)
    assert schema.names == [c.name for c in pipeline.dataset_contract.columns] + [
        "source_line", "source_key", "source_etag", "run_id"]
    assert str(schema.field("total_revenue").type) == "decimal128(18, 2)"
    assert str(schema.field("order_date").type) == "date32[day]"
    # the warehouse holds exactly the accepted rows, with exact money
    rows = table_rows(pipeline, key)
    assert [r["order_id"] for r in rows] == _ids(1_000_000, 40)
    expected = sum((Decimal(r[HEADER.index("Total Revenue")]) for r in good), Decimal(0))
    assert sum((r["total_revenue"] for r in rows), Decimal(0)) == expected
    # quarantine holds exactly the rejected rows, with reasons and source lines
    q = s3.get_object(Bucket=pipeline.bucket_name(), Key=props["quarantine_key"])["Body"].read().decode()
    import csv

    qrows = list(csv.DictReader(io.StringIO(q)))
    assert sorted((int(r["source_line"]), r["reason"]) for r in qrows) == [
        (42, "not_an_integer"), (43, "invalid_date"), (44, "missing_value")]
    # one ledger row, counts conserved
    led = ledger_rows(pipeline, pipeline.bucket_name(), key)
    assert len(led) == 1 and led[0]["state"] == "loaded"
    assert (led[0]["rows_read"], led[0]["rows_loaded"], led[0]["rows_quarantined"]) == (43, 40, 3)
    # new keys: job 2 copied the file straight into the table, lineage included
    assert led[0]["message"].startswith("appended from s3://")
    assert {(r["source_etag"], r["run_id"]) for r in rows} == {(etag, out.run["WorkflowRunId"])}
    # notifications: the Lambda's message and one per crawler/job state change
    msgs: list[dict[str, str]] = []
    deadline = time.monotonic() + 20
    while len(msgs) < 5 and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=qurl, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            msgs.append(json.loads(m["Body"]))
    text = "\n".join(f"{m.get('Subject')}: {m['Message']}" for m in msgs)
    assert len(msgs) == 5, text
    assert "Started workflow" in text and key in text
    for name in (pipeline.csv_crawler, pipeline.parquet_crawler, pipeline.csv_job, pipeline.load_job):
        assert name in text


def test_same_object_again_or_a_duplicate_event_adds_no_rows_and_no_run(pipeline: Settings, s3, boto) -> None:
    key = "input/dupes/once.csv"
    body = csv_bytes([row(i) for i in _ids(2_000_000, 5)])
    etag = put(s3, pipeline, key, body)
    assert outcome(pipeline, pipeline.bucket_name(), key, etag).state == "loaded"
    # the same bytes again: same ETag -> the Lambda dedupes
    put(s3, pipeline, key, body)
    # and the very same event delivered twice more (at-least-once delivery), straight to the function
    event = {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
             "detail": {"bucket": {"name": pipeline.bucket_name()},
                        "object": {"key": key, "size": len(body), "etag": etag}}}
    lam = boto("lambda")
    for _ in range(2):
        res = json.loads(lam.invoke(FunctionName=pipeline.lambda_function, Payload=json.dumps(event))["Payload"]
                         .read())
        assert res["status"] == "skipped" and "duplicate" in res["reason"], res
    # the positive signal: the second upload's event and both deliveries are decided, each a duplicate
    decisions(pipeline, key, 3, where=lambda ln: ln["decision"] == "skipped" and "duplicate" in ln["reason"])
    wait_idle(pipeline)
    assert len(runs_for(pipeline, key)) == 1
    assert len(table_rows(pipeline, key)) == 5
    assert len(ledger_rows(pipeline, pipeline.bucket_name(), key)) == 1


@pytest.mark.parametrize(("name", "body", "reason"), [
    ("header_only.csv", csv_bytes([]), "no_data_rows"),
    ("missing_col.csv", csv_bytes([r[:6] + r[7:] for r in [row(3_000_001)]],
                                  header=HEADER[:6] + HEADER[7:]), "missing_columns"),
    ("dup_header.csv", csv_bytes([[*row(3000002), "x"]], header=[*HEADER, "order id"]), "duplicate_columns"),
    ("one_5mb_line.csv", b"x" * (5 << 20), "line_too_long"),
    ("corrupt.csv.gz", b"\x1f\x8b\x08\x00garbage-not-deflate", "corrupt_gzip"),
    ("all_bad.csv", csv_bytes([row(3_000_010 + i, units="many") for i in range(5)]), "too_many_rejects"),
])
def test_files_that_cannot_be_processed_are_rejected_with_a_reason(pipeline: Settings, s3, name: str,
                                                                   body: bytes, reason: str) -> None:
    key = f"input/rejects/{name}"
    etag = put(s3, pipeline, key, body)
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "rejected", out
    assert out.reason == reason
    job = next(n for n in out.run["Graph"]["Nodes"] if n["Name"] == pipeline.csv_job)
    jr = job["JobDetails"]["JobRuns"][0]
    assert jr["JobRunState"] == "FAILED" and key in jr["ErrorMessage"] and reason in jr["ErrorMessage"]
    assert table_rows(pipeline, key) == []  # nothing half-loaded
    listing = s3.list_objects_v2(Bucket=pipeline.bucket_name(), Prefix=pipeline.output_prefix + "rejects/")
    assert not [o["Key"] for o in listing.get("Contents", []) if name.split(".")[0] in o["Key"]]


@pytest.mark.parametrize(("key", "body", "reason_part"), [
    ("input/notes.txt", b"not a csv", "not a .csv or .csv.gz"),
    ("input/empty.csv", b"", "zero-byte"),
    ("input/folder/", b"", ""),
])
def test_non_csv_empty_and_folder_objects_are_skipped_without_a_run(pipeline: Settings, s3, key: str, body: bytes,
                                                                    reason_part: str) -> None:
    etag = put(s3, pipeline, key, body)
    out = outcome(pipeline, pipeline.bucket_name(), key, etag, timeout=30)
    assert out.state == "skipped"
    assert reason_part.lower() in out.reason.lower()
    assert runs_for(pipeline, key) == []


def test_objects_outside_input_never_reach_the_lambda(pipeline: Settings, s3) -> None:
    key = "elsewhere/sales.csv"
    put(s3, pipeline, key, csv_bytes([row(4_000_000)]))
    # the positive signal: an object under input/ uploaded after it is decided, and the pipeline is idle
    sentinel(s3, pipeline)
    wait_idle(pipeline)
    assert lambda_lines(pipeline, key) == [] and runs_for(pipeline, key) == []


@pytest.mark.parametrize("key", ["input/with space/a b.csv", "input/plus+sign.csv", "input/ünïcødé/日本.csv",
                                 "input/it's \"q\" back\\slash 100%25 ?&=#.csv"])
def test_keys_with_spaces_plus_and_unicode_load(pipeline: Settings, s3, key: str) -> None:
    base = 5_000_000 + stable_number(key, 1000) * 10  # disjoint ranges of ten for the keys
    etag = put(s3, pipeline, key, csv_bytes([row(i) for i in _ids(base, 3)]))
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "loaded", out
    assert [r["order_id"] for r in table_rows(pipeline, key)] == _ids(base, 3)


def test_keys_differing_only_by_extension_or_its_case_each_load_all_their_rows(pipeline: Settings, s3) -> None:
    """x.csv, x.csv.gz and x.CSV uploaded at once: three outputs, three ledger rows, every row of each."""
    bucket = pipeline.bucket_name()
    bodies = {
        "input/twins/x.csv": ([row(i) for i in _ids(5_100_000, 4)], [row(5_100_090, units="ten")], False),
        "input/twins/x.csv.gz": ([row(i) for i in _ids(5_100_100, 3)], [row(5_100_190, order_date="2/30/2014")],
                                 True),
        "input/twins/x.CSV": ([row(i) for i in _ids(5_100_200, 5)], [], False),
    }
    etags = {key: put(s3, pipeline, key, csv_bytes(good + bad, gzip=gz)) for key, (good, bad, gz) in bodies.items()}
    outputs = set()
    for key, (good, bad, _gz) in bodies.items():
        out = outcome(pipeline, bucket, key, etags[key])
        assert out.state == "loaded", (key, out)
        led = [r for r in ledger_rows(pipeline, bucket, key) if r["etag"] == etags[key]]
        assert len(led) == 1 and led[0]["state"] == "loaded"
        assert (led[0]["rows_read"], led[0]["rows_loaded"], led[0]["rows_quarantined"]) == (
            len(good) + len(bad), len(good), len(bad))
        assert [r["order_id"] for r in table_rows(pipeline, key)] == [int(r[HEADER.index("Order ID")]) for r in good]
        props = out.run["WorkflowRunProperties"]
        outputs.add(props["output_key"])
        report = json.loads(s3.get_object(Bucket=bucket, Key=props["dq_report_key"])["Body"].read())
        assert report["key"] == key and report["rows_read"] == report["rows_written"] + report["rows_quarantined"]
        if bad:  # each file's quarantine is its own
            q = s3.get_object(Bucket=bucket, Key=props["quarantine_key"])["Body"].read().decode()
            assert q.count("\n") == 1 + len(bad) and bad[0][HEADER.index("Order ID")] in q
    assert len(outputs) == 3


def test_hostile_bytes_quarantine_their_rows_and_the_rest_loads(pipeline: Settings, s3) -> None:
    """NUL, bytes not in the file's encoding and a 5 MB line without a newline: row rejects, not file failures."""
    bucket = pipeline.bucket_name()
    good = [row(i, country="Côte d'Ivoire" if i % 10 == 0 else "Chad") for i in _ids(5_200_000, 96)]
    skip = len(csv_bytes([]))  # the header line

    body = csv_bytes(good[:50])
    body += csv_bytes([row(5_200_900, country="Ch\x00ad")])[skip:]  # a NUL byte in one row
    body += csv_bytes([row(5_200_901, country="ChXd")])[skip:].replace(b"ChXd", b"Ch\xffd")  # not UTF-8
    body += csv_bytes(good[50:])[skip:]
    body += csv_bytes([row(5_200_902)])[skip:-2] + b"z" * (5 << 20)  # no newline, 5 MB
    key = "input/hostile/bytes.csv"
    etag = put(s3, pipeline, key, body)
    out = outcome(pipeline, bucket, key, etag, timeout=180)
    assert out.state == "loaded", out
    led = ledger_rows(pipeline, bucket, key)[0]
    assert (led["rows_read"], led["rows_loaded"], led["rows_quarantined"]) == (99, 96, 3)
    assert [r["order_id"] for r in table_rows(pipeline, key)] == _ids(5_200_000, 96)
    assert table_rows(pipeline, key)[0]["country"] == "Côte d'Ivoire"
    props = out.run["WorkflowRunProperties"]
    assert json.loads(props["dq_rejects_by_reason"]) == {"nul_byte": 1, "invalid_encoding": 1, "line_too_long": 1}
    q = s3.get_object(Bucket=bucket, Key=props["quarantine_key"])["Body"].read().decode()
    assert "\x00" not in q and "nul_byte" in q and "not valid utf-8 at byte offset" in q


def test_contract_rules_quarantine_inconsistent_money_and_the_rest_loads(pipeline: Settings, s3) -> None:
    good = [row(i) for i in _ids(5_250_000, 3)]
    off_by_a_dollar = row(5_250_010, **{"Total Revenue": "2058.00"})  # 10 x 205.70 = 2057.00
    negative = row(5_250_011, units="-2")  # consistent money, but units below the contract's min 0
    key = "input/rules/money.csv"
    etag = put(s3, pipeline, key, csv_bytes([good[0], off_by_a_dollar, good[1], negative, good[2]]))
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "loaded", out
    assert [r["order_id"] for r in table_rows(pipeline, key)] == _ids(5_250_000, 3)
    led = ledger_rows(pipeline, pipeline.bucket_name(), key)[0]
    assert (led["rows_read"], led["rows_loaded"], led["rows_quarantined"]) == (5, 3, 2)
    props = out.run["WorkflowRunProperties"]
    assert json.loads(props["dq_rejects_by_reason"]) == {"revenue_is_units_times_price": 1, "units_sold_min": 1}
    q = s3.get_object(Bucket=pipeline.bucket_name(), Key=props["quarantine_key"])["Body"].read().decode()
    assert "2058 vs 2057" in q


def test_an_excel_windows_1252_export_loads_with_its_euro_signs(pipeline: Settings, s3) -> None:
    rows = [row(i, country="Curaçao", item="Cereal €" if i % 2 else "Snacks – “best”") for i in _ids(5_300_000, 6)]
    body = csv_bytes(rows, encoding="cp1252")
    assert b"\x80" in body  # the euro sign in Windows-1252
    key = "input/excel/export.csv"
    out = outcome(pipeline, pipeline.bucket_name(), key, put(s3, pipeline, key, body))
    assert out.state == "loaded", out
    got = table_rows(pipeline, key)
    assert [r["item_type"] for r in got] == ["Snacks – “best”", "Cereal €"] * 3 and got[0]["country"] == "Curaçao"


def test_an_unexpected_job1_error_still_records_a_failed_state(pipeline: Settings, s3, boto) -> None:
    """A job 1 run that breaks (here: it is pointed at an object outside ``input/``, which its role may not read,
    as on AWS) FAILs with the real message and leaves a ledger row ``failed`` and a report, so the object is never
    without a terminal state."""
    bucket = pipeline.bucket_name()
    key = "failing/x.csv"  # outside input/: no event, the job is started by hand
    etag = put(s3, pipeline, key, csv_bytes([row(5_400_000)]))
    glue = boto("glue")
    run_id = glue.start_job_run(JobName=pipeline.csv_job, Arguments={
        "--source_bucket": bucket, "--source_key": key, "--source_etag": etag})["JobRunId"]
    deadline = time.monotonic() + 120
    while True:
        jr = glue.get_job_run(JobName=pipeline.csv_job, RunId=run_id)["JobRun"]
        if jr["JobRunState"] not in ("STARTING", "RUNNING", "WAITING", "STOPPING"):
            break
        assert time.monotonic() < deadline, jr
        time.sleep(0.3)
    denied = f"not authorized to perform: s3:GetObject on resource: arn:aws:s3:::{bucket}/{key}"
    assert jr["JobRunState"] == "FAILED" and "AccessDenied" in jr["ErrorMessage"] and denied in jr["ErrorMessage"]
    led = [r for r in ledger_rows(pipeline, bucket, key) if r["state"] == "failed"]
    assert led and led[0]["reason"].startswith("ClientError") and led[0]["etag"] == etag
    from etl_runtime.transform import output_keys

    report = json.loads(s3.get_object(Bucket=bucket, Key=output_keys(key)["report_key"])["Body"].read())
    assert report["state"] == "failed" and denied in report["message"]


def test_messy_but_valid_csv_loads_every_good_row(pipeline: Settings, s3) -> None:
    # semicolons with a trailing delimiter, reordered + renamed headers, BOM, quoted newlines, CSV injection
    header = [h.upper() + "  " for h in reversed(HEADER)]
    rows = [list(reversed(row(6_000_000 + i, country='Chad, "the" country' if i == 0 else "Chad",
                              item="=cmd|' /C calc'!A0" if i == 1 else "Cereal\nbox" if i == 2 else "Cereal")))
            for i in range(4)]
    body = b"\xef\xbb\xbf" + csv_bytes([[*r, ""] for r in rows], header=[*header, ""], delimiter=";",
                                       newline="\n")[:-1]  # no final newline
    key = "input/messy/semi.csv"
    etag = put(s3, pipeline, key, body)
    out = outcome(pipeline, pipeline.bucket_name(), key, etag)
    assert out.state == "loaded", out
    got = table_rows(pipeline, key)
    assert [r["order_id"] for r in got] == _ids(6_000_000, 4)
    assert got[0]["country"] == 'Chad, "the" country'
    assert got[1]["item_type"] == "=cmd|' /C calc'!A0"
    assert got[2]["item_type"] == "Cereal\nbox"


def test_duplicate_order_ids_within_and_across_files(pipeline: Settings, s3) -> None:
    first = csv_bytes([row(7_000_000, units="1"), row(7_000_001, units="2"), row(7_000_000, units="3")])
    k1 = "input/dupkeys/first.csv"
    assert outcome(pipeline, pipeline.bucket_name(), k1, put(s3, pipeline, k1, first)).state == "loaded"
    got = {r["order_id"]: r for r in table_rows(pipeline, k1)}
    assert got[7_000_000]["units_sold"] == 3  # within a file the last row (highest source line) wins
    led = ledger_rows(pipeline, pipeline.bucket_name(), k1)[0]
    assert (led["rows_read"], led["rows_loaded"]) == (3, 2)
    assert led["message"].startswith("upserted from")  # duplicate keys in the file: through staging
    k2 = "input/dupkeys/second.csv"
    assert outcome(pipeline, pipeline.bucket_name(), k2,
                   put(s3, pipeline, k2, csv_bytes([row(7_000_001, units="9")]))).state == "loaded"
    # across files the later load wins; the key is never duplicated
    from etl_kit.warehouse import query

    n = query(f"select count(*) as n from {pipeline.redshift_table} where order_id = 7000001", pipeline)
    assert int(n.iloc[0, 0]) == 1
    assert [r["units_sold"] for r in table_rows(pipeline, k2)] == [9]
    # the append guard found key 7000001 in the table, so the load fell back to the upsert
    led2 = ledger_rows(pipeline, pipeline.bucket_name(), k2)[0]
    assert led2["message"].startswith("upserted from") and led2["rows_loaded"] == 1


def test_an_object_overwritten_while_its_run_is_in_progress(pipeline: Settings, s3) -> None:
    key = "input/overwrite/live.csv"
    e1 = put(s3, pipeline, key, csv_bytes([row(i) for i in _ids(8_000_000, 3)]))
    e2 = put(s3, pipeline, key, csv_bytes([row(i) for i in _ids(8_000_100, 4)]))
    o1 = outcome(pipeline, pipeline.bucket_name(), key, e1)
    o2 = outcome(pipeline, pipeline.bucket_name(), key, e2)
    assert o2.state == "loaded", o2
    # the first version loaded before the overwrite, was superseded before its run started (skipped), or
    # was rejected as changed mid-run; never mixed with the second
    assert o1.state in {"loaded", "rejected", "skipped"}, o1
    if o1.state == "rejected":
        assert o1.reason in {"source_changed", "source_missing"}
    if o1.state == "skipped":
        assert o1.reason.startswith("superseded")
    ids = sorted(r["order_id"] for r in table_rows(pipeline, key))
    assert set(_ids(8_000_100, 4)) <= set(ids) and len(ids) == len(set(ids))


def test_one_hundred_objects_at_once_each_reach_a_terminal_state(pipeline: Settings, s3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[str, str]:
        key = f"input/burst/file-{i:03d}.csv"
        rows = [row(9_000_000 + i * 10 + j) for j in range(3)]
        if i % 10 == 0:
            rows.append(row(9_000_000 + i * 10 + 9, units="bad"))
        return key, put(s3, pipeline, key, csv_bytes(rows))

    with ThreadPoolExecutor(8) as pool:
        uploads = list(pool.map(one, range(100)))
    states: dict[str, int] = {}
    # One hang bound for the whole burst, not per object: the objects wait in the intake queue in no
    # particular order (file-000 may well be the last to get a run slot).
    deadline = time.monotonic() + 1800
    for key, etag in uploads:
        out = outcome(pipeline, pipeline.bucket_name(), key, etag, timeout=max(1.0, deadline - time.monotonic()))
        states[out.state] = states.get(out.state, 0) + 1
        assert out.state == "loaded", (key, out.state, out.reason)
        assert len(table_rows(pipeline, key)) == 3
        led = ledger_rows(pipeline, pipeline.bucket_name(), key)
        assert len(led) == 1 and led[0]["rows_read"] == led[0]["rows_loaded"] + led[0]["rows_quarantined"]
    assert states == {"loaded": 100}


def test_a_target_table_with_other_columns_fails_naming_the_table_and_the_fix(pipeline: Settings, s3) -> None:
    """A table made by an older etl-kit (loaded_at instead of source_etag) is not loaded into by position."""
    import io

    from etl_kit.clients import account_id, client
    from etl_kit.exceptions import WarehouseError
    from etl_kit.warehouse import execute, query
    from etl_runtime import job2
    from etl_runtime.contract import compile_contract
    from etl_runtime.job1 import run_properties_from_report
    from etl_runtime.loadsql import LoadSpec
    from etl_runtime.transform import transform_stream
    from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, Warehouse, WorkflowRun

    schema, table = pipeline.redshift_schema, "old_layout_sales"
    contract = pipeline.dataset_contract.model_dump(mode="json")
    cols = ", ".join(f'"{c}" VARCHAR(64)' for c in [c["name"] for c in contract["columns"]])
    execute([f"DROP TABLE IF EXISTS {schema}.{table}",
             f"CREATE TABLE {schema}.{table} ({cols}, source_key VARCHAR(1024), source_line BIGINT, "
             "run_id VARCHAR(256), loaded_at TIMESTAMP)"], pipeline)
    out, q = io.BytesIO(), io.BytesIO()
    report = transform_stream(io.BytesIO(csv_bytes([row(i) for i in _ids(9_000_000, 3)])), contract, out, q,
                              source_name="old.csv",
                              lineage={"source_key": "input/old.csv", "source_etag": "e0", "run_id": "wr_old"})
    key = "output/old/part-0000.parquet"
    s3.put_object(Bucket=pipeline.bucket_name(), Key=key, Body=out.getvalue())
    with pytest.raises(WarehouseError, match=rf"table {schema}\.{table} has the columns .*loaded_at.* RENAME TO"):
        spec = LoadSpec(
            target=LoadTarget(schema, table, pipeline.ledger_table,
                              f"arn:aws:iam::{account_id(pipeline)}:role/{pipeline.redshift_role}"),
            contract=compile_contract(contract), parquet=SourceObject(pipeline.bucket_name(), key),
            source=SourceObject(pipeline.bucket_name(), "input/old.csv", "e0"), run=WorkflowRun("wf", "wr_old"),
            summary=Job1Summary.from_run_properties(run_properties_from_report(report)))
        job2.run_load(spec, Warehouse(pipeline.redshift_workgroup, pipeline.redshift_database),
                      rsd=client("redshift-data", pipeline))
    assert int(query(f"SELECT COUNT(*) AS n FROM {schema}.{table}", pipeline).iloc[0, 0]) == 0
    led = ledger_rows(pipeline, pipeline.bucket_name(), "input/old.csv")
    assert [r["state"] for r in led] == ["failed"] and "RENAME TO" in led[0]["message"]

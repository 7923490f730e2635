"""Loader SQL generation: statement list shape, identifiers and escaping (no warehouse)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from etl_kit.config import SEED_CONTRACT
from etl_kit.exceptions import WarehouseError
from etl_runtime import dataapi, job2, loadsql
from etl_runtime.contract import compile_contract
from etl_runtime.loadsql import AppendPlan, LedgerEntry, LoadSpec
from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, Warehouse, WorkflowRun

pytestmark = pytest.mark.unit


COUNTS = Job1Summary(rows_read=3, rows_written=2, rows_quarantined=1)


def spec(table: str = "sales_data_table", contract: Any = SEED_CONTRACT, summary: Job1Summary = COUNTS) -> LoadSpec:
    return LoadSpec(
        target=LoadTarget("public", table, "etl_load_ledger", "arn:aws:iam::1:role/r"),
        contract=compile_contract(contract), parquet=SourceObject("bkt", "output/o'brien/part-0000.parquet"),
        source=SourceObject("bkt", "input/o'brien\\x.csv", "e1"), run=WorkflowRun("wf", "wr_1"), summary=summary)


def batch(upsert: str | None = None, append: AppendPlan | None = None, **kw: Any) -> loadsql.LoadBatch:
    return loadsql.load_statements(spec(**kw), append=append, upsert=upsert, loaded_at="2024-01-01T00:00:00Z",
                                   started_at="2024-01-01T00:00:00Z")


def stmts(upsert: str | None = None, append: AppendPlan | None = None, **kw: Any) -> list[str]:
    return list(batch(upsert, append, **kw).sqls)


def test_statement_shape() -> None:
    s = stmts()
    kinds = [x.split(" (")[0].split(" ")[0:3] for x in s]
    assert [k[0] for k in kinds] == ["CREATE", "CREATE", "LOCK", "DROP", "CREATE", "COPY", "DELETE", "DELETE",
                                     "INSERT", "DELETE", "INSERT", "DROP"]
    assert s[2] == 'LOCK "public"."sales_data_table"'
    s = s[:2] + s[3:]  # the rest as before the LOCK
    assert s[0].startswith('CREATE TABLE IF NOT EXISTS "public"."sales_data_table" (')
    assert '"order_id" BIGINT NOT NULL' in s[0] and '"unit_price" DECIMAL(18,2)' in s[0]
    assert '"order_date" DATE' in s[0] and '"country" VARCHAR(256)' in s[0]
    assert 'PRIMARY KEY ("order_id")' in s[0] and s[0].endswith('DISTKEY("order_id") SORTKEY("order_date")')
    assert s[0].split(" (", 1)[1].split(", PRIMARY")[0].endswith(
        '"source_line" BIGINT, "source_key" VARCHAR(1024), "source_etag" VARCHAR(256), "run_id" VARCHAR(256)')
    assert 'PRIMARY KEY ("bucket", "key", "etag", "run_id")' in s[1] and '"message" VARCHAR(65535)' in s[1]
    assert s[3].startswith("CREATE TEMP TABLE etl_kit_staging (") and s[3].endswith('"source_line" BIGINT)')
    assert s[4] == ("COPY etl_kit_staging FROM 's3://bkt/output/o''brien/part-0000.parquet' "
                    "IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS PARQUET")
    assert "MAX(\"source_line\")" in s[5] and "HAVING COUNT(*) > 1" in s[5]
    assert s[6] == ('DELETE FROM "public"."sales_data_table" USING etl_kit_staging '
                    'WHERE "sales_data_table"."order_id" = etl_kit_staging."order_id"')
    assert s[7].startswith('INSERT INTO "public"."sales_data_table" ("country", ')
    assert '"source_line", "source_key", "source_etag", "run_id") SELECT s."country", ' in s[7]
    assert s[7].endswith(" 'e1', 'wr_1' FROM etl_kit_staging AS s")
    assert "'loaded'" in s[9] and "(SELECT COUNT(*) FROM etl_kit_staging)" in s[9]


def test_merge_variant_and_unknown_upsert() -> None:
    s = stmts(upsert="merge")
    assert [x.split(" ")[0] for x in s][5:9] == ["COPY", "DELETE", "MERGE", "DELETE"]
    s = s[:2] + s[3:]
    assert s[6].startswith('MERGE INTO "public"."sales_data_table" AS t USING etl_kit_staging AS s ON '
                           't."order_id" = s."order_id" WHEN MATCHED THEN UPDATE SET "country" = s."country"')
    assert "WHEN NOT MATCHED THEN INSERT (" in s[6] and '"order_id" = s."order_id",' not in s[6]
    assert """"run_id" = 'wr_1'""" in s[6] and """"source_etag" = 'e1'""" in s[6]
    with pytest.raises(ValueError, match="upsert"):
        stmts(upsert="upsert")


@pytest.mark.parametrize(("summary", "dedupe"), [
    (COUNTS, True), (Job1Summary(duplicate_keys_in_file=3), True), (Job1Summary(duplicate_keys_in_file=0), False),
    (Job1Summary.from_run_properties({"dq_duplicate_keys": "0"}), False),
    (Job1Summary.from_run_properties({"dq_duplicate_keys": "12"}), True),
    (Job1Summary.from_run_properties({"dq_duplicate_keys": ""}), True),
])
def test_dedupe_only_when_job1_may_have_seen_duplicates(summary: Job1Summary, dedupe: bool) -> None:
    s = stmts(summary=summary)
    assert any(x.startswith("DELETE FROM etl_kit_staging USING") for x in s) is dedupe
    assert s[6].startswith("DELETE FROM etl_kit_staging USING" if dedupe else 'DELETE FROM "public"')


def test_literals_are_escaped() -> None:
    s = stmts()
    assert "'input/o''brien\\\\x.csv'" in s[8] and "'input/o''brien\\\\x.csv'" in s[10]
    assert loadsql.quote_literal("a'b") == "'a''b'"
    assert loadsql.quote_literal(None) == "NULL"
    with pytest.raises(ValueError):
        loadsql.quote_literal("a\x00b")


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", 'a"b', "1abc", "", "a-b"])
def test_identifiers_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        loadsql.quote_ident(bad)
    with pytest.raises(ValueError):
        stmts(table=bad)


def test_composite_primary_key_dedupe_and_merge() -> None:
    contract = {**SEED_CONTRACT, "primary_key": ["order_id", "country"]}
    s = stmts(contract=contract)
    assert ('"sales_data_table"."order_id" = etl_kit_staging."order_id" AND '
            '"sales_data_table"."country" = etl_kit_staging."country"') in s[7]
    assert 't."order_id" = s."order_id" AND t."country" = s."country"' in stmts(contract=contract, upsert="merge")[7]
    assert 'GROUP BY "order_id", "country"' in s[6]


class FakeRsd:
    def __init__(self, fail: bool = False, loaded: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.queries: list[str] = []
        self.fail = fail
        self.loaded = loaded

    def execute_statement(self, **kw: Any) -> dict[str, str]:
        self.queries.append(kw["Sql"])
        return {"Id": "q"}

    def batch_execute_statement(self, **kw: Any) -> dict[str, str]:
        self.batches.append(kw["Sqls"])
        return {"Id": f"b{len(self.batches)}"}

    def describe_statement(self, Id: str) -> dict[str, Any]:
        if Id == "q":
            return {"Id": Id, "Status": "FINISHED", "HasResultSet": True}
        if Id == "b1" and self.fail:
            return {"Id": Id, "Status": "FAILED", "Error": "ERROR: column \"x\" does not exist",
                    "SubStatements": [{"Id": "b1:5", "Status": "FAILED", "QueryString": "COPY ..."}]}
        return {"Id": Id, "Status": "FINISHED", "SubStatements": [{"ResultRows": i} for i in range(10)]}

    def get_statement_result(self, **kw: Any) -> dict[str, Any]:
        if self.loaded and "sys_load_error_detail" not in self.queries[-1]:
            return {"Records": [[{"stringValue": "loaded"}, {"stringValue": "wr_0"}]]}
        return {"Records": []}


def load(rsd: FakeRsd, summary: Job1Summary | None = None, force: bool = False) -> dict[str, Any]:
    load_spec = LoadSpec(target=LoadTarget("public", "t", "l", "arn:r"), contract=compile_contract(SEED_CONTRACT),
                         parquet=SourceObject("bkt", "output/a/part-0000.parquet"),
                         source=SourceObject("bkt", "input/a.csv", "e"), run=WorkflowRun("wf", "wr_1"),
                         summary=summary or Job1Summary())
    return job2.run_load(load_spec, Warehouse("wg", "dev"), rsd=rsd, force=force)


def test_run_load_success_skip_and_failure() -> None:
    rsd = FakeRsd()
    res = load(rsd)
    assert res["state"] == "loaded" and res["rows_copied"] == 5 and res["rows_deduplicated"] == 6
    assert res["rows_replaced"] == 7 and res["rows_merged"] == 8 and res["mode"] == "upsert"
    assert len(rsd.batches) == 1 and rsd.batches[0][5].startswith("COPY")
    rsd = FakeRsd(loaded=True)
    assert load(rsd)["state"] == "skipped" and rsd.batches == []
    rsd = FakeRsd(fail=True)
    with pytest.raises(WarehouseError, match='column "x" does not exist'):
        load(rsd)
    assert len(rsd.batches) == 2 and "'failed'" in rsd.batches[1][-1]


def test_run_load_without_dedupe_reports_by_statement() -> None:
    rsd = FakeRsd()
    res = load(rsd, Job1Summary(rows_read=5, duplicate_keys_in_file=0))
    assert not any(q.startswith("DELETE FROM etl_kit_staging") for q in rsd.batches[0])
    assert res["rows_copied"] == 5 and res["rows_deduplicated"] == 0
    assert res["rows_replaced"] == 6 and res["rows_merged"] == 7


def test_wait_polls_fast_and_caps_at_half_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(dataapi.time, "sleep", sleeps.append)

    class Slow:
        n = 0

        def describe_statement(self, Id: str) -> dict[str, Any]:
            self.n += 1
            return {"Id": Id, "Status": "FINISHED" if self.n > 12 else "STARTED"}

    assert dataapi.wait(Slow(), "x", timeout=60)["Status"] == "FINISHED"
    assert sleeps[0] == pytest.approx(0.02) and max(sleeps) == pytest.approx(0.5) and len(sleeps) == 12
    assert sleeps == sorted(sleeps)


APPEND_REPORT = Job1Summary(rows_read=5, rows_written=4, rows_quarantined=1, duplicate_keys_in_file=0,
                            output_lineage=True, key_min=10, key_max=99)
SEED = compile_contract(SEED_CONTRACT)


@pytest.mark.parametrize(("change", "plan"), [
    ({}, AppendPlan(key_min=10, key_max=99, rows=4)),
    ({"output_lineage": False}, None), ({"duplicate_keys_in_file": 2}, None), ({"key_min": None}, None),
    ({"rows_written": 0}, None),
])
def test_append_plan_needs_lineage_no_duplicates_and_a_key_range(change: dict[str, Any], plan: Any) -> None:
    assert loadsql.append_plan(SEED, dataclasses.replace(APPEND_REPORT, **change)) == plan
    props = {"dq_output_lineage": "1", "dq_duplicate_keys": "0", "dq_key_min": "10", "dq_key_max": "99",
             "dq_rows_written": "4"}  # the same from job 1's run properties
    assert loadsql.append_plan(SEED, Job1Summary.from_run_properties(props)) == AppendPlan(10, 99, 4)
    text_key = compile_contract({**SEED_CONTRACT, "primary_key": ["country"]})
    assert loadsql.append_plan(text_key, APPEND_REPORT) is None


def test_append_statements_copy_straight_into_the_locked_target() -> None:
    s = stmts(summary=APPEND_REPORT, append=loadsql.append_plan(SEED, APPEND_REPORT))
    assert [x.split(" ")[0] for x in s] == ["CREATE", "CREATE", "LOCK", "SELECT", "COPY", "DELETE", "INSERT"]
    assert s[3] == ('SELECT 1 / (CASE WHEN (SELECT COUNT(*) FROM "public"."sales_data_table" WHERE "order_id" '
                    'BETWEEN 10 AND 99) = 0 THEN 1 ELSE 0 END) AS etl_kit_append_guard')
    assert s[4].startswith("COPY \"public\".\"sales_data_table\" FROM 's3://bkt/output/")
    assert "'loaded'" in s[6] and ", 4, 'loaded'" in s[6]


def test_run_properties_carry_what_the_append_needs() -> None:
    from etl_runtime.job1 import run_properties_from_report

    props = run_properties_from_report({**dataclasses.asdict(APPEND_REPORT), "state": "transformed"})
    assert all(isinstance(v, str) for v in props.values())
    report = Job1Summary.from_run_properties(props)
    assert loadsql.append_plan(SEED, report) == AppendPlan(key_min=10, key_max=99, rows=4)
    assert loadsql.append_plan(SEED, Job1Summary.from_run_properties({})) is None


class GuardRsd(FakeRsd):
    """A Data API whose first batch fails at the append guard, as when the table holds keys in the range."""

    def describe_statement(self, Id: str) -> dict[str, Any]:
        if Id == "b1":
            guard = next(q for q in self.batches[0] if loadsql.APPEND_GUARD in q)
            return {"Id": Id, "Status": "FAILED", "Error": "ERROR: division by zero",
                    "SubStatements": [{"Id": "b1:4", "Status": "FAILED", "QueryString": guard}]}
        return super().describe_statement(Id)


def test_a_tripped_guard_loads_through_staging_and_other_failures_do_not_retry() -> None:
    rsd = GuardRsd()
    res = load(rsd, APPEND_REPORT)
    assert res["state"] == "loaded" and res["mode"] == "upsert"
    assert len(rsd.batches) == 2
    assert any(loadsql.APPEND_GUARD in q for q in rsd.batches[0])
    assert any(q.startswith("CREATE TEMP TABLE etl_kit_staging") for q in rsd.batches[1])
    assert "'upserted from s3://bkt/output/a/part-0000.parquet'" in rsd.batches[1][-2]
    # any other failure of the append is the load's failure: ledger 'failed', no second try
    rsd = FakeRsd(fail=True)
    with pytest.raises(WarehouseError):
        load(rsd, APPEND_REPORT)
    assert len(rsd.batches) == 2 and "'failed'" in rsd.batches[1][-1]


def test_the_ledger_keeps_one_row_per_attempt() -> None:
    entry = LedgerEntry(source=SourceObject("b", "input/a.csv", "e"), state="failed", run=WorkflowRun(run_id="wr_2"))
    delete, insert = loadsql.ledger_statements(LoadTarget("public", ledger_table="l"), entry)
    assert delete == ('DELETE FROM "public"."l" WHERE "bucket" = \'b\' AND "key" = \'input/a.csv\' AND "etag" = \'e\' '
                      'AND "run_id" = \'wr_2\'')
    # the attempt number: one more than the object's other attempts
    assert insert.endswith('(SELECT COALESCE(MAX("attempt"), 0) + 1 FROM "public"."l" WHERE "bucket" = \'b\' AND '
                           '"key" = \'input/a.csv\' AND "etag" = \'e\' AND "run_id" <> \'wr_2\')')
    assert '"run_id" VARCHAR(256) NOT NULL' in loadsql.ledger_ddl(LoadTarget("public", ledger_table="l"))


def test_an_old_ledger_table_is_migrated_in_place() -> None:
    old = [n for n, _ in loadsql.LEDGER_COLUMNS if n != "attempt"]
    ledger = LoadTarget("public", ledger_table="l")
    assert loadsql.ledger_migration(ledger, old, "l_pkey") == [
        'ALTER TABLE "public"."l" DROP CONSTRAINT "l_pkey"',
        'ALTER TABLE "public"."l" ADD COLUMN "attempt" INTEGER',
        'UPDATE "public"."l" SET "attempt" = 1 WHERE "attempt" IS NULL']
    assert loadsql.ledger_migration(ledger, [n for n, _ in loadsql.LEDGER_COLUMNS], "l_pkey") == []


class LoadedRsd(FakeRsd):
    """The ledger says loaded; the target's layout look-up finds no table."""

    def get_statement_result(self, **kw: Any) -> dict[str, Any]:
        if "etl_load_ledger" in self.queries[-1] or '"l"' in self.queries[-1]:
            return {"Records": [[{"stringValue": "loaded"}, {"stringValue": "wr_0"}]]}
        return {"Records": []}


def test_a_forced_load_runs_despite_a_loaded_attempt() -> None:
    rsd = LoadedRsd()
    assert load(rsd)["state"] == "skipped" and rsd.batches == []
    res = load(rsd, force=True)
    assert res["state"] == "loaded" and len(rsd.batches) == 1
    lookups = [q for q in rsd.queries if q.startswith('SELECT "state"')]
    assert lookups and all("\"state\" = 'loaded'" in q for q in lookups)  # only loaded attempts block


class ShuffledRsd(FakeRsd):
    """Sub-statements listed out of order: each is known by its id ``<batch>:<n>``, n counting from 1."""

    def describe_statement(self, Id: str) -> dict[str, Any]:
        if Id == "q":
            return super().describe_statement(Id)
        n = len(self.batches[-1])
        return {"Id": Id, "Status": "FINISHED",
                "SubStatements": [{"Id": f"{Id}:{i}", "ResultRows": 100 + i} for i in range(n, 0, -1)]}


def test_counts_are_read_by_sub_statement_id_not_by_list_order() -> None:
    rsd = ShuffledRsd()
    res = load(rsd)
    sqls = rsd.batches[0]
    assert sqls[5].startswith("COPY etl_kit_staging") and res["rows_copied"] == 106
    assert sqls[6].startswith("DELETE FROM etl_kit_staging USING") and res["rows_deduplicated"] == 107
    assert sqls[7].startswith('DELETE FROM "public"."t" USING') and res["rows_replaced"] == 108
    assert sqls[8].startswith('INSERT INTO "public"."t"') and res["rows_merged"] == 109


def test_batch_positions_name_the_statements_that_count() -> None:
    b = batch(upsert="merge")
    assert b.sqls[b.copy].startswith("COPY etl_kit_staging") and b.sqls[b.dedupe or 0].startswith("DELETE FROM etl")
    assert b.replace is None and b.sqls[b.insert or 0].startswith("MERGE INTO") and b.guard is None
    a = batch(append=AppendPlan(1, 9, 3), summary=APPEND_REPORT)
    assert a.mode == "append" and loadsql.APPEND_GUARD in a.sqls[a.guard or 0]
    assert a.sqls[a.copy].startswith('COPY "public"."sales_data_table"') and a.dedupe is None


def test_the_job_reads_its_load_from_arguments_and_run_properties(capsys: Any) -> None:
    import json

    args = job2.parse_args(["s", "--workgroup", "wg", "--redshift_role_arn", "arn:r", "--WORKFLOW_NAME", "wf",
                            "--WORKFLOW_RUN_ID", "wr_1", "--dataset_contract", json.dumps(SEED_CONTRACT)])
    props = {"output_key": "output/a/part-0000.parquet", "source_bucket": "bkt", "source_key": "input/a.csv",
             "source_etag": "e", "source_version_id": "v1", "dq_rows_read": "3", "dq_duplicate_keys": "0"}
    got = job2.load_spec(args, props)
    assert got.target == LoadTarget("public", "sales_data_table", "etl_load_ledger", "arn:r")
    assert got.parquet == SourceObject("bkt", "output/a/part-0000.parquet")
    assert got.source == SourceObject("bkt", "input/a.csv", "e", "v1") and got.run == WorkflowRun("wf", "wr_1")
    assert got.summary.rows_read == 3 and got.summary.duplicate_keys_in_file == 0
    assert [c.name for c in got.contract.columns] == [c["name"] for c in SEED_CONTRACT["columns"]]
    assert job2.main(["s", "--workgroup", "wg"]) == 2
    assert "--redshift_role_arn, --dataset_contract" in capsys.readouterr().err

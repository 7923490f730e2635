"""Redshift's dialect on the local dialect_warehouse, both ways, through the Data API and the workgroup endpoint.

tests/data/redshift_dialect.yaml drives it: every accepted statement runs through the Data API with its
expected result, every refused one fails with Redshift's error, through the Data API and through
redshift-connector on the workgroup's endpoint. Then what a user reads after a load (STL_LOAD_ERRORS,
SYS_LOAD_ERROR_DETAIL, SYS_QUERY_HISTORY) and redshift-connector's metadata calls, compared with the
Data API's ListTables / DescribeTable. One local cloud for the module.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redshift_connector

from etl_kit import local
from etl_localcloud.redshift.compat import VERSION
from tests.conftest import wait_for
from tests.local._data_api import Target, finished, run_statement
from tests.local._data_api import rows as data_api_rows
from tests.unit.test_redshift_dialect import load

pytestmark = pytest.mark.local

NS, WG, BUCKET = "dialect-ns", "dialect-wg", "dialect-bucket"
TARGET = Target(WG, "dev")
DATA = load()


@pytest.fixture(scope="module")
def dialect_warehouse(module_cloud: Any, module_boto: Callable[[str], Any]) -> dict[str, Any]:
    """The module's workgroup with the table's setup loaded: its endpoint and admin login."""
    rs = module_boto("redshift-serverless")
    rs.create_namespace(namespaceName=NS, dbName="dev", adminUsername="admin", manageAdminPassword=True)
    rs.create_workgroup(workgroupName=WG, namespaceName=NS, baseCapacity=8, publiclyAccessible=True)

    def available() -> dict[str, Any] | None:
        wg = rs.get_workgroup(workgroupName=WG)["workgroup"]
        return wg if wg["status"] == "AVAILABLE" else None

    wg = wait_for(f"workgroup {WG} to be AVAILABLE", available, timeout=30)
    ns = rs.get_namespace(namespaceName=NS)["namespace"]
    secret = json.loads(module_boto("secretsmanager").get_secret_value(SecretId=ns["adminPasswordSecretArn"])
                        ["SecretString"])
    module_boto("s3").create_bucket(Bucket=BUCKET)
    for sql in DATA["setup"]:
        finished(module_boto("redshift-data"), TARGET, sql)
    return {"host": wg["endpoint"]["address"], "port": wg["endpoint"]["port"], "user": secret["username"],
            "password": secret["password"], "database": "dev"}


@pytest.fixture(scope="module")
def driver(module_cloud: Any, dialect_warehouse: dict[str, Any]) -> Iterator[Any]:
    """redshift-connector on the workgroup's endpoint with the driver's defaults (TLS against the local CA)."""
    bundle = local.status(module_cloud)["providers"]["redshift-serverless"]["trust_bundle"]
    mp = pytest.MonkeyPatch()
    mp.setenv("SSL_CERT_FILE", bundle)
    conn = redshift_connector.connect(host=dialect_warehouse["host"], port=dialect_warehouse["port"], database="dev",
                                      user=dialect_warehouse["user"], password=dialect_warehouse["password"])
    try:
        yield conn
    finally:
        conn.close()
        mp.undo()


def _same(got: list[list[Any]], expected: list[list[Any]]) -> bool:
    if len(got) != len(expected):
        return False
    for g_row, e_row in zip(got, expected, strict=True):
        for g, e in zip(g_row, e_row, strict=True):
            if isinstance(e, float) or isinstance(g, float):
                if not math.isclose(float(g), float(e), abs_tol=1e-9):
                    return False
            elif g != e:
                return False
    return True


@pytest.mark.parametrize("case", DATA["accepted"], ids=lambda c: c["sql"][:60])
def test_what_redshift_accepts_runs_with_its_result(module_boto, dialect_warehouse, case: dict[str, Any]) -> None:
    rd = module_boto("redshift-data")
    d = run_statement(rd, TARGET, case["sql"])
    assert d["Status"] == "FINISHED", d.get("Error")
    if case["rows"] is not None:
        got = data_api_rows(rd, TARGET, case["sql"]) if d["HasResultSet"] else []
        assert _same(got, case["rows"]), (case["sql"], got)


@pytest.mark.parametrize("case", DATA["refused"], ids=lambda c: c["sql"][:60])
def test_what_redshift_refuses_fails_with_its_error(module_boto, dialect_warehouse, case: dict[str, Any]) -> None:
    d = run_statement(module_boto("redshift-data"), TARGET, case["sql"])
    assert d["Status"] == "FAILED" and d["Error"] == f"ERROR: {case['error']}"


def test_the_workgroup_endpoint_refuses_and_accepts_the_same(driver) -> None:
    """redshift-connector sees the same refusals (the driver's ProgrammingError, the session still usable)
    and runs the accepted queries."""
    cur = driver.cursor()
    for case in DATA["refused"]:
        with pytest.raises(redshift_connector.ProgrammingError) as err:
            cur.execute(case["sql"])
        assert case["error"] in str(err.value), case["sql"]
        driver.rollback()
    for case in DATA["accepted"]:
        if case["sql"].lstrip().upper().startswith(("SELECT", "WITH")):
            cur.execute(case["sql"])
            assert len(cur.fetchall()) == len(case["rows"]), case["sql"]
    cur.execute("select dateadd(day, %s, '2008-02-28'::date)", (2,))
    assert str(cur.fetchone()[0]) == "2008-03-01 00:00:00"


def _put_parquet(boto: Callable[[str], Any], key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    boto("s3").put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())


def test_a_parquet_column_of_the_wrong_type_fails_the_copy_and_is_recorded(module_boto, dialect_warehouse) -> None:
    rd = module_boto("redshift-data")
    finished(rd, TARGET, "CREATE TABLE typed (id bigint, amount int)")
    _put_parquet(module_boto, "typed/bad.parquet", pa.table({"id": [1, 2], "amount": ["10", "x"]}))
    d = run_statement(rd, TARGET, f"COPY typed FROM 's3://{BUCKET}/typed/bad.parquet' IAM_ROLE default "
                                  "FORMAT AS PARQUET")
    assert d["Status"] == "FAILED"
    assert d["Error"].startswith("ERROR: Spectrum Scan Error: File 'https://s3.us-east-1.amazonaws.com/"
                                 f"{BUCKET}/typed/bad.parquet' has an incompatible Parquet schema for column "
                                 f"'s3://{BUCKET}/typed/bad.parquet.amount'. Column type: INTEGER")
    assert data_api_rows(rd, TARGET, "SELECT COUNT(*) FROM typed") == [[0]]
    uri = f"s3://{BUCKET}/typed/bad.parquet"
    detail = data_api_rows(rd, TARGET, "SELECT column_name, error_code, error_message FROM sys_load_error_detail "
                                       f"WHERE file_name = '{uri}'")
    assert len(detail) == 1 and detail[0][:2] == ["amount", 15007] and "incompatible Parquet schema" in detail[0][2]
    stl = data_api_rows(rd, TARGET, f"SELECT TRIM(colname), err_code FROM stl_load_errors WHERE filename = '{uri}'")
    assert stl == [["amount", 15007]]
    # a matching file loads (int64 into BIGINT, int32 into INTEGER)
    _put_parquet(module_boto, "typed/good.parquet", pa.table({"id": pa.array([1], pa.int64()),
                                                              "amount": pa.array([10], pa.int32())}))
    finished(rd, TARGET, f"COPY typed FROM 's3://{BUCKET}/typed/good.parquet' IAM_ROLE default FORMAT AS PARQUET")
    assert data_api_rows(rd, TARGET, "SELECT id, amount FROM typed") == [[1, 10]]


def test_a_rejected_csv_line_is_recorded_with_its_line(module_boto, dialect_warehouse) -> None:
    rd = module_boto("redshift-data")
    finished(rd, TARGET, "CREATE TABLE csvtyped (id int, d date)")
    module_boto("s3").put_object(Bucket=BUCKET, Key="csv/bad.csv", Body=b"1,2020-01-01\n2\n")
    d = run_statement(rd, TARGET, f"COPY csvtyped FROM 's3://{BUCKET}/csv/bad.csv' IAM_ROLE default CSV")
    assert d["Status"] == "FAILED" and "sys_load_error_detail" in d["Error"]
    assert data_api_rows(rd, TARGET, "SELECT line_number, error_code, TRIM(error_message) FROM sys_load_error_detail "
                                     f"WHERE file_name = 's3://{BUCKET}/csv/bad.csv'") == [
        [2, 1214, "Delimiter not found"]]


def test_data_api_statements_are_in_the_query_history(module_boto, dialect_warehouse) -> None:
    rd = module_boto("redshift-data")
    finished(rd, TARGET, "SELECT 'history probe' AS probe")
    assert run_statement(rd, TARGET, "SELECT no_such_column FROM sales")["Status"] == "FAILED"
    got = data_api_rows(rd, TARGET, "SELECT query_type, status, returned_rows, error_message FROM sys_query_history "
                                    "WHERE query_text IN ('SELECT ''history probe'' AS probe', "
                                    "'SELECT no_such_column FROM sales') ORDER BY start_time")
    assert got == [["SELECT", "success", 1, None],
                   ["SELECT", "failed", 0, 'ERROR: column "no_such_column" does not exist']]
    stl = data_api_rows(rd, TARGET, "SELECT aborted FROM stl_query "
                                    "WHERE querytxt = 'SELECT ''history probe'' AS probe'")
    assert stl == [[0]]


def test_a_new_database_has_the_functions_and_views(module_boto, dialect_warehouse) -> None:
    rd = module_boto("redshift-data")
    finished(rd, TARGET, "CREATE DATABASE dialect_other")
    other = Target(WG, "dialect_other")
    assert data_api_rows(rd, other, "SELECT pg_catalog.redshift_local_dialect_version(), "
                                    "DATEDIFF(day, '2020-01-01', '2020-03-01')") == [[VERSION, 60]]
    assert data_api_rows(rd, other, "SELECT COUNT(*) FROM svv_tables WHERE table_schema = 'public'") == [[0]]


# -- redshift-connector's metadata calls -------------------------------------------------------------------
def test_redshift_connector_metadata_calls_match_the_data_api(module_boto, dialect_warehouse, driver) -> None:
    rd = module_boto("redshift-data")
    driver.rollback()  # a fresh transaction (the driver does not autocommit)
    cur = driver.cursor()
    api_tables = {(t["schema"], t["name"]) for t in rd.list_tables(WorkgroupName=WG, Database="dev",
                                                                   SchemaPattern="public")["Tables"]}
    tables = cur.get_tables(schema_pattern="public")
    # an IDENTITY column's sequence is listed locally (Redshift has none): see docs/local-cloud.md
    assert {(r[1], r[2]) for r in tables if r[3] != "SEQUENCE"} == api_tables and ("public", "sales") in api_tables
    assert {r[3] for r in tables if r[2] == "sales"} == {"TABLE"}
    all_tables = cur.get_tables()  # no schema: the driver reads svv_tables
    assert api_tables <= {(r[1], r[2]) for r in all_tables}

    described = rd.describe_table(WorkgroupName=WG, Database="dev", Schema="public", Table="sales")["ColumnList"]
    for columns in (cur.get_columns(schema_pattern="public", tablename_pattern="sales"),  # pg_catalog query
                    cur.get_columns(tablename_pattern="sales")):  # svv_columns
        by_name = {r[3]: r for r in columns if r[1] == "public"}
        assert list(by_name) == [c["name"] for c in described]
        for c in described:
            row = by_name[c["name"]]
            assert (row[17] == "YES") == bool(c["nullable"]), c["name"]
        assert by_name["pricepaid"][6] == 8 and by_name["pricepaid"][8] == 2  # numeric(8,2): size, scale

    schemas = {r[0] for r in cur.get_schemas()}
    assert set(rd.list_schemas(WorkgroupName=WG, Database="dev")["Schemas"]) <= schemas | {"pg_toast"}
    assert {"public", "pg_catalog", "information_schema"} <= schemas
    # PRIMARY KEY is informational on Redshift and dropped locally: neither side lists a key for sales
    assert cur.get_primary_keys(schema="public", table="sales") == ()
    assert data_api_rows(rd, TARGET, "SELECT COUNT(*) FROM information_schema.table_constraints "
                                     "WHERE table_name = 'sales' AND constraint_type = 'PRIMARY KEY'") == [[0]]

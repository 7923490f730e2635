"""Contract: redshift-serverless and the Redshift Data API on the local cloud, driven by plain boto3 only."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from tests.conftest import wait_for
from tests.local._data_api import Target, finished, run_statement, submit, wait_ended
from tests.local._data_api import rows as data_api_rows

pytestmark = pytest.mark.local

NS, WG, BUCKET = "rs-contract-ns", "rs-contract-wg", "rs-contract-bucket"
ROLE = "arn:aws:iam::123456789012:role/redshift-role"


TARGET = Target(WG, "dev")


@pytest.fixture(scope="module")
def rs_workgroup(module_boto: Callable[[str], Any]) -> dict[str, Any]:
    """The module's namespace and workgroup (the create responses), and its bucket."""
    rs = module_boto("redshift-serverless")
    ns = rs.create_namespace(namespaceName=NS, dbName="dev", adminUsername="admin", manageAdminPassword=True,
                             iamRoles=[ROLE], defaultIamRoleArn=ROLE)["namespace"]
    wg = rs.create_workgroup(workgroupName=WG, namespaceName=NS, baseCapacity=8, publiclyAccessible=True,
                             configParameters=[{"parameterKey": "max_query_execution_time", "parameterValue": "60"}],
                             subnetIds=["subnet-1"], securityGroupIds=["sg-1"])["workgroup"]
    module_boto("s3").create_bucket(Bucket=BUCKET)
    return {"namespace": ns, "workgroup": wg}


def run(boto: Callable[[str], Any], sql: str | list[str], **kw: Any) -> dict[str, Any]:
    return run_statement(boto("redshift-data"), TARGET, sql, **kw)


def ok(boto: Callable[[str], Any], sql: str | list[str], **kw: Any) -> dict[str, Any]:
    return finished(boto("redshift-data"), TARGET, sql, **kw)


def rows(boto: Callable[[str], Any], sql: str) -> list[list[Any]]:
    return data_api_rows(boto("redshift-data"), TARGET, sql)


def _put_parquet(boto: Callable[[str], Any], key: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    boto("s3").put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())


# -- redshift-serverless -----------------------------------------------------------------
def test_workgroup_endpoint_is_a_real_database_with_the_secret_credentials(module_boto, rs_workgroup) -> None:
    rs, sm = module_boto("redshift-serverless"), module_boto("secretsmanager")
    assert rs_workgroup["workgroup"]["status"] == "CREATING"

    def settled() -> dict[str, Any] | None:
        wg = rs.get_workgroup(workgroupName=WG)["workgroup"]
        return wg if wg["status"] != "CREATING" else None

    wg = wait_for(f"workgroup {WG} to leave CREATING", settled, timeout=30)
    assert wg["status"] == "AVAILABLE" and wg["namespaceName"] == NS
    assert wg["endpoint"]["address"] == "127.0.0.1" and wg["endpoint"]["vpcEndpoints"] == []
    assert wg["baseCapacity"] == 8 and wg["publiclyAccessible"] is True and wg["subnetIds"] == ["subnet-1"]
    params = {p["parameterKey"]: p["parameterValue"] for p in wg["configParameters"]}
    assert params["max_query_execution_time"] == "60"
    ns = rs.get_namespace(namespaceName=NS)["namespace"]
    assert ns["status"] == "AVAILABLE" and ns["dbName"] == "dev" and ns["defaultIamRoleArn"] == ROLE
    secret = json.loads(sm.get_secret_value(SecretId=ns["adminPasswordSecretArn"])["SecretString"])
    assert secret["username"] == "admin" and secret["engine"] == "redshift" and secret["dbname"] == "dev"
    assert sm.describe_secret(SecretId=ns["adminPasswordSecretArn"])["Name"] == f"redshift!{NS}-admin"
    with psycopg.connect(host=wg["endpoint"]["address"], port=wg["endpoint"]["port"], user=secret["username"],
                         password=secret["password"], dbname=secret["dbname"], connect_timeout=5) as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("admin", "dev")
    assert NS in [n["namespaceName"] for n in rs.list_namespaces()["namespaces"]]
    assert WG in [w["workgroupName"] for w in rs.list_workgroups()["workgroups"]]


def test_namespaces_sharing_an_admin_user_keep_working_secrets(module_boto, rs_workgroup) -> None:
    """PostgreSQL roles are cluster-wide: a second namespace naming the same admin must not lock out the first."""
    rs, sm = module_boto("redshift-serverless"), module_boto("secretsmanager")
    rs.create_namespace(namespaceName="second-ns", adminUsername="admin", manageAdminPassword=True, dbName="dev")
    try:
        wg = rs.get_workgroup(workgroupName=WG)["workgroup"]
        for name in (NS, "second-ns"):
            arn = rs.get_namespace(namespaceName=name)["namespace"]["adminPasswordSecretArn"]
            secret = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
            with psycopg.connect(host=wg["endpoint"]["address"], port=wg["endpoint"]["port"], user="admin",
                                 password=secret["password"], dbname="dev", connect_timeout=5) as conn:
                assert conn.execute("select current_user").fetchone() == ("admin",)
    finally:
        rs.delete_namespace(namespaceName="second-ns")


def test_serverless_errors_use_aws_codes(module_boto, rs_workgroup) -> None:
    rs = module_boto("redshift-serverless")
    with pytest.raises(rs.exceptions.ConflictException):
        rs.create_namespace(namespaceName=NS)
    with pytest.raises(rs.exceptions.ConflictException):
        rs.create_workgroup(workgroupName=WG, namespaceName=NS)
    with pytest.raises(rs.exceptions.ResourceNotFoundException):
        rs.get_workgroup(workgroupName="no-such-wg")
    with pytest.raises(rs.exceptions.ResourceNotFoundException):
        rs.get_namespace(namespaceName="no-such-ns")
    with pytest.raises(rs.exceptions.ResourceNotFoundException):
        rs.create_workgroup(workgroupName="orphan-wg", namespaceName="no-such-ns")
    with pytest.raises(rs.exceptions.ValidationException):
        rs.create_namespace(namespaceName="Bad_Name")
    with pytest.raises(rs.exceptions.ValidationException):
        rs.create_workgroup(workgroupName="bad-capacity", namespaceName=NS, baseCapacity=7)
    with pytest.raises(rs.exceptions.ConflictException):
        rs.delete_namespace(namespaceName=NS)  # a workgroup still uses it


def test_namespace_with_password_update_tags_and_delete(module_boto, rs_workgroup) -> None:
    rs = module_boto("redshift-serverless")
    ns = rs.create_namespace(namespaceName="rs-other-ns", dbName="other", adminUsername="boss",
                             adminUserPassword="Secret123x", tags=[{"key": "team", "value": "data"}])["namespace"]
    assert "adminPasswordSecretArn" not in ns
    wg = rs.create_workgroup(workgroupName="rs-other-wg", namespaceName="rs-other-ns")["workgroup"]
    with psycopg.connect(host="127.0.0.1", port=wg["endpoint"]["port"], user="boss", password="Secret123x",
                         dbname="other", connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert rs.list_tags_for_resource(resourceArn=ns["namespaceArn"])["tags"] == [{"key": "team", "value": "data"}]
    upd = rs.update_workgroup(workgroupName="rs-other-wg", baseCapacity=32)["workgroup"]
    assert upd["baseCapacity"] == 32
    assert rs.update_namespace(namespaceName="rs-other-ns", iamRoles=[ROLE])["namespace"]["iamRoles"] == [ROLE]
    assert rs.delete_workgroup(workgroupName="rs-other-wg")["workgroup"]["status"] == "DELETING"
    assert rs.delete_namespace(namespaceName="rs-other-ns")["namespace"]["status"] == "DELETING"
    with pytest.raises(rs.exceptions.ResourceNotFoundException):
        rs.get_namespace(namespaceName="rs-other-ns")


# -- Data API ------------------------------------------------------------------------------
def test_create_table_with_redshift_clauses_finishes(module_boto, rs_workgroup) -> None:
    d = ok(module_boto, """CREATE TABLE IF NOT EXISTS ddl_probe (
        id BIGINT IDENTITY(1,1), order_id BIGINT NOT NULL ENCODE az64 DISTKEY, note VARCHAR(MAX) ENCODE zstd,
        payload SUPER, loaded_at TIMESTAMP DEFAULT GETDATE(), PRIMARY KEY (order_id))
        DISTSTYLE KEY COMPOUND SORTKEY(order_id) BACKUP NO""")
    assert d["HasResultSet"] is False and d["Duration"] > 0 and d["RedshiftPid"] > 0
    ok(module_boto, "INSERT INTO ddl_probe (order_id, note, payload) VALUES (7, 'x', '{\"a\": 1}')")
    got = rows(module_boto, "SELECT id, order_id, note, payload, loaded_at IS NOT NULL FROM ddl_probe")
    assert got == [[1, 7, "x", '{"a": 1}', True]]


def test_batch_is_one_transaction(module_boto, rs_workgroup) -> None:
    ok(module_boto, "CREATE TABLE tx_probe (id int)")
    d = run(module_boto, ["INSERT INTO tx_probe VALUES (1)", "INSERT INTO tx_probe VALUES (2)",
                          "INSERT INTO tx_probe VALUES ('not a number')"])
    assert d["Status"] == "FAILED"
    assert 'invalid input syntax for type integer: "not a number"' in d["Error"]
    assert [s["Status"] for s in d["SubStatements"]] == ["FINISHED", "FINISHED", "FAILED"]
    assert d["SubStatements"][2]["Error"] == d["Error"]
    assert rows(module_boto, "SELECT count(*) FROM tx_probe") == [[0]]
    d = ok(module_boto, ["INSERT INTO tx_probe VALUES (1)", "INSERT INTO tx_probe VALUES (2)",
                         "SELECT * FROM tx_probe"])
    assert [s["Id"] for s in d["SubStatements"]] == [f"{d['Id']}:{i}" for i in (1, 2, 3)]
    sub = module_boto("redshift-data").describe_statement(Id=f"{d['Id']}:3")
    assert sub["Status"] == "FINISHED" and sub["ResultRows"] == 2 and sub["HasResultSet"] is True
    res = module_boto("redshift-data").get_statement_result(Id=f"{d['Id']}:3")
    assert sorted(r[0]["longValue"] for r in res["Records"]) == [1, 2]


def test_result_types_metadata_and_pagination(module_boto, rs_workgroup) -> None:
    rd = module_boto("redshift-data")
    ok(module_boto, "CREATE TABLE typed (i int8 NOT NULL, d numeric(18,2), s varchar(20), dt date, ts timestamp, "
                    "f float8, b bool)")
    ok(module_boto, "INSERT INTO typed VALUES (1, 12.50, 'x', '2024-02-29', '2024-02-29 13:14:15', 1.25, true), "
                    "(2, NULL, NULL, NULL, NULL, NULL, NULL)")
    d = ok(module_boto, "SELECT * FROM typed ORDER BY i")
    res = rd.get_statement_result(Id=d["Id"])
    assert res["TotalNumRows"] == 2
    assert res["Records"][0] == [{"longValue": 1}, {"stringValue": "12.50"}, {"stringValue": "x"},
                                 {"stringValue": "2024-02-29"}, {"stringValue": "2024-02-29 13:14:15"},
                                 {"doubleValue": 1.25}, {"booleanValue": True}]
    assert all(f == {"isNull": True} for f in res["Records"][1][1:])
    meta = {m["name"]: m for m in res["ColumnMetadata"]}
    assert {n: m["typeName"] for n, m in meta.items()} == {
        "i": "int8", "d": "numeric", "s": "varchar", "dt": "date", "ts": "timestamp", "f": "float8", "b": "bool"}
    assert (meta["d"]["precision"], meta["d"]["scale"]) == (18, 2)
    assert meta["i"]["nullable"] == 0 and meta["s"]["nullable"] == 1 and meta["i"]["tableName"] == "typed"
    d = ok(module_boto, "SELECT g, 'row ' || g AS label FROM generate_series(1, 12345) g ORDER BY g")
    assert d["ResultRows"] == 12345
    seen, token, pages = [], None, 0
    while True:
        page = rd.get_statement_result(Id=d["Id"], **({"NextToken": token} if token else {}))
        pages += 1
        seen += [r[0]["longValue"] for r in page["Records"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == list(range(1, 12346)) and pages > 1
    with pytest.raises(ClientError) as err:
        rd.get_statement_result(Id=ok(module_boto, "CREATE TABLE no_result (a int)")["Id"])
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_parameters(module_boto, rs_workgroup) -> None:
    d = ok(module_boto, "SELECT :n::int + 1 AS n1, :who AS who", Parameters=[{"name": "n", "value": "41"},
                                                                            {"name": "who", "value": "O'Brien"}])
    res = module_boto("redshift-data").get_statement_result(Id=d["Id"])
    assert res["Records"] == [[{"longValue": 42}, {"stringValue": "O'Brien"}]]
    assert d["QueryParameters"] == [{"name": "n", "value": "41"}, {"name": "who", "value": "O'Brien"}]
    with pytest.raises(ClientError) as err:
        run(module_boto, "SELECT :missing", Parameters=[{"name": "other", "value": "1"}])
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_copy_parquet_and_the_loader_batch(module_boto, rs_workgroup) -> None:
    table = pa.table({
        "order_id": pa.array([10, 11, 12, 11], pa.int64()),
        "country": pa.array(["Chad", "Peru", None, "Peru "], pa.string()),
        "order_date": pa.array([dt.date(2020, 1, 31), dt.date(2021, 2, 28), None, dt.date(2021, 3, 1)], pa.date32()),
        "total_revenue": pa.array([Decimal("1234567890123456.78"), Decimal("0.01"), None, Decimal("-5.50")],
                                  pa.decimal128(18, 2)),
        "source_line": pa.array([1, 2, 3, 4], pa.int64()),
    })
    _put_parquet(module_boto, "output/part-0000.parquet", table)
    ok(module_boto, "CREATE TABLE IF NOT EXISTS sales (order_id BIGINT NOT NULL, country VARCHAR(64), order_date DATE, "
                    "total_revenue DECIMAL(18,2), source_line BIGINT, PRIMARY KEY (order_id)) DISTKEY(order_id) "
                    "SORTKEY(order_date)")
    ok(module_boto, "CREATE TABLE load_ledger (key VARCHAR(512), rows_loaded BIGINT, loaded_at TIMESTAMP)")
    d = ok(module_boto, [
        "CREATE TEMP TABLE staging (LIKE sales)",
        f"COPY staging FROM 's3://{BUCKET}/output/part-0000.parquet' IAM_ROLE '{ROLE}' FORMAT AS PARQUET",
        "DELETE FROM staging USING (SELECT order_id, source_line, ROW_NUMBER() OVER (PARTITION BY order_id "
        "ORDER BY source_line DESC) AS rn FROM staging) d WHERE staging.order_id = d.order_id "
        "AND staging.source_line = d.source_line AND d.rn > 1",
        "MERGE INTO sales USING staging s ON sales.order_id = s.order_id WHEN MATCHED THEN UPDATE SET "
        "country = s.country, order_date = s.order_date, total_revenue = s.total_revenue, source_line = s.source_line "
        "WHEN NOT MATCHED THEN INSERT (order_id, country, order_date, total_revenue, source_line) "
        "VALUES (s.order_id, s.country, s.order_date, s.total_revenue, s.source_line)",
        "DELETE FROM load_ledger WHERE key = 'output/part-0000.parquet'",
        "INSERT INTO load_ledger VALUES ('output/part-0000.parquet', 3, GETDATE())",
    ])
    assert d["SubStatements"][1]["ResultRows"] == 4 and d["SubStatements"][2]["ResultRows"] == 1
    assert rows(module_boto, "SELECT order_id, country, order_date, total_revenue FROM sales ORDER BY order_id") == [
        [10, "Chad", "2020-01-31", "1234567890123456.78"], [11, "Peru ", "2021-03-01", "-5.50"],
        [12, None, None, None]]
    assert rows(module_boto, "SELECT rows_loaded, loaded_at <= GETDATE() FROM load_ledger") == [[3, True]]
    # The same load again, by prefix and with Redshift's simplified MERGE, changes nothing.
    ok(module_boto, ["CREATE TEMP TABLE staging (LIKE sales)",
                     f"COPY staging FROM 's3://{BUCKET}/output/' IAM_ROLE default FORMAT AS PARQUET",
                     "DELETE FROM staging WHERE order_id = 11 AND source_line = 2",
                     "MERGE INTO sales USING staging s ON sales.order_id = s.order_id REMOVE DUPLICATES"])
    assert rows(module_boto, "SELECT order_id, country, total_revenue FROM sales ORDER BY order_id") == [
        [10, "Chad", "1234567890123456.78"], [11, "Peru ", "-5.50"], [12, None, None]]


def test_copy_errors_are_redshift_like(module_boto, rs_workgroup) -> None:
    ok(module_boto, "CREATE TABLE two_cols (a int8, b varchar(10))")
    d = run(module_boto, f"COPY two_cols FROM 's3://{BUCKET}/nothing/here.parquet' IAM_ROLE default FORMAT AS PARQUET")
    assert d["Status"] == "FAILED" and "The specified S3 prefix 'nothing/here.parquet' does not exist" in d["Error"]
    _put_parquet(module_boto, "bad/three.parquet", pa.table({"a": [1], "b": ["x"], "c": [1.5]}))
    d = run(module_boto, f"COPY two_cols FROM 's3://{BUCKET}/bad/three.parquet' IAM_ROLE default FORMAT AS PARQUET")
    assert d["Status"] == "FAILED"
    assert "Unmatched number of columns between table and file. Table columns: 2, Data columns: 3" in d["Error"]
    # as on Redshift, the failure is in SYS_LOAD_ERROR_DETAIL / STL_LOAD_ERRORS (Spectrum's code 15007)
    assert rows(module_boto, "SELECT error_code, TRIM(error_message) FROM sys_load_error_detail "
                             f"WHERE file_name = 's3://{BUCKET}/bad/three.parquet'") == [
        [15007, "Unmatched number of columns between table and file. Table columns: 2, Data columns: 3, File name: "
                f"https://s3.us-east-1.amazonaws.com/{BUCKET}/bad/three.parquet"]]
    assert rows(module_boto, "SELECT TRIM(filename) FROM stl_load_errors WHERE err_code = 15007 AND filename LIKE "
                             "'%three.parquet'") == [[f"s3://{BUCKET}/bad/three.parquet"]]


def test_copy_refreshes_statistics_like_statupdate(module_boto, rs_workgroup) -> None:
    """Redshift updates statistics after a COPY into an empty table (STATUPDATE's default), always with
    STATUPDATE ON and never with OFF; the local warehouse's planner sees the same (pg_class.reltuples)."""
    _put_parquet(module_boto, "stats/ten.parquet", pa.table({"a": list(range(10)), "b": ["x"] * 10}))
    src = f"FROM 's3://{BUCKET}/stats/ten.parquet' IAM_ROLE default FORMAT AS PARQUET"

    def tuples(table: str) -> float:
        return float(rows(module_boto, f"SELECT reltuples FROM pg_class WHERE relname = '{table}'")[0][0])

    for table, option, expected in (("stat_default", "", 10), ("stat_off", " STATUPDATE OFF", -1),
                                    ("stat_on", " STATUPDATE ON", 10)):
        ok(module_boto, f"CREATE TABLE {table} (a int8, b varchar(10))")
        ok(module_boto, f"COPY {table} {src}{option}")
        assert tuples(table) == expected, (table, option)
    # not empty any more: the default leaves the statistics as they were; ON refreshes them
    ok(module_boto, f"COPY stat_default {src}")
    assert tuples("stat_default") == 10
    ok(module_boto, f"COPY stat_on {src} STATUPDATE ON")
    assert tuples("stat_on") == 20
    assert rows(module_boto, "SELECT COUNT(*) FROM stat_default")[0][0] == 20


def test_copy_csv_with_common_options(module_boto, rs_workgroup) -> None:
    csv_text = ("Region;Order Date;Order ID;Units;Price\r\n"
                "Asia;1/31/2020;1;5;1.50\r\n"
                "Europe;12/1/2021;2;NA;2.25\r\n"
                "\"Semi;colon\";2/29/2024;3;7;\r\n")
    module_boto("s3").put_object(Bucket=BUCKET, Key="input/sales.csv.gz", Body=gzip.compress(csv_text.encode()))
    ok(module_boto, "CREATE TABLE csv_probe (region varchar(32), order_date date, order_id int8, units int4, "
                    "price numeric(10,2))")
    d = ok(module_boto, f"COPY csv_probe FROM 's3://{BUCKET}/input/sales.csv.gz' IAM_ROLE default CSV DELIMITER ';' "
                        "IGNOREHEADER 1 DATEFORMAT 'MM/DD/YYYY' GZIP NULL AS 'NA' REGION 'us-east-1' EMPTYASNULL")
    assert d["ResultRows"] == 3
    assert rows(module_boto, "SELECT * FROM csv_probe ORDER BY order_id") == [
        ["Asia", "2020-01-31", 1, 5, "1.50"], ["Europe", "2021-12-01", 2, None, "2.25"],
        ["Semi;colon", "2024-02-29", 3, 7, None]]
    module_boto("s3").put_object(Bucket=BUCKET, Key="input/bad.csv", Body=b"a,1/1/2020,x,1,1\n")
    d = run(module_boto, f"COPY csv_probe FROM 's3://{BUCKET}/input/bad.csv' IAM_ROLE default CSV "
                         "DATEFORMAT 'MM/DD/YYYY'")
    assert d["Status"] == "FAILED" and "Load into table 'csv_probe' failed" in d["Error"]
    d = ok(module_boto, f"COPY csv_probe FROM 's3://{BUCKET}/input/bad.csv' IAM_ROLE default CSV "
                        "DATEFORMAT 'MM/DD/YYYY' MAXERROR 1")
    assert d["ResultRows"] == 0  # the one bad row is skipped, within MAXERROR
    d = run(module_boto, f"COPY csv_probe FROM 's3://{BUCKET}/input/bad.csv' IAM_ROLE default CSV LZOP")
    assert d["Status"] == "FAILED" and "LZOP" in d["Error"]


def test_merge(module_boto, rs_workgroup) -> None:
    ok(module_boto, ["CREATE TABLE m_target (id int PRIMARY KEY, v varchar(10))",
                     "INSERT INTO m_target VALUES (1, 'old')",
                     "CREATE TABLE m_source (id int, v varchar(10))",
                     "INSERT INTO m_source VALUES (1, 'new'), (2, 'add')"])
    ok(module_boto, "MERGE INTO m_target USING m_source s ON m_target.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v "
                    "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)")
    assert rows(module_boto, "SELECT id, v FROM m_target ORDER BY id") == [[1, "new"], [2, "add"]]


def test_invalid_sql_fails_with_the_database_message(module_boto, rs_workgroup) -> None:
    d = run(module_boto, "SELEC 1")
    assert d["Status"] == "FAILED" and d["Error"] == 'ERROR: syntax error at or near "SELEC"'
    d = run(module_boto, "SELECT * FROM no_such_table")
    assert d["Status"] == "FAILED" and 'relation "no_such_table" does not exist' in d["Error"]
    d = run(module_boto, "SELECT 1", Database="no_such_db")
    assert d["Status"] == "FAILED" and 'database "no_such_db" does not exist' in d["Error"]


def test_unknown_workgroup_and_statement(module_boto, rs_workgroup) -> None:
    rd = module_boto("redshift-data")
    with pytest.raises(rd.exceptions.ValidationException):
        rd.execute_statement(WorkgroupName="no-such-workgroup", Database="dev", Sql="select 1")
    with pytest.raises(rd.exceptions.ValidationException):
        rd.execute_statement(Database="dev", Sql="select 1")
    with pytest.raises(rd.exceptions.ResourceNotFoundException):
        rd.describe_statement(Id=str(uuid.uuid4()))


def test_cancel_and_list_statements(module_boto, rs_workgroup) -> None:
    rd = module_boto("redshift-data")
    r = submit(rd, TARGET, "SELECT pg_sleep(30)", StatementName="sleepy-one")
    wait_for("the sleeping statement to start",
             lambda: rd.describe_statement(Id=r["Id"])["Status"] == "STARTED", timeout=10)
    assert rd.cancel_statement(Id=r["Id"])["Status"] is True
    d = wait_ended(rd, r["Id"])
    assert d["Status"] == "ABORTED"
    with pytest.raises(rd.exceptions.ValidationException):
        rd.cancel_statement(Id=r["Id"])
    listed = rd.list_statements(StatementName="sleepy", Status="ABORTED")["Statements"]
    assert [s["Id"] for s in listed] == [r["Id"]] and listed[0]["QueryString"] == "SELECT pg_sleep(30)"
    for i in range(2):  # more statements than a page of two holds, whatever else ran before in this module
        ok(module_boto, f"SELECT {i}", StatementName=f"listed-{i}")
    page = rd.list_statements(MaxResults=2)
    assert len(page["Statements"]) == 2 and "NextToken" in page
    ok(module_boto, "CREATE TABLE catalog_probe (i int8, d numeric(18,2), s varchar(20))")
    assert "dev" in rd.list_databases(WorkgroupName=WG, Database="dev")["Databases"]
    tables = rd.list_tables(WorkgroupName=WG, Database="dev", SchemaPattern="public",
                            TablePattern="catalog_pr%")["Tables"]
    assert tables == [{"name": "catalog_probe", "schema": "public", "type": "TABLE"}]
    cols = rd.describe_table(WorkgroupName=WG, Database="dev", Schema="public", Table="catalog_probe")["ColumnList"]
    assert [(c["name"], c["typeName"]) for c in cols] == [("i", "int8"), ("d", "numeric"), ("s", "varchar")]


def test_records_survive_a_daemon_restart(module_cloud, module_boto, rs_workgroup) -> None:
    from etl_kit import local as localcloud

    ok(module_boto, ["CREATE TABLE restart_probe (id int)", "INSERT INTO restart_probe VALUES (1), (2), (3)"])
    localcloud.down(module_cloud)
    localcloud.up(module_cloud)
    rs, sm = module_boto("redshift-serverless"), module_boto("secretsmanager")
    ns = rs.get_namespace(namespaceName=NS)["namespace"]
    wg = rs.get_workgroup(workgroupName=WG)["workgroup"]
    secret = json.loads(sm.get_secret_value(SecretId=ns["adminPasswordSecretArn"])["SecretString"])
    with psycopg.connect(host="127.0.0.1", port=wg["endpoint"]["port"], user=secret["username"],
                         password=secret["password"], dbname="dev", connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM restart_probe").fetchone() == (3,)
    assert rows(module_boto, "SELECT 1") == [[1]]

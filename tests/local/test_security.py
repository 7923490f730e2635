"""Security of the local cloud: data never becomes SQL, warehouse users cannot reach the host, AWS's limits
and error shapes for the Data API, private state. Driven through plain boto3 / HTTP like any caller."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from etl_runtime import job2
from etl_runtime.contract import compile_contract
from etl_runtime.loadsql import LedgerEntry, LoadSpec
from etl_runtime.values import LoadTarget, SourceObject, Warehouse, WorkflowRun
from tests.local._data_api import Target, run_statement
from tests.local._data_api import rows as data_api_rows

pytestmark = pytest.mark.local

NS, WG, DB = "sec-ns", "sec-wg", "dev"
TARGET = Target(WG, DB)

HOSTILE_KEYS = [
    "input/it's.csv",
    "input/back\\slash.csv",
    "input/x\\'; DROP TABLE canary; --.csv",
    "input/\\'; COPY canary FROM PROGRAM 'touch /tmp/etlkit-pwned-{tag}'; --.csv",
    "input/semi;colon.csv",
    "input/%(k)s %s :k $1.csv",
    "input/ünïcødé ✓ 日本.csv",
    "input/trailing\\",
]


@pytest.fixture(scope="module")
def admin(module_boto: Callable[[str], Any]) -> dict[str, Any]:
    """The namespace's admin login (from its managed secret) and the workgroup's endpoint."""
    rs = module_boto("redshift-serverless")
    ns = rs.create_namespace(namespaceName=NS, dbName=DB, adminUsername="admin", manageAdminPassword=True)["namespace"]
    wg = rs.create_workgroup(workgroupName=WG, namespaceName=NS)["workgroup"]
    secret = json.loads(module_boto("secretsmanager").get_secret_value(
        SecretId=ns["adminPasswordSecretArn"])["SecretString"])
    return {"user": secret["username"], "password": secret["password"], "host": wg["endpoint"]["address"],
            "port": wg["endpoint"]["port"], "secret_arn": ns["adminPasswordSecretArn"]}


def run(module_boto: Callable[[str], Any], sql: str | list[str], **kw: Any) -> dict[str, Any]:
    return run_statement(module_boto("redshift-data"), TARGET, sql, timeout=120, **kw)


def rows(module_boto: Callable[[str], Any], sql: str, **kw: Any) -> list[list[Any]]:
    return data_api_rows(module_boto("redshift-data"), TARGET, sql, timeout=120, **kw)


def _admin_conn(admin: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(host=admin["host"], port=admin["port"], user=admin["user"], password=admin["password"],
                           dbname=DB, connect_timeout=5, autocommit=True)


# -- data never becomes SQL ---------------------------------------------------------------------------
def test_hostile_keys_round_trip_through_job2_ledger_lookup_and_run_nothing(module_boto, admin) -> None:
    """Each key is written by the ledger's batch (escaped literals) and found again by job 2's parameterised
    look-up (server-side binding): the load is skipped as already loaded, the canary table is intact and no
    program ran."""
    tag = uuid.uuid4().hex[:8]
    pwned = Path(f"/tmp/etlkit-pwned-{tag}")
    keys = [k.replace("{tag}", tag) for k in HOSTILE_KEYS]
    assert run(module_boto, "CREATE TABLE canary (v int)")["Status"] == "FINISHED"
    assert run(module_boto, "INSERT INTO canary VALUES (7)")["Status"] == "FINISHED"
    rsd = module_boto("redshift-data")
    for i, key in enumerate(keys):
        target = LoadTarget("public", "sales", "load_ledger", "arn:aws:iam::123456789012:role/r")
        job2.record_ledger(Warehouse(WG, DB), target, LedgerEntry(
            source=SourceObject("b", key, f"e{i}"), state="loaded", run=WorkflowRun(run_id=f"wr_{i}")), rsd)
        spec = LoadSpec(target=target, contract=compile_contract({"columns": [{"name": "id", "type": "integer"}]}),
                        parquet=SourceObject("b", "output/x.parquet"), source=SourceObject("b", key, f"e{i}"),
                        run=WorkflowRun("wf", f"wr_again_{i}"))
        out = job2.run_load(spec, Warehouse(WG, DB), rsd=rsd)
        assert out["state"] == "skipped" and out["reason"] == f"already loaded by run wr_{i}", key
    stored = rows(module_boto, "SELECT key FROM load_ledger ORDER BY etag")
    assert [r[0] for r in stored] == keys  # every key stored and read back byte for byte
    for i, key in enumerate(keys):  # and each one found by an exact, bound comparison
        assert rows(module_boto, "SELECT etag FROM load_ledger WHERE key = :k",
                    Parameters=[{"name": "k", "value": key}]) == [[f"e{i}"]]
    assert rows(module_boto, "SELECT v FROM canary") == [[7]]
    assert not pwned.exists()


@pytest.mark.parametrize("value", ["O'Brien", "a\\'b", "\\", "50% off :x %(y)s", "line\nbreak", "ünï ✓",
                                   "'; DROP TABLE canary2; --"])
def test_parameter_values_are_bound_not_spliced(module_boto, admin, value: str) -> None:
    run(module_boto, "CREATE TABLE IF NOT EXISTS canary2 (v int)")
    assert rows(module_boto, "SELECT :v AS v, length(:v) AS n, 'lit:v' AS lit -- :v in a comment",
                Parameters=[{"name": "v", "value": value}]) == [[value, len(value), "lit:v"]]
    assert run(module_boto, "SELECT count(*) FROM canary2")["Status"] == "FINISHED"


def test_parameters_are_typed_by_their_context(module_boto, admin) -> None:
    assert rows(module_boto, "SELECT :n::int + 1, :d::date + 1, CAST(:x AS decimal(5,2)) * 2",
                Parameters=[{"name": "n", "value": "41"}, {"name": "d", "value": "2024-02-28"},
                            {"name": "x", "value": "1.25"}]) == [[42, "2024-02-29", "2.50"]]
    run(module_boto, "CREATE TABLE IF NOT EXISTS typed (id bigint, day date)")
    d = run(module_boto, "INSERT INTO typed VALUES (:id, :day)", Parameters=[{"name": "id", "value": "5"},
                                                                    {"name": "day", "value": "2020-01-31"}])
    assert d["Status"] == "FINISHED", d.get("Error")
    assert rows(module_boto, "SELECT id FROM typed WHERE id = :id", Parameters=[{"name": "id", "value": "5"}]) == [[5]]


def test_batch_statements_share_parameters(module_boto, admin) -> None:
    d = run(module_boto,
            ["CREATE TEMP TABLE p (v varchar(20))", "INSERT INTO p VALUES (:a)", "INSERT INTO p VALUES (:b)"],
            Parameters=[{"name": "a", "value": "x'y"}, {"name": "b", "value": "z\\w"}])
    assert d["Status"] == "FINISHED", d.get("Error")


@pytest.mark.parametrize(("params", "sql", "message"), [
    ([{"name": "other", "value": "1"}], "SELECT :missing", "'missing' is not specified"),
    ([{"name": "a", "value": "1"}, {"name": "b", "value": "2"}], "SELECT :a", "'b' is not used"),
    ([{"name": "a-b", "value": "1"}], "SELECT 1", "must match the pattern"),
    ([{"name": "a", "value": ""}], "SELECT :a", "length greater than or equal to 1"),
    ([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}], "SELECT :a", "more than once"),
])
def test_parameter_rules_answer_validation_exception(module_boto, admin, params: list[dict[str, str]], sql: str,
                                                     message: str) -> None:
    rd = module_boto("redshift-data")
    before = len(rd.list_statements(MaxResults=100)["Statements"])
    with pytest.raises(ClientError) as err:  # without boto3's client-side checks, as any HTTP caller
        _raw_call(module_boto, "ExecuteStatement",
                  {"WorkgroupName": WG, "Database": DB, "Sql": sql, "Parameters": params})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert message in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(rd.list_statements(MaxResults=100)["Statements"]) == before  # nothing was queued


# -- the warehouse's users cannot reach the host --------------------------------------------------------
def test_namespace_admin_is_an_ordinary_role(module_boto, admin) -> None:
    assert rows(module_boto, "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                     "WHERE rolname = current_user") == [["admin", False, True, True]]
    assert rows(module_boto, "SELECT current_user", SecretArn=admin["secret_arn"]) == [["admin"]]
    # no role that may read or write server files or run programs is granted to it
    assert rows(module_boto, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE "
                     "m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND r.rolname IN "
                     "('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')") == [[0]]


@pytest.mark.parametrize("sql", [
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_ls_dir('/')",
    "SELECT lo_import('/etc/passwd')",
    "CREATE FUNCTION getpid_c() RETURNS int LANGUAGE c AS 'libc.so.6', 'getpid'",
    "CREATE FUNCTION rd(text) RETURNS text LANGUAGE internal AS 'pg_read_file_off_len'",
    "GRANT pg_execute_server_program TO admin",
    "CREATE USER mallory SUPERUSER PASSWORD 'Passw0rd!'",
    "ALTER USER admin SUPERUSER",
])
def test_host_reaching_sql_fails_over_the_data_api(module_boto, admin, sql: str) -> None:
    d = run(module_boto, sql)
    assert d["Status"] == "FAILED"
    assert "permission denied" in d["Error"] or "must be superuser" in d["Error"] or "must have" in d["Error"] \
        or "not allowed" in d["Error"], d["Error"]


def test_copy_program_and_server_files_fail_for_the_admin(module_boto, admin, tmp_path: Path) -> None:
    target = Path(f"/tmp/etlkit-copy-{uuid.uuid4().hex[:8]}")
    # the Data API's COPY reads only s3://, whatever the text
    d = run(module_boto, f"COPY canary FROM PROGRAM 'touch {target}'")
    assert d["Status"] == "FAILED"
    # a direct connection with the admin's secret: PostgreSQL itself refuses
    with _admin_conn(admin) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS host_probe (v text)")
        for stmt in (f"COPY host_probe FROM PROGRAM 'touch {target}'", "COPY host_probe FROM '/etc/passwd'",
                     f"COPY host_probe TO '{target}'", "SELECT pg_read_file('/etc/passwd')",
                     "CREATE FUNCTION f() RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
        assert conn.execute("SELECT count(*) FROM host_probe").fetchone() == (0,)
    assert not target.exists()


def test_users_created_through_sql_are_ordinary_and_can_work(module_boto, admin) -> None:
    assert run(module_boto, "CREATE USER analyst PASSWORD 'Analyst123'")["Status"] == "FINISHED"
    assert rows(module_boto, "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = 'analyst'") == [
        [False, False]]
    with psycopg.connect(host=admin["host"], port=admin["port"], user="analyst", password="Analyst123", dbname=DB,
                         connect_timeout=5, autocommit=True) as conn:
        conn.execute("CREATE TABLE analyst_t (v int)")  # Redshift lets every user create in public
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_file('/etc/hostname')")


def test_superuser_cannot_log_in_over_tcp(module_cloud, admin) -> None:
    from etl_kit import local as localcloud

    info = localcloud.warehouse_info(module_cloud)
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(host="127.0.0.1", port=info["port"], user=info["user"], password=info["password"],
                        dbname="postgres", connect_timeout=5)


# -- private state ------------------------------------------------------------------------------------
def test_state_dir_socket_and_secrets_are_private(module_cloud, admin) -> None:
    from etl_kit import local as localcloud

    state = Path(module_cloud.state_dir)
    mode = stat.S_IMODE(state.stat().st_mode)
    if os.geteuid() == 0:  # PostgreSQL runs as its own user, whose group may only traverse
        assert mode == 0o710, oct(mode)
    else:
        assert mode == 0o700, oct(mode)
    info = localcloud.warehouse_info(module_cloud)
    sock_dir = Path(info["socket_dir"])
    assert sock_dir.parent == state and stat.S_IMODE(sock_dir.stat().st_mode) == 0o700
    sock = sock_dir / f".s.PGSQL.{info['port']}"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o700
    for name in ("daemon.json", "pg-password", "redshift/serverless.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    secrets = [info["password"], admin["password"]]
    for path in state.rglob("*"):
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o004 and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"a password is in world-readable {path}"


# -- limits and error shapes --------------------------------------------------------------------------
def test_statement_over_100_kb_is_refused(module_boto, admin) -> None:
    rd = module_boto("redshift-data")
    sql = "SELECT 1 -- " + "x" * (100 * 1024)
    with pytest.raises(ClientError) as err:
        rd.execute_statement(WorkgroupName=WG, Database=DB, Sql=sql)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "larger than 100kB" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rd.batch_execute_statement(WorkgroupName=WG, Database=DB, Sqls=["SELECT 1", sql])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert run(module_boto, "SELECT 1 -- " + "x" * (100 * 1024 - 20))["Status"] == "FINISHED"  # just under is fine


def test_batch_of_41_statements_is_refused(module_boto, admin) -> None:
    with pytest.raises(ClientError) as err:  # boto3 checks only minimums on the client: the service refuses
        module_boto("redshift-data").batch_execute_statement(WorkgroupName=WG, Database=DB, Sqls=["SELECT 1"] * 41)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 40" in err.value.response["Error"]["Message"]
    assert run(module_boto, ["SELECT 1"] * 40)["Status"] == "FINISHED"


def test_result_over_100_mb_is_refused_by_get_statement_result(module_boto, admin) -> None:
    d = run(module_boto, "SELECT repeat('x', 100000) FROM generate_series(1, 1100)")
    assert d["Status"] == "FINISHED" and d["ResultRows"] == 1100 and d["ResultSize"] > 100 * 1024 * 1024
    with pytest.raises(ClientError) as err:
        module_boto("redshift-data").get_statement_result(Id=d["Id"])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "exceeded size limit" in err.value.response["Error"]["Message"]


def _raw_call(module_boto: Callable[[str], Any], op: str, body: Any, raw: bytes | None = None,
              prefix: str = "RedshiftData") -> None:
    """POST a request without boto3's client-side checks; raise ClientError-like on an error answer."""
    endpoint = module_boto("redshift-data").meta.endpoint_url
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint + "/", data=data, method="POST", headers={
        "X-Amz-Target": f"{prefix}.{op}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/redshift-data/aws4_request"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        payload = json.loads(text)  # always JSON, never a traceback
        raise ClientError({"Error": {"Code": payload["__type"], "Message": payload["message"]},
                           "ResponseMetadata": {"HTTPStatusCode": exc.code}}, op) from None


@pytest.mark.parametrize(("op", "body", "raw", "code"), [
    ("ExecuteStatement", None, b"{not json", "SerializationException"),
    ("ExecuteStatement", None, b"\xff\xfe", "SerializationException"),
    ("ExecuteStatement", None, b"[1, 2]", "SerializationException"),
    ("ExecuteStatement", {"WorkgroupName": WG, "Database": DB}, None, "ValidationException"),
    ("ExecuteStatement", {"WorkgroupName": WG, "Sql": 5}, None, "SerializationException"),
    ("ExecuteStatement", {"WorkgroupName": WG, "Sql": "SELECT :a", "Parameters": [{"name": "a", "value": 1}]}, None,
     "SerializationException"),
    ("ExecuteStatement", {"WorkgroupName": WG, "Sql": "SELECT 1", "Parameters": "a=1"}, None, "SerializationException"),
    ("BatchExecuteStatement", {"WorkgroupName": WG, "Sqls": []}, None, "ValidationException"),
    ("ListStatements", {"MaxResults": "many"}, None, "SerializationException"),
    ("DescribeStatement", {}, None, "ValidationException"),
    ("NoSuchOperation", {}, None, "UnknownOperationException"),
])
def test_malformed_requests_answer_400_with_aws_error_shape(module_boto, admin, op: str, body: Any, raw: bytes | None,
                                                            code: str) -> None:
    with pytest.raises(ClientError) as err:
        _raw_call(module_boto, op, body, raw)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Code"] == code
    message = err.value.response["Error"]["Message"]
    assert "Traceback" not in message and "Error:" not in message.split(":")[0]


@pytest.mark.parametrize(("prefix", "op", "body", "code"), [
    ("RedshiftServerless", "GetWorkgroup", {}, "ValidationException"),
    ("RedshiftServerless", "CreateNamespace", {"namespaceName": 7}, "SerializationException"),
    ("RedshiftServerless", "Explode", {}, "UnknownOperationException"),
    ("AWSGlue", "StartJobRun", {"JobName": ["x"]}, "SerializationException"),
    ("AWSGlue", "StartJobRun", {}, "ValidationException"),
])
def test_other_providers_answer_malformed_requests_the_same_way(module_boto, prefix: str, op: str, body: Any,
                                                                code: str) -> None:
    with pytest.raises(ClientError) as err:
        _raw_call(module_boto, op, body, prefix=prefix)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Code"] == code

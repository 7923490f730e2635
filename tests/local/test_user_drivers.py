"""The user's own tools against the local workgroup: redshift-connector and awswrangler, as on AWS.

Each connects with exactly the arguments one passes on AWS (the workgroup's endpoint, its managed
secret, the seed's Glue connection), and its results are compared with the Data API's. Bad input
(a wrong password, a missing table, a query error, a down warehouse, a silent client) gives the
driver's normal error with the kit's hint, in bounded time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pandas as pd
import pytest
import redshift_connector

from etl_kit import local
from etl_kit.config import Settings
from etl_kit.warehouse import connect, query
from tests.conftest import client_factory, private_cloud, wait_for
from tests.local._pipeline_helpers import csv_bytes, outcome, put, row

pytestmark = pytest.mark.local

ORDER_IDS = [910000001, 910000002, 910000003]


@pytest.fixture(scope="module")
def loaded(pipeline: Settings) -> Settings:
    """The pipeline with one file loaded: rows in the table, Parquet in output/, tables in the catalog."""
    s3 = client_factory(pipeline)("s3")
    key = f"input/drivers-{uuid.uuid4().hex[:8]}.csv"
    etag = put(s3, pipeline, key, csv_bytes([row(i, units=str(i % 7 + 1)) for i in ORDER_IDS]))
    assert outcome(pipeline, pipeline.bucket_name(), key, etag).state == "loaded"
    return pipeline


@pytest.fixture(scope="module")
def workgroup_login(loaded: Settings) -> dict[str, Any]:
    """What a user reads on AWS: GetWorkgroup's endpoint and the namespace's managed admin secret."""
    boto = client_factory(loaded)
    rs = boto("redshift-serverless")
    wg = rs.get_workgroup(workgroupName=loaded.redshift_workgroup)["workgroup"]
    ns = rs.get_namespace(namespaceName=wg["namespaceName"])["namespace"]
    secret = json.loads(boto("secretsmanager").get_secret_value(SecretId=ns["adminPasswordSecretArn"])
                        ["SecretString"])
    return {"host": wg["endpoint"]["address"], "port": wg["endpoint"]["port"], "user": secret["username"],
            "password": secret["password"], "database": loaded.redshift_database,
            "secret_arn": ns["adminPasswordSecretArn"]}


@pytest.fixture
def trusted(loaded: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the local cloud's CA the documented way (SSL_CERT_FILE = the trust bundle it reports)."""
    part = local.status(loaded)["providers"]["redshift-serverless"]
    monkeypatch.setenv("SSL_CERT_FILE", part["trust_bundle"])


@pytest.fixture
def wr_session(loaded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """awswrangler pointed at the local cloud the documented way: AWS_ENDPOINT_URL and a boto3 session."""
    where = local.address(loaded)
    monkeypatch.setenv("AWS_ENDPOINT_URL", where.endpoint)
    yield boto3.Session(region_name=loaded.region, **where.credentials.boto3_kwargs())


def _data_api(sql: str, settings: Settings) -> pd.DataFrame:
    return query(sql, settings)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns and the same values (as text: drivers differ in Python types, not in data)."""
    assert list(a.columns) == list(b.columns)
    assert a.astype(str).values.tolist() == b.astype(str).values.tolist()


SAMPLE = "select order_id, country, units_sold, total_revenue from sales_data_table " \
         f"where order_id in ({', '.join(map(str, ORDER_IDS))}) order by order_id"


# -- redshift-connector ---------------------------------------------------------------------------------
def test_redshift_connector_with_the_drivers_defaults(loaded, workgroup_login, trusted) -> None:
    """Host, port, database, user, password: nothing else, as on AWS (TLS verified against the local CA)."""
    with redshift_connector.connect(host=workgroup_login["host"], port=workgroup_login["port"],
                                    database=workgroup_login["database"], user=workgroup_login["user"],
                                    password=workgroup_login["password"]) as conn:
        assert isinstance(conn._usock, ssl.SSLSocket)  # TLS, as the driver's default demands
        cur = conn.cursor()
        cur.execute("select current_user, current_database()")
        assert cur.fetchone() == [workgroup_login["user"], workgroup_login["database"]]
        cur.execute("select order_id from sales_data_table where order_id = %s", (ORDER_IDS[1],))
        assert cur.fetchall() == ([ORDER_IDS[1]],)
        cur.execute(SAMPLE)
        direct = cur.fetch_dataframe()
    _same(direct, _data_api(SAMPLE, loaded))
    assert len(direct) == len(ORDER_IDS)


def test_an_untrusted_endpoint_certificate_is_refused_as_on_aws(workgroup_login, monkeypatch) -> None:
    """Without the local CA trusted, the driver's default verification fails, as for any unknown server."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(redshift_connector.InterfaceError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        redshift_connector.connect(host=workgroup_login["host"], port=workgroup_login["port"],
                                   database=workgroup_login["database"], user=workgroup_login["user"],
                                   password=workgroup_login["password"], timeout=10)


def test_kit_connect_returns_a_redshift_connector_connection(loaded) -> None:
    with connect(loaded) as conn:
        assert isinstance(conn, redshift_connector.Connection)
        cur = conn.cursor()
        cur.execute(SAMPLE)
        _same(cur.fetch_dataframe(), _data_api(SAMPLE, loaded))
    direct = query("select count(*) as n from sales_data_table where order_id = :id", loaded,
                   parameters={"id": ORDER_IDS[0]}, via="direct")
    assert direct["n"].tolist() == [1]


# -- awswrangler ----------------------------------------------------------------------------------------
def test_awswrangler_redshift_connect_by_glue_connection_and_by_secret(loaded, workgroup_login, trusted,
                                                                       wr_session) -> None:
    import awswrangler as wr

    expected = _data_api(SAMPLE, loaded)
    frame = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b\\c", "d'e"], "amount": [1.5, 2.25, -3.0]})
    for how in ({"connection": loaded.glue_connection}, {"secret_id": workgroup_login["secret_arn"]}):
        con = wr.redshift.connect(**how, boto3_session=wr_session)
        table = f"wr_{next(iter(how))}_{uuid.uuid4().hex[:6]}"
        try:
            _same(wr.redshift.read_sql_query(SAMPLE, con=con), expected)
            wr.redshift.to_sql(frame, con=con, table=table, schema="public", mode="overwrite",
                               diststyle="AUTO", sortkey=["id"])
            wr.redshift.to_sql(frame.head(1), con=con, table=table, schema="public", mode="append")
        finally:
            con.close()
        back = _data_api(f"select id, name, amount from public.{table} order by id, name", loaded)
        assert back["id"].tolist() == [1, 1, 2, 3]
        assert back["name"].tolist() == ["a", "a", "b\\c", "d'e"]
        assert back["amount"].tolist() == [1.5, 1.5, 2.25, -3.0]


def test_awswrangler_data_api_read_sql_query(loaded, wr_session) -> None:
    import awswrangler as wr

    con = wr.data_api.redshift.connect(workgroup_name=loaded.redshift_workgroup, database=loaded.redshift_database,
                                       boto3_session=wr_session)
    _same(wr.data_api.redshift.read_sql_query(SAMPLE, con=con), _data_api(SAMPLE, loaded))


def test_awswrangler_s3_parquet_and_catalog(loaded, wr_session) -> None:
    import awswrangler as wr

    path = f"s3://{loaded.bucket_name()}/{loaded.output_prefix}"
    df = wr.s3.read_parquet(path, dataset=True, boto3_session=wr_session)
    mine = df[df["order_id"].isin(ORDER_IDS)].sort_values("order_id")
    loaded_rows = _data_api(SAMPLE, loaded)
    assert mine["order_id"].tolist() == loaded_rows["order_id"].tolist() == ORDER_IDS
    assert mine["units_sold"].tolist() == loaded_rows["units_sold"].tolist()
    tables = wr.catalog.tables(database=loaded.glue_database, boto3_session=wr_session)
    assert len(tables) >= 2 and set(tables["Database"]) == {loaded.glue_database}
    assert wr.catalog.does_table_exist(database=loaded.glue_database, table=tables["Table"][0],
                                       boto3_session=wr_session)


# -- bad input: the driver's error, the kit's hint, never a hang ------------------------------------------
def test_wrong_password_is_refused_with_the_hint(workgroup_login, trusted) -> None:
    t0 = time.monotonic()
    with pytest.raises(redshift_connector.ProgrammingError) as err:
        redshift_connector.connect(host=workgroup_login["host"], port=workgroup_login["port"],
                                   database=workgroup_login["database"], user=workgroup_login["user"],
                                   password="Wrong-password-1")
    assert time.monotonic() - t0 < 10
    assert "28P01" in str(err.value) and "password authentication failed" in str(err.value)
    assert "adminPasswordSecretArn" in str(err.value)


def test_missing_table_and_query_error_keep_the_connection(loaded) -> None:
    with connect(loaded) as conn:
        cur = conn.cursor()
        t0 = time.monotonic()
        with pytest.raises(redshift_connector.ProgrammingError, match="no_such_table"):
            cur.execute("select * from no_such_table")
        conn.rollback()
        with pytest.raises(redshift_connector.ProgrammingError, match="division by zero"):
            cur.execute("select 1 / 0")
        conn.rollback()
        assert time.monotonic() - t0 < 10
        cur.execute("select 1")
        assert cur.fetchone() == [1]


def test_superuser_cannot_log_in_through_the_endpoint(loaded, workgroup_login) -> None:
    pg = local.warehouse_info(loaded)
    with pytest.raises(redshift_connector.Error, match=r"pg_hba\.conf rejects"):
        redshift_connector.connect(host=workgroup_login["host"], port=workgroup_login["port"], database="postgres",
                                   user=pg["user"], password=pg["password"], ssl=False, timeout=10)


def test_a_stopped_local_cloud_names_the_command(loaded, tmp_path) -> None:
    from etl_kit.config import load_settings
    from etl_kit.exceptions import EtlKitError
    from tests.conftest import ROOT, free_port

    stopped = load_settings(ROOT / "params" / "local.yaml", local_state_dir=str(tmp_path), local_port=free_port())
    t0 = time.monotonic()
    with pytest.raises(EtlKitError, match="etl-kit local up"):
        connect(stopped)
    assert time.monotonic() - t0 < 10


def test_front_rewrites_startup_and_sql_messages_split_anywhere() -> None:
    """The startup loses only the Redshift-only parameters; Query/Parse SQL is translated whatever the read sizes."""
    import struct

    from etl_localcloud.redshift.front import REDSHIFT_ONLY_PARAMETERS, ClientStream, rewrite_startup

    params = b"user\x00admin\x00database\x00dev\x00" + b"".join(
        p.encode() + b"\x002\x00" for p in sorted(REDSHIFT_ONLY_PARAMETERS)) + b"application_name\x00x\x00\x00"
    out = rewrite_startup(params)
    assert struct.unpack("!I", out[:4])[0] == len(out)
    assert out[8:] == b"user\x00admin\x00database\x00dev\x00application_name\x00x\x00\x00"

    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("!I", len(body) + 4) + body

    create = "create table t (a int) diststyle auto sortkey(a)"
    stream = message(b"P", b"s1\x00" + create.encode() + b"\x00\x00\x00") + message(b"S", b"") + \
        message(b"Q", b"vacuum t; select nvl(null, 'a\\\\b')\x00")
    for cut in range(1, len(stream)):
        feeder = ClientStream()
        got = feeder.feed(stream[:cut]) + feeder.feed(stream[cut:])
        assert got == message(b"P", b"s1\x00create table t (a int)\x00\x00\x00") + message(b"S", b"") + \
            message(b"Q", b"select coalesce(null, E'a\\\\b')\x00"), cut


def test_front_answers_a_down_warehouse_and_drops_a_silent_client() -> None:
    """The front alone (no PostgreSQL behind it): an ErrorResponse naming the fix; a silent client is cut off."""
    from etl_localcloud.redshift.front import WarehouseFront

    front = WarehouseFront(lambda: None, tls=None, startup_timeout=1.0).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(redshift_connector.Error, match="local up") as err:
            redshift_connector.connect(host="127.0.0.1", port=front.port, database="dev", user="admin",
                                       password="x", ssl=False, timeout=10)
        assert "57P03" in str(err.value) and time.monotonic() - t0 < 5
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as silent:
            t0 = time.monotonic()
            assert silent.recv(1) == b""  # closed by the front's startup deadline
            assert time.monotonic() - t0 < 5
    finally:
        front.close()


# -- the endpoint across a PostgreSQL death and a restart of the local cloud -------------------------------
@pytest.fixture
def own_cloud(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A local cloud of this test's own (it kills PostgreSQL and restarts the daemon), with no automatic repair."""
    monkeypatch.setenv("ETL_KIT_PG_RESTART_DELAY", "-1")
    yield from private_cloud(tmp_path_factory, "drivers-own")


def test_endpoint_reports_a_dead_warehouse_and_survives_a_restart(own_cloud: Settings) -> None:
    import etl_localcloud

    boto = client_factory(own_cloud)
    rs = boto("redshift-serverless")
    ns = rs.create_namespace(namespaceName="own-ns", dbName="dev", adminUsername="admin",
                             manageAdminPassword=True)["namespace"]
    wg_name = own_cloud.redshift_workgroup
    port = rs.create_workgroup(workgroupName=wg_name, namespaceName="own-ns")["workgroup"]["endpoint"]["port"]

    def login() -> Any:
        secret = json.loads(boto("secretsmanager").get_secret_value(SecretId=ns["adminPasswordSecretArn"])
                            ["SecretString"])
        assert secret["port"] == port  # the secret names the endpoint, as on AWS
        return redshift_connector.connect(host="127.0.0.1", port=port, database="dev", user=secret["username"],
                                          password=secret["password"], ssl=False, timeout=10)

    with login() as conn:
        conn.cursor().execute("create table kept (n int)")
        conn.commit()
    local.down(own_cloud)
    t0 = time.monotonic()
    with pytest.raises(redshift_connector.InterfaceError):  # nothing listens: refused at once
        redshift_connector.connect(host="127.0.0.1", port=port, database="dev", user="admin",
                                   password="x", ssl=False, timeout=10)
    assert time.monotonic() - t0 < 5
    local.up(own_cloud)
    assert rs.get_workgroup(workgroupName=wg_name)["workgroup"]["endpoint"]["port"] == port
    with login() as conn:
        cur = conn.cursor()
        cur.execute("select count(*) from kept")
        assert cur.fetchone() == [0]

    os.kill(etl_localcloud.health(own_cloud.local_endpoint)["providers"]["postgres"]["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(redshift_connector.Error, match="etl-kit local up") as err:
        wait_for("PostgreSQL to be seen down", lambda: login() and False, timeout=10)
    assert "57P03" in str(err.value) and time.monotonic() - t0 < 10
    local.up(own_cloud)  # repairs PostgreSQL; the endpoint follows its new process
    with login() as conn:
        cur = conn.cursor()
        cur.execute("select current_user")
        assert cur.fetchone() == ["admin"]
    # a secret that no longer matches the login: the driver's error, with the kit's note naming the fix
    sm = boto("secretsmanager")
    value = json.loads(sm.get_secret_value(SecretId=ns["adminPasswordSecretArn"])["SecretString"])
    sm.put_secret_value(SecretId=ns["adminPasswordSecretArn"], SecretString=json.dumps({**value, "password": "Nope-1"}))
    with pytest.raises(redshift_connector.ProgrammingError) as err:
        connect(own_cloud)
    assert "28P01" in str(err.value) and any("etl-kit provision" in n for n in err.value.__notes__)

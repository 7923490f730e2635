"""The local COPY's binary path loads exactly what its CSV path loads (and what Redshift would)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from etl_kit import local as localcloud
from etl_kit.clients import client
from etl_kit.config import Settings
from etl_localcloud.redshift import copy as localcopy
from etl_localcloud.redshift import pgbinary
from etl_localcloud.redshift.sqltranslate import parse_copy

pytestmark = pytest.mark.local

DDL = ("a bigint, b smallint, c integer, d numeric(18,2), e date, f varchar(256), g double precision, h boolean, "
       "i timestamp, j varchar(64), k numeric(10,4), m numeric(5,0), n real")


def _table(rows: int) -> pa.Table:
    """Every supported type with NULLs, signs, extremes, empty strings, unicode and control characters."""
    base = {
        "a": [1, None, -5, 2**62, -(2**62)], "b": [1, 2, None, -32768, 32767], "c": [0, -1, 2**31 - 1, None, 7],
        "d": [Decimal("1234567.89"), Decimal("-0.01"), None, Decimal("9999999999999999.99"), Decimal("0")],
        "e": [dt.date(2010, 5, 28), None, dt.date(1999, 12, 31), dt.date(2000, 1, 1), dt.date(1, 1, 1)],
        "f": ["x", None, "", "Côte d'Ivoire\ttab\nline \\ back", '"quoted", comma'],
        "g": [1.5, None, -0.0, 1e300, -2.5e-300], "h": [True, None, False, True, False],
        "i": [dt.datetime(2020, 1, 1, 12, 30, 1, 5), None, dt.datetime(1970, 1, 1), dt.datetime(2000, 1, 1),
              dt.datetime(1999, 12, 31, 23, 59, 59, 999999)],
        "j": ["k1", "k1", "k2", "k1", None],
        "k": [Decimal("0.5"), Decimal("-123.4567"), Decimal("0"), None, Decimal("999999.9999")],
        "m": [Decimal("12"), Decimal("-3"), Decimal("0"), None, Decimal("99999")],
        "n": [1.25, None, -3.5, 0.0, 1e30],
    }
    reps = rows // 5
    types = {"a": pa.int64(), "b": pa.int16(), "c": pa.int32(), "d": pa.decimal128(18, 2), "e": pa.date32(),
             "f": pa.string(), "g": pa.float64(), "h": pa.bool_(), "i": pa.timestamp("us"), "j": pa.string(),
             "k": pa.decimal128(10, 4), "m": pa.decimal128(5, 0), "n": pa.float32()}
    cols = {k: pa.array(v * reps, types[k]) for k, v in base.items()}
    cols["j"] = pc.dictionary_encode(cols["j"])  # job 1 writes its lineage columns dictionary-encoded
    return pa.table(cols)


def _copy(cloud: Settings, conn: Any, key: str, table: str, options: str = "") -> list[tuple[Any, ...]]:
    conn.execute(f"CREATE TABLE {table} ({DDL})")
    cmd = parse_copy(f"COPY {table} FROM 's3://{cloud.bucket_name()}/{key}' IAM_ROLE default FORMAT AS PARQUET"
                     f"{options}")
    localcopy.run_copy(conn, cmd, client("s3", cloud))
    return conn.execute(f"SELECT * FROM {table} ORDER BY ctid").fetchall()


@pytest.fixture
def warehouse(cloud: Settings) -> Any:
    info = localcloud.warehouse_info(cloud)
    s3 = client("s3", cloud)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=cloud.bucket_name())
    with psycopg.connect(host=info["socket_dir"], port=info["port"], user=info["user"], password=info["password"],
                         dbname=info.get("admin_db") or "postgres") as conn:
        yield conn
        conn.rollback()


def _put(cloud: Settings, table: pa.Table, row_group_size: int = 1000) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    key = f"copytest/{uuid.uuid4().hex}.parquet"
    client("s3", cloud).put_object(Bucket=cloud.bucket_name(), Key=key, Body=buf.getvalue())
    return key


def test_binary_and_csv_paths_load_the_same_rows(cloud: Settings, warehouse: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(2_000)
    key = _put(cloud, table)
    real = pgbinary.batch_encoder
    made: list[Any] = []
    monkeypatch.setattr(pgbinary, "batch_encoder", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    binary = _copy(cloud, warehouse, key, "t_bin")
    assert made and made[0] is not None, "the file should have taken the binary path"
    assert len(binary) == 2_000
    assert binary[:5] == [
        (1, 1, 0, Decimal("1234567.89"), dt.date(2010, 5, 28), "x", 1.5, True, dt.datetime(2020, 1, 1, 12, 30, 1, 5),
         "k1", Decimal("0.5000"), Decimal("12"), 1.25),
        (None, 2, -1, Decimal("-0.01"), None, None, None, None, None, "k1", Decimal("-123.4567"), Decimal("-3"), None),
        (-5, None, 2**31 - 1, None, dt.date(1999, 12, 31), "", -0.0, False, dt.datetime(1970, 1, 1), "k2",
         Decimal("0.0000"), Decimal("0"), -3.5),
        (2**62, -32768, None, Decimal("9999999999999999.99"), dt.date(2000, 1, 1),
         "Côte d'Ivoire\ttab\nline \\ back", 1e300, True, dt.datetime(2000, 1, 1), "k1", None, None, 0.0),
        (-(2**62), 32767, 7, Decimal("0.00"), dt.date(1, 1, 1), '"quoted", comma', -2.5e-300, False,
         dt.datetime(1999, 12, 31, 23, 59, 59, 999999), None, Decimal("999999.9999"), Decimal("99999"),
         pytest.approx(1e30, rel=1e-6)),
    ]
    monkeypatch.setattr(pgbinary, "batch_encoder", lambda *a, **k: None)  # force the CSV path
    assert _copy(cloud, warehouse, key, "t_csv") == binary


def test_binary_copy_reports_what_does_not_fit_like_the_text_path(cloud: Settings, warehouse: Any) -> None:
    too_long = pa.table({"a": pa.array([1], pa.int64()), "f": pa.array(["x" * 300])})
    key = _put(cloud, too_long)
    warehouse.execute("CREATE TABLE t_narrow (a bigint, f varchar(256))")
    cmd = parse_copy(f"COPY t_narrow FROM 's3://{cloud.bucket_name()}/{key}' IAM_ROLE default FORMAT AS PARQUET")
    with pytest.raises(localcopy.CopyError, match=r"Load into table 't_narrow' failed.*too long"):
        localcopy.run_copy(warehouse, cmd, client("s3", cloud))


def test_fillrecord_loads_a_file_with_fewer_columns(cloud: Settings, warehouse: Any) -> None:
    key = _put(cloud, pa.table({"a": pa.array([1, 2], pa.int64())}))
    warehouse.execute("CREATE TABLE t_fill (a bigint, b varchar(10))")
    cmd = parse_copy(f"COPY t_fill FROM 's3://{cloud.bucket_name()}/{key}' IAM_ROLE default FORMAT AS PARQUET")
    with pytest.raises(localcopy.CopyError, match="Unmatched number of columns"):
        localcopy.run_copy(warehouse, cmd, client("s3", cloud))
    warehouse.rollback()
    warehouse.execute("CREATE TABLE t_fill (a bigint, b varchar(10))")
    cmd = parse_copy(f"COPY t_fill FROM 's3://{cloud.bucket_name()}/{key}' IAM_ROLE default FORMAT AS PARQUET "
                     "FILLRECORD")
    assert localcopy.run_copy(warehouse, cmd, client("s3", cloud)) == 2
    assert warehouse.execute("SELECT * FROM t_fill ORDER BY a").fetchall() == [(1, None), (2, None)]

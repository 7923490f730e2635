"""The Sales Records generator: layout, exact money, bad rows that job 1 finds by reason."""

from __future__ import annotations

import csv
import gzip
import io
from decimal import Decimal

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from etl_kit.config import DEFAULT_CONTRACT
from etl_kit.datagen import HEADER, generate_sales_csv
from etl_runtime.transform import transform_stream

pytestmark = pytest.mark.unit


def test_layout_and_exact_money() -> None:
    buf = io.BytesIO()
    info = generate_sales_csv(buf, 2000, seed=1)
    text = buf.getvalue().decode()
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == HEADER and len(rows) == 2001
    ids = [r[6] for r in rows[1:]]
    assert len(set(ids)) == 2000
    revenue = sum(Decimal(r[11]) for r in rows[1:])
    assert revenue == info.total_revenue
    for r in rows[1:50]:
        assert Decimal(r[8]) * Decimal(r[9]) == Decimal(r[11])
        assert Decimal(r[11]) - Decimal(r[12]) == Decimal(r[13])
    assert any(r[1].endswith(" ") for r in rows[1:]) and any(r[3] == "" for r in rows[1:])
    again = io.BytesIO()
    generate_sales_csv(again, 2000, seed=1)
    assert again.getvalue() == buf.getvalue()


def test_bad_rows_reconcile_with_job1() -> None:
    raw = io.BytesIO()
    info = generate_sales_csv(raw, 5000, bad_rows=40, gzip=True, crlf=False)
    assert gzip.decompress(raw.getvalue()).count(b"\n") == 5001
    out, q = io.BytesIO(), io.BytesIO()
    raw.seek(0)
    rep = transform_stream(raw, DEFAULT_CONTRACT, out, q, source_name="gen")
    assert rep["rows_read"] == 5000 and rep["rows_written"] == info.good_rows
    assert rep["rejects_by_reason"] == info.bad_rows_by_reason
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert pc.sum(table.column("total_revenue")).as_py() == info.total_revenue
    assert pc.sum(table.column("total_profit")).as_py() == info.total_profit

"""Job 1's transform on in-memory bytes: one test per case of the catalogue, on both tokenizers."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest

from etl_kit.config import SEED_CONTRACT
from etl_kit.exceptions import FileRejected
from etl_runtime.contract import normalise_header
from etl_runtime.csvread import arrow_supports_handler
from etl_runtime.transform import TransformOptions, TransformRejected, output_keys, source_id, transform_stream

pytestmark = pytest.mark.unit

HEADER = ("Region,Country,Item Type,Sales Channel,Order Priority,Order Date,Order ID,Ship Date,Units Sold,"
          "Unit Price,Unit Cost,Total Revenue,Total Cost,Total Profit")


def row(order_id: Any = 1, *, country: str = "Tuvalu", item: str = "Baby Food", odate: str = "5/28/2010",
        sdate: str = "6/27/2010", units: str = "10", price: str = "1.10", revenue: str = "11.00",
        cost: str = "5.00", profit: str = "6.00", region: str = "Oceania", channel: str = "Online") -> str:
    return ",".join([region, country, item, channel, "H", odate, str(order_id), sdate, units, price, "0.50", revenue,
                     cost, profit])


ENGINES = ["arrow", "python"] if arrow_supports_handler() else ["python"]


class Result:
    def __init__(self, report: dict[str, Any], pq_bytes: bytes, q_bytes: bytes) -> None:
        self.report = report
        self.table = pq.read_table(io.BytesIO(pq_bytes))
        self.rows = self.table.to_pylist()
        self.quarantine = list(csv.DictReader(io.StringIO(q_bytes.decode("utf-8")))) if q_bytes else []

    def lines(self) -> list[int]:
        return [r["source_line"] for r in self.rows]

    def rejects(self) -> list[tuple[int, str, str]]:
        return [(int(q["source_line"]), q["reason"], q["column"]) for q in self.quarantine]


def run(data: bytes | str, engine: str, contract: dict[str, Any] | None = None, **kw: Any) -> Result:
    if isinstance(data, str):
        data = data.encode("utf-8")
    out, q = io.BytesIO(), io.BytesIO()
    kw.setdefault("max_reject_ratio", 1.0)
    report = transform_stream(io.BytesIO(data), contract or SEED_CONTRACT, out, q, source_name="test.csv",
                              options=TransformOptions(engine=engine, **kw))
    res = Result(report, out.getvalue(), q.getvalue())
    assert report["rows_read"] == report["rows_written"] + report["rows_quarantined"]
    assert report["rows_written"] == len(res.rows)
    assert report["rows_quarantined"] == len(res.quarantine)
    assert sum(report["rejects_by_reason"].values()) == report["rows_quarantined"]
    return res


def rejected(data: bytes | str, engine: str, contract: dict[str, Any] | None = None, **kw: Any) -> TransformRejected:
    with pytest.raises(FileRejected) as ei:
        run(data, engine, contract, **kw)
    assert isinstance(ei.value, TransformRejected)
    assert ei.value.report["state"] == "rejected"
    return ei.value


def lines(*rows: str, eol: str = "\r\n", final: bool = True) -> str:
    return eol.join(rows) + (eol if final else "")


# --- file-level outcomes ------------------------------------------------------------------------
def test_empty_file(engine: str) -> None:
    exc = rejected(b"", engine)
    assert exc.reason == "empty_file"
    assert "empty" in str(exc)


def test_header_only(engine: str) -> None:
    assert rejected(lines(HEADER), engine).reason == "no_data_rows"
    assert rejected(HEADER, engine).reason == "no_data_rows"
    assert rejected(lines(HEADER, "", ""), engine).reason == "no_data_rows"


def test_one_data_row(engine: str) -> None:
    r = run(lines(HEADER, row(42)), engine)
    assert r.report["rows_read"] == 1 and r.report["state"] == "transformed"
    assert r.rows == [{
        "country": "Tuvalu", "item_type": "Baby Food", "order_date": date(2010, 5, 28), "order_id": 42,
        "ship_date": date(2010, 6, 27), "units_sold": 10, "unit_price": Decimal("1.10"),
        "total_revenue": Decimal("11.00"), "total_cost": Decimal("5.00"), "total_profit": Decimal("6.00"),
        "source_line": 2,
    }]
    assert [f.name for f in r.table.schema][-1] == "source_line"
    assert str(r.table.schema.field("unit_price").type) == "decimal128(18, 2)"
    assert str(r.table.schema.field("order_date").type) == "date32[day]"


def test_missing_required_column(engine: str) -> None:
    header = HEADER.replace(",Order ID", "")
    body = ",".join(row(1).split(",")[:6] + row(1).split(",")[7:])
    exc = rejected(lines(header, body), engine)
    assert exc.reason == "missing_columns"
    assert "'Order ID'" in str(exc)


def test_extra_columns_reported(engine: str) -> None:
    r = run(lines(HEADER + ",Notes", row(1) + ",hello"), engine)
    assert r.report["extra_columns"] == ["Region", "Sales Channel", "Order Priority", "Unit Cost", "Notes"]
    assert r.report["rows_written"] == 1


def test_reordered_columns(engine: str) -> None:
    cols = HEADER.split(",")
    vals = row(7, units="3").split(",")
    order = list(reversed(range(len(cols))))
    r = run(lines(",".join(cols[i] for i in order), ",".join(vals[i] for i in order)), engine)
    assert r.rows[0]["order_id"] == 7 and r.rows[0]["units_sold"] == 3 and r.rows[0]["country"] == "Tuvalu"


def test_headers_differing_in_case_and_spaces(engine: str) -> None:
    header = HEADER.replace("Item Type", " ITEM  TYPE ").replace("Order ID", "order_id").replace("Country", "country ")
    r = run(lines(header, row(1)), engine)
    assert r.rows[0]["item_type"] == "Baby Food"
    assert normalise_header(" ITEM  TYPE ") == normalise_header("item__type") == "item_type"


def test_duplicate_header_names(engine: str) -> None:
    exc = rejected(lines(HEADER + ",order id", row(1) + ",2"), engine)
    assert exc.reason == "duplicate_columns"
    assert "order_id" in str(exc)
    # duplicates among ignored columns are fine
    assert run(lines(HEADER + ",Region", row(1) + ",x"), engine).report["rows_written"] == 1


def test_semicolon_with_trailing_delimiter(engine: str) -> None:
    body = lines(HEADER.replace(",", ";") + ";", row(1).replace(",", ";") + ";", row(2).replace(",", ";") + ";")
    r = run(body, engine)
    assert r.report["delimiter"] == ";"
    assert [x["order_id"] for x in r.rows] == [1, 2]
    assert r.report["extra_columns"] == ["Region", "Sales Channel", "Order Priority", "Unit Cost"]


def test_declared_delimiter_tab_and_pipe(engine: str) -> None:
    for d in ("\t", "|"):
        r = run(lines(HEADER.replace(",", d), row(5).replace(",", d)), engine)
        assert r.report["delimiter"] == d and r.rows[0]["order_id"] == 5
    contract = dict(SEED_CONTRACT, delimiter="|")
    assert run(lines(HEADER.replace(",", "|"), row(6).replace(",", "|")), engine, contract).rows[0]["order_id"] == 6


def test_quoted_commas_and_embedded_newlines_keep_line_numbers(engine: str) -> None:
    data = lines(
        HEADER,
        row(1, country='"Bonaire, Sint Eustatius"'),  # line 2
        row(2, item='"Baby\r\nFood\nXL"'),  # lines 3-5
        row(3, units="x"),  # line 6: bad
        row(4),  # line 7
        row(5, item='"multi\nline"', units="y"),  # lines 8-9: bad, starts at 8
        row(6, odate="2/30/2014"),  # line 10: bad
    )
    r = run(data, engine)
    assert r.rows[0]["country"] == "Bonaire, Sint Eustatius"
    assert r.rows[1]["item_type"] == "Baby\r\nFood\nXL"
    assert r.lines() == [2, 3, 7]
    assert r.rejects() == [(6, "not_an_integer", "units_sold"), (8, "not_an_integer", "units_sold"),
                           (10, "invalid_date", "order_date")]
    raw = r.quarantine[1]["raw_record"]
    assert "multi\nline" in raw and raw.startswith("Oceania,Tuvalu,")


def test_utf8_bom(engine: str) -> None:
    r = run(b"\xef\xbb\xbf" + lines(HEADER, row(1, country="Côte d'Ivoire")).encode("utf-8"), engine)
    assert r.report["bom"] is True
    assert r.rows[0]["country"] == "Côte d'Ivoire"


def test_latin1_bytes_under_a_utf8_contract_quarantine_only_their_row(engine: str) -> None:
    data = lines(HEADER, row(1), row(2, country="Côte"), row(3)).encode("latin-1")
    r = run(data, engine, dict(SEED_CONTRACT, encoding="utf-8"))
    offset = data.index(b"\xf4")
    assert r.rejects() == [(3, "invalid_encoding", "country")]
    assert f"byte offset {offset}" in r.quarantine[0]["value"] and "0xf4" in r.quarantine[0]["value"]
    assert "C\ufffdte" in r.quarantine[0]["raw_record"]
    assert [x["order_id"] for x in r.rows] == [1, 3]
    # declared in the contract: decoded, not rejected
    r = run(data, engine, dict(SEED_CONTRACT, encoding="latin-1"))
    assert r.rows[1]["country"] == "Côte" and r.report["encoding"] == "iso8859-1"


def test_crlf_and_no_final_newline(engine: str) -> None:
    r = run(lines(HEADER, row(1), row(2), final=False), engine)
    assert r.lines() == [2, 3]
    r = run(lines(HEADER, row(1), row(2), eol="\n", final=False), engine)
    assert r.lines() == [2, 3]


def test_ragged_rows(engine: str) -> None:
    data = lines(HEADER, row(1), "a,b,c", row(2) + ",extra", row(3), row(4, units="bad"))
    r = run(data, engine)
    assert r.lines() == [2, 5]
    assert r.rejects() == [(3, "wrong_field_count", ""), (4, "wrong_field_count", ""), (6, "not_an_integer",
                                                                                      "units_sold")]
    assert r.quarantine[0]["raw_record"] == "a,b,c"
    assert r.quarantine[0]["value"] == "3 fields, header has 14"


def test_text_in_numeric_columns(engine: str) -> None:
    r = run(lines(HEADER, row(1, units="12x"), row(2, price="abc"), row(3, revenue='"1,000.00"'), row(4, units="1.5"),
                  row(5, units="+7"), row(6, price="-0.30")), engine)
    assert r.rejects() == [(2, "not_an_integer", "units_sold"), (3, "not_a_decimal", "unit_price"),
                           (4, "not_a_decimal", "total_revenue"), (5, "not_an_integer", "units_sold")]
    assert [(x["order_id"], x["units_sold"], x["unit_price"]) for x in r.rows] == [(5, 7, Decimal("1.10")),
                                                                                   (6, 10, Decimal("-0.30"))]
    assert r.report["rejects_by_reason"] == {"not_an_integer": 2, "not_a_decimal": 2}


def test_impossible_and_mixed_dates(engine: str) -> None:
    data = lines(HEADER, row(1, odate="2/30/2014"), row(2, odate="2/29/2016"), row(3, odate="2/29/2015"),
                 row(4, odate="13/1/2014"), row(5, odate="2014-03-01"), row(6, odate="3/1/14"),
                 row(7, odate="03/01/2014"))
    r = run(data, engine)
    assert [x["order_id"] for x in r.rows] == [2, 7]
    assert r.rows[0]["order_date"] == date(2016, 2, 29) and r.rows[1]["order_date"] == date(2014, 3, 1)
    assert {q[1] for q in r.rejects()} == {"invalid_date"} and len(r.quarantine) == 5
    # two declared formats: both accepted
    contract = {**SEED_CONTRACT, "columns": [dict(c, formats=["M/d/yyyy", "yyyy-MM-dd"]) if c["type"] == "date"
                                                else c for c in SEED_CONTRACT["columns"]]}
    r = run(data, engine, contract)
    assert [x["order_id"] for x in r.rows] == [2, 5, 7]
    assert r.rows[1]["order_date"] == date(2014, 3, 1)


def test_blank_and_null_spelled_required_values(engine: str) -> None:
    data = lines(HEADER, row(1, country=""), row(2, country="  "), row(3, item="NULL"), row(4, item="N/A"),
                 row(5, channel=""), row(6, country=" Tuvalu  "))
    r = run(data, engine)
    assert r.rejects() == [(2, "missing_value", "country"), (3, "missing_value", "country"),
                           (4, "missing_value", "item_type"), (5, "missing_value", "item_type")]
    assert [x["order_id"] for x in r.rows] == [5, 6]
    assert r.rows[1]["country"] == "Tuvalu"  # surrounding whitespace trimmed
    assert r.report["null_counts"]["country"] == 2 and r.report["null_counts"]["item_type"] == 2


def test_optional_column_missing_and_nulls() -> None:
    contract = {**SEED_CONTRACT, "columns": [*SEED_CONTRACT["columns"],
                                                {"name": "sales_channel", "source": "Sales Channel"},
                                                {"name": "note", "source": "Note", "type": "string"}]}
    r = run(lines(HEADER, row(1, channel=""), row(2)), ENGINES[0], contract)
    assert [x["sales_channel"] for x in r.rows] == [None, "Online"]
    assert [x["note"] for x in r.rows] == [None, None]
    assert r.report["missing_optional_columns"] == ["note"]
    assert r.report["null_counts"]["sales_channel"] == 1 and r.report["null_counts"]["note"] == 2


def test_required_column_entirely_null(engine: str) -> None:
    data = lines(HEADER, row(1, country=""), row(2, country="NA"), row(3, country="-"))
    exc = rejected(data, engine, max_reject_ratio=0.5)
    assert exc.reason == "too_many_rejects"
    assert "3 of 3 rows rejected" in str(exc)
    assert exc.report["rows_quarantined"] == 3
    r = run(data, engine, max_reject_ratio=1.0)
    assert r.report["rows_written"] == 0 and r.report["null_counts"]["country"] == 3


def test_duplicate_order_ids_counted(engine: str) -> None:
    r = run(lines(HEADER, row(1), row(2), row(1, units="5"), row(3), row(1), row(3)), engine)
    assert r.report["rows_written"] == 6
    assert r.report["duplicate_keys_in_file"] == 2
    assert r.report["duplicate_rows_in_file"] == 3


def test_gzip_and_corrupt_gzip(engine: str) -> None:
    plain = lines(HEADER, row(1), row(2)).encode()
    r = run(gzip.compress(plain), engine)
    assert r.report["gzip"] is True and r.report["rows_written"] == 2
    assert r.report["bytes_decompressed"] == len(plain)
    truncated = gzip.compress(plain)[:-12]
    assert rejected(truncated, engine).reason == "corrupt_gzip"
    garbage = b"\x1f\x8b" + b"not really gzip at all" * 10
    assert rejected(garbage, engine).reason == "corrupt_gzip"


def test_csv_injection_stored_as_is(engine: str) -> None:
    evil = "=cmd|' /C calc'!A0"
    r = run(lines(HEADER, row(1, country=f'"{evil}"'), row(2, item="@SUM(1+1)*cmd|'/C calc'!A0")), engine)
    assert r.rows[0]["country"] == evil
    assert r.rows[1]["item_type"] == "@SUM(1+1)*cmd|'/C calc'!A0"


def test_exact_decimals(engine: str) -> None:
    r = run(lines(HEADER, row(1, price="0.10", revenue="0.20", cost="0.30", profit="-0.10"),
                  row(2, price="0.1", revenue="1234567890123456.78", cost="5.", profit=".5"),
                  row(3, price="1.234"), row(4, price="1.2300"), row(5, revenue="12345678901234567.00")), engine)
    a, b, c = r.rows
    assert (a["unit_price"], a["total_revenue"], a["total_cost"]) == (Decimal("0.10"), Decimal("0.20"), Decimal("0.30"))
    assert a["unit_price"] + a["total_revenue"] == a["total_cost"]
    assert b["total_revenue"] == Decimal("1234567890123456.78") and b["total_profit"] == Decimal("0.50")
    assert c["unit_price"] == Decimal("1.23") and c["order_id"] == 4
    assert r.rejects() == [(4, "too_many_decimal_places", "unit_price"), (6, "decimal_out_of_range", "total_revenue")]


def test_string_longer_than_warehouse_column(engine: str) -> None:
    r = run(lines(HEADER, row(1, country="x" * 257), row(2, country="y" * 256)), engine)
    assert r.rejects() == [(2, "string_too_long", "country")]


def test_blank_lines_are_skipped_not_counted(engine: str) -> None:
    r = run(lines(HEADER, row(1), "", row(2), ",,,,,,,,,,,,,", row(3, units="x"), "", ""), engine)
    assert r.lines() == [2, 4]
    assert r.rejects() == [(6, "not_an_integer", "units_sold")]
    assert r.report["blank_rows_skipped"] == 4
    assert r.report["rows_read"] == 3


def test_many_batches_line_numbers(engine: str) -> None:
    """Small blocks: ragged rows, quoted newlines and bad rows straddle batch boundaries."""
    rows_ = [HEADER]
    expect_good: list[tuple[int, int]] = []
    expect_bad: list[tuple[int, str]] = []
    line = 2
    for i in range(1, 3001):
        if i % 97 == 0:
            rows_.append("short,row")
            expect_bad.append((line, "wrong_field_count"))
            line += 1
        elif i % 89 == 0:
            rows_.append(row(i, item='"two\nlines"', units="bad"))
            expect_bad.append((line, "not_an_integer"))
            line += 2
        elif i % 61 == 0:
            rows_.append(row(i, item='"three\n\nlines"'))
            expect_good.append((i, line))
            line += 3
        else:
            rows_.append(row(i))
            expect_good.append((i, line))
            line += 1
    r = run(lines(*rows_), engine, block_size=4096)
    assert [(x["order_id"], x["source_line"]) for x in r.rows] == expect_good
    assert [(q[0], q[1]) for q in r.rejects()] == expect_bad


def test_malformed_unterminated_quote(engine: str) -> None:
    data = lines(HEADER, row(1), row(2, country='"never closed'))
    try:
        r = run(data, engine)
    except FileRejected as exc:  # the python tokenizer refuses
        assert exc.reason == "malformed_csv"
    else:  # pyarrow reads to the end of the file: one ragged record
        assert r.report["rows_quarantined"] == 1


def test_output_keys_deterministic() -> None:
    k = output_keys("input/2024/sales records.CSV.gz")
    assert k["output_key"].startswith("output/2024/sales_records.CSV.gz-") and k["output_key"].endswith(
        "/part-0000.parquet")
    assert k == output_keys("input/2024/sales records.CSV.gz")
    assert source_id("input/a/b.csv") == "a/b.csv"
    assert source_id("input/a_b.csv") != source_id("input/a b.csv")
    assert output_keys("input/x.csv")["quarantine_key"] == "quarantine/x.csv.quarantine.csv"
    assert output_keys("input/x.csv")["report_key"] == "reports/x.csv.report.json"
    assert output_keys("input/x.csv.gz")["rejected_copy_key"] == "quarantine/x.csv.gz.rejected.csv.gz"
    assert ".." not in source_id("input/../../etc/passwd.csv").split("/")
    assert source_id("input/Ventes Été.csv").startswith("Ventes_Ete.csv-")


TWINS = ["input/x.csv", "input/x.csv.gz", "input/x.CSV", "input/X.csv", "input/x.Csv.GZ", "x.csv", "input//x.csv",
         "input/./x.csv", "input/x.csv/", "input/x .csv", "input/x_.csv", "input/o'brien.csv", "input/o\\'brien.csv",
         "input/o\\brien.csv", "input/o_brien.csv", "input/ünï.csv", "input/uni.csv", "input/日本.csv",
         "input/中国.csv", "input/../x.csv", "input/__/x.csv", "input/_x.csv", "input/.x.csv",
         "input/a/b.csv", "input/a_b.csv",
         "input/x.csv-0123456789abcdef", "input/" + "a" * 1100 + ".csv", "input/" + "a" * 1100 + ".CSV",
         "input/" + "é" * 700 + "1.csv", "input/" + "é" * 700 + "2.csv", "input/" + "/" * 900 + "x.csv"]


def test_twin_keys_map_to_distinct_keys_within_s3_limits() -> None:
    """Keys that differ only in extension, case, escaping or far beyond S3's limit never share an output."""
    seen: dict[str, str] = {}
    for key in TWINS:
        k = output_keys(key)
        assert k == output_keys(key)  # deterministic
        for kind, derived in k.items():
            if kind == "source_id":
                continue
            assert len(derived.encode("utf-8")) <= 1024, (key[:30], kind, len(derived))
            assert derived.isascii() and "\\" not in derived and "'" not in derived and " " not in derived
            assert "//" not in derived and not any(seg in (".", "..") for seg in derived.split("/"))
            folded = derived.lower()  # distinct even for case-insensitive tools
            assert folded not in seen, (key[:40], seen.get(folded, "")[:40], derived[:60])
            seen[folded] = key
    assert len(seen) == 4 * len(TWINS)
    # very long prefixes still fit
    long = output_keys("input/" + "b" * 1000 + ".csv", output_prefix="o" * 300 + "/", reports_prefix="r" * 400 + "/")
    assert all(len(v.encode()) <= 1024 for v in long.values())


# ---------------------------------------------------------------------------------------------
# bounded memory: duplicate-key counter, read-ahead bound, no pandas import
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["int", "negative_int", "string"])
def test_key_counter_spilled_matches_in_memory(kind: str) -> None:
    import random
    from collections import Counter

    import pyarrow as pa

    from etl_runtime.dupcount import KeyCounter

    rnd = random.Random(7)
    if kind == "string":
        keys = [f"k{rnd.randrange(3000)}" + "é" * rnd.randrange(2) for _ in range(10_000)] + ["", ""]
        typ = pa.string()
    else:
        sign = -1 if kind == "negative_int" else 1
        keys = [sign * rnd.randrange(3000) * 256 for _ in range(5000)] + [rnd.randrange(10**12) for _ in range(5000)]
        typ = pa.int64()
    counts = Counter(keys)
    expected = (sum(1 for c in counts.values() if c > 1), sum(c - 1 for c in counts.values() if c > 1))
    spilled, small = KeyCounter(spill_rows=1500), KeyCounter()
    for i in range(0, len(keys), 700):
        chunk = pa.array(keys[i:i + 700], typ)
        spilled.add(chunk)
        small.add(chunk)
    assert spilled._dir is not None and len(spilled._writers) > 16
    assert spilled.result() == expected
    assert small._dir is None and small.result() == expected
    assert KeyCounter().result() == (0, 0)


def test_duplicate_keys_counted_through_transform() -> None:
    body = "\n".join([HEADER] + [row(i % 40) for i in range(100)]) + "\n"
    pq_buf, q_buf = io.BytesIO(), io.BytesIO()
    report = transform_stream(io.BytesIO(body.encode()), SEED_CONTRACT, pq_buf, q_buf, source_name="t")
    assert report["duplicate_keys_in_file"] == 40 and report["duplicate_rows_in_file"] == 60


def test_source_reader_bounds_live_buffers() -> None:
    import gc
    import threading

    from etl_runtime.csvread import SourceReader

    src = SourceReader(io.BytesIO(b"x" * 1000))
    src.bound_buffers(2, wait=0.2)
    a, b = src.read(100), src.read(100)
    assert bytes(a) == b"x" * 100 and src.max_live_seen == 2
    done: list[Any] = []
    t = threading.Thread(target=lambda: done.append(src.read(100)))
    t.start()
    t.join(0.05)
    assert not done  # blocked: two buffers alive
    del a
    gc.collect()
    t.join(1)
    assert done and src.bound_waits == 0
    done.clear()
    del b
    gc.collect()
    src.bound_buffers(1, wait=0.05)
    keep = src.read(100)
    waits = src.bound_waits
    more = src.read(100)
    assert len(more) == 100 and src.bound_waits == waits + 1  # never blocks for good
    del keep, more
    assert bytes(src.read(-1)) == b"x" * 500


def test_transform_does_not_import_pandas() -> None:
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from etl_runtime.transform import transform_stream\n"
        f"SEED_CONTRACT = {dict(SEED_CONTRACT)!r}\n"
        f"body = {(HEADER + chr(10) + row(1) + chr(10) + row(1, odate='2/30/2010') + chr(10)).encode()!r}\n"
        "r = transform_stream(io.BytesIO(body), SEED_CONTRACT, io.BytesIO(), io.BytesIO(), source_name='t')\n"
        "assert r['rows_written'] == 1 and r['rows_quarantined'] == 1, r\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fast_paths_agree_with_the_reference_check(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cached dictionary checks and the regex-free numeric path give exactly what the plain check gives.

    Batches of a few hundred rows mix clean runs (the fast paths) with every kind of edge value
    (signs, leading zeros, exponents, hex, whitespace, null spellings, impossible dates, too many
    decimals), so caches grow across batches and batches switch between fast and full checks.
    """
    import random

    from etl_runtime import checks

    rnd = random.Random(5)
    odd_numbers = ["+12", "-3", "007", "1e3", "0x10", " 42 ", "", "NULL", "n/a", "12.3.4", "1.234", "1.230", ".5",
                   "-.5", "1.", "+", "-", "0000000000000000012.5", "000000000000000012", "12345678901234567",
                   "1234567890123456789"]
    odd_dates = ["2/30/2014", " 5/28/2010", "13/1/2010", "", "NULL", "2/29/2012", "2/29/2013", "1/1/0"]
    odd_text = ["  Tuvalu ", "", "NULL", "x" * 300, "Côte d'Ivoire"]
    # one odd value every 250 rows, so most ~130-row batches hold none or exactly one of them
    combos = [(f, v) for f in ("oid", "units", "price", "revenue") for v in odd_numbers]
    combos += [("odate", v) for v in odd_dates] + [("country", v) for v in odd_text]
    rows_ = [HEADER]
    for i in range(1, 250 * len(combos) + 1):
        kw: dict[str, Any] = {"country": rnd.choice(["Tuvalu", "Chad", "Peru"]),
                              "odate": f"{rnd.randint(1, 12)}/{rnd.randint(1, 28)}/{rnd.randint(2010, 2017)}",
                              "units": str(rnd.randint(1, 9999)), "price": rnd.choice(["1.10", "9.33", "205.70"]),
                              "revenue": f"{rnd.randint(0, 10**7)}.{rnd.randint(0, 99):02d}"}
        oid: Any = 100_000 + i
        if i % 250 == 0:
            field, value = combos[i // 250 - 1]
            if field == "oid":
                oid = value
            else:
                kw[field] = value
        rows_.append(row(oid, **kw).replace("Côte d'Ivoire", '"Côte d\'Ivoire"'))
    data = lines(*rows_)
    fast = run(data, engine, block_size=16384)
    monkeypatch.setattr(checks.ColumnChecker, "check",
                        lambda self, raw: checks.check_plain(raw, self.rule, self.null_set))
    ref = run(data, engine, block_size=16384)
    assert fast.rows == ref.rows
    assert fast.quarantine == ref.quarantine
    assert fast.report["null_counts"] == ref.report["null_counts"]
    assert fast.report["rejects_by_reason"] == ref.report["rejects_by_reason"]
    assert len(fast.quarantine) > 50 and len(fast.rows) > 20000

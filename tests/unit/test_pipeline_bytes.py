"""Job 1 on hostile bytes: NUL, undecodable bytes, encodings (detected or declared), over-long lines.

Every case asserts the quarantined row with its reason AND that every other row is written
(``run`` checks rows read = written + quarantined).
"""

from __future__ import annotations

import codecs
import gzip
from typing import Any

import pytest

from etl_kit.config import SEED_CONTRACT
from tests.unit.test_pipeline_transform import HEADER, lines, rejected, row, run

pytestmark = pytest.mark.unit

AUTO = dict(SEED_CONTRACT, encoding="auto")


def ids(r: Any) -> list[int]:
    return [x["order_id"] for x in r.rows]


def test_nul_byte_in_one_row_quarantines_that_row(engine: str) -> None:
    data = lines(HEADER, row(1), row(2, country="Tu\x00valu"), row(3), row(4, item="\x00"), row(5)).encode()
    r = run(data, engine)
    assert r.rejects() == [(3, "nul_byte", "country"), (5, "nul_byte", "item_type")]
    at = data.index(b"Tu\x00") + 2
    assert f"NUL byte at byte offset {at}" == r.quarantine[0]["value"]
    assert "\x00" not in r.quarantine[0]["raw_record"] and "Tu\ufffdvalu" in r.quarantine[0]["raw_record"]
    assert ids(r) == [1, 3, 5]
    assert r.report["rejects_by_reason"] == {"nul_byte": 2}


def test_nul_in_an_ignored_column_and_in_a_ragged_row(engine: str) -> None:
    data = lines(HEADER, row(1, channel="On\x00line"), "a,\x00,c", row(3), row(4, units="x")).encode()
    r = run(data, engine)
    assert r.rejects() == [(2, "nul_byte", "#4"), (3, "nul_byte", ""), (5, "not_an_integer", "units_sold")]
    assert ids(r) == [3]


def test_invalid_utf8_in_one_row_quarantines_that_row_with_its_offset(engine: str) -> None:
    good = lines(HEADER, row(1, country="Côte d'Ivoire")).encode()
    bad = row(2, country="Bad").encode().replace(b"Bad", b"B\xff\xfed")  # two invalid bytes: one problem
    tail = lines("", row(3, country="日本"), final=True).encode()[2:]
    data = good + bad + b"\r\n" + tail
    r = run(data, engine, dict(SEED_CONTRACT, encoding="utf-8"))
    assert r.rejects() == [(3, "invalid_encoding", "country")]
    at = data.index(b"\xff")
    assert f"0xfffe not valid utf-8 at byte offset {at}" in r.quarantine[0]["value"]
    assert ids(r) == [1, 3] and r.rows[0]["country"] == "Côte d'Ivoire" and r.rows[1]["country"] == "日本"


def test_truncated_utf8_sequence_at_the_end(engine: str) -> None:
    data = lines(HEADER, row(1), row(2, country="X"), final=False).encode()[:-len(",6.00")] + b"\xe2\x82"
    r = run(data, engine, dict(SEED_CONTRACT, encoding="utf-8"))
    assert [q[1] for q in r.rejects()] == ["invalid_encoding"] and ids(r) == [1]


def test_windows_1252_export_is_detected_and_the_euro_sign_survives(engine: str) -> None:
    text = lines(HEADER, row(1, country="Côte d'Ivoire"), row(2, item="Price in € – “quoted”"), row(3))
    data = text.encode("cp1252")
    assert b"\x80" in data
    r = run(data, engine, AUTO)
    assert r.report["encoding"] == "cp1252" and r.report["encoding_detected"] is True
    assert r.rows[0]["country"] == "Côte d'Ivoire" and r.rows[1]["item_type"] == "Price in € – “quoted”"
    # the same text in UTF-8 stays UTF-8 (valid UTF-8 wins), with or without a BOM
    r = run(text.encode("utf-8"), engine, AUTO)
    assert r.report["encoding"] == "utf-8" and r.rows[1]["item_type"] == "Price in € – “quoted”"
    r = run(codecs.BOM_UTF8 + text.encode("utf-8"), engine, AUTO)
    assert r.report["bom"] is True and r.rows[0]["country"] == "Côte d'Ivoire"
    # a list of allowed encodings behaves like auto among them; gzip too
    r = run(gzip.compress(data), engine, dict(SEED_CONTRACT, encoding=["utf-8", "windows-1252"]))
    assert r.report["encoding"] == "cp1252" and r.rows[1]["item_type"] == "Price in € – “quoted”"


def test_cp1252_detection_happens_at_the_first_non_ascii_block(engine: str) -> None:
    rows_ = [row(i) for i in range(1, 3000)] + [row(3000, country="Curaçao")]
    data = lines(HEADER, *rows_).encode("cp1252")
    r = run(data, engine, AUTO, block_size=8192)
    assert r.rows[-1]["country"] == "Curaçao" and len(r.rows) == 3000


def test_cp1252_undefined_byte_is_a_row_reject(engine: str) -> None:
    data = lines(HEADER, row(1, country="Curaçao"), row(2, country="AxB"), row(3)).encode("cp1252")
    data = data.replace(b"AxB", b"A\x81B")  # 0x81 is undefined in Windows-1252
    r = run(data, engine, dict(SEED_CONTRACT, encoding="cp1252"))
    assert r.rejects() == [(3, "invalid_encoding", "country")] and "0x81" in r.quarantine[0]["value"]
    assert ids(r) == [1, 3] and r.rows[0]["country"] == "Curaçao"


def test_mostly_utf8_file_with_one_broken_byte_keeps_utf8(engine: str) -> None:
    data = lines(HEADER, row(1, country="Côte"), row(2, country="Curaçao"), row(3, country="Xy")).encode()
    data = data.replace(b"Xy", b"X\xe9")
    r = run(data, engine, AUTO)
    assert r.report["encoding"] == "utf-8"
    assert r.rejects() == [(4, "invalid_encoding", "country")] and ids(r) == [1, 2]


def test_utf16_with_bom(engine: str) -> None:
    text = lines(HEADER, row(1, country="Côte"), row(2, item="€"))
    for data in (codecs.BOM_UTF16_LE + text.encode("utf-16-le"), codecs.BOM_UTF16_BE + text.encode("utf-16-be")):
        r = run(data, engine, AUTO)
        assert r.report["encoding"].startswith("utf-16") and r.report["bom"] is True
        assert r.rows[0]["country"] == "Côte" and r.rows[1]["item_type"] == "€"
    exc = rejected(codecs.BOM_UTF16_LE + text.encode("utf-16-le"), engine, dict(SEED_CONTRACT, encoding="utf-8"))
    assert exc.reason == "not_decodable" and "UTF-16" in str(exc) and "utf-16" in str(exc)


def test_unknown_encoding_name_rejects_with_the_fix(engine: str) -> None:
    exc = rejected(lines(HEADER, row(1)), engine, dict(SEED_CONTRACT, encoding="klingon"))
    assert exc.reason == "not_decodable" and "klingon" in str(exc)


def test_line_longer_than_the_limit_is_a_row_reject_and_the_reader_resyncs(engine: str) -> None:
    long_item = "x" * 5000
    data = lines(HEADER, row(1), row(2, item=long_item), row(3), row(4, item="y" * 3000), row(5))
    r = run(data, engine, dict(SEED_CONTRACT, max_line_bytes=2048))
    assert r.rejects() == [(3, "line_too_long", ""), (5, "line_too_long", "")]
    assert "more than max_line_bytes 2048" in r.quarantine[0]["value"]
    assert ids(r) == [1, 3, 5] and r.lines() == [2, 4, 6]


def test_field_longer_than_the_warehouse_column_but_under_the_line_limit(engine: str) -> None:
    r = run(lines(HEADER, row(1, item="z" * 200_000), row(2)), engine)
    assert r.rejects() == [(2, "string_too_long", "item_type")] and ids(r) == [2]


def test_one_huge_line_without_a_newline_ends_with_a_reason(engine: str) -> None:
    # 5 MB and no newline at all: the header itself is too long
    exc = rejected(b"a" * (5 << 20), engine)
    assert exc.reason == "line_too_long" and exc.report["state"] == "rejected"
    # a header, one good row, then 5 MB without a newline: the good row loads
    data = lines(HEADER, row(1)).encode() + b"b" * (5 << 20)
    r = run(data, engine)
    assert r.rejects() == [(3, "line_too_long", "")] and ids(r) == [1]


def test_over_long_line_inside_a_quoted_field_rejects_the_file(engine: str) -> None:
    data = lines(HEADER, row(1), row(2, item='"starts a quote ' + "q" * 4000), row(3))
    exc = rejected(data, engine, dict(SEED_CONTRACT, max_line_bytes=2048))
    assert exc.reason == "line_too_long" and "quoted" in str(exc)


def test_utf16_without_bom_and_a_wrong_encoding_say_what_to_declare(engine: str) -> None:
    text = lines(HEADER, row(1), row(2))
    exc = rejected(text.encode("utf-16-le"), engine, dict(SEED_CONTRACT, encoding="auto"))
    assert exc.reason == "not_decodable" and "UTF-16 without a BOM" in str(exc) and "utf-16-le" in str(exc)
    r = run(text.encode("utf-16-le"), engine, dict(SEED_CONTRACT, encoding="utf-16-le"))
    assert [x["order_id"] for x in r.rows] == [1, 2]
    # a Windows-1252 file under a UTF-8-only contract: too many invalid rows, and the message says why
    data = lines(HEADER, row(1, country="Côte"), row(2, country="Curaçao"), row(3)).encode("cp1252")
    exc = rejected(data, engine, dict(SEED_CONTRACT, encoding="utf-8"), max_reject_ratio=0.5)
    assert exc.reason == "too_many_rejects" and "invalid_encoding=2" in str(exc) and "auto" in str(exc)
    assert exc.report["rows_quarantined"] == 2 and exc.report["rows_read"] == 3


def test_any_bytes_end_in_a_report_or_a_file_reject(engine: str) -> None:
    """Mutated and random inputs: job 1 never raises anything but a file reject, and rows are conserved."""
    import random

    from etl_kit.exceptions import FileRejected

    rnd = random.Random(11)
    base = lines(HEADER, *[row(i, country=rnd.choice(["Chad", "Côte", '"A, B"'])) for i in range(1, 40)]).encode()
    specials = [b"\x00", b"\xff", b"\xc3", b'"', b"\r", b"\n", b",", b"\xef\xbb\xbf", b"\x1f\x8b", b"\xe2\x82\xac"]
    outcomes = set()
    for case in range(150):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 12)):
            pos = rnd.randrange(len(data))
            data[pos:pos + rnd.randint(0, 3)] = rnd.choice(specials)
        if case % 10 == 0:
            data = bytearray(rnd.randbytes(rnd.randint(0, 3000)))
        contract = dict(SEED_CONTRACT, encoding=rnd.choice(["auto", "utf-8", ["utf-8", "cp1252"]]), max_line_bytes=1024)
        try:
            r = run(bytes(data), engine, contract)
        except FileRejected as exc:
            assert exc.report["state"] == "rejected" and exc.reason, exc
            outcomes.add(exc.reason)
        else:
            assert "\x00" not in "".join(str(v) for x in r.rows for v in x.values())
            outcomes.add("transformed")
    assert "transformed" in outcomes and len(outcomes) >= 3, outcomes

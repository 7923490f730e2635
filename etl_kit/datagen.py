"""Synthetic "Sales Records" CSVs of any size, with known good rows, bad rows and money totals.

Runs in the kit (numpy and pyarrow), not in Glue. Vectorised and chunked: 5M rows take seconds.
Money is generated in integer cents, so ``Total Revenue = Units Sold x Unit Price`` holds exactly
and the returned totals are exact :class:`~decimal.Decimal` sums that validation can reconcile.
"""

from __future__ import annotations

import contextlib
import gzip as _gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HEADER", "BAD_REASONS", "GeneratedInfo", "generate_sales_csv"]

HEADER = [
    "Region", "Country", "Item Type", "Sales Channel", "Order Priority", "Order Date", "Order ID", "Ship Date",
    "Units Sold", "Unit Price", "Unit Cost", "Total Revenue", "Total Cost", "Total Profit",
]
# reason codes as job 1 reports them (etl_runtime.transform)
BAD_REASONS = ("missing_value", "not_an_integer", "invalid_date", "not_a_decimal")

_COUNTRIES = [
    ("Australia and Oceania", "Tuvalu"), ("Australia and Oceania", "Samoa"), ("Australia and Oceania", "Fiji"),
    ("Central America and the Caribbean", "Grenada"), ("Central America and the Caribbean", "Haiti"),
    ("Central America and the Caribbean", "Honduras"), ("Europe", "Russia"), ("Europe", "Iceland"),
    ("Europe", "Bulgaria"), ("Europe", "Norway"), ("Europe", "Portugal"), ("Europe", "Montenegro"),
    ("Sub-Saharan Africa", "Sao Tome and Principe"), ("Sub-Saharan Africa", "Rwanda"),
    ("Sub-Saharan Africa", "Cote d'Ivoire"), ("Sub-Saharan Africa", "Senegal"), ("Sub-Saharan Africa", "Kenya"),
    ("Middle East and North Africa", "Libya"), ("Middle East and North Africa", "Azerbaijan"),
    ("Middle East and North Africa", "Oman"), ("Asia", "Mongolia"), ("Asia", "Bangladesh"), ("Asia", "Vietnam"),
    ("Asia", "Japan"), ("North America", "Canada"), ("North America", "Mexico"), ("North America", "Greenland"),
]
# item type -> (unit price, unit cost) in cents, as in the public data set
_ITEMS = [
    ("Baby Food", 25528, 15942), ("Beverages", 4745, 3179), ("Cereal", 20570, 11711), ("Clothes", 10928, 3584),
    ("Cosmetics", 43720, 26333), ("Fruits", 933, 692), ("Household", 66827, 50254), ("Meat", 42189, 36469),
    ("Office Supplies", 65121, 52496), ("Personal Care", 8173, 5667), ("Snacks", 15258, 9744),
    ("Vegetables", 15406, 9093),
]
_PRIORITIES = ["H", "M", "L", "C"]
_START = np.datetime64("2010-01-01")
_DAYS = int((np.datetime64("2017-07-28") - _START).astype(int))
_ID_MOD = 899_999_999  # ids are 100000000 + (a*i + b) mod _ID_MOD: unique for i < _ID_MOD
_ID_MUL = 472_882_049  # gcd(_ID_MUL, _ID_MOD) == 1


@dataclass
class GeneratedInfo:
    """What :func:`generate_sales_csv` wrote."""

    rows: int
    good_rows: int
    bad_rows: int
    bad_rows_by_reason: dict[str, int]
    total_revenue: Decimal  # over good rows
    total_profit: Decimal  # over good rows
    bytes_written: int = 0
    path: str | None = None
    header: list[str] = field(default_factory=lambda: list(HEADER))


def _cents(a: np.ndarray) -> pa.Array:
    whole = pa.array(a // 100).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(a % 100).cast(pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


def _dates(days: np.ndarray) -> pa.Array:
    d64 = _START + days.astype("timedelta64[D]")
    months = d64.astype("datetime64[M]")
    y = months.astype("datetime64[Y]").astype(np.int64) + 1970
    m = months.astype(np.int64) % 12 + 1
    d = (d64 - months).astype(np.int64) + 1
    return pc.binary_join_element_wise(
        pa.array(m).cast(pa.string()), pa.array(d).cast(pa.string()), pa.array(y).cast(pa.string()), "/"
    )


def _pick(options: list[str], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(options, pa.string()), pa.array(idx))


@dataclass(frozen=True)
class _BadRows:
    """Where the deliberately broken rows go (sorted positions) and how each is broken (index in BAD_REASONS)."""

    positions: np.ndarray
    kinds: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, rows: int, bad_rows: int) -> _BadRows:
        positions = np.sort(rng.choice(rows, size=bad_rows, replace=False)) if bad_rows else np.array([], np.int64)
        return cls(positions, np.arange(bad_rows) % len(BAD_REASONS))

    def by_reason(self) -> dict[str, int]:
        return {r: int((self.kinds == i).sum()) for i, r in enumerate(BAD_REASONS)}


@dataclass
class _Chunk:
    """One chunk's 14 text columns (HEADER order) and its money in cents."""

    cols: list[pa.Array]
    revenue: np.ndarray
    profit: np.ndarray
    good: np.ndarray


def _chunk(rng: np.random.Generator, start: int, n: int, id_offset: int) -> _Chunk:
    """Rows ``start .. start + n`` (the draws happen in a fixed order: the same seed gives the same bytes)."""
    ci = rng.integers(0, len(_COUNTRIES), n)
    ii = rng.integers(0, len(_ITEMS), n)
    units = rng.integers(1, 10_001, n).astype(np.int64)
    price = np.array([p for _, p, _ in _ITEMS], np.int64)[ii]
    cost = np.array([c for _, _, c in _ITEMS], np.int64)[ii]
    revenue = units * price
    total_cost = units * cost
    order_days = rng.integers(0, _DAYS, n)
    ship_days = order_days + rng.integers(0, 51, n)
    ids = 100_000_000 + (_ID_MUL * (np.arange(start, start + n, dtype=np.int64)) + id_offset) % _ID_MOD
    country = _pick([c for _, c in _COUNTRIES], ci)
    trailing = rng.random(n) < 0.02  # the public data has trailing spaces in some country names
    country = pc.if_else(pa.array(trailing), pc.binary_join_element_wise(country, "", " "), country)
    channel = _pick(["Online", "Offline"], rng.integers(0, 2, n))
    channel = pc.if_else(pa.array(rng.random(n) < 0.01), "", channel)  # and a missing Sales Channel
    cols = [
        _pick([r for r, _ in _COUNTRIES], ci), country, _pick([i for i, _, _ in _ITEMS], ii), channel,
        _pick(_PRIORITIES, rng.integers(0, 4, n)), _dates(order_days), pa.array(ids).cast(pa.string()),
        _dates(ship_days), pa.array(units).cast(pa.string()), _cents(price), _cents(cost), _cents(revenue),
        _cents(total_cost), _cents(revenue - total_cost),
    ]
    return _Chunk(cols, revenue, revenue - total_cost, np.ones(n, bool))


# Where each kind of bad row is broken: (HEADER index, the text put there).
_BREAKS = {"missing_value": (6, ""), "not_an_integer": (8, "twelve"), "invalid_date": (5, "2/30/2014"),
           "not_a_decimal": (9, "12.3.4")}  # Order ID, Units Sold, Order Date, Unit Price


def _break_rows(chunk: _Chunk, bad: _BadRows, start: int) -> None:
    """Break the chunk's bad rows in place and mark them not good."""
    sel = (bad.positions >= start) & (bad.positions < start + len(chunk.good))
    if not sel.any():
        return
    cols = [c.to_pylist() for c in chunk.cols]
    for pos, kind in zip(bad.positions[sel] - start, bad.kinds[sel], strict=True):
        chunk.good[pos] = False
        column, text = _BREAKS[BAD_REASONS[kind]]
        cols[column][pos] = text
    chunk.cols = [pa.array(c, pa.string()) for c in cols]


@contextlib.contextmanager
def _output(path_or_file: str | Path | IO[bytes], gzip: bool) -> Iterator[tuple[Any, _Counting]]:
    """The stream to write (gzip or not) and the byte counter under it; closes what it opened."""
    own = isinstance(path_or_file, (str, Path))
    raw: Any = open(path_or_file, "wb") if isinstance(path_or_file, (str, Path)) else path_or_file  # noqa: SIM115
    counter = _Counting(raw)
    out: Any = _gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=1, mtime=0) if gzip else counter
    try:
        yield out, counter
    finally:
        if gzip:
            out.close()
        if own:
            raw.close()


def generate_sales_csv(
    path_or_file: str | Path | IO[bytes],
    rows: int,
    *,
    seed: int = 42,
    bad_rows: int = 0,
    crlf: bool = True,
    gzip: bool = False,
    chunk_rows: int = 250_000,
) -> GeneratedInfo:
    """Write a Sales Records CSV (14 columns, ``M/d/yyyy`` dates, 2-decimal money).

    Parameters
    ----------
    path_or_file
        Target path or binary file object.
    rows
        Data rows (excluding the header).
    seed
        Random seed; the same arguments give the same bytes.
    bad_rows
        Rows deliberately broken, spread over :data:`BAD_REASONS` round-robin (blank Order ID, text in
        Units Sold, impossible Order Date such as 2/30/2014, text in Unit Price).
    crlf
        CRLF line ends like the public file (else LF).
    gzip
        Gzip-compress the output.

    Returns
    -------
    GeneratedInfo
        Counts and the exact Decimal totals of Total Revenue and Total Profit over good rows.
    """
    if rows < 0 or bad_rows < 0 or bad_rows > rows:
        raise ValueError("need 0 <= bad_rows <= rows")
    if rows >= _ID_MOD:
        raise ValueError(f"at most {_ID_MOD - 1} rows")
    if math.gcd(_ID_MUL, _ID_MOD) != 1:  # pragma: no cover - constant check
        raise AssertionError("id multiplier must be coprime")
    rng = np.random.default_rng(seed)
    eol = "\r\n" if crlf else "\n"
    bad = _BadRows.draw(rng, rows, bad_rows)
    id_offset = int(rng.integers(0, _ID_MOD))
    revenue_total = profit_total = 0
    with _output(path_or_file, gzip) as (out, counter):
        out.write((",".join(HEADER) + eol).encode("utf-8"))
        for start in range(0, rows, chunk_rows):
            chunk = _chunk(rng, start, min(chunk_rows, rows - start), id_offset)
            _break_rows(chunk, bad, start)
            revenue_total += int(chunk.revenue[chunk.good].sum())
            profit_total += int(chunk.profit[chunk.good].sum())
            lines = pc.binary_join_element_wise(*chunk.cols, ",")
            out.write((eol.join(lines.to_pylist()) + eol).encode("utf-8"))
    return GeneratedInfo(
        rows=rows,
        good_rows=rows - bad_rows,
        bad_rows=bad_rows,
        bad_rows_by_reason=bad.by_reason(),
        total_revenue=Decimal(revenue_total).scaleb(-2),
        total_profit=Decimal(profit_total).scaleb(-2),
        bytes_written=counter.count,
        path=str(path_or_file) if isinstance(path_or_file, (str, Path)) else None,
    )


class _Counting(io.RawIOBase):
    """Pass-through writer that counts bytes."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._raw.write(b)
        self.count += len(b)
        return len(b)

"""Job 1: validate one CSV object against the dataset contract and write Parquet plus quarantine.

Runs inside AWS Glue Python shell (Python 3.9) and unchanged in the local cloud. Dependencies:
stdlib, boto3 and pyarrow only. Glue's Python shell 3.9 ships pyarrow in its ``analytics``
library set (job argument ``library-set: analytics``); the fast tokenizer needs
``pyarrow.csv.ParseOptions.invalid_row_handler`` (pyarrow >= 8) and falls back to the stdlib
``csv`` module on older pyarrow (same results, slower) — pin a newer pyarrow with
``--additional-python-modules`` for speed.

Streaming: the source is read in blocks, validated per batch with ``pyarrow.compute`` and written
as Parquet row groups as it goes; memory does not grow with file size (primary keys for the
duplicate count are spilled to disk in hash partitions).

Decisions
---------
- Encoding: one of those the contract allows (``auto``: UTF-8, UTF-16 with BOM, Windows-1252; valid
  UTF-8 wins, see ``csvread.SourceReader``). Bytes that do not decode, NUL bytes and lines over
  ``max_line_bytes`` quarantine their record (``invalid_encoding`` with the byte offset, ``nul_byte``,
  ``line_too_long``); the other records load. Never a silent latin-1 fallback.
- Rules: per-column ``min``/``max`` and the contract's ``checks`` run on the typed columns, vectorised;
  ``quarantine`` rules reject the row with the rule's name, ``warn`` rules count in ``warnings_by_rule``.
- Decimals: more significant decimal places than the column's ``scale`` is a row reject
  (``too_many_decimal_places``); values are never rounded. Trailing zeros are fine.
- Blank records (every field empty, e.g. empty lines) are not data rows: skipped and counted in
  ``blank_rows_skipped``; everything else is read and ends written or quarantined
  (``rows_read == rows_written + rows_quarantined``).
- Duplicate primary keys within a file are all written; the report counts them
  (``duplicate_keys_in_file``). Job 2 keeps the row with the highest ``source_line`` per key, and
  across files the later load wins (MERGE).
- Quarantine is CSV (UTF-8) with columns ``source_line, reason, column, value, raw_record``; one row
  per rejected record, the first failing column in contract order. ``raw_record`` is the record's
  fields re-joined with the source delimiter (verbatim text for ragged records).
"""

from __future__ import annotations

import array
import contextlib
import csv
import hashlib
import io
import json
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_runtime.contract import (
    LINEAGE_COLUMNS,
    MAX_STRING_BYTES,
    ColumnRule,
    CompiledContract,
    DuplicateHeader,
    compile_contract,
    parquet_schema,
)
from etl_runtime.csvread import (
    ByteProblem,
    SourceProblem,
    SourceReader,
    int64_array,
    iter_batches,
    read_header,
)
from etl_runtime.errors import FileRejected

__all__ = [
    "TransformRejected",
    "transform_stream",
    "run_csv_to_parquet",
    "source_id",
    "output_keys",
    "QUARANTINE_COLUMNS",
]

QUARANTINE_COLUMNS = ["source_line", "reason", "column", "value", "raw_record"]


# Constants are built from buffers, and compute calls get Arrow scalars rather than Python values:
# turning a Python object into Arrow (``pa.array``, ``pa.scalar``, a bare ``1`` in ``pc.add(x, 1)``)
# makes pyarrow import pandas to check for pandas types, ~40 MB of RSS job 1 does not need.
def _int64s(values: List[int]) -> pa.Array:
    return int64_array(values)


def _strings(values: List[str]) -> pa.Array:
    data = [v.encode("utf-8") for v in values]
    offsets = [0]
    for d in data:
        offsets.append(offsets[-1] + len(d))
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(array.array("i", offsets)), pa.py_buffer(b"".join(data))])


_I = {v: _int64s([v])[0]
      for v in (0, 1, 2, 3, 4, 5, 8, 12, 31, 100, 128, 131, 153, 255, 365, 400, 2000, 146097, 719468)}
_NULL_I64 = pa.nulls(1, pa.int64())[0]
_NULL_STR = pa.nulls(1, pa.string())[0]
_ONE = _I[1]
_MAX_STRING_BYTES = _int64s([MAX_STRING_BYTES])[0]
_MONTH_DAYS = _int64s([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_ASCII = _strings([chr(i) for i in range(128)])


class TransformRejected(FileRejected):
    """The whole file is rejected; ``report`` holds what was learnt before the rejection."""

    def __init__(self, message: str, *, reason: str, report: Dict[str, Any], bucket: str = "", key: str = "") -> None:
        super().__init__(message, reason=reason, bucket=bucket, key=key)
        self.report = report


# ---------------------------------------------------------------------------------------------
# per-column vectorised checks
# ---------------------------------------------------------------------------------------------
def _date_days(v: pa.Array, rule: ColumnRule) -> pa.Array:
    """Days since epoch (int32) for values that are real dates in one of the formats, else null."""
    result = None
    for fmt in rule.date_formats:
        parts = pc.extract_regex(v, fmt.regex)
        # flatten() carries the struct's validity into the children (non-matching values become null)
        f = dict(zip([parts.type.field(i).name for i in range(parts.type.num_fields)], parts.flatten()))
        y = pc.cast(f["y"], pa.int64())
        m = pc.cast(f["m"], pa.int64())
        d = pc.cast(f["d"], pa.int64())
        if fmt.two_digit_year:
            y = pc.add(y, _I[2000])
        m_ok = pc.and_(pc.greater_equal(m, _I[1]), pc.less_equal(m, _I[12]))
        mi = pc.if_else(m_ok, m, _I[0])
        leap = pc.or_(
            pc.and_(pc.equal(_mod(y, 4), _I[0]), pc.not_equal(_mod(y, 100), _I[0])), pc.equal(_mod(y, 400), _I[0])
        )
        dim = pc.add(pc.take(_MONTH_DAYS, mi), pc.cast(pc.and_(leap, pc.equal(mi, _I[2])), pa.int64()))
        ok = pc.and_(pc.and_(m_ok, pc.greater_equal(y, _I[1])),
                     pc.and_(pc.greater_equal(d, _I[1]), pc.less_equal(d, dim)))
        # days_from_civil (H. Hinnant), valid for year >= 1 where integer division truncates correctly
        feb = pc.cast(pc.less_equal(m, _I[2]), pa.int64())
        y2 = pc.subtract(y, feb)
        era = pc.divide(y2, _I[400])
        yoe = pc.subtract(y2, pc.multiply(era, _I[400]))
        mp = pc.add(m, pc.subtract(pc.multiply(feb, _I[12]), _I[3]))
        doy = pc.add(pc.divide(pc.add(pc.multiply(mp, _I[153]), _I[2]), _I[5]), pc.subtract(d, _I[1]))
        doe = pc.add(pc.add(pc.multiply(yoe, _I[365]), pc.divide(yoe, _I[4])),
                     pc.subtract(doy, pc.divide(yoe, _I[100])))
        days = pc.subtract(pc.add(pc.multiply(era, _I[146097]), doe), _I[719468])
        days = pc.if_else(ok, days, _NULL_I64)
        result = days if result is None else pc.coalesce(result, days)
    assert result is not None
    return pc.cast(pc.cast(result, pa.int32()), pa.date32())


def _mod(a: pa.Array, k: int) -> pa.Array:
    ks = _I[k]
    return pc.subtract(a, pc.multiply(pc.divide(a, ks), ks))


class _Checked:
    """One column's validation result for a batch.

    ``isnull`` / ``fail`` are boolean arrays, or ``None`` when no value of the batch is null / failed
    (the common case costs no mask at all).
    """

    __slots__ = ("fail", "isnull", "raw", "typed")

    def __init__(self, isnull: Optional[pa.Array], fail: Optional[pa.Array], typed: pa.Array, raw: pa.Array) -> None:
        self.isnull = isnull
        self.fail = fail
        self.typed = typed
        self.raw = raw

    def values_at(self, rows: pa.Array) -> List[Any]:
        """Trimmed values at the given row indices (slow path for rejected rows)."""
        return pc.utf8_trim_whitespace(pc.take(self.raw, rows)).to_pylist()


def _check_plain(raw: pa.Array, rule: ColumnRule, null_set: pa.Array) -> _Checked:
    v = pc.utf8_trim_whitespace(raw)
    isnull = pc.is_in(v, value_set=null_set)
    if rule.type == "string":
        fail = pc.and_(pc.invert(isnull), pc.greater(pc.binary_length(v), _MAX_STRING_BYTES))
        good = pc.invert(pc.or_(isnull, fail))
        typed = pc.if_else(good, v, _NULL_STR)
    elif rule.type == "date":
        days = _date_days(v, rule)
        fail = pc.and_(pc.invert(isnull), pc.is_null(days))
        typed = days
    else:
        assert rule.ok_regex is not None
        ok = pc.match_substring_regex(v, rule.ok_regex)
        fail = pc.and_(pc.invert(isnull), pc.invert(ok))
        good = pc.and_(ok, pc.invert(isnull))
        src = pc.if_else(good, v, _NULL_STR)
        if rule.type == "integer":
            src = pc.utf8_ltrim(src, characters="+")  # arrow's int cast refuses a leading '+'
        typed = pc.cast(src, rule.arrow_type)
    if rule.required:
        fail = pc.or_(fail, isnull)
    return _Checked(isnull, fail, typed, raw)


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _value_bytes(raw: pa.Array) -> Optional[bytes]:
    """The bytes of all values of a string array, concatenated (None if not a plain string array)."""
    if raw.type != pa.string():
        return None
    bufs = raw.buffers()
    if bufs[2] is None:
        return b""
    offsets = memoryview(bufs[1]).cast("B")
    first, last = (int.from_bytes(offsets[4 * i:4 * i + 4], "little", signed=True)
                   for i in (raw.offset, raw.offset + len(raw)))
    return bufs[2].to_pybytes()[first:last]


_DIGITS = b"0123456789"
_DECIMAL_CHARS = b"0123456789.+-"


def _fast_numeric(raw: pa.Array, rule: ColumnRule) -> Optional[_Checked]:
    """Integer/decimal batch where every value is a plain, in-range number: cast without regex.

    Only values made of digits (integers) or digits, one point and a sign (decimals) qualify, no
    value empty, none longer than the digits the type allows (so leading zeros cannot hide an
    over-long number); arrow's cast then rejects anything else the rule rejects (two points, a bare
    sign, too many decimal places), except exponents and hex, which the byte check already excluded.
    Returns ``None`` when the batch needs the full check.
    """
    if rule.type == "integer":
        allowed, max_len = _DIGITS, 18
    elif rule.type == "decimal":
        allowed, max_len = _DECIMAL_CHARS, rule.precision - rule.scale
    else:
        return None
    if raw.null_count or max_len < 1:
        return None
    lengths = pc.min_max(pc.binary_length(raw)).as_py()
    if not lengths["min"] or lengths["max"] > max_len:
        return None
    data = _value_bytes(raw)
    if data is None or data.translate(None, allowed):
        return None
    try:
        typed = pc.cast(raw, rule.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _Checked(None, None, typed, raw)


class _ColumnChecker:
    """Validates one contract column batch by batch.

    Low-cardinality columns (dates, prices, countries ...) are dictionary-encoded and each distinct
    value is checked once per file: results are cached across batches (up to ``CACHE_MAX`` values).
    High-cardinality numbers (ids, totals) take :func:`_fast_numeric` when the batch is clean and the
    full regex check otherwise. The choice adapts per column.
    """

    CACHE_MAX = 1 << 16

    def __init__(self, rule: ColumnRule, null_set: pa.Array) -> None:
        self.rule = rule
        self.null_set = null_set
        self.use_dict = True
        self._known: Optional[pa.Array] = None  # distinct raw values seen so far
        self._k_isnull: Optional[pa.Array] = None
        self._k_fail: Optional[pa.Array] = None
        self._k_typed: Optional[pa.Array] = None
        self._any_null = False  # some cached value is a null spelling / fails its check
        self._any_fail = False

    def check(self, raw: pa.Array) -> _Checked:
        if len(raw) < 64 or raw.null_count:
            return _check_plain(raw, self.rule, self.null_set)
        if self.use_dict:
            if self._known is None:  # first batch: is the column of low cardinality?
                distinct = pc.unique(raw)
                if self.rule.type != "date" and len(distinct) * 4 > len(raw):
                    self.use_dict = False  # ids, totals: hashing every value does not pay
                else:
                    self._learn(distinct)
            cached = self._check_cached(raw) if self.use_dict else None
            if cached is not None:
                return cached
        fast = _fast_numeric(raw, self.rule)
        return fast if fast is not None else _check_plain(raw, self.rule, self.null_set)

    def _learn(self, new: pa.Array) -> None:
        """Check values not seen before and add them to the cache (or give the cache up when too big)."""
        c = _check_plain(new, self.rule, self.null_set)
        assert c.isnull is not None and c.fail is not None
        if self._known is None:
            self._known, self._k_isnull, self._k_fail, self._k_typed = new, c.isnull, c.fail, c.typed
        else:
            assert self._k_isnull is not None and self._k_fail is not None and self._k_typed is not None
            self._known = pa.concat_arrays([self._known, new])
            self._k_isnull = pa.concat_arrays([self._k_isnull, c.isnull])
            self._k_fail = pa.concat_arrays([self._k_fail, c.fail])
            self._k_typed = pa.concat_arrays([self._k_typed, c.typed])
        self._any_null = bool(self._any_null or _any(c.isnull))
        self._any_fail = bool(self._any_fail or _any(c.fail))
        if len(self._known) > self.CACHE_MAX:  # too many distinct values for a cache
            self.use_dict = False
            self._known = self._k_isnull = self._k_fail = self._k_typed = None

    def _check_cached(self, raw: pa.Array) -> Optional[_Checked]:
        pos = pc.index_in(raw, value_set=self._known)
        if pos.null_count:  # values not seen before
            new = pc.unique(pc.filter(raw, pc.is_null(pos)))
            if len(new) * 4 > len(raw):
                self.use_dict = False  # the column turned out to be of high cardinality
                self._known = self._k_isnull = self._k_fail = self._k_typed = None
                return None
            self._learn(new)
            if not self.use_dict:
                return None
            pos = pc.index_in(raw, value_set=self._known)
        assert self._k_isnull is not None and self._k_fail is not None and self._k_typed is not None
        typed = pc.take(self._k_typed, pos)
        isnull = pc.take(self._k_isnull, pos) if self._any_null else None
        fail = pc.take(self._k_fail, pos) if self._any_fail else None
        return _Checked(isnull if isnull is not None and _any(isnull) else None,
                        fail if fail is not None and _any(fail) else None, typed, raw)


# ---------------------------------------------------------------------------------------------
# duplicate keys with bounded memory
# ---------------------------------------------------------------------------------------------
class _KeyCounter:
    """Counts primary keys seen more than once with bounded memory.

    Keys are buffered in memory up to ``spill_rows``; past that they are hash-partitioned into
    ``PARTS`` (256) partitions spilled to Arrow IPC files in a temp dir, and the counting is done one
    partition at a time, so the working set of :meth:`result` is about ``rows / PARTS`` keys whatever
    the file size. Partitioning sorts each spill by partition (one counting sort) rather than
    filtering once per partition.
    """

    PARTS = 256

    def __init__(self, spill_rows: int = 500_000) -> None:
        self._mem: List[pa.Array] = []
        self._mem_rows = 0
        self._spill_rows = spill_rows
        self._dir: Optional[str] = None
        self._writers: Dict[int, Any] = {}
        self.min: Optional[int] = None  # smallest / largest key seen (integer keys only)
        self.max: Optional[int] = None

    def add(self, keys: pa.Array) -> None:
        if len(keys) == 0:
            return
        if pa.types.is_integer(keys.type):
            mm = pc.min_max(keys).as_py()
            self.min = mm["min"] if self.min is None else min(self.min, mm["min"])
            self.max = mm["max"] if self.max is None else max(self.max, mm["max"])
        self._mem.append(keys)
        self._mem_rows += len(keys)
        if self._mem_rows >= self._spill_rows:
            self._spill()

    def _partition_of(self, keys: pa.Array) -> pa.Array:
        """A partition number in [0, PARTS) per key, identical for equal keys."""
        mask = self.PARTS - 1
        if pa.types.is_integer(keys.type):
            k = pc.cast(keys, pa.int64(), safe=False)
            # mix high bits in, so keys that are multiples of PARTS still spread
            return pc.bit_wise_and(pc.bit_wise_xor(k, pc.shift_right(k, _I[8])), _I[mask])
        # strings: length and the last two characters (ASCII; anything else counts as 128)
        text = pc.cast(keys, pa.string())
        ln = pc.cast(pc.utf8_length(text), pa.int64())
        h = pc.multiply(ln, _I[31])
        for start, stop, mult in ((-1, None, 1), (-2, -1, 131)):
            ch = pc.utf8_slice_codeunits(text, start, stop)
            code = pc.fill_null(pc.cast(pc.index_in(ch, value_set=_ASCII), pa.int64()), _I[128])
            h = pc.add(h, pc.multiply(code, _I[mult]))
        return pc.bit_wise_and(h, _I[mask])

    def _spill(self) -> None:
        import pyarrow.ipc as ipc

        if not self._mem:
            return
        keys = pa.concat_arrays(self._mem) if len(self._mem) > 1 else self._mem[0]
        self._mem = []
        self._mem_rows = 0
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="etlkit-keys-")
        part = self._partition_of(keys)
        order = pc.sort_indices(part)
        keys = pc.take(keys, order)
        part = pc.take(part, order)
        vc = pc.value_counts(part)  # in order of first appearance, i.e. ascending partition
        start = 0
        for p, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            if p not in self._writers:
                sink = pa.OSFile(os.path.join(self._dir, f"p{p}.arrow"), "wb")
                self._writers[p] = (sink, ipc.new_stream(sink, pa.schema([pa.field("k", keys.type)])))
            self._writers[p][1].write_batch(pa.record_batch([keys.slice(start, n)], names=["k"]))
            start += n

    @staticmethod
    def _dups(keys: Any) -> Tuple[int, int]:
        counts = pc.value_counts(keys).field("counts")
        multi = pc.filter(counts, pc.greater(counts, _ONE))
        return len(multi), int(pc.sum(multi).as_py() or 0) - len(multi)

    def result(self) -> Tuple[int, int]:
        """(distinct keys seen more than once, rows beyond the first per key)."""
        import pyarrow.ipc as ipc

        try:
            if self._dir is None:  # small file: everything is still in memory (< spill_rows keys)
                if not self._mem:
                    return 0, 0
                return self._dups(pa.chunked_array(self._mem))
            self._spill()
            for sink, w in self._writers.values():
                w.close()
                sink.close()
            directory = self._dir

            def count(p: int) -> Tuple[int, int]:
                with pa.memory_map(os.path.join(directory, f"p{p}.arrow")) as f:
                    arrays = [b.column(0) for b in ipc.open_stream(f)]
                    return self._dups(pa.chunked_array(arrays))

            # partitions are independent and value_counts releases the GIL: count them on two threads
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=2) as pool:
                counts = list(pool.map(count, sorted(self._writers)))
            return sum(k for k, _ in counts), sum(r for _, r in counts)
        finally:
            self._mem = []
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the core transform
# ---------------------------------------------------------------------------------------------
def _csv_line(fields: List[Any], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()


def transform_stream(
    raw: BinaryIO,
    contract: Any,
    parquet_sink: Any,
    quarantine_sink: BinaryIO,
    *,
    source_name: str,
    max_reject_ratio: float = 1.0,
    engine: str = "auto",
    block_size: Optional[int] = None,
    lineage: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """Validate a CSV byte stream against the contract; write valid rows as Parquet, bad rows to quarantine.

    Parameters
    ----------
    raw
        Binary stream of the source object (plain or gzip; anything with ``read(n)``).
    contract
        The dataset contract as a plain dict (``DatasetContract.model_dump()`` shape).
    parquet_sink
        Path or binary file object for ``pyarrow.parquet.ParquetWriter``; holds a valid Parquet
        file (possibly with zero rows) on success and must be discarded on rejection.
    quarantine_sink
        Binary file object receiving the quarantine CSV (nothing is written if no row is rejected).
    source_name
        Name used in messages (e.g. ``s3://bucket/key``).
    max_reject_ratio
        Reject the file (``too_many_rejects``) when quarantined / read rows exceed this.
    engine
        ``"auto"`` (pyarrow when it supports ragged-row capture), ``"arrow"`` or ``"python"``.
    block_size
        pyarrow's read block; default ``max(4 MiB, 2 x max_line_bytes)`` (a record must fit in a block).
    lineage
        ``{"source_key", "source_etag", "run_id"}``: written as three constant columns after
        ``source_line`` (see :func:`~etl_runtime.contract.parquet_schema`); the report then has
        ``output_lineage: True``.

    Returns
    -------
    dict
        The data-quality report (``rows_read``, ``rows_written``, ``rows_quarantined``,
        ``rejects_by_reason``, ``null_counts``, ``extra_columns``, ``delimiter``, ``encoding``, ``bom``,
        ``gzip``, ``duplicate_keys_in_file``, ``bytes_read``, ``seconds`` ...).

    Raises
    ------
    TransformRejected
        (a ``FileRejected``) with ``reason`` in empty_file, no_data_rows, not_decodable, line_too_long,
        corrupt_gzip, malformed_csv, missing_columns, duplicate_columns, too_many_rejects; ``.report``
        has the counts. Byte problems of single records (``nul_byte``, ``invalid_encoding``,
        ``line_too_long``) and the contract's rules are row rejects, never a file reject.
    """
    t0 = time.monotonic()
    cc = contract if isinstance(contract, CompiledContract) else compile_contract(contract)
    report: Dict[str, Any] = {
        "source": source_name,
        "rows_read": 0,
        "rows_written": 0,
        "rows_quarantined": 0,
        "blank_rows_skipped": 0,
        "rejects_by_reason": {},
        "rejects_by_column": {},
        "warnings_by_rule": {},
        "null_counts": {c.name: 0 for c in cc.columns},
        "header": [],
        "extra_columns": [],
        "missing_optional_columns": [],
        "delimiter": cc.delimiter,
        "encoding": cc.encoding,
        "bom": False,
        "gzip": False,
        "duplicate_keys_in_file": 0,
        "duplicate_rows_in_file": 0,
        "bytes_read": 0,
        "bytes_decompressed": 0,
        "seconds": 0.0,
    }
    src: Optional[SourceReader] = None

    def reject(message: str, reason: str) -> TransformRejected:
        if src is not None:
            report.update(bom=src.bom, gzip=src.gzip, bytes_read=src.bytes_read, bytes_decompressed=src.bytes_decoded)
        report["seconds"] = round(time.monotonic() - t0, 3)
        report["state"] = "rejected"
        report["reason"] = reason
        report["message"] = f"{source_name}: {message}"
        return TransformRejected(f"{source_name}: {message}", reason=reason, report=report, key=source_name)

    try:
        src = SourceReader(raw, cc.encoding, cc.max_line_bytes)
        header, delim, header_lines = read_header(src, cc.delimiter)
    except SourceProblem as exc:
        raise reject(str(exc), exc.reason) from exc
    report.update(header=header, delimiter=delim, encoding=src.encoding, bom=src.bom, gzip=src.gzip)
    try:
        positions, missing_req, missing_opt, extra = cc.match_header(header)
    except DuplicateHeader as exc:
        raise reject(f"duplicate header names map to one contract column: {exc}", "duplicate_columns") from exc
    report["extra_columns"] = extra
    report["missing_optional_columns"] = missing_opt
    if missing_req:
        wanted = ", ".join(f"{c.source!r}" for c in cc.columns if c.name in missing_req)
        raise reject(
            f"missing required column(s) {wanted}; header is {header!r} (delimiter {delim!r})", "missing_columns"
        )

    if lineage is not None:
        missing_lineage = [n for n in LINEAGE_COLUMNS if n not in lineage]
        if missing_lineage:
            raise ValueError(f"lineage needs {', '.join(LINEAGE_COLUMNS)}; missing {', '.join(missing_lineage)}")
    schema = parquet_schema(cc, lineage=lineage is not None)
    report["output_lineage"] = lineage is not None
    lineage_values = [_strings([str(lineage[n])]) for n in LINEAGE_COLUMNS] if lineage is not None else []
    null_set = _strings(list(cc.null_values))
    checkers = {c.name: _ColumnChecker(c, null_set) for c in cc.columns}
    keys = _KeyCounter()
    ncols = len(header)
    q_writer: Optional[Any] = None
    q_text = io.StringIO()
    rejects: Dict[str, int] = report["rejects_by_reason"]
    rej_cols: Dict[str, int] = report["rejects_by_column"]
    null_counts: Dict[str, int] = report["null_counts"]
    writer = _LazyParquetWriter(parquet_sink, schema,
                                lambda: [n for n, c in checkers.items() if c.use_dict] + list(LINEAGE_COLUMNS))

    def quarantine(rows: List[List[Any]]) -> None:
        nonlocal q_writer
        if q_writer is None:
            q_writer = csv.writer(q_text, lineterminator="\n")
            q_writer.writerow(QUARANTINE_COLUMNS)
        q_writer.writerows(rows)
        quarantine_sink.write(q_text.getvalue().encode("utf-8"))
        q_text.seek(0)
        q_text.truncate()

    # Three-stage pipeline so both cores work: parse (thread) -> validate (here) -> write Parquet (thread).
    # pyarrow releases the GIL in parsing, compute kernels and the Parquet writer.
    # CPU seconds of each stage's own thread: where the time goes, in the report and the benchmark
    cpu: Dict[str, float] = {"parse": 0.0, "validate": 0.0, "write": 0.0, "keys": 0.0}
    bg = _BackgroundWriter(writer, keys, cc.primary_key, cpu)
    # pyarrow needs a record within one block: blocks of at least twice the longest line allowed
    block = block_size or max(4 << 20, 2 * cc.max_line_bytes)
    batches = _Prefetch(iter_batches(src, ncols, delim, header_lines + 1, engine=engine, block_size=block),
                        cpu)
    try:
        try:
            for batch in batches:
                c0 = time.thread_time()
                _process(batch, cc, positions, checkers, schema, bg.write, quarantine, report, rejects, rej_cols,
                         null_counts, delim, lineage_values, src.problems)
                cpu["validate"] += time.thread_time() - c0
        except SourceProblem as exc:
            raise reject(str(exc), exc.reason) from exc
    finally:
        batches.close()
        bg.close()
        writer.close()

    report.update(bom=src.bom, gzip=src.gzip, bytes_read=src.bytes_read, bytes_decompressed=src.bytes_decoded,
                  encoding=src.encoding, encoding_detected=src.detected)
    c0 = time.thread_time()
    report["duplicate_keys_in_file"], report["duplicate_rows_in_file"] = keys.result()
    cpu["keys"] += time.thread_time() - c0
    report["key_min"], report["key_max"] = keys.min, keys.max
    report["cpu_seconds"] = {k: round(v, 3) for k, v in cpu.items()}
    read, written, quarantined = report["rows_read"], report["rows_written"], report["rows_quarantined"]
    assert read == written + quarantined, "row conservation violated"
    if read == 0:
        if report["blank_rows_skipped"] or src.bytes_decoded > 0:
            raise reject("the file has a header but no data rows", "no_data_rows")
        raise reject("the file is empty", "empty_file")
    ratio = quarantined / read
    report["reject_ratio"] = round(ratio, 6)
    if ratio > max_reject_ratio:
        ranked = sorted(rejects.items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{k}={v}" for k, v in ranked[:5])
        hint = ""
        if ranked[0][0] == "invalid_encoding":
            hint = (f"; most rows are not valid {src.encoding}: allow the file's real encoding in "
                    "dataset_contract.encoding (auto detects UTF-8, UTF-16 with a BOM and Windows-1252)")
        elif ranked[0][0] == "nul_byte":
            hint = ("; NUL bytes in most rows: a UTF-16 file without a BOM? declare utf-16-le in "
                    "dataset_contract.encoding")
        raise reject(
            f"{quarantined} of {read} rows rejected ({ratio:.1%} > max_reject_ratio {max_reject_ratio:.1%}): "
            f"{top}{hint}", "too_many_rejects",
        )
    report["state"] = "transformed"
    report["reason"] = ""
    report["seconds"] = round(time.monotonic() - t0, 3)
    return report


def _process(batch: Any, cc: CompiledContract, positions: Dict[str, int], checkers: Dict[str, _ColumnChecker],
             schema: pa.Schema, write: Any, quarantine: Any, report: Dict[str, Any], rejects: Dict[str, int],
             rej_cols: Dict[str, int], null_counts: Dict[str, int], delim: str,
             lineage_values: Optional[List[pa.Array]] = None, problems: Any = ()) -> None:
    n = len(batch.lines)
    q_rows: List[List[Any]] = []
    names = {j: name for name, j in positions.items()}
    byte_rows, byte_ragged = _byte_problems(batch, problems, names)
    for r, (line, text, nf) in enumerate(batch.ragged):
        if r in byte_ragged:
            reason, column, value = byte_ragged[r]
            text = text.replace("\x00", "\ufffd")
        else:
            reason, column, value = "wrong_field_count", "", f"{nf} fields, header has {len(batch.columns)}"
        q_rows.append([line, reason, column, value, text])
        rejects[reason] = rejects.get(reason, 0) + 1
    report["rows_read"] += len(batch.ragged)
    report["rows_quarantined"] += len(batch.ragged)
    if n == 0:
        if q_rows:
            quarantine(q_rows)
        return
    checked: List[Tuple[ColumnRule, Optional[_Checked], pa.Array]] = []
    any_fail = None
    all_null = None
    maybe_blank = True  # False once some column has no null value in this batch
    for rule in cc.columns:
        j = positions.get(rule.name)
        if j is None:
            checked.append((rule, None, pa.nulls(n, rule.arrow_type)))
            continue
        res = checkers[rule.name].check(batch.columns[j])
        checked.append((rule, res, res.typed))
        if res.fail is not None:
            any_fail = res.fail if any_fail is None else pc.or_(any_fail, res.fail)
        if res.isnull is None:
            maybe_blank = False
            continue
        null_counts[rule.name] += _count(res.isnull)
        if maybe_blank:
            all_null = res.isnull if all_null is None else pc.and_(all_null, res.isnull)
    # blank records: every field of the record is empty (e.g. an empty line)
    blank = None
    nblank = 0
    if maybe_blank and all_null is not None and pc.any(all_null).as_py():
        total = None
        for col in batch.columns:
            ln = pc.binary_length(col)
            total = ln if total is None else pc.add(total, ln)
        blank = pc.and_(all_null, pc.equal(total, _I[0]))
        nblank = _count(blank)
        if nblank:
            report["blank_rows_skipped"] += nblank
            for rule, chk, _t in checked:
                null_counts[rule.name] -= nblank if chk is not None else 0
        else:
            blank = None
    for rule, chk, _t in checked:
        if chk is None:
            null_counts[rule.name] += n - nblank
    if byte_rows:  # NUL, undecodable bytes, over-long lines: the row goes whatever its values
        bad = pc.is_in(int64_array(range(n)), value_set=int64_array(sorted(byte_rows)))
        any_fail = bad if any_fail is None else pc.or_(any_fail, bad)
    rule_results = _eval_checks(cc.checks, {rule.name: t for rule, _c, t in checked})
    warn: List[Tuple[Any, pa.Array]] = []
    for rule, fails, _l, _r in rule_results:
        if rule.action == "quarantine":
            any_fail = fails if any_fail is None else pc.or_(any_fail, fails)
        else:
            warn.append((rule, fails))
    if any_fail is not None and blank is not None:
        any_fail = pc.and_(any_fail, pc.invert(blank))
    nfail = _count(any_fail) if any_fail is not None else 0
    keep = None
    if nfail or nblank:
        drop = any_fail if blank is None else (blank if any_fail is None else pc.or_(any_fail, blank))
        keep = pc.invert(drop)
    warnings: Dict[str, int] = report["warnings_by_rule"]
    for rule, fails in warn:  # counted over the rows that are written
        k = _count(fails if keep is None else pc.and_(fails, keep))
        if k:
            warnings[rule.name] = warnings.get(rule.name, 0) + k
    if nfail:
        assert any_fail is not None
        for q in _reject_rows(batch, pc.indices_nonzero(any_fail), checked, byte_rows, rule_results, delim):
            rejects[q[1]] = rejects.get(q[1], 0) + 1
            rej_cols[q[2]] = rej_cols.get(q[2], 0) + 1
            q_rows.append(q)
    if q_rows:
        q_rows.sort(key=lambda r: r[0])  # ragged and invalid records interleaved in file order
        quarantine(q_rows)
    report["rows_read"] += n - nblank
    report["rows_quarantined"] += nfail
    arrays = [t for _r, _res, t in checked] + [batch.lines]
    if keep is not None:
        arrays = [pc.filter(a, keep) for a in arrays]
    if lineage_values:
        m = len(arrays[-1])
        zeros = pa.Array.from_buffers(pa.int32(), m, [None, pa.py_buffer(bytes(4 * m))])
        arrays += [pa.DictionaryArray.from_arrays(zeros, v) for v in lineage_values]
    out = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if out.num_rows:
        write(out)
        report["rows_written"] += out.num_rows


def _reject_rows(batch: Any, idx: pa.Array, checked: List[Tuple[ColumnRule, Optional[_Checked], pa.Array]],
                 byte_rows: Dict[int, Tuple[str, str, str]], rule_results: List[Any], delim: str) -> List[List[Any]]:
    """Quarantine rows ``[line, reason, column, value, raw_record]`` for the failing rows ``idx`` (slow path).

    The first problem wins: bytes (NUL, encoding, line length), then the columns in contract order,
    then the quarantining rules in order.
    """
    lines = pc.take(batch.lines, idx).to_pylist()
    raw_cols = [pc.take(c, idx).to_pylist() for c in batch.columns]
    none = [False] * len(idx)
    per_col = [(rule, pc.take(res.fail, idx).to_pylist(),
                none if res.isnull is None else pc.take(res.isnull, idx).to_pylist(), res.values_at(idx))
               for rule, res, _t in checked if res is not None and res.fail is not None]
    rows_at = idx.to_pylist() if byte_rows else []
    rule_checks = [(rule, _take(f, idx), _take(lv, idx), _take(rv, idx))
                   for rule, f, lv, rv in rule_results if rule.action == "quarantine"]
    out: List[List[Any]] = []
    for r in range(len(lines)):
        raw = _csv_line([c[r] for c in raw_cols], delim)
        if byte_rows and rows_at[r] in byte_rows:
            reason, column, value = byte_rows[rows_at[r]]
            raw = raw.replace("\x00", "\ufffd")
        else:
            for rule, fails, nulls, vals in per_col:
                if fails[r]:
                    reason = "missing_value" if nulls[r] else rule.reject_reason(vals[r])
                    column, value = rule.name, vals[r]
                    break
            else:  # no column check failed: a quarantining rule did
                reason, column, value = _rule_reject(rule_checks, r)
        out.append([lines[r], reason, column, value, raw])
    return out


_EPS = 4 * 2.220446049250313e-16  # float64 rounding slack per unit of magnitude


def _f64(value: float) -> Any:
    return pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(array.array("d", [value]))])[0]


_F0 = _f64(0.0)
_FEPS = _f64(_EPS)


def _eval_checks(rules: List[Any], typed: Dict[str, pa.Array]) -> List[Tuple[Any, pa.Array, pa.Array, pa.Array]]:
    """Evaluate the contract's rules on a batch's typed columns: ``(rule, fails, left, right)`` each.

    Vectorised in float64 (pyarrow's decimal arithmetic overflows its precision on ``a * b - c``);
    the comparison allows the rule's tolerance plus a rounding slack of a few ulps of the operands'
    magnitude, far below a cent for amounts under 10^13. A row with a null operand is not checked.
    """
    if not rules:
        return []
    cols: Dict[str, pa.Array] = {}

    def ev(node: Any) -> Any:
        kind = node[0]
        if kind == "col":
            if node[1] not in cols:
                cols[node[1]] = pc.cast(typed[node[1]], pa.float64())
            return cols[node[1]]
        if kind == "num":
            return _f64(node[1])
        if kind == "neg":
            return pc.negate(ev(node[1]))
        return {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[kind](ev(node[1]), ev(node[2]))

    out = []
    for rule in rules:
        left, right = ev(rule.left), ev(rule.right)
        diff = pc.subtract(left, right)
        tol = _f64(rule.tolerance)
        slack = pc.add(tol, pc.multiply(pc.add(pc.abs(left), pc.abs(right)), _FEPS))
        ok = _compare(rule.op, diff, tol, slack)
        fails = pc.and_kleene(pc.invert(ok), pc.is_valid(ok))  # a null operand: not checked
        out.append((rule, fails, left, right))
    return out


def _compare(op: str, diff: Any, tol: Any, slack: Any) -> Any:
    """``left op right`` as a test on ``diff = left - right`` (``=``/``<=``/``>=`` allow ``slack``)."""
    if op == "=":
        return pc.less_equal(pc.abs(diff), slack)
    if op == "!=":
        return pc.greater(pc.abs(diff), slack)
    if op == "<":
        return pc.less(diff, tol)
    if op == "<=":
        return pc.less_equal(diff, slack)
    if op == ">":
        return pc.greater(diff, pc.negate(tol))
    return pc.greater_equal(diff, pc.negate(slack))


def _rule_reject(rule_checks: List[Tuple[Any, List[Any], List[Any], List[Any]]], r: int) -> Tuple[str, str, str]:
    """(reason, column, value) for a row that only a quarantining rule failed (slow path)."""
    for rule, fails, left, right in rule_checks:
        if fails[r]:
            tol = f" within {rule.tolerance:g}" if rule.tolerance else ""
            return (rule.name, rule.columns[0],
                    f"{rule.expression}{tol} is false: {_num(left[r])} vs {_num(right[r])}")
    return "unknown", "", ""  # pragma: no cover - any_fail guarantees a failing rule


def _take(values: Any, idx: pa.Array) -> List[Any]:
    if isinstance(values, pa.Scalar):  # a constant side of a rule
        return [values.as_py()] * len(idx)
    return list(pc.take(values, idx).to_pylist())


def _num(v: Any) -> str:
    return "null" if v is None else f"{v:.10g}"


def _byte_problems(batch: Any, problems: Any, names: Dict[int, str]
                   ) -> Tuple[Dict[int, Tuple[str, str, str]], Dict[int, Tuple[str, str, str]]]:
    """Match the batch's NUL marks to the reader's byte problems, in file order.

    Returns ``{row index: (reason, column, detail)}`` for regular records and the same keyed by
    position in ``batch.ragged``. Costs nothing while the reader has recorded no problem (the
    reader runs ahead, so a pending problem may belong to a later batch: this one is then scanned
    and found clean).
    """
    if not problems:
        return {}, {}
    events: List[Tuple[int, int, int, int, int]] = []  # (line, ragged?, index, NULs, first column)
    if len(batch.lines):
        counts = [pc.count_substring(c, "\x00") for c in batch.columns]
        total = counts[0]
        for c in counts[1:]:
            total = pc.add(total, c)
        if pc.max(total).as_py():
            idx = pc.indices_nonzero(total)
            at = idx.to_pylist()
            lines = pc.take(batch.lines, idx).to_pylist()
            per = [pc.take(c, idx).to_pylist() for c in counts]
            for k, i in enumerate(at):
                first = next(j for j, col in enumerate(per) if col[k])
                events.append((lines[k], 0, i, sum(col[k] for col in per), first))
    for r, (line, text, _nf) in enumerate(batch.ragged):
        if "\x00" in text:
            events.append((line, 1, r, text.count("\x00"), -1))
    rows: Dict[int, Tuple[str, str, str]] = {}
    ragged: Dict[int, Tuple[str, str, str]] = {}
    for _line, is_ragged, i, count, col in sorted(events):
        got = [problems.popleft() for _ in range(count) if problems]
        problem: ByteProblem = got[0] if got else ByteProblem("nul_byte", -1, "NUL byte")
        column = names.get(col, f"#{col + 1}") if col >= 0 else ""
        (ragged if is_ragged else rows)[i] = (problem.reason, column, problem.detail)
    return rows, ragged


def _timed(it: Any, cpu: Dict[str, float], stage: str) -> Any:
    """Yield from ``it``, adding the CPU time this thread spends producing each item to ``cpu[stage]``."""
    it = iter(it)
    while True:
        c0 = time.thread_time()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            cpu[stage] = cpu.get(stage, 0.0) + time.thread_time() - c0
        yield item


class _Prefetch:
    """Run an iterator in a background thread, one item ahead (bounded memory)."""

    _END = object()

    def __init__(self, it: Any, cpu: Optional[Dict[str, float]] = None) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._stop = threading.Event()
        self._it = it
        self._cpu = cpu if cpu is not None else {}
        self._t = threading.Thread(target=self._run, name="etlkit-parse", daemon=True)
        self._t.start()

    def _run(self) -> None:
        it = self._it
        self._it = None  # the generator (and pyarrow's reader) must die in this thread
        try:
            for item in _timed(it, self._cpu, "parse"):
                while not self._stop.is_set():
                    try:
                        self._q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._q.put((True, self._END))
        except BaseException as exc:  # handed to the consumer
            self._q.put((False, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            del it

    def __iter__(self) -> Any:
        while True:
            ok, item = self._q.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._t.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get(timeout=0.05)
        self._t.join()


class _LazyParquetWriter:
    """A snappy ``ParquetWriter`` opened at the first batch, dictionary-encoding only the columns
    that turned out to be of low cardinality (``dict_columns()`` is asked then).

    Dictionary-encoding ids and totals costs a hash per value and is then abandoned by the
    encoder anyway (the dictionary outgrows its page); skipping it makes the write ~40% cheaper
    and the file smaller.
    """

    def __init__(self, sink: Any, schema: pa.Schema, dict_columns: Any) -> None:
        self._sink = sink
        self._schema = schema
        self._dict_columns = dict_columns
        self._writer: Optional[Any] = None

    def _open(self) -> Any:
        if self._writer is None:
            names = set(self._schema.names)
            use = [c for c in self._dict_columns() if c in names]
            self._writer = pq.ParquetWriter(self._sink, self._schema, compression="snappy", use_dictionary=use)
        return self._writer

    def write_batch(self, rb: pa.RecordBatch) -> None:
        self._open().write_batch(rb)

    def close(self) -> None:
        self._open().close()


class _BackgroundWriter:
    """Write record batches (and count their keys) in a background thread."""

    def __init__(self, writer: Any, keys: _KeyCounter, pk: List[str], cpu: Optional[Dict[str, float]] = None) -> None:
        self._writer = writer
        self._keys = keys
        self._pk = pk
        self._cpu = cpu if cpu is not None else {}
        self._q: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._error: Optional[BaseException] = None
        self._t = threading.Thread(target=self._run, name="etlkit-write", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            rb = self._q.get()
            if rb is None:
                return
            if self._error is not None:
                continue
            try:
                c0 = time.thread_time()
                self._writer.write_batch(rb)
                c1 = time.thread_time()
                if self._pk:
                    self._keys.add(_key_array(rb, self._pk))
                self._cpu["write"] = self._cpu.get("write", 0.0) + c1 - c0
                self._cpu["keys"] = self._cpu.get("keys", 0.0) + time.thread_time() - c1
            except BaseException as exc:
                self._error = exc

    def write(self, rb: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(rb)

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()
        if self._error is not None:
            raise self._error


def _count(mask: pa.Array) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def _key_array(rb: pa.RecordBatch, pk: List[str]) -> pa.Array:
    if len(pk) == 1 and pa.types.is_integer(rb.schema.field(pk[0]).type):
        return rb.column(rb.schema.get_field_index(pk[0]))
    parts = [pc.cast(rb.column(rb.schema.get_field_index(k)), pa.string()) for k in pk]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")


# ---------------------------------------------------------------------------------------------
# S3 wrapper
# ---------------------------------------------------------------------------------------------
S3_MAX_KEY_BYTES = 1024
_VERBATIM_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._=-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
_HASHED = re.compile(r"-[0-9a-f]{16}$")
_HASH_LEN = 17  # "-" + 16 hex digits
# suffixes job 1 puts after the id (the longest decides how long an id may be)
_OUTPUT_SUFFIX, _QUARANTINE_SUFFIX = "/part-0000.parquet", ".quarantine.csv"
_REJECTED_SUFFIX, _REPORT_SUFFIX = ".rejected", ".report.json"


def source_id(key: str, input_prefix: str = "input/", max_len: int = 900) -> str:
    """The deterministic, S3-safe, injective id of a source key, used in every key job 1 writes.

    The key relative to ``input_prefix`` with its extension (``x.csv``, ``x.csv.gz`` and ``x.CSV``
    are three ids). It is used verbatim when every ``/``-separated segment is ``[a-z0-9._=-]``
    starting with a letter or digit (so no empty, ``.``/``..`` or hidden ``_``/``.`` segments that
    Glue's crawlers and Athena skip). Otherwise (uppercase, spaces, quotes, backslashes, unicode,
    dot segments, a key outside ``input_prefix``, longer than ``max_len``, or already ending like a
    hashed id) characters outside ``[A-Za-z0-9._=-]`` become ``_``, a segment starting with ``_`` or
    ``.`` gets an ``x`` in front, empty segments go, the text is cut to fit ``max_len`` and ``-`` plus
    16 hex digits of the full key's SHA-256 is appended.

    Injective: verbatim ids never end in ``-<16 hex>``, hashed ids differ by their hash. Also distinct
    ignoring case (verbatim ids have no uppercase letters), which keeps case twins such as ``x.csv``
    and ``x.CSV`` apart in case-insensitive tools too.
    """
    under = not input_prefix or key.startswith(input_prefix)
    rel = key[len(input_prefix):] if input_prefix and under else key
    if (under and len(rel) <= max_len and not _HASHED.search(rel)
            and all(_VERBATIM_SEGMENT.fullmatch(seg) for seg in rel.split("/"))):
        return rel
    segments = []
    for seg in rel.split("/"):
        # accents go (é -> e) so the id stays readable; other characters outside the safe set become _
        seg = "".join(ch for ch in unicodedata.normalize("NFKD", seg) if not unicodedata.combining(ch))
        seg = _UNSAFE.sub("_", seg)
        if seg:
            segments.append("x" + seg if seg[0] in "._" else seg)
    readable = "/".join(segments)[:max(max_len - _HASH_LEN, 1)].rstrip("/") or "object"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


def output_keys(key: str, *, input_prefix: str = "input/", output_prefix: str = "output/",
                quarantine_prefix: str = "quarantine/", reports_prefix: str = "reports/") -> Dict[str, str]:
    """The deterministic output, quarantine, rejected-copy and report keys for a source key.

    Each is a function of the full source key (see :func:`source_id`), and stays within S3's
    1024-byte key limit whatever the source key's length.
    """
    gz = ".csv.gz" if key.lower().endswith(".gz") else ".csv"
    # the longest key derived from the id decides how long the id may be
    longest = max(len(output_prefix.encode("utf-8")) + len(_OUTPUT_SUFFIX),
                  len(quarantine_prefix.encode("utf-8")) + max(len(_QUARANTINE_SUFFIX), len(_REJECTED_SUFFIX) + 7),
                  len(reports_prefix.encode("utf-8")) + len(_REPORT_SUFFIX))
    sid = source_id(key, input_prefix, max_len=S3_MAX_KEY_BYTES - longest)
    return {
        "source_id": sid,
        "output_key": f"{output_prefix}{sid}{_OUTPUT_SUFFIX}",
        "quarantine_key": f"{quarantine_prefix}{sid}{_QUARANTINE_SUFFIX}",
        "rejected_copy_key": f"{quarantine_prefix}{sid}{_REJECTED_SUFFIX}{gz}",
        "report_key": f"{reports_prefix}{sid}{_REPORT_SUFFIX}",
    }


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _client_error_code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", ""))


def run_csv_to_parquet(
    *,
    bucket: str,
    key: str,
    contract: Any,
    output_prefix: str = "output/",
    quarantine_prefix: str = "quarantine/",
    reports_prefix: str = "reports/",
    input_prefix: str = "input/",
    max_reject_ratio: float = 0.5,
    run_id: Optional[str] = None,
    workflow_name: Optional[str] = None,
    source_etag: Optional[str] = None,
    source_version_id: Optional[str] = None,
    s3: Any = None,
    glue: Any = None,
    engine: str = "auto",
) -> Dict[str, Any]:
    """Job 1 on S3: stream ``s3://bucket/key`` through :func:`transform_stream` and publish the results.

    Output goes to deterministic keys (see :func:`output_keys`), so re-running a source overwrites.
    Nothing half-written is visible: results are built in local temp files and uploaded only after
    success. On file rejection the previous output and row quarantine for the key are deleted, the
    source is copied to ``quarantine/<source id>.rejected.csv[.gz]`` and the report is written with state
    ``rejected``. When ``workflow_name`` and ``run_id`` are given the summary is put into the
    workflow run properties (string values).

    Parameters
    ----------
    source_etag
        The ETag from the run properties; the GET uses ``IfMatch`` so an object overwritten since the
        event is detected (reason ``source_changed``: nothing is written, the newer version has its own run).

    Returns
    -------
    dict
        The report (also at ``report_key``) plus ``output_key``, ``quarantine_key``, ``report_key``.

    Raises
    ------
    FileRejected
        The object was rejected (``TransformRejected``) or changed (``source_changed``).
    Exception
        Anything unexpected (S3 errors, bugs) is re-raised after a report with state ``failed`` and
        reason ``<exception type>: <message>`` was written to ``report_key`` and the run properties
        (as far as S3 and Glue still answer), so the object's state is never left unrecorded.
    """
    import boto3

    s3 = s3 or boto3.client("s3")
    if glue is None and workflow_name and run_id:
        glue = boto3.client("glue")
    keys = output_keys(key, input_prefix=input_prefix, output_prefix=output_prefix,
                       quarantine_prefix=quarantine_prefix, reports_prefix=reports_prefix)
    started = _now()
    try:
        return _run(bucket, key, contract, keys, started, max_reject_ratio=max_reject_ratio, run_id=run_id,
                    workflow_name=workflow_name, source_etag=source_etag, source_version_id=source_version_id,
                    s3=s3, glue=glue, engine=engine)
    except FileRejected:
        raise
    except Exception as exc:
        rep = failure_report(exc, bucket=bucket, key=key, etag=source_etag or "", run_id=run_id or "",
                             workflow_name=workflow_name or "", started_at=started)
        rep.update(keys, output_key="", quarantine_key="")
        with contextlib.suppress(Exception):  # S3 may be what failed; the exception itself is the story
            _put_json(s3, bucket, keys["report_key"], rep)
        with contextlib.suppress(Exception):
            _put_props(glue, workflow_name, run_id, rep)
        raise


def failure_report(exc: BaseException, **meta: Any) -> Dict[str, Any]:
    """The report of a job 1 run that failed unexpectedly: state ``failed``, reason ``Type: message``."""
    text = f"{type(exc).__name__}: {exc}"
    return {"state": "failed", "reason": text[:200], "message": text[:4000], "finished_at": _now(), **meta}


def _run(bucket: str, key: str, contract: Any, keys: Dict[str, str], started: str, *, max_reject_ratio: float,
         run_id: Optional[str], workflow_name: Optional[str], source_etag: Optional[str],
         source_version_id: Optional[str], s3: Any, glue: Any, engine: str) -> Dict[str, Any]:
    get_args: Dict[str, Any] = {"Bucket": bucket, "Key": key}
    if source_etag:
        get_args["IfMatch"] = source_etag if source_etag.startswith('"') else f'"{source_etag}"'
    if source_version_id:
        get_args["VersionId"] = source_version_id
    try:
        obj = s3.get_object(**get_args)
    except Exception as exc:
        code = _client_error_code(exc)
        if code in ("PreconditionFailed", "412"):
            raise FileRejected(
                f"s3://{bucket}/{key} changed since the event (ETag is no longer {source_etag}); "
                "the newer version is processed by its own run", reason="source_changed", bucket=bucket, key=key,
            ) from exc
        if code in ("NoSuchKey", "404", "NoSuchVersion"):
            raise FileRejected(f"s3://{bucket}/{key} does not exist (deleted since the event?)",
                               reason="source_missing", bucket=bucket, key=key) from exc
        raise
    etag = str(obj.get("ETag", "")).strip('"')
    meta = {
        "bucket": bucket, "key": key, "etag": etag, "version_id": obj.get("VersionId") or source_version_id or "",
        "size": obj.get("ContentLength"), "run_id": run_id or "", "workflow_name": workflow_name or "",
        "started_at": started,
    }
    meta.update(keys)
    tmp = tempfile.mkdtemp(prefix="etlkit-job1-")
    try:
        pq_path = os.path.join(tmp, "part-0000.parquet")
        q_path = os.path.join(tmp, "quarantine.csv")
        try:
            with open(q_path, "wb") as qf:
                report = transform_stream(obj["Body"], contract, pq_path, qf, source_name=f"s3://{bucket}/{key}",
                                          max_reject_ratio=max_reject_ratio, engine=engine,
                                          lineage={"source_key": key, "source_etag": etag, "run_id": run_id or ""})
        except TransformRejected as exc:
            rep = dict(exc.report)
            rep.update(meta, finished_at=_now(), quarantine_key="", output_key="")
            _delete_quiet(s3, bucket, keys["output_key"])
            _delete_quiet(s3, bucket, keys["quarantine_key"])
            try:
                s3.copy_object(Bucket=bucket, Key=keys["rejected_copy_key"],
                               CopySource={"Bucket": bucket, "Key": key, **({"VersionId": meta["version_id"]}
                                                                             if meta["version_id"] else {})})
                rep["rejected_copy_key"] = keys["rejected_copy_key"]
            except Exception as cexc:  # a copy failure must not hide the rejection itself
                rep["rejected_copy_key"] = ""
                rep["rejected_copy_error"] = str(cexc)
            _put_json(s3, bucket, keys["report_key"], rep)
            _put_props(glue, workflow_name, run_id, rep)
            exc.bucket, exc.key = bucket, key
            raise
        finally:
            close = getattr(obj["Body"], "close", None)
            if close:
                close()
        report.update(meta, finished_at=_now())
        # Guard against a newer version having been uploaded meanwhile (its run owns these keys).
        if source_etag:
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                if str(head.get("ETag", "")).strip('"') != etag:
                    raise FileRejected(f"s3://{bucket}/{key} changed while it was processed; results discarded",
                                       reason="source_changed", bucket=bucket, key=key)
            except FileRejected:
                raise
            except Exception:  # deleted meanwhile: still publish what we read
                pass
        s3.upload_file(pq_path, bucket, keys["output_key"],
                       ExtraArgs={"ContentType": "application/vnd.apache.parquet"})
        if report["rows_quarantined"]:
            s3.upload_file(q_path, bucket, keys["quarantine_key"], ExtraArgs={"ContentType": "text/csv"})
        else:
            report["quarantine_key"] = ""
            _delete_quiet(s3, bucket, keys["quarantine_key"])
        _delete_quiet(s3, bucket, keys["rejected_copy_key"])
        _put_json(s3, bucket, keys["report_key"], report)
        _put_props(glue, workflow_name, run_id, report)
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _delete_quiet(s3: Any, bucket: str, key: str) -> None:
    with contextlib.suppress(Exception):  # deleting something that is not there is fine
        s3.delete_object(Bucket=bucket, Key=key)


def _put_json(s3: Any, bucket: str, key: str, doc: Dict[str, Any]) -> None:
    body = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def run_properties_from_report(report: Dict[str, Any]) -> Dict[str, str]:
    """The run-property summary of a job 1 report (all values strings, as Glue requires)."""
    props = {
        "job1_state": str(report.get("state", "")),
        "job1_reason": str(report.get("reason", "")),
        "dq_rows_read": str(report.get("rows_read", 0)),
        "dq_rows_written": str(report.get("rows_written", 0)),
        "dq_rows_quarantined": str(report.get("rows_quarantined", 0)),
        "dq_duplicate_keys": str(report.get("duplicate_keys_in_file", 0)),
        "dq_rejects_by_reason": json.dumps(report.get("rejects_by_reason", {}), sort_keys=True),
        "dq_warnings_by_rule": json.dumps(report.get("warnings_by_rule", {}), sort_keys=True),
        "dq_report_key": str(report.get("report_key", "")),
        "output_key": str(report.get("output_key", "")),
        "quarantine_key": str(report.get("quarantine_key", "")),
        # job 2 appends straight into the target when the file carries its lineage columns and
        # the target holds none of its keys (checked inside the load transaction)
        "dq_output_lineage": "1" if report.get("output_lineage") else "0",
        "dq_key_min": "" if report.get("key_min") is None else str(report["key_min"]),
        "dq_key_max": "" if report.get("key_max") is None else str(report["key_max"]),
    }
    if report.get("message"):
        props["job1_message"] = str(report["message"])[:2000]
    return props


def _put_props(glue: Any, workflow_name: Optional[str], run_id: Optional[str], report: Dict[str, Any]) -> None:
    if glue is None or not workflow_name or not run_id:
        return
    glue.put_workflow_run_properties(Name=workflow_name, RunId=run_id,
                                     RunProperties=run_properties_from_report(report))

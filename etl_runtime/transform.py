"""Job 1's core: validate one CSV stream against the dataset contract and write Parquet plus quarantine.

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

The module is the core transform (one stream in, Parquet and quarantine out); its parts live beside
it: ``checks`` (per-column and rule checks with pyarrow kernels), ``dupcount`` (the spilling
duplicate-key counter), ``stages`` (thread plumbing), ``keys`` (the keys job 1 writes) and ``job1``
(the S3 job around it).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from etl_runtime.arrowconst import INT, count, strings
from etl_runtime.checks import Checked, ColumnChecker, eval_checks, rule_reject, take_list
from etl_runtime.contract import (
    LINEAGE_COLUMNS,
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
from etl_runtime.dupcount import KeyCounter
from etl_runtime.errors import FileRejected
from etl_runtime.keys import output_keys, source_id
from etl_runtime.stages import BackgroundWriter, LazyParquetWriter, Prefetch

__all__ = [
    "TransformRejected",
    "TransformOptions",
    "transform_stream",
    "source_id",
    "output_keys",
    "QUARANTINE_COLUMNS",
]

QUARANTINE_COLUMNS = ["source_line", "reason", "column", "value", "raw_record"]
# (rule, its result or None for a column missing from the file, the typed values)
_CheckedColumn = Tuple[ColumnRule, Optional[Checked], pa.Array]
# {row index: (reason, column, detail)}
_ByteRows = Dict[int, Tuple[str, str, str]]


class TransformRejected(FileRejected):
    """The whole file is rejected; ``report`` holds what was learnt before the rejection."""

    def __init__(self, message: str, *, reason: str, report: Dict[str, Any], bucket: str = "", key: str = "") -> None:
        super().__init__(message, reason=reason, bucket=bucket, key=key)
        self.report = report


@dataclass(frozen=True)
class TransformOptions:
    """How :func:`transform_stream` reads and judges one file.

    Attributes
    ----------
    max_reject_ratio
        Reject the file (``too_many_rejects``) when quarantined / read rows exceed this.
    engine
        ``"auto"`` (pyarrow when it supports ragged-row capture), ``"arrow"`` or ``"python"``.
    block_size
        pyarrow's read block; default ``max(4 MiB, 2 x max_line_bytes)`` (a record must fit in a block).
    """

    max_reject_ratio: float = 1.0
    engine: str = "auto"
    block_size: Optional[int] = None


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
    options: Optional[TransformOptions] = None,
    lineage: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """Validate a CSV byte stream against the contract; write valid rows as Parquet, bad rows to quarantine.

    Parameters
    ----------
    raw
        Binary stream of the source object (plain or gzip; anything with ``read(n)``).
    contract
        The dataset contract as a plain dict (``DatasetContract.model_dump()`` shape) or compiled.
    parquet_sink
        Path or binary file object for ``pyarrow.parquet.ParquetWriter``; holds a valid Parquet
        file (possibly with zero rows) on success and must be discarded on rejection.
    quarantine_sink
        Binary file object receiving the quarantine CSV (nothing is written if no row is rejected).
    source_name
        Name used in messages (e.g. ``s3://bucket/key``).
    options
        Reject ratio, tokenizer and read block (:class:`TransformOptions`; its defaults when omitted).
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
    opts = options or TransformOptions()
    run = _FileRun(time.monotonic(), source_name)
    cc = contract if isinstance(contract, CompiledContract) else compile_contract(contract)
    run.report = _new_report(source_name, cc)
    src, header, delim, header_lines = run.open_source(raw, cc)
    positions = run.match_header(cc, header, delim)
    _check_lineage(lineage)
    schema = parquet_schema(cc, lineage=lineage is not None)
    run.report["output_lineage"] = lineage is not None
    null_set = strings(list(cc.null_values))
    ctx = _BatchContext(
        cc=cc, positions=positions, names={j: name for name, j in positions.items()},
        checkers={c.name: ColumnChecker(c, null_set) for c in cc.columns}, schema=schema,
        quarantine=_QuarantineWriter(quarantine_sink), report=run.report, delim=delim,
        lineage_values=[strings([str(lineage[n])]) for n in LINEAGE_COLUMNS] if lineage is not None else [],
        problems=src.problems, ncols=len(header), first_line=header_lines + 1,
    )
    keys, cpu = _validate_batches(run, src, ctx, parquet_sink, opts)
    return run.finish(src, keys, cpu, opts.max_reject_ratio)


def _new_report(source_name: str, cc: CompiledContract) -> Dict[str, Any]:
    """The report of a file before its first byte is read (every count zero)."""
    return {
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


def _check_lineage(lineage: Optional[Dict[str, str]]) -> None:
    if lineage is not None:
        missing_lineage = [n for n in LINEAGE_COLUMNS if n not in lineage]
        if missing_lineage:
            raise ValueError(f"lineage needs {', '.join(LINEAGE_COLUMNS)}; missing {', '.join(missing_lineage)}")


class _FileRun:
    """One file's report, from the header to the verdict (and the rejection that carries it)."""

    def __init__(self, t0: float, source_name: str) -> None:
        self.t0 = t0
        self.source_name = source_name
        self.report: Dict[str, Any] = {}
        self.src: Optional[SourceReader] = None

    def reject(self, message: str, reason: str) -> TransformRejected:
        """The rejection of the file, its report completed (state ``rejected``)."""
        report, src = self.report, self.src
        if src is not None:
            report.update(bom=src.bom, gzip=src.gzip, bytes_read=src.bytes_read, bytes_decompressed=src.bytes_decoded)
        report["seconds"] = round(time.monotonic() - self.t0, 3)
        report["state"] = "rejected"
        report["reason"] = reason
        report["message"] = f"{self.source_name}: {message}"
        return TransformRejected(f"{self.source_name}: {message}", reason=reason, report=report,
                                 key=self.source_name)

    def open_source(self, raw: BinaryIO, cc: CompiledContract) -> Tuple[SourceReader, List[str], str, int]:
        """The decoded source and its header: ``(reader, header, delimiter, lines the header took)``."""
        try:
            self.src = src = SourceReader(raw, cc.encoding, cc.max_line_bytes)
            header, delim, header_lines = read_header(src, cc.delimiter)
        except SourceProblem as exc:
            raise self.reject(str(exc), exc.reason) from exc
        self.report.update(header=header, delimiter=delim, encoding=src.encoding, bom=src.bom, gzip=src.gzip)
        return src, header, delim, header_lines

    def match_header(self, cc: CompiledContract, header: List[str], delim: str) -> Dict[str, int]:
        """``{contract column: field position}``; rejects a file without a required column."""
        try:
            positions, missing_req, missing_opt, extra = cc.match_header(header)
        except DuplicateHeader as exc:
            raise self.reject(f"duplicate header names map to one contract column: {exc}",
                              "duplicate_columns") from exc
        self.report["extra_columns"] = extra
        self.report["missing_optional_columns"] = missing_opt
        if missing_req:
            wanted = ", ".join(f"{c.source!r}" for c in cc.columns if c.name in missing_req)
            raise self.reject(
                f"missing required column(s) {wanted}; header is {header!r} (delimiter {delim!r})", "missing_columns"
            )
        return positions

    def finish(self, src: SourceReader, keys: KeyCounter, cpu: Dict[str, float],
               max_reject_ratio: float) -> Dict[str, Any]:
        """Complete the report after the last batch: duplicates, ratios, and the file's verdict."""
        report = self.report
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
                raise self.reject("the file has a header but no data rows", "no_data_rows")
            raise self.reject("the file is empty", "empty_file")
        ratio = quarantined / read
        report["reject_ratio"] = round(ratio, 6)
        if ratio > max_reject_ratio:
            raise self.reject(_too_many_rejects(report, ratio, max_reject_ratio, src.encoding), "too_many_rejects")
        report["state"] = "transformed"
        report["reason"] = ""
        report["seconds"] = round(time.monotonic() - self.t0, 3)
        return report


def _too_many_rejects(report: Dict[str, Any], ratio: float, max_reject_ratio: float, encoding: str) -> str:
    """The message of a ``too_many_rejects`` rejection: the top reasons, and a hint when bytes are the cause."""
    ranked = sorted(report["rejects_by_reason"].items(), key=lambda kv: -kv[1])
    top = ", ".join(f"{k}={v}" for k, v in ranked[:5])
    hint = ""
    if ranked[0][0] == "invalid_encoding":
        hint = (f"; most rows are not valid {encoding}: allow the file's real encoding in "
                "dataset_contract.encoding (auto detects UTF-8, UTF-16 with a BOM and Windows-1252)")
    elif ranked[0][0] == "nul_byte":
        hint = ("; NUL bytes in most rows: a UTF-16 file without a BOM? declare utf-16-le in "
                "dataset_contract.encoding")
    return (f"{report['rows_quarantined']} of {report['rows_read']} rows rejected "
            f"({ratio:.1%} > max_reject_ratio {max_reject_ratio:.1%}): {top}{hint}")


class _QuarantineWriter:
    """Appends quarantine rows to the sink as UTF-8 CSV, the header before the first row."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._writer: Optional[Any] = None
        self._text = io.StringIO()

    def __call__(self, rows: List[List[Any]]) -> None:
        if self._writer is None:
            self._writer = csv.writer(self._text, lineterminator="\n")
            self._writer.writerow(QUARANTINE_COLUMNS)
        self._writer.writerows(rows)
        self._sink.write(self._text.getvalue().encode("utf-8"))
        self._text.seek(0)
        self._text.truncate()


@dataclass
class _BatchContext:
    """What validating a batch needs of its file: the contract, the header's layout, checkers and sinks."""

    cc: CompiledContract
    positions: Dict[str, int]  # contract column -> field position
    names: Dict[int, str]  # field position -> contract column
    checkers: Dict[str, ColumnChecker]
    schema: pa.Schema
    quarantine: Callable[[List[List[Any]]], None]
    report: Dict[str, Any]
    delim: str
    lineage_values: List[pa.Array]
    problems: Any  # the reader's pending byte problems (a deque)
    ncols: int
    first_line: int


def _validate_batches(run: _FileRun, src: SourceReader, ctx: _BatchContext, parquet_sink: Any,
                      opts: TransformOptions) -> Tuple[KeyCounter, Dict[str, float]]:
    """Parse, validate and write every batch of the file; returns the key counter and CPU seconds by stage.

    Three-stage pipeline so both cores work: parse (thread) -> validate (here) -> write Parquet (thread).
    pyarrow releases the GIL in parsing, compute kernels and the Parquet writer.
    """
    # CPU seconds of each stage's own thread: where the time goes, in the report and the benchmark
    cpu: Dict[str, float] = {"parse": 0.0, "validate": 0.0, "write": 0.0, "keys": 0.0}
    checkers = ctx.checkers
    writer = LazyParquetWriter(parquet_sink, ctx.schema,
                               lambda: [n for n, c in checkers.items() if c.use_dict] + list(LINEAGE_COLUMNS))
    keys = KeyCounter()
    bg = BackgroundWriter(writer, keys, ctx.cc.primary_key, cpu)
    # pyarrow needs a record within one block: blocks of at least twice the longest line allowed
    block = opts.block_size or max(4 << 20, 2 * ctx.cc.max_line_bytes)
    batches = Prefetch(iter_batches(src, ctx.ncols, ctx.delim, ctx.first_line, engine=opts.engine,
                                    block_size=block), cpu)
    try:
        try:
            for batch in batches:
                c0 = time.thread_time()
                _process(batch, ctx, bg.write)
                cpu["validate"] += time.thread_time() - c0
        except SourceProblem as exc:
            raise run.reject(str(exc), exc.reason) from exc
    finally:
        batches.close()
        bg.close()
        writer.close()
    return keys, cpu


# ---------------------------------------------------------------------------------------------
# one batch
# ---------------------------------------------------------------------------------------------
def _or(a: Optional[pa.Array], b: Optional[pa.Array]) -> Optional[pa.Array]:
    """``a | b`` of two optional boolean masks (``None`` is all false)."""
    if a is None:
        return b
    if b is None:
        return a
    return pc.or_(a, b)


def _process(batch: Any, ctx: _BatchContext, write: Callable[[pa.RecordBatch], None]) -> None:
    """Validate one batch: quarantine its bad records, skip blank ones, hand the good ones to ``write``."""
    report = ctx.report
    byte_rows, byte_ragged = _byte_problems(batch, ctx.problems, ctx.names)
    q_rows = _ragged_rows(batch, byte_ragged, report)
    n = len(batch.lines)
    if n == 0:
        if q_rows:
            ctx.quarantine(q_rows)
        return
    checked, any_fail, all_null = _check_columns(batch, ctx)
    blank, nblank = _blank_rows(batch, checked, all_null, report)
    if byte_rows:  # NUL, undecodable bytes, over-long lines: the row goes whatever its values
        any_fail = _or(any_fail, pc.is_in(int64_array(range(n)), value_set=int64_array(sorted(byte_rows))))
    rule_results = eval_checks(ctx.cc.checks, {rule.name: t for rule, _c, t in checked})
    for rule, fails, _l, _r in rule_results:
        if rule.action == "quarantine":
            any_fail = _or(any_fail, fails)
    if any_fail is not None and blank is not None:
        any_fail = pc.and_(any_fail, pc.invert(blank))
    nfail = count(any_fail) if any_fail is not None else 0
    keep = pc.invert(_or(any_fail, blank)) if nfail or nblank else None
    _count_warnings(rule_results, keep, report["warnings_by_rule"])
    if nfail:
        assert any_fail is not None
        rejected = _reject_rows(batch, pc.indices_nonzero(any_fail), checked, byte_rows, rule_results, ctx.delim)
        _count_rejects(rejected, report)
        q_rows += rejected
    if q_rows:
        q_rows.sort(key=lambda r: r[0])  # ragged and invalid records interleaved in file order
        ctx.quarantine(q_rows)
    report["rows_read"] += n - nblank
    report["rows_quarantined"] += nfail
    _write_kept(batch, checked, keep, ctx, write)


def _ragged_rows(batch: Any, byte_ragged: _ByteRows, report: Dict[str, Any]) -> List[List[Any]]:
    """Quarantine rows for the batch's records with the wrong number of fields (or bytes problems)."""
    rejects: Dict[str, int] = report["rejects_by_reason"]
    q_rows: List[List[Any]] = []
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
    return q_rows


def _check_columns(batch: Any, ctx: _BatchContext
                   ) -> Tuple[List[_CheckedColumn], Optional[pa.Array], Optional[pa.Array]]:
    """Check every contract column of the batch: ``(checked, rows failing a column, rows null in every
    column)``; the last is ``None`` when some column has no null value (no row can be blank)."""
    n = len(batch.lines)
    null_counts: Dict[str, int] = ctx.report["null_counts"]
    checked: List[_CheckedColumn] = []
    any_fail = None
    all_null = None
    maybe_blank = True  # False once some column has no null value in this batch
    for rule in ctx.cc.columns:
        j = ctx.positions.get(rule.name)
        if j is None:
            checked.append((rule, None, pa.nulls(n, rule.arrow_type)))
            continue
        res = ctx.checkers[rule.name].check(batch.columns[j])
        checked.append((rule, res, res.typed))
        any_fail = _or(any_fail, res.fail)
        if res.isnull is None:
            maybe_blank = False
            continue
        null_counts[rule.name] += count(res.isnull)
        if maybe_blank:
            all_null = res.isnull if all_null is None else pc.and_(all_null, res.isnull)
    return checked, any_fail, all_null if maybe_blank else None


def _blank_rows(batch: Any, checked: List[_CheckedColumn], all_null: Optional[pa.Array],
                report: Dict[str, Any]) -> Tuple[Optional[pa.Array], int]:
    """The batch's blank records (every field empty, e.g. an empty line) as a mask, or ``None``, and
    how many; counts them as skipped and settles the null counts (blank rows are not data)."""
    null_counts: Dict[str, int] = report["null_counts"]
    blank = None
    nblank = 0
    if all_null is not None and pc.any(all_null).as_py():
        total = None
        for col in batch.columns:
            ln = pc.binary_length(col)
            total = ln if total is None else pc.add(total, ln)
        blank = pc.and_(all_null, pc.equal(total, INT[0]))
        nblank = count(blank)
        if nblank:
            report["blank_rows_skipped"] += nblank
            for rule, chk, _t in checked:
                null_counts[rule.name] -= nblank if chk is not None else 0
        else:
            blank = None
    n = len(batch.lines)
    for rule, chk, _t in checked:
        if chk is None:
            null_counts[rule.name] += n - nblank
    return blank, nblank


def _count_rejects(q_rows: List[List[Any]], report: Dict[str, Any]) -> None:
    """Count quarantine rows by reason and by column."""
    rejects: Dict[str, int] = report["rejects_by_reason"]
    rej_cols: Dict[str, int] = report["rejects_by_column"]
    for q in q_rows:
        rejects[q[1]] = rejects.get(q[1], 0) + 1
        rej_cols[q[2]] = rej_cols.get(q[2], 0) + 1


def _count_warnings(rule_results: List[Any], keep: Optional[pa.Array], warnings: Dict[str, int]) -> None:
    """Add the failures of ``warn`` rules over the rows that are written to ``warnings``."""
    for rule, fails, _l, _r in rule_results:
        if rule.action == "quarantine":
            continue
        k = count(fails if keep is None else pc.and_(fails, keep))
        if k:
            warnings[rule.name] = warnings.get(rule.name, 0) + k


def _write_kept(batch: Any, checked: List[_CheckedColumn], keep: Optional[pa.Array], ctx: _BatchContext,
                write: Callable[[pa.RecordBatch], None]) -> None:
    """Hand the rows to keep (all when ``keep`` is ``None``), typed and with lineage, to ``write``."""
    arrays = [t for _r, _res, t in checked] + [batch.lines]
    if keep is not None:
        arrays = [pc.filter(a, keep) for a in arrays]
    if ctx.lineage_values:
        m = len(arrays[-1])
        zeros = pa.Array.from_buffers(pa.int32(), m, [None, pa.py_buffer(bytes(4 * m))])
        arrays += [pa.DictionaryArray.from_arrays(zeros, v) for v in ctx.lineage_values]
    out = pa.RecordBatch.from_arrays(arrays, schema=ctx.schema)
    if out.num_rows:
        write(out)
        ctx.report["rows_written"] += out.num_rows


def _reject_rows(batch: Any, idx: pa.Array, checked: List[_CheckedColumn],
                 byte_rows: _ByteRows, rule_results: List[Any], delim: str) -> List[List[Any]]:
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
    rule_checks = [(rule, take_list(f, idx), take_list(lv, idx), take_list(rv, idx))
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
                reason, column, value = rule_reject(rule_checks, r)
        out.append([lines[r], reason, column, value, raw])
    return out


def _byte_problems(batch: Any, problems: Any, names: Dict[int, str]) -> Tuple[_ByteRows, _ByteRows]:
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
    rows: _ByteRows = {}
    ragged: _ByteRows = {}
    for _line, is_ragged, i, nuls, col in sorted(events):
        got = [problems.popleft() for _ in range(nuls) if problems]
        problem: ByteProblem = got[0] if got else ByteProblem("nul_byte", -1, "NUL byte")
        column = names.get(col, f"#{col + 1}") if col >= 0 else ""
        (ragged if is_ragged else rows)[i] = (problem.reason, column, problem.detail)
    return rows, ragged


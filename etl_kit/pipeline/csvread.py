"""Reading a CSV byte stream: gzip, BOM, encoding check, delimiter sniffing, tokenizing with line numbers.

Runs inside Glue Python shell (Python 3.9), stdlib and pyarrow only. Two tokenizers yield the
same thing, batches of string columns plus the physical source line where each record starts:

- ``arrow`` (default): ``pyarrow.csv.open_csv`` streaming, all columns as strings, single-threaded
  parsing so that pyarrow reports the record ordinal of each ragged row (``InvalidRow.number`` is
  only known without threads); line numbers are the running count of physical lines, adding the
  newlines embedded in quoted values (only computed once a quote character has been seen).
  Needs ``ParseOptions.invalid_row_handler`` (pyarrow >= 8).
- ``python``: the stdlib ``csv`` module (fallback for older pyarrow; also used by tests for parity).

File-level problems raise :class:`SourceProblem` with a machine reason
(``empty_file``, ``corrupt_gzip``, ``not_decodable``, ``malformed_csv``); the transform turns
it into ``FileRejected``.
"""

from __future__ import annotations

import array
import codecs
import csv
import gzip
import io
import threading
import time
import weakref
import zlib
from typing import Any, Iterator, List, Optional, Tuple

import pyarrow as pa

__all__ = ["SourceProblem", "SourceReader", "read_header", "Batch", "iter_batches", "arrow_supports_handler"]

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_BOM = codecs.BOM_UTF8
# blocks of ``block_size`` bytes the CSV reader may hold at once (pyarrow alone reads ~32 ahead)
_MAX_LIVE_BLOCKS = 6
_UTF8_NAMES = {"utf8", "utf-8", "utf_8", "utf-8-sig", "utf_8_sig", "utf8-sig"}


def int64_array(values: Any) -> pa.Array:
    """An int64 Arrow array from Python ints, built from a buffer (``pa.array`` of Python objects
    makes pyarrow import pandas, ~40 MB of RSS)."""
    buf = array.array("q", values)
    return pa.Array.from_buffers(pa.int64(), len(buf), [None, pa.py_buffer(buf)])


class SourceProblem(Exception):
    """The byte stream cannot be read as CSV at all."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SourceReader(io.RawIOBase):
    """A read-only binary stream over the source that yields UTF-8 CSV bytes.

    Detects gzip by magic bytes, strips a UTF-8 BOM, validates UTF-8 (or transcodes another
    declared encoding to UTF-8), counts bytes and remembers whether a quote character was seen.
    Errors are raised as :class:`SourceProblem` and also stored in ``problem`` because pyarrow
    may wrap exceptions raised inside ``read``.
    """

    def __init__(self, raw: Any, encoding: str = "utf-8") -> None:
        super().__init__()
        self._raw = raw
        self.bytes_read = 0  # bytes taken from the source (compressed if gzip)
        self.bytes_decoded = 0  # decompressed bytes before transcoding
        self.problem: Optional[SourceProblem] = None
        self.saw_quote = False
        self.bom = False
        self.gzip = False
        self._pending = b""  # bytes already produced but not yet returned
        self._eof = False
        self._utf8 = encoding.lower().replace("_", "-") in _UTF8_NAMES
        self.encoding = "utf-8" if self._utf8 else encoding
        try:
            self._decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        except LookupError as exc:
            raise SourceProblem(f"unknown encoding {encoding!r} in the dataset contract", "not_decodable") from exc
        head = self._raw_read(2)
        if head[:2] == b"\x1f\x8b":
            self.gzip = True
            self._stream: Any = gzip.GzipFile(fileobj=_Prefixed(head, self), mode="rb")  # type: ignore[call-overload]
            self._head = b""
        else:
            self._stream = None
            self._head = head
        self._first = True
        self._max_live = 0  # 0: unbounded; else at most this many handed-out buffers alive (see bound_buffers)
        self._live = 0
        self._live_cond = threading.Condition()
        self._refs: Any = set()
        self._wait = 5.0
        self.max_live_seen = 0
        self.bound_waits = 0  # reads that gave up waiting for a buffer to be released

    def bound_buffers(self, max_live: int, wait: float = 5.0) -> None:
        """From now on ``read`` hands out at most ``max_live`` buffers that are still alive.

        pyarrow's streaming CSV reader reads up to ~32 blocks ahead on its I/O thread and keeps each
        block (our ``bytes``) alive until parsed; ``read`` returns ``memoryview`` objects whose release
        is tracked and blocks the reading thread while ``max_live`` of them are alive, so the read-ahead
        is bounded. A read waits at most ``wait`` seconds (then proceeds anyway), so a record larger than
        the bound can never deadlock.
        """
        self._max_live = max_live
        self._wait = wait

    def _released(self, ref: Any) -> None:
        with self._live_cond:
            self._refs.discard(ref)
            self._live -= 1
            self._live_cond.notify_all()

    def _track(self, data: bytes) -> Any:
        with self._live_cond:
            if self._live >= self._max_live:
                deadline = time.monotonic() + self._wait
                while self._live >= self._max_live:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.bound_waits += 1
                        break
                    self._live_cond.wait(left)
            view = memoryview(data)
            self._refs.add(weakref.ref(view, self._released))
            self._live += 1
            self.max_live_seen = max(self.max_live_seen, self._live)
        return view

    # -- raw side ---------------------------------------------------------------------------
    def _raw_read(self, n: int) -> bytes:
        data = self._raw.read(n)
        if data is None:
            data = b""
        self.bytes_read += len(data)
        return bytes(data)

    def _next_chunk(self, n: int) -> bytes:
        """Next chunk of decompressed source bytes (b'' at end)."""
        if self._stream is not None:
            try:
                data = self._stream.read(n)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._fail(f"corrupt gzip data after {self.bytes_read} compressed bytes: {exc}",
                                 "corrupt_gzip") from exc
            return bytes(data)
        if self._head:
            data, self._head = self._head + self._raw_read(max(n - len(self._head), 0)), b""
            return data
        return self._raw_read(n)

    def _fail(self, message: str, reason: str) -> SourceProblem:
        self.problem = SourceProblem(message, reason)
        return self.problem

    def _produce(self, n: int) -> bytes:
        chunk = self._next_chunk(n)
        final = not chunk
        if self._first:
            self._first = False
            # a BOM may span two tiny reads; make sure we have at least 3 bytes to look at
            while chunk and len(chunk) < 4:
                more = self._next_chunk(n)
                if not more:
                    break
                chunk += more
            if chunk.startswith(_BOM):
                self.bom = True
                chunk = chunk[3:]
                self.bytes_decoded += 3
        offset = self.bytes_decoded
        self.bytes_decoded += len(chunk)
        if self._utf8:
            # Fast path: pure ASCII needs no decoding at all.
            if chunk.isascii() and not self._decoder.getstate()[0]:
                out = chunk
            else:
                try:
                    self._decoder.decode(chunk, final)
                except UnicodeDecodeError as exc:
                    raise self._decode_error(exc, chunk, offset) from exc
                out = chunk
        else:
            try:
                out = self._decoder.decode(chunk, final).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc, chunk, offset) from exc
        if b'"' in out:
            self.saw_quote = True
        if final:
            self._eof = True
        return out

    def _decode_error(self, exc: UnicodeDecodeError, chunk: bytes, offset: int) -> SourceProblem:
        # exc.start is relative to the decoder's buffered bytes + chunk; buffered bytes belong before chunk
        pending = len(exc.object) - len(chunk)
        pos = offset - pending + exc.start
        bad = exc.object[exc.start:exc.start + 1]
        what = f"byte 0x{bad[0]:02x}" if bad else "a truncated character"
        return self._fail(
            f"not valid {self.encoding} at byte offset {pos} ({what}); the dataset contract's encoding is "
            f"{self.encoding!r}: re-save the file as {self.encoding} or declare its real encoding "
            "(e.g. latin-1) in dataset_contract.encoding",
            "not_decodable",
        )

    # -- io API -------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._pending]
            self._pending = b""
            while not self._eof:
                parts.append(self._produce(1 << 22))
            return b"".join(parts)
        while len(self._pending) < size and not self._eof:
            self._pending += self._produce(max(size, 1 << 16))
        if len(self._pending) <= size:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        if self._max_live and out:
            return self._track(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def unread(self, data: bytes) -> None:
        """Push bytes back in front of the stream (used after reading the header)."""
        self._pending = data + self._pending


class _Prefixed:
    """A file-like object that first returns ``head`` then reads through the SourceReader's raw side."""

    def __init__(self, head: bytes, owner: SourceReader) -> None:
        self._head = head
        self._owner = owner

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0 or n >= len(self._head):
                rest = self._owner._raw_read(-1 if n is None or n < 0 else n - len(self._head))
                out, self._head = self._head + rest, b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._owner._raw_read(-1 if n is None else n)


def read_header(src: SourceReader, declared: Optional[str]) -> Tuple[List[str], str, int]:
    """Read and parse the header record; leave the stream positioned at the first data record.

    Returns
    -------
    (header cells, delimiter, physical lines the header occupies)
    """
    buf = b""
    in_quotes = False
    pos = 0
    end = -1
    while end < 0:
        chunk = src.read(1 << 16)
        if not chunk:
            end = len(buf)
            break
        buf += chunk
        while pos < len(buf):
            ch = buf[pos]
            if ch == 0x22:
                in_quotes = not in_quotes
            elif ch == 0x0A and not in_quotes:
                end = pos + 1
                break
            elif ch == 0x0D and not in_quotes:
                end = pos + (2 if buf[pos + 1:pos + 2] == b"\n" else 1)
                if pos + 1 >= len(buf):
                    more = src.read(1)
                    buf += more
                    end = pos + (2 if more == b"\n" else 1)
                break
            pos += 1
        if len(buf) > (1 << 24):
            raise SourceProblem("no end of the header line in the first 16 MB", "malformed_csv")
    header_bytes, rest = buf[:end], buf[end:]
    src.unread(rest)
    text = header_bytes.decode("utf-8")
    if not text.strip():
        raise SourceProblem("the file is empty (no header line)", "empty_file")
    delim = declared or sniff_delimiter(text)
    cells = next(csv.reader([text.rstrip("\r\n")], delimiter=delim, strict=False), [])
    lines = header_bytes.count(b"\n") + (0 if header_bytes.endswith(b"\n") else 1)
    return cells, delim, lines


def sniff_delimiter(header_line: str) -> str:
    """Pick the candidate delimiter (, ; tab |) that occurs most often outside quotes in the header."""
    counts = dict.fromkeys(CANDIDATE_DELIMITERS, 0)
    in_q = False
    for ch in header_line:
        if ch == '"':
            in_q = not in_q
        elif not in_q and ch in counts:
            counts[ch] += 1
    best = max(CANDIDATE_DELIMITERS, key=lambda d: counts[d])  # ties: first candidate (",") wins
    return best if counts[best] else ","


class Batch:
    """A batch of records: string columns (one per header cell), start lines, ragged records."""

    __slots__ = ("columns", "lines", "ragged")

    def __init__(self, columns: List[pa.Array], lines: pa.Array, ragged: List[Tuple[int, str, int]]) -> None:
        self.columns = columns
        self.lines = lines  # int64, physical line where each record starts
        self.ragged = ragged  # (line, raw text, field count) of records with the wrong number of fields


def arrow_supports_handler() -> bool:
    """True when this pyarrow has ``ParseOptions.invalid_row_handler`` (pyarrow >= 8)."""
    import pyarrow.csv as pcsv

    try:
        pcsv.ParseOptions(invalid_row_handler=lambda row: "skip")
    except TypeError:
        return False
    return True


def iter_batches(src: SourceReader, ncols: int, delimiter: str, first_line: int, *,
                 engine: str = "auto", block_size: int = 4 << 20, batch_rows: int = 65536) -> Iterator[Batch]:
    """Tokenize the data records that follow the header into :class:`Batch` objects."""
    if engine == "auto":
        engine = "arrow" if arrow_supports_handler() else "python"
    if engine == "arrow":
        return _iter_arrow(src, ncols, delimiter, first_line, block_size)
    if engine == "python":
        return _iter_python(src, ncols, delimiter, first_line, batch_rows)
    raise ValueError(f"unknown engine {engine!r}")


def _iter_arrow(src: SourceReader, ncols: int, delimiter: str, first_line: int, block_size: int) -> Iterator[Batch]:
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    names = ["c%d" % i for i in range(ncols)]
    pending: List[Tuple[int, str, int]] = []  # (record ordinal, raw text, fields) from pyarrow, in order

    def on_invalid(row: Any) -> str:
        pending.append((int(row.number), str(row.text), int(row.actual_columns)))
        return "skip"

    src.bound_buffers(_MAX_LIVE_BLOCKS)
    try:
        reader = pcsv.open_csv(
            src,
            read_options=pcsv.ReadOptions(column_names=names, block_size=block_size, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False,
                                            invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                                quoted_strings_can_be_null=False, check_utf8=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        if src.problem is not None:
            raise src.problem from exc
        if "Empty CSV file" in str(exc):
            return  # header only
        raise SourceProblem(f"CSV parse error: {exc}", "malformed_csv") from exc
    ordinal = 1  # pyarrow numbers records from 1 (after our header was removed)
    line = first_line
    pi = 0  # index into pending of the next unplaced ragged record
    while True:
        try:
            rb = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError) as exc:
            if src.problem is not None:
                raise src.problem from exc
            raise SourceProblem(f"CSV parse error: {exc}", "malformed_csv") from exc
        n = rb.num_rows
        cols = list(rb.columns)
        if src.saw_quote and n:
            nl = None
            for c in cols:
                cnt = pc.count_substring(c, "\n")
                nl = cnt if nl is None else pc.add(nl, cnt)
            extra = nl.to_pylist() if nl is not None and pc.sum(nl).as_py() else None
        else:
            extra = None
        # ragged records reported so far that fall inside (or right after) this batch's ordinals
        if not (pi < len(pending) and pending[pi][0] <= ordinal + n + (len(pending) - pi)):
            if extra is None:
                lines = int64_array(range(line, line + n))
                line += n
            else:
                starts: List[int] = []
                for e in extra:
                    starts.append(line)
                    line += 1 + e
                lines = int64_array(starts)
            ordinal += n
            yield Batch(cols, lines, [])
            continue
        # Slow path (rare): interleave ragged records by ordinal.
        starts = []
        ragged: List[Tuple[int, str, int]] = []
        i = 0
        while i < n or (pi < len(pending) and pending[pi][0] == ordinal):
            if pi < len(pending) and pending[pi][0] == ordinal:
                text = pending[pi][1]
                ragged.append((line, text, pending[pi][2]))
                line += 1 + text.count("\n")
                pi += 1
            else:
                starts.append(line)
                line += 1 + (extra[i] if extra is not None else 0)
                i += 1
            ordinal += 1
        yield Batch(cols, int64_array(starts), ragged)
    if src.problem is not None:
        raise src.problem
    rest = pending[pi:]
    if rest:
        ragged = []
        for _, text, nf in rest:
            ragged.append((line, text, nf))
            line += 1 + text.count("\n")
        yield Batch([pa.array([], pa.string()) for _ in range(ncols)], pa.array([], pa.int64()), ragged)


def _iter_python(src: SourceReader, ncols: int, delimiter: str, first_line: int, batch_rows: int) -> Iterator[Batch]:
    text = io.TextIOWrapper(src, encoding="utf-8", newline="")  # type: ignore[type-var]
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    cols: List[List[str]] = [[] for _ in range(ncols)]
    starts: List[int] = []
    ragged: List[Tuple[int, str, int]] = []
    prev = 0  # reader.line_num after the previous record
    try:
        for rec in reader:
            start = first_line + prev
            prev = reader.line_num
            if len(rec) == ncols:
                for c, v in zip(cols, rec):  # noqa: B905 - Python 3.9
                    c.append(v)
                starts.append(start)
            elif not rec:  # an empty line: pyarrow yields it as an all-empty record; do the same
                for c in cols:
                    c.append("")
                starts.append(start)
            else:
                ragged.append((start, _join(rec, delimiter), len(rec)))
            if len(starts) + len(ragged) >= batch_rows:
                yield Batch([pa.array(c, pa.string()) for c in cols], pa.array(starts, pa.int64()), ragged)
                cols = [[] for _ in range(ncols)]
                starts, ragged = [], []
    except csv.Error as exc:
        if src.problem is not None:
            raise src.problem from exc
        raise SourceProblem(f"CSV parse error near line {first_line + prev}: {exc}", "malformed_csv") from exc
    except SourceProblem:
        raise
    if src.problem is not None:
        raise src.problem
    if starts or ragged:
        yield Batch([pa.array(c, pa.string()) for c in cols], pa.array(starts, pa.int64()), ragged)


def _join(fields: List[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()

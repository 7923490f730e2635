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
(``empty_file``, ``corrupt_gzip``, ``not_decodable``, ``malformed_csv``, ``line_too_long``); the
transform turns it into ``FileRejected``.

Row-level byte problems never stop the stream. Each becomes one NUL byte in the UTF-8 the
tokenizer sees, and a :class:`ByteProblem` in ``SourceReader.problems`` (in stream order): a NUL
byte in the source (``nul_byte``), a run of bytes that are not the file's encoding
(``invalid_encoding``), or a physical line longer than ``max_line_bytes`` (``line_too_long``: the
line is dropped up to its newline and stands as one NUL). The transform quarantines the record
holding each NUL with its problem, in order; every other record is untouched. NUL can stand for
all three because Redshift refuses NUL anyway, so no loadable record ever contains one.
"""

from __future__ import annotations

import array
import codecs
import collections
import csv
import gzip
import io
import re
import sys
import threading
import time
import weakref
import zlib
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pyarrow as pa

from etl_runtime.contract import DEFAULT_MAX_LINE_BYTES

__all__ = ["SourceProblem", "SourceReader", "ByteProblem", "read_header", "Batch", "iter_batches",
           "arrow_supports_handler", "resolve_encodings", "MAX_LINE_BYTES"]

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_BOM = codecs.BOM_UTF8
# blocks of ``block_size`` bytes the CSV reader may hold at once (pyarrow alone reads ~32 ahead)
_MAX_LIVE_BLOCKS = 6
MAX_LINE_BYTES = DEFAULT_MAX_LINE_BYTES  # a longer physical line is a row reject (line_too_long)
# ``auto``: what Excel and most tools write. Valid UTF-8 wins; UTF-16 only with its BOM.
AUTO_ENCODINGS = ("utf-8", "utf-16", "cp1252")
_MARK_ERRORS = "etlkit-mark"
_MARKS = re.compile("[\udc00-\udcff]+|\x00")  # a run of undecodable bytes, or a NUL character


def _mark(exc: UnicodeError) -> Tuple[str, int]:
    """Codec error handler: each undecodable byte b becomes the lone surrogate U+DC00+b.

    Strict decoders never produce lone surrogates, so the marks cannot be confused with text, and
    (unlike ``surrogateescape``) bytes below 0x80 are marked too (UTF-16's unpaired surrogates).
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(chr(0xDC00 + b) for b in bad), exc.end


codecs.register_error(_MARK_ERRORS, _mark)


def resolve_encodings(declared: Any) -> List[str]:
    """The codec names a contract's ``encoding`` allows, in preference order.

    ``declared`` is one name, a list of names, or ``auto`` (UTF-8, UTF-16 with a BOM, Windows-1252).
    ``utf-8-sig`` means ``utf-8`` (a UTF-8 BOM is always accepted and stripped).
    """
    names = list(declared) if isinstance(declared, (list, tuple)) else [declared or "utf-8"]
    out: List[str] = []
    for name in names:
        parts = AUTO_ENCODINGS if str(name).lower() == "auto" else (str(name),)
        for part in parts:
            try:
                codec = codecs.lookup(part).name
            except LookupError as exc:
                raise SourceProblem(f"unknown encoding {part!r} in dataset_contract.encoding (use a Python codec "
                                    "name such as utf-8, cp1252, utf-16, or auto)", "not_decodable") from exc
            codec = "utf-8" if codec == "utf-8-sig" else codec
            if codec not in out:
                out.append(codec)
    return out


class ByteProblem:
    """A byte-level problem in the source that became one NUL in the tokenizer's input."""

    __slots__ = ("detail", "offset", "reason")

    def __init__(self, reason: str, offset: int, detail: str) -> None:
        self.reason = reason  # nul_byte | invalid_encoding | line_too_long
        self.offset = offset  # byte offset in the (decompressed) source
        self.detail = detail

    def __repr__(self) -> str:
        return f"ByteProblem({self.reason!r}, {self.offset}, {self.detail!r})"


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

    Detects gzip by magic bytes and the encoding among those the contract allows (see
    :meth:`_decide`), strips a BOM, transcodes to UTF-8, counts bytes and remembers whether a
    quote character was seen. Byte problems of single records go to ``problems`` (see the module
    docstring); file-level errors are raised as :class:`SourceProblem` and also stored in
    ``problem`` because pyarrow may wrap exceptions raised inside ``read``.
    """

    def __init__(self, raw: Any, encoding: Any = "utf-8", max_line_bytes: int = MAX_LINE_BYTES) -> None:
        super().__init__()
        self._raw = raw
        self.bytes_read = 0  # bytes taken from the source (compressed if gzip)
        self.bytes_decoded = 0  # decompressed bytes before transcoding
        self.problem: Optional[SourceProblem] = None
        self.problems: Any = collections.deque()  # ByteProblem, in stream order (appended by the reading thread)
        self.problem_count = 0
        self.saw_quote = False
        self.bom = False
        self.gzip = False
        self._pieces: Any = collections.deque()  # buffers already produced but not yet returned
        self._eof = False
        self.allowed = resolve_encodings(encoding)
        self.encoding = self.allowed[0]  # final once decided (see _decide)
        self.detected = False
        self._decided = False
        self._carry = b""  # an incomplete UTF-8 sequence at the end of the last chunk
        self._decoder: Any = None
        self.max_line_bytes = max_line_bytes
        self._line = _LineLimiter(self, max_line_bytes)
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

    def _produce(self, n: int) -> List[Any]:
        chunk = self._next_chunk(n)
        final = not chunk
        if self._first:
            self._first = False
            # a BOM may span two tiny reads; make sure we have at least 4 bytes to look at
            while chunk and len(chunk) < 4:
                more = self._next_chunk(n)
                if not more:
                    break
                chunk += more
            final = not chunk
            chunk = self._bom(chunk)
        offset = self.bytes_decoded - len(self._carry)
        self.bytes_decoded += len(chunk)
        if not self._decided and not chunk.isascii():
            self._decide(chunk)
        staged: List[Tuple[int, ByteProblem]] = []  # (position in out, problem)
        if not self._decided or self.encoding == "utf-8":
            out = self._utf8(chunk, final, offset, staged)
        else:
            out = self._transcode(chunk, final, offset, staged)
        if not self.saw_quote and b'"' in out:
            self.saw_quote = True
        if final:
            self._eof = True
        return self._line.feed(out, staged, final)

    def _bom(self, chunk: bytes) -> bytes:
        """Strip a BOM; it decides the encoding (UTF-8, or UTF-16 when the contract allows it)."""
        utf16 = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}
        if chunk.startswith(_BOM):
            if "utf-8" not in self.allowed:
                raise self._fail(f"the file starts with a UTF-8 BOM but dataset_contract.encoding allows only "
                                 f"{', '.join(self.allowed)}: add utf-8 (or use auto)", "not_decodable")
            self.bom, self._decided, self.encoding, self.detected = True, True, "utf-8", len(self.allowed) > 1
            self.bytes_decoded += 3
            return chunk[3:]
        for bom, name in utf16.items():
            if chunk.startswith(bom) and chunk[:4] != codecs.BOM_UTF32_LE:
                if not any(a.startswith("utf-16") for a in self.allowed):
                    raise self._fail(f"the file is UTF-16 (BOM {bom.hex(' ').upper()}) but dataset_contract.encoding "
                                     f"allows only {', '.join(self.allowed)}: add utf-16 (or use auto), or re-save "
                                     "the file as UTF-8", "not_decodable")
                self.bom, self.detected = True, len(self.allowed) > 1
                self._use(name)
                self.bytes_decoded += 2
                return chunk[2:]
        if len(self.allowed) == 1 or "utf-8" not in self.allowed:
            self._use(self.allowed[0])  # nothing to choose (or no UTF-8 to prefer): the first allowed
        return chunk

    def _use(self, encoding: str) -> None:
        self._decided, self.encoding = True, encoding
        if encoding != "utf-8":
            self._decoder = codecs.getincrementaldecoder(encoding)(_MARK_ERRORS)

    def _decide(self, chunk: bytes) -> None:
        """Pick UTF-8 or the fallback (e.g. cp1252) at the first block with non-ASCII bytes.

        Until then the allowed encodings agree (ASCII). UTF-8 wins unless most of the block's
        non-ASCII bytes are not valid UTF-8 (a Windows-1252 export has no valid multi-byte
        sequences; a UTF-8 file with a few broken bytes keeps UTF-8 and quarantines those rows).
        """
        fallback = [a for a in self.allowed if a != "utf-8" and not a.startswith("utf-16")]
        if not fallback:
            self._use("utf-8")
            return
        text, _ = codecs.utf_8_decode(self._carry + chunk, "surrogateescape", False)
        bad = len(re.findall("[\udc80-\udcff]", text))
        good = len(re.findall("[^\x00-\x7f\udc80-\udcff]", text)) if bad else 1
        self.detected = True
        self._use("utf-8" if good >= bad else fallback[0])
        if self.encoding != "utf-8" and self._carry:  # bytes held back as a partial UTF-8 sequence
            self.bytes_decoded -= len(self._carry)
            self._carry = b""

    def _utf8(self, chunk: bytes, final: bool, offset: int, staged: List[Tuple[int, ByteProblem]]) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        if data.isascii():
            self._carry = b""
            out = data
        else:
            try:
                _, used = codecs.utf_8_decode(data, "strict", final)
                out, self._carry = data[:used], data[used:]
            except UnicodeDecodeError:
                text, used = codecs.utf_8_decode(data, "surrogateescape", final)
                self._carry = data[used:]
                return self._rebuild(text, "utf-8", offset, staged, surrogateescape=True)
        if b"\x00" in out:
            pos = out.find(b"\x00")
            while pos >= 0:
                staged.append((pos, ByteProblem("nul_byte", offset + pos, f"NUL byte at byte offset {offset + pos}")))
                pos = out.find(b"\x00", pos + 1)
        return out

    def _transcode(self, chunk: bytes, final: bool, offset: int, staged: List[Tuple[int, ByteProblem]]) -> bytes:
        if self._carry:  # decided after a partial UTF-8 sequence was held back: it belongs to this encoding
            chunk, self._carry = self._carry + chunk, b""
        text = self._decoder.decode(chunk, final)
        if "\x00" not in text and not _MARKS.search(text):
            return text.encode("utf-8")
        return self._rebuild(text, self.encoding, offset, staged, surrogateescape=False)

    def _rebuild(self, text: str, encoding: str, offset: int, staged: List[Tuple[int, ByteProblem]],
                 surrogateescape: bool) -> bytes:
        """UTF-8 of ``text`` with each NUL and each run of undecodable bytes as one NUL (slow path)."""
        width = "utf-16-le" if encoding.startswith("utf-16") else encoding  # source bytes per character
        parts: List[bytes] = []
        size = 0  # bytes of out so far
        src = offset  # source byte offset
        last = 0
        for m in _MARKS.finditer(text):
            good = text[last:m.start()]
            enc = good.encode("utf-8")
            parts.append(enc)
            size += len(enc)
            src += len(good.encode(width)) if width != "utf-8" else len(enc)
            run = m.group()
            if run == "\x00":
                problem = ByteProblem("nul_byte", src, f"NUL byte at byte offset {src}")
                src += len("\x00".encode(width))
            else:
                raw = bytes((ord(c) - 0xDC00) & 0xFF for c in run)
                problem = ByteProblem("invalid_encoding", src,
                                      f"{len(raw)} byte(s) 0x{raw[:8].hex()} not valid {encoding} at byte offset {src}")
                src += len(raw)
            staged.append((size, problem))
            parts.append(b"\x00")
            size += 1
            last = m.end()
        parts.append(text[last:].encode("utf-8"))
        return b"".join(parts)

    # -- io API -------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> Any:
        """Up to ``size`` bytes (``bytes`` or a ``memoryview``); fewer than asked as soon as any are
        ready (the line limiter holds back the current line), ``b""`` only at the end."""
        pieces = self._pieces
        if size is None or size < 0:
            while not self._eof:
                pieces.extend(self._produce(1 << 22))
            whole = b"".join(pieces)
            pieces.clear()
            return whole
        while not pieces and not self._eof:  # a long line may hold back a whole chunk
            pieces.extend(self._produce(max(size, 1 << 16)))
        if not pieces:
            return b""
        out: Any = pieces.popleft()
        if len(out) > size:  # slices of a memoryview copy nothing
            view = out if isinstance(out, memoryview) else memoryview(out)
            out = view[:size]
            pieces.appendleft(view[size:])
        if self._max_live and len(out):
            return self._track(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def unread(self, data: bytes) -> None:
        """Push bytes back in front of the stream (used after reading the header)."""
        if data:
            self._pieces.appendleft(bytes(data))


class _LineLimiter:
    """Bounds physical lines: one longer than ``max_bytes`` is dropped up to its newline and stands as one NUL.

    Holds back the current incomplete line (at most ``max_bytes``) so that a line found too long
    can be replaced whole, and moves each staged :class:`ByteProblem` to ``owner.problems`` when
    its NUL is handed on, so problems stay in the order of the NULs the tokenizer sees. The
    tokenizer can only resync after a dropped line when no quoted field is open before it or
    after it (quote parity even); otherwise the file is rejected (``line_too_long``).
    """

    def __init__(self, owner: SourceReader, max_bytes: int) -> None:
        self.owner = owner
        self.max = max_bytes
        self.partial = b""  # the current line's start, not handed on yet
        self.partial_staged: List[Tuple[int, ByteProblem]] = []
        self.skipping = False  # dropping an over-long line up to its newline
        self.skip_len = 0
        self.skip_quotes = 0
        self.parity = 0  # quote characters handed on so far, mod 2
        self.line_start_parity = 0

    def feed(self, out: bytes, staged: List[Tuple[int, ByteProblem]], final: bool) -> List[Any]:
        """The buffers to hand on for this chunk (``bytes`` or ``memoryview`` slices of ``out``, no copy)."""
        if self.max <= 0:
            self._push(staged, 0, len(out))
            return [out] if out else []
        res: List[Any] = []
        if self.skipping:
            k = out.find(b"\n")
            self.skip_len += len(out) if k < 0 else k
            self.skip_quotes += out.count(b'"', 0, len(out) if k < 0 else k)
            if k < 0:
                if final:
                    self._end_skip(res)
                return res
            self._end_skip(res)
            out, staged = out[k:], [(p - k, pr) for p, pr in staged if p >= k]
        start = 0
        if self.partial:
            k = out.find(b"\n")
            if k >= 0 and len(self.partial) + k <= self.max:
                # the usual case: the held-back line ends early in this chunk; copy only that line
                head = self.partial + out[:k + 1]
                shift = len(self.partial)
                self._emit(head, 0, len(head), self.partial_staged + [(p + shift, pr) for p, pr in staged if p <= k],
                           res)
                self.partial, self.partial_staged = b"", []
                start = k + 1
            else:  # rare: a long line or a chunk without a newline
                shift = len(self.partial)
                out = self.partial + out
                staged = self.partial_staged + [(p + shift, pr) for p, pr in staged]
                self.partial, self.partial_staged = b"", []
        self._scan(out, start, staged, final, res)
        return res

    def _scan(self, buf: bytes, start: int, staged: List[Tuple[int, ByteProblem]], final: bool,
              res: List[Any]) -> None:
        """Hand on ``buf[start:]`` up to its last newline, dropping lines over the limit; hold back the rest."""
        n, pos, emit_from = len(buf), start, start
        while n - pos > self.max:
            j = buf.rfind(b"\n", pos, pos + self.max + 1)
            if j >= 0:
                pos = j + 1
                continue
            # the line starting at pos is too long: hand on what precedes it, drop it up to its newline
            self._emit(buf, emit_from, pos, staged, res)
            k = buf.find(b"\n", pos + self.max)
            end = n if k < 0 else k
            self.skipping, self.skip_len, self.skip_quotes = True, end - pos, buf.count(b'"', pos, end)
            self.line_start_parity = self.parity
            if k < 0:
                if final:
                    self._end_skip(res)
                return
            self._end_skip(res)
            emit_from, pos = k, k + 1
        if final:
            cut = n
        else:
            nl = buf.rfind(b"\n", pos)
            cut = nl + 1 if nl >= 0 else pos
        self._emit(buf, emit_from, cut, staged, res)
        if cut < n:
            self.partial = buf[cut:]
            self.partial_staged = [(p - cut, pr) for p, pr in staged if p >= cut]

    def _emit(self, buf: bytes, a: int, b: int, staged: List[Tuple[int, ByteProblem]], res: List[Any]) -> None:
        if b <= a:
            return
        res.append(buf if a == 0 and b == len(buf) else memoryview(buf)[a:b])
        if self.owner.saw_quote:
            self.parity ^= buf.count(b'"', a, b) & 1
        self._push(staged, a, b)

    def _push(self, staged: List[Tuple[int, ByteProblem]], a: int, b: int) -> None:
        for p, pr in staged:
            if a <= p < b:
                self.owner.problems.append(pr)
                self.owner.problem_count += 1

    def _end_skip(self, res: List[bytes]) -> None:
        self.skipping = False
        if self.line_start_parity or self.skip_quotes & 1:
            raise self.owner._fail(
                f"a line of {self.skip_len} bytes (more than max_line_bytes {self.max}) opens or continues a quoted "
                "field, so the records after it cannot be found: fix the quoting or split the line",
                "line_too_long")
        res.append(b"\x00")
        self.owner.problems.append(ByteProblem(
            "line_too_long", -1, f"a line of {self.skip_len} bytes, more than max_line_bytes {self.max}"))
        self.owner.problem_count += 1


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
    if b"\x00" in header_bytes:  # the header's own byte problems are the first ones recorded
        first = src.problems.popleft()
        for _ in range(header_bytes.count(b"\x00") - 1):
            src.problems.popleft()
        reason = "line_too_long" if first.reason == "line_too_long" else "not_decodable"
        hint = ""
        if header_bytes.count(b"\x00") * 4 > len(header_bytes):
            hint = ("; NUL in every other byte: the file looks like UTF-16 without a BOM, declare utf-16-le "
                    "(or utf-16-be) in dataset_contract.encoding")
        raise SourceProblem(f"the header line cannot be read: {first.detail}{hint}", reason)
    text = header_bytes.decode("utf-8")
    if not text.strip():
        raise SourceProblem("the file is empty (no header line)", "empty_file")
    delim = declared or sniff_delimiter(text)
    _raise_field_limit(src.max_line_bytes)
    try:
        cells = next(csv.reader([text.rstrip("\r\n")], delimiter=delim, strict=False), [])
    except csv.Error as exc:
        raise SourceProblem(f"the header line is not valid CSV: {exc}", "malformed_csv") from exc
    lines = header_bytes.count(b"\n") + (0 if header_bytes.endswith(b"\n") else 1)
    return cells, delim, lines


def _raise_field_limit(max_line_bytes: int) -> None:
    """Let the stdlib reader take fields as long as the line limit allows (its default is 128 KiB)."""
    want = max(max_line_bytes, 1 << 20) * 4  # quoted fields may span several lines
    if csv.field_size_limit() < want:
        csv.field_size_limit(want)


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
    names = ["c%d" % i for i in range(ncols)]
    placer = _RecordPlacer(first_line)
    src.bound_buffers(_MAX_LIVE_BLOCKS)
    reader = _open_arrow_reader(src, names, delimiter, block_size, placer.on_invalid)
    if reader is None:
        return  # header only
    while True:
        try:
            rb = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError) as exc:
            if src.problem is not None:
                raise src.problem from exc
            raise SourceProblem(f"CSV parse error: {exc}", "malformed_csv") from exc
        cols = list(rb.columns)
        extra = _newlines_per_record(cols) if src.saw_quote and rb.num_rows else None
        yield placer.batch(cols, rb.num_rows, extra)
    if src.problem is not None:
        raise src.problem
    rest = placer.leftover(ncols)
    if rest is not None:
        yield rest


def _open_arrow_reader(src: SourceReader, names: List[str], delimiter: str, block_size: int,
                       on_invalid: Callable[[Any], str]) -> Any:
    """pyarrow's streaming CSV reader over the source (every column a string), or None for a header-only file."""
    import pyarrow.csv as pcsv

    try:
        return pcsv.open_csv(
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
            return None
        raise SourceProblem(f"CSV parse error: {exc}", "malformed_csv") from exc


def _newlines_per_record(cols: List[Any]) -> Optional[List[int]]:
    """The newlines inside each record's quoted fields, or None when there are none in the batch."""
    import pyarrow.compute as pc

    nl = None
    for c in cols:
        cnt = pc.count_substring(c, "\n")
        nl = cnt if nl is None else pc.add(nl, cnt)
    return nl.to_pylist() if nl is not None and pc.sum(nl).as_py() else None


class _RecordPlacer:
    """Gives the records of pyarrow's batches their source lines, putting back in file order the ragged
    records pyarrow handed to :meth:`on_invalid` (and skipped)."""

    def __init__(self, first_line: int) -> None:
        self.pending: List[Tuple[int, str, int]] = []  # (record ordinal, raw text, fields) from pyarrow, in order
        self.ordinal = 1  # pyarrow numbers records from 1 (after our header was removed)
        self.line = first_line
        self.pi = 0  # index into pending of the next unplaced ragged record

    def on_invalid(self, row: Any) -> str:
        self.pending.append((int(row.number), str(row.text), int(row.actual_columns)))
        return "skip"

    def batch(self, cols: List[Any], n: int, extra: Optional[List[int]]) -> Batch:
        """The batch of ``n`` parsed records (``extra``: newlines inside each) with its ragged records."""
        pending, pi, ordinal = self.pending, self.pi, self.ordinal
        # ragged records reported so far that fall inside (or right after) this batch's ordinals
        if not (pi < len(pending) and pending[pi][0] <= ordinal + n + (len(pending) - pi)):
            line = self.line
            if extra is None:
                lines = int64_array(range(line, line + n))
                line += n
            else:
                starts: List[int] = []
                for e in extra:
                    starts.append(line)
                    line += 1 + e
                lines = int64_array(starts)
            self.line = line
            self.ordinal = ordinal + n
            return Batch(cols, lines, [])
        return self._interleave(cols, n, extra)

    def _interleave(self, cols: List[Any], n: int, extra: Optional[List[int]]) -> Batch:
        """Slow path (rare): interleave ragged records by ordinal."""
        pending = self.pending
        starts: List[int] = []
        ragged: List[Tuple[int, str, int]] = []
        i = 0
        while i < n or (self.pi < len(pending) and pending[self.pi][0] == self.ordinal):
            if self.pi < len(pending) and pending[self.pi][0] == self.ordinal:
                text = pending[self.pi][1]
                ragged.append((self.line, text, pending[self.pi][2]))
                self.line += 1 + text.count("\n")
                self.pi += 1
            else:
                starts.append(self.line)
                self.line += 1 + (extra[i] if extra is not None else 0)
                i += 1
            self.ordinal += 1
        return Batch(cols, int64_array(starts), ragged)

    def leftover(self, ncols: int) -> Optional[Batch]:
        """The ragged records after the last parsed one, as a batch of no regular record (None if none)."""
        rest = self.pending[self.pi:]
        if not rest:
            return None
        ragged = []
        for _, text, nf in rest:
            ragged.append((self.line, text, nf))
            self.line += 1 + text.count("\n")
        return Batch([pa.array([], pa.string()) for _ in range(ncols)], pa.array([], pa.int64()), ragged)


_NUL_STAND_IN = "\ufdd0"  # a Unicode noncharacter, not for interchange


def _iter_python(src: SourceReader, ncols: int, delimiter: str, first_line: int, batch_rows: int) -> Iterator[Batch]:
    _raise_field_limit(src.max_line_bytes)
    text: Any = io.TextIOWrapper(src, encoding="utf-8", newline="")
    # Before 3.11 the csv module refuses NUL ("line contains NUL"): stand it in as a noncharacter
    # for the tokenizer and put it back in the fields, so NUL marks still reach the transform.
    old_csv = sys.version_info < (3, 11)
    if old_csv:
        text = (line.replace("\x00", _NUL_STAND_IN) for line in text)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    cols: List[List[str]] = [[] for _ in range(ncols)]
    starts: List[int] = []
    ragged: List[Tuple[int, str, int]] = []
    prev = 0  # reader.line_num after the previous record
    try:
        for rec in reader:
            start = first_line + prev
            prev = reader.line_num
            if old_csv and any(_NUL_STAND_IN in v for v in rec):
                rec = [v.replace(_NUL_STAND_IN, "\x00") for v in rec]
            if len(rec) == ncols:
                for c, v in zip(cols, rec):
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

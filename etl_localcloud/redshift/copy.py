"""Redshift ``COPY ... FROM 's3://...'`` on PostgreSQL: Parquet and delimited text from the local S3.

The objects are read through moto directly and streamed into ``COPY ... FROM STDIN`` on
the statement's own connection, so a COPY is part of the surrounding transaction.
Parquet columns map to table columns by position, as Redshift maps them; each record
batch is rendered to CSV by pyarrow (C++) and sent as it is produced. Delimited text is
parsed in Python so that Redshift's options (``IGNOREHEADER``, ``NULL AS``,
``EMPTYASNULL``, ``BLANKSASNULL``, ``DATEFORMAT``, ``MAXERROR``...) keep their meaning.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import datetime as _dt
import gzip
import io
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from etl_localcloud.redshift.compat import LoadError
from etl_localcloud.redshift.sqltranslate import CopyCommand, TranslationError

__all__ = ["CopyError", "run_copy", "redshift_format_to_strptime"]


class CopyError(Exception):
    """A COPY that fails the way Redshift fails it (the message is what the caller sees).

    ``load_error`` is the row Redshift would write to STL_LOAD_ERRORS / SYS_LOAD_ERROR_DETAIL for it
    (the caller records it once the COPY's transaction has been rolled back), or None.
    """

    def __init__(self, message: str, load_error: LoadError | None = None) -> None:
        super().__init__(message)
        self.load_error = load_error


@dataclass
class _Column:
    name: str
    type_name: str  # format_type(), e.g. "numeric(18,2)"
    base: str  # typname, e.g. "numeric"


_TEXTUAL = {"varchar", "bpchar", "text", "char", "name"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _norm(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _target_columns(conn: Any, cmd: CopyCommand) -> list[_Column]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.attidentity, a.attgenerated "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (cmd.table,)).fetchall()
    by_name = {r[0]: _Column(r[0], r[1], r[2]) for r in rows}
    if cmd.columns:
        out = []
        for c in cmd.columns:
            col = by_name.get(_norm(c))
            if col is None:
                raise CopyError(f'column "{_norm(c)}" of relation "{cmd.table}" does not exist')
            out.append(col)
        return out
    explicit = "EXPLICIT_IDS" in cmd.options
    return [by_name[r[0]] for r in rows if (explicit or r[3] != "a") and not r[4]]


# --------------------------------------------------------------------------- S3
def _split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _objects(s3: Any, cmd: CopyCommand) -> list[tuple[str, str]]:
    """(bucket, key) of every object the COPY reads: one key, a prefix, or a manifest's entries."""
    bucket, key = _split_s3(cmd.source)
    try:
        if "MANIFEST" in cmd.options:
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                raise CopyError(f"Manifest file '{cmd.source}' does not exist") from None
            try:
                entries = json.loads(body)["entries"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CopyError(f"Manifest file '{cmd.source}' is not valid JSON with \"entries\": {exc}") from None
            out = []
            for e in entries:
                b, k = _split_s3(str(e["url"]))
                try:
                    s3.head_object(Bucket=b, Key=k)
                except Exception:
                    if e.get("mandatory", False):
                        raise CopyError(f"Manifest file is missing a mandatory file: {e['url']}") from None
                    continue
                out.append((b, k))
            return out
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/") and obj.get("Size", 1) > 0:
                    keys.append(obj["Key"])
    except s3.exceptions.NoSuchBucket:
        raise CopyError("S3ServiceException:The specified bucket does not exist,Status 404,Error NoSuchBucket,"
                        f"Bucket {bucket}") from None
    if not keys:
        raise CopyError(f"The specified S3 prefix '{key}' does not exist")
    return [(bucket, k) for k in sorted(keys)]


def _read(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# --------------------------------------------------------------------------- Parquet
# Columnar COPY takes only ACCEPTINVCHARS, FILLRECORD, FROM, IAM_ROLE, CREDENTIALS, STATUPDATE, MANIFEST and
# EXPLICIT_IDS on Redshift ("COPY from columnar data formats"); these are the others the local cloud parses.
_PARQUET_REJECT = ("DELIMITER", "IGNOREHEADER", "NULL", "QUOTE", "DATEFORMAT", "TIMEFORMAT", "GZIP", "BZIP2",
                   "EMPTYASNULL", "BLANKSASNULL", "MAXERROR", "TRIMBLANKS", "COMPUPDATE", "REGION", "ZSTD", "LZOP",
                   "ACCEPTANYDATE", "TRUNCATECOLUMNS", "ROUNDEC", "IGNOREBLANKLINES", "REMOVEQUOTES", "ESCAPE")


# Which Parquet (Arrow) types Redshift's columnar COPY loads into each column type (anything else fails the
# COPY with "incompatible Parquet schema"); PostgreSQL would convert most of them silently.
def _accepts(base: str, t: Any) -> bool:
    """Whether a Parquet column of Arrow type ``t`` loads into a column of PostgreSQL type ``base``."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t) or base in ("jsonb", "json"):
        return True
    ints = pa.types.is_integer(t)
    rules: dict[str, Callable[[Any], bool]] = {
        "int2": lambda x: ints and x.bit_width <= 16,
        "int4": lambda x: ints and x.bit_width <= 32 and not (pa.types.is_unsigned_integer(x) and x.bit_width == 32),
        "int8": lambda x: ints and not pa.types.is_uint64(x),
        "float4": lambda x: pa.types.is_float16(x) or pa.types.is_float32(x),
        "float8": pa.types.is_floating,
        "numeric": lambda x: pa.types.is_decimal(x) or ints,
        "bool": pa.types.is_boolean,
        "date": pa.types.is_date,
        "timestamp": pa.types.is_timestamp,
        "timestamptz": pa.types.is_timestamp,
        "time": pa.types.is_time,
        "bytea": lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x) or pa.types.is_fixed_size_binary(x),
    }
    if base in _TEXTUAL:
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))
    rule = rules.get(base)
    return True if rule is None else bool(rule(t))


def _check_parquet_types(pf: Any, cols: list[_Column], cmd: CopyCommand, where: tuple[str, str, str]) -> None:
    """Fail as Redshift does when a Parquet column's type does not fit its target column (by position)."""
    bucket, key, region = where
    for i, col in enumerate(cols):
        field = pf.schema_arrow.field(i)
        if _accepts(col.base, field.type):
            continue
        leaf = pf.schema.column(i)
        logical = f" ({leaf.logical_type})" if str(leaf.logical_type) not in ("None", "") else ""
        parquet = f"optional {leaf.physical_type.lower()} {leaf.name}{logical}"
        url = f"https://s3.{region}.amazonaws.com/{bucket}/{key}"
        context = (f"File '{url}' has an incompatible Parquet schema for column 's3://{bucket}/{key}.{field.name}'. "
                   f"Column type: {col.type_name.upper()}, Parquet schema:\n{parquet}")
        raise CopyError(f"Spectrum Scan Error: {context}", LoadError(
            table=cmd.table, file=f"s3://{bucket}/{key}", line=1, column=col.name, column_type=col.base,
            column_length="", raw_line="", raw_value="", code=15007, reason=context))


def _arrow_to_csv_ready(table: Any) -> Any:
    """Columns pyarrow's CSV writer cannot render (nested, binary) become JSON / hex text."""
    import pyarrow as pa

    cols = []
    changed = False
    for col in table.columns:
        t = col.type
        if pa.types.is_nested(t) or pa.types.is_map(t):
            vals = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
            cols.append(pa.array(vals, pa.string()))
            changed = True
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            cols.append(pa.array([None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string()))
            changed = True
        elif pa.types.is_dictionary(t):
            cols.append(col.cast(t.value_type))
            changed = True
        else:
            cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names) if changed else table


def _encode(pf: Any, encode: Callable[[Any], Any], chunks: queue.Queue[Any], stop: threading.Event) -> None:
    """Producer: Parquet record batches -> COPY bytes (pyarrow/numpy, GIL mostly released) onto ``chunks``."""
    try:
        for batch in pf.iter_batches(batch_size=131072):
            if stop.is_set():
                return
            chunks.put((encode(batch), batch.num_rows))
        chunks.put(None)
    except BaseException as exc:
        chunks.put(exc)


def _csv_encoder() -> Callable[[Any], Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    opts = pacsv.WriteOptions(include_header=False, batch_size=8192)

    def encode(batch: Any) -> Any:
        buf = pa.BufferOutputStream()
        pacsv.write_csv(_arrow_to_csv_ready(pa.Table.from_batches([batch])), buf, write_options=opts)
        return buf.getvalue()

    return encode


def _copy_parquet(conn: Any, cmd: CopyCommand, cols: list[_Column], objects: list[tuple[str, str]],
                  s3: Any, region: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl_localcloud.redshift import pgbinary

    for opt in _PARQUET_REJECT:
        if opt in cmd.options:
            raise CopyError(f"COPY option {opt} is not valid with FORMAT AS PARQUET")
    total = 0
    for bucket, key in objects:
        data = _read(s3, bucket, key)
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
        except Exception as exc:
            raise CopyError(f"File 'https://s3.{region}.amazonaws.com/{bucket}/{key}' is not a valid Parquet file: "
                            f"{exc}") from None
        ncols = len(pf.schema_arrow)
        use = cols
        if ncols != len(cols):
            if not ("FILLRECORD" in cmd.options and ncols < len(cols)):
                context = (f"Unmatched number of columns between table and file. Table columns: {len(cols)}, "
                           f"Data columns: {ncols}, File name: https://s3.{region}.amazonaws.com/{bucket}/{key}")
                raise CopyError(context, LoadError(
                    table=cmd.table, file=f"s3://{bucket}/{key}", line=1, column="", column_type="",
                    column_length="", raw_line="", raw_value="", code=15007, reason=context))
            use = cols[:ncols]  # FILLRECORD: the table's trailing columns missing from the file get NULL
        _check_parquet_types(pf, use, cmd, (bucket, key, region))
        target = f"{cmd.table} ({', '.join(_ident(c.name) for c in use)})"
        # Binary COPY when every column pairs types the encoder knows (the server then parses nothing);
        # else CSV, which PostgreSQL converts with the columns' text input functions.
        binary = pgbinary.batch_encoder(pf.schema_arrow, [c.base for c in use])
        encode = binary or _csv_encoder()
        fmt = "binary" if binary else "csv"
        # Encode in a thread while PostgreSQL parses the previous chunk.
        chunks: queue.Queue[tuple[Any, int] | BaseException | None] = queue.Queue(maxsize=4)
        stop = threading.Event()
        worker = threading.Thread(target=_encode, args=(pf, encode, chunks, stop), name="copy-parquet-encode",
                                  daemon=True)
        worker.start()
        try:
            with conn.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN (FORMAT {fmt})") as cp:
                if binary:
                    cp.write(pgbinary.HEADER)
                while (item := chunks.get()) is not None:
                    if isinstance(item, BaseException):
                        raise CopyError(f"Reading 's3://{bucket}/{key}' failed: {item}")
                    cp.write(item[0])
                    total += item[1]
                if binary:
                    cp.write(pgbinary.TRAILER)
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    chunks.get(timeout=0.05)
    return total


# --------------------------------------------------------------------------- delimited text
_FMT_TOKENS = [("YYYY", "%Y"), ("MONTH", "%B"), ("MON", "%b"), ("HH24", "%H"), ("HH12", "%I"), ("HH", "%I"),
               ("MI", "%M"), ("SSSSSS", "%f"), ("SS", "%S"), ("YY", "%y"), ("MM", "%m"), ("DD", "%d"),
               ("AM", "%p"), ("PM", "%p"), ("US", "%f")]


def redshift_format_to_strptime(fmt: str) -> str:
    """Translate a Redshift DATEFORMAT/TIMEFORMAT string (``MM/DD/YYYY HH24:MI:SS``) to a strptime format."""
    out, i = [], 0
    while i < len(fmt):
        for tok, rep in _FMT_TOKENS:
            if fmt.upper().startswith(tok, i):
                out.append(rep)
                i += len(tok)
                break
        else:
            out.append(fmt[i].replace("%", "%%"))
            i += 1
    return "".join(out)


def _converter(col: _Column, opts: dict[str, str | None]) -> Callable[[str], str] | None:
    """A per-field converter for date/timestamp columns with an explicit format, else None."""
    if col.base == "date" and opts.get("DATEFORMAT") and str(opts["DATEFORMAT"]).lower() != "auto":
        pyfmt = redshift_format_to_strptime(str(opts["DATEFORMAT"]))
        return lambda v: _dt.datetime.strptime(v.strip(), pyfmt).date().isoformat()
    if col.base in ("timestamp", "timestamptz") and opts.get("TIMEFORMAT"):
        tf = str(opts["TIMEFORMAT"]).lower()
        if tf == "epochsecs":
            return lambda v: _dt.datetime.fromtimestamp(float(v), _dt.UTC).isoformat()
        if tf == "epochmillisecs":
            return lambda v: _dt.datetime.fromtimestamp(float(v) / 1000, _dt.UTC).isoformat()
        if tf != "auto":
            pyfmt = redshift_format_to_strptime(str(opts["TIMEFORMAT"]))
            return lambda v: _dt.datetime.strptime(v.strip(), pyfmt).isoformat(sep=" ")
    return None


def _decompress(data: bytes, opts: dict[str, str | None], key: str) -> bytes:
    if "GZIP" in opts:
        try:
            return gzip.decompress(data)
        except OSError as exc:
            raise CopyError(f"gzip: invalid compressed data in '{key}': {exc}") from None
    if "BZIP2" in opts:
        try:
            return bz2.decompress(data)
        except OSError as exc:
            raise CopyError(f"bzip2: invalid compressed data in '{key}': {exc}") from None
    for opt in ("ZSTD", "LZOP"):
        if opt in opts:
            raise CopyError(f"COPY option {opt} is not supported by the local cloud (use GZIP or BZIP2)")
    return data


def _rows(text: str, cmd: CopyCommand) -> Iterator[list[str]]:
    opts = cmd.options
    delim = opts.get("DELIMITER") or ("," if cmd.fmt == "CSV" else "|")
    if len(delim) != 1:
        raise CopyError(f"COPY DELIMITER must be a single character, got '{delim}'")
    lines = io.StringIO(text, newline="")
    if cmd.fmt == "CSV":
        quote = opts.get("QUOTE") or '"'
        reader = csv.reader(lines, delimiter=delim, quotechar=quote, strict=True)
    else:
        reader = csv.reader(lines, delimiter=delim, quoting=csv.QUOTE_NONE,
                            escapechar="\\" if "ESCAPE" in opts else None)
    skip = int(opts.get("IGNOREHEADER") or 0)
    for row in reader:
        if skip:
            skip -= 1
            continue
        if not row or row == [""]:
            continue  # blank line
        yield row


# Redshift's load error codes (STL_LOAD_ERRORS.err_code) for what the local COPY finds itself.
_TEXT_CODES = {"Delimiter not found": 1214, "Extra column(s) found": 1202}


def _text_error(cmd: CopyCommand, file: str, line: int, col: _Column | None, reason: str, row: list[str],
                value: str = "") -> LoadError:
    """The STL_LOAD_ERRORS row of one rejected line of a delimited file."""
    code = _TEXT_CODES.get(reason, 1205 if col is not None and col.base == "date" else
                           1206 if col is not None and col.base.startswith("timestamp") else 1200)
    return LoadError(table=cmd.table, file=file, line=line, column=col.name if col else "",
                     column_type=col.base if col else "", column_length="", raw_line=(cmd.options.get("DELIMITER")
                     or ("," if cmd.fmt == "CSV" else "|")).join(row), raw_value=value, code=code, reason=reason)


def _copy_text(conn: Any, cmd: CopyCommand, cols: list[_Column], objects: list[tuple[str, str]], s3: Any) -> int:
    opts = cmd.options
    for opt in ("FIXEDWIDTH", "JSON", "ORC", "AVRO", "ENCRYPTED", "SERIALIZETOJSON"):
        if opt in opts:
            raise CopyError(f"COPY option {opt} is not supported by the local cloud")
    null_as = opts.get("NULL", "\\N")
    empty_as_null = "EMPTYASNULL" in opts
    blanks_as_null = "BLANKSASNULL" in opts
    fill = "FILLRECORD" in opts
    trim = "TRIMBLANKS" in opts
    remove_quotes = "REMOVEQUOTES" in opts
    maxerror = int(opts.get("MAXERROR") or 0)
    textual = [c.base in _TEXTUAL for c in cols]
    convs = [_converter(c, opts) for c in cols]
    ncols = len(cols)
    errors: list[LoadError] = []
    total = 0
    target = f"{cmd.table} ({', '.join(_ident(c.name) for c in cols)})"
    copy_opts = ""
    if maxerror:
        copy_opts = f" (ON_ERROR ignore, REJECT_LIMIT {maxerror})"
    conn.execute("SET LOCAL datestyle = 'ISO, MDY'")
    for bucket, key in objects:
        raw = _decompress(_read(s3, bucket, key), opts, key)
        inv = opts.get("ACCEPTINVCHARS")
        try:
            text = raw.decode("utf-8") if inv is None else raw.decode("utf-8", errors="replace").replace("\ufffd", inv)
        except UnicodeDecodeError as exc:
            raise CopyError(f"Load into table '{cmd.table}' failed: Invalid UTF8 byte at position {exc.start} of "
                            f"s3://{bucket}/{key} (use ACCEPTINVCHARS)") from None
        line_no = int(opts.get("IGNOREHEADER") or 0)
        cur = conn.cursor()
        with cur.copy(f"COPY {target} FROM STDIN{copy_opts}") as cp:
            try:
                for row in _rows(text, cmd):
                    line_no += 1
                    if len(row) != ncols:
                        if len(row) < ncols and fill:
                            row = row + [""] * (ncols - len(row))
                        else:
                            what = "Delimiter not found" if len(row) < ncols else "Extra column(s) found"
                            errors.append(_text_error(cmd, f"s3://{bucket}/{key}", line_no, None, what, row))
                            if len(errors) > maxerror:
                                break
                            continue
                    out: list[str | None] = []
                    bad: LoadError | None = None
                    for i, v in enumerate(row):
                        if remove_quotes and len(v) >= 2 and v[0] == v[-1] == '"':
                            v = v[1:-1]
                        if trim and textual[i]:
                            v = v.rstrip()
                        if v == null_as or (v == "" and (empty_as_null or not textual[i])) or (
                                blanks_as_null and v.strip() == "" and v != ""):
                            out.append(None)
                            continue
                        conv = convs[i]
                        if conv is not None:
                            try:
                                v = conv(v)
                            except (ValueError, OverflowError) as exc:
                                bad = _text_error(cmd, f"s3://{bucket}/{key}", line_no, cols[i], str(exc), row, v)
                                break
                        out.append(v)
                    if bad:
                        errors.append(bad)
                        if len(errors) > maxerror:
                            break
                        continue
                    cp.write_row(out)
            except csv.Error as exc:
                errors.append(_text_error(cmd, f"s3://{bucket}/{key}", line_no, None, str(exc), []))
        total += max(cur.rowcount, 0)  # rows PostgreSQL loaded (ON_ERROR ignore skips some)
        cur.close()
        if len(errors) > maxerror:
            break
    if len(errors) > maxerror:
        raise _too_many_errors(cmd, errors, maxerror)
    return total


def _too_many_errors(cmd: CopyCommand, errors: list[LoadError], maxerror: int) -> CopyError:
    """Redshift's error for a delimited COPY with more rejected lines than MAXERROR (the first one recorded)."""
    first = errors[0]
    where = f", column {first.column}" if first.column else ""
    return CopyError(f"Load into table '{cmd.table}' failed. Check 'sys_load_error_detail' system table for "
                     f"details. (local cloud: line {first.line} of {first.file}{where}: {first.reason}; "
                     f"{len(errors)} error(s), MAXERROR {maxerror})", first)


# --------------------------------------------------------------------------- entry point
def run_copy(conn: Any, cmd: CopyCommand, s3: Any, region: str = "us-east-1") -> int:
    """Run one parsed COPY on ``conn`` (inside its transaction); returns the number of rows loaded."""
    if cmd.fmt in ("ORC", "AVRO", "JSON", "FIXEDWIDTH", "SHAPEFILE"):
        raise CopyError(f"COPY FORMAT {cmd.fmt} is not supported by the local cloud (PARQUET, CSV and delimited "
                        "text are)")
    import psycopg

    cols = _target_columns(conn, cmd)
    objects = _objects(s3, cmd)
    # Redshift's STATUPDATE: statistics are refreshed after a COPY into an initially empty table
    # (or always with STATUPDATE ON, never with OFF); without them PostgreSQL plans joins against
    # the freshly loaded rows blind (a merge join with two disk sorts instead of a hash join).
    stat = cmd.options.get("STATUPDATE")
    was_empty = False
    if stat is None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {cmd.table} LIMIT 1")
            was_empty = cur.fetchone() is None
    try:
        if cmd.fmt == "PARQUET":
            loaded = _copy_parquet(conn, cmd, cols, objects, s3, region)
        else:
            loaded = _copy_text(conn, cmd, cols, objects, s3)
        if stat == "ON" or (stat is None and was_empty):
            with conn.cursor() as cur:
                cur.execute(f"ANALYZE {cmd.table}")
        return loaded
    except TranslationError as exc:
        raise CopyError(str(exc)) from None
    except psycopg.errors.QueryCanceled:
        raise
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        diag = exc.diag
        where = f" ({diag.context.strip()})" if diag.context else ""
        raise CopyError(f"Load into table '{cmd.table}' failed. Check 'sys_load_error_detail' system table for "
                        f"details. (local cloud: {diag.message_primary or exc}{where})",
                        _pg_load_error(cmd, diag.message_primary or str(exc), diag.context or "")) from None


_PG_CONTEXT = re.compile(r'line (\d+)(?:, column ([^:]+))?(?:: "(.*)")?', re.S)


def _pg_load_error(cmd: CopyCommand, message: str, context: str) -> LoadError:
    """The STL_LOAD_ERRORS row of a value PostgreSQL rejected (its context names the line and column)."""
    m = _PG_CONTEXT.search(context)
    line, column, value = (int(m.group(1)), m.group(2) or "", m.group(3) or "") if m else (0, "", "")
    return LoadError(table=cmd.table, file=cmd.source, line=line, column=column, column_type="", column_length="",
                     raw_line="", raw_value=value, code=1200 if "syntax" not in message else 1207,
                     reason=message)


"""Schema inference as Glue's built-in classifiers do it: CSV from a sample, Parquet from the footer.

Only what the crawler needs is read: the first few KB of a CSV object (decompressed on the fly
when it is gzip) and the footer of a Parquet object (ranged GETs through :class:`S3RangeFile`).
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CsvSchema", "ParquetSchema", "infer_csv", "infer_parquet", "arrow_to_glue", "S3RangeFile",
           "csv_storage", "parquet_storage", "CSV_SAMPLE_BYTES"]

CSV_SAMPLE_BYTES = 64 * 1024  # what the crawler reads of each CSV object
_MAX_ROWS = 500
_DELIMITERS = (",", ";", "\t", "|")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_INT64_MAX = 2**63 - 1

LAZY_SIMPLE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


@dataclass
class CsvSchema:
    """What the CSV classifier found in one object."""

    columns: list[tuple[str, str]]
    delimiter: str
    quoted: bool
    header: bool
    compression: str = "none"
    record_count: int = 0  # exact when the whole object was read, else an estimate from the sample
    avg_record_size: int = 0

    @property
    def signature(self) -> tuple[Any, ...]:
        """Objects with equal signatures belong in one table (names and types, delimiter)."""
        return ("csv", tuple(self.columns), self.delimiter)


@dataclass
class ParquetSchema:
    """What the Parquet footer says."""

    columns: list[tuple[str, str]]
    record_count: int = 0
    compression: str = "none"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> tuple[Any, ...]:
        return ("parquet", tuple(self.columns))


# -- CSV -------------------------------------------------------------------------------------
def _value_type(v: str) -> str | None:
    v = v.strip()
    if not v:
        return None  # empty values say nothing about the column's type
    if _INT.match(v):
        return "bigint" if abs(int(v)) <= _INT64_MAX else "double"
    if _FLOAT.match(v):
        return "double"
    if v.lower() in ("true", "false"):
        return "boolean"
    # Dates such as 7/27/2012 or 2012-07-27 stay strings, as Glue's CSV classifier leaves them.
    return "string"


def _merge(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"bigint", "double"}:
        return "double"
    return "string"


def _decode(sample: bytes) -> tuple[str, str]:
    compression = "none"
    if sample[:2] == b"\x1f\x8b":
        # A prefix of a gzip stream decompresses fine with a streaming decompressor.
        compression = "gzip"
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            sample = d.decompress(sample, CSV_SAMPLE_BYTES * 4)
        except zlib.error:
            sample = b""
    text = sample.decode("utf-8", errors="replace")
    return text.lstrip("\ufeff"), compression


def _parse(text: str, delimiter: str) -> list[list[str]]:
    rows = []
    for row in csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"'):
        if row and any(c.strip() for c in row):
            rows.append(row)
        if len(rows) >= _MAX_ROWS:
            break
    return rows


def infer_csv(sample: bytes, *, complete: bool, object_size: int | None = None) -> CsvSchema | None:
    """Classify a CSV sample as Glue's built-in CSV classifier does.

    Parameters
    ----------
    sample
        The first bytes of the object (possibly gzip-compressed).
    complete
        True when ``sample`` is the whole object (the record count is then exact).
    object_size
        The object's size, to estimate the record count from a partial sample.

    Returns
    -------
    CsvSchema or None
        None when the sample is not a CSV with at least two columns (Glue's requirement).

    Notes
    -----
    The delimiter is the one of ``, ; TAB |`` that splits every sampled row into the same number
    (>= 2) of columns. The first row is a header only when every value in it is a non-empty,
    unique string and at least one column of the data parses as something other than a string;
    when every column is a string Glue cannot tell a header from data and names the columns
    ``col0``, ``col1``... (so does this).
    """
    text, compression = _decode(sample)
    if not complete and compression == "none" and "\n" in text:
        text = text[: text.rfind("\n") + 1]  # drop the partial last line
    elif not complete and "\n" in text:
        text = text[: text.rfind("\n") + 1]
    best: tuple[int, str, list[list[str]]] | None = None
    for d in _DELIMITERS:
        rows = _parse(text, d)
        if not rows:
            continue
        widths = {len(r) for r in rows}
        if len(widths) == 1 and (n := widths.pop()) >= 2 and (best is None or n > best[0]):
            best = (n, d, rows)
    if best is None:
        return None
    width, delimiter, rows = best
    quoted = re.search(rf'(^|{re.escape(delimiter)})"', text, re.MULTILINE) is not None

    first, data = rows[0], rows[1:]
    types: list[str | None] = [None] * width
    for row in data:
        for i, v in enumerate(row):
            types[i] = _merge(types[i], _value_type(v))
    first_names = [v.strip() for v in first]
    header = (
        bool(data)
        and all(n and _value_type(n) == "string" for n in first_names)
        and len({n.lower() for n in first_names}) == width
        and any(t not in (None, "string") for t in types)
    )
    if header:
        names = [n.lower() for n in first_names]
    else:
        names = [f"col{i}" for i in range(width)]
        for i, v in enumerate(first):
            types[i] = _merge(types[i], _value_type(v))
    columns = [(n, t or "string") for n, t in zip(names, types, strict=True)]

    data_lines = max(1, len(rows) - (1 if header else 0))
    sample_bytes = len(text.encode())
    avg = max(1, sample_bytes // max(1, len(rows)))
    if complete:
        count = len(data) if header else len(rows)
    else:
        total = object_size or sample_bytes
        count = max(data_lines, int(total / avg) - (1 if header else 0)) if compression == "none" else data_lines
    return CsvSchema(columns=columns, delimiter=delimiter, quoted=quoted, header=header,
                     compression=compression, record_count=count, avg_record_size=avg)


def csv_storage(s: CsvSchema) -> dict[str, Any]:
    """SerDe, formats and parameters Glue writes for a CSV table."""
    if s.quoted:
        serde = {"SerializationLibrary": OPEN_CSV,
                 "Parameters": {"separatorChar": s.delimiter, "quoteChar": '"', "escapeChar": "\\"}}
    else:
        serde = {"SerializationLibrary": LAZY_SIMPLE, "Parameters": {"field.delim": s.delimiter}}
    params = {"classification": "csv", "delimiter": s.delimiter, "areColumnsQuoted": str(s.quoted).lower(),
              "columnsOrdered": "true", "compressionType": s.compression, "typeOfData": "file"}
    if s.header:
        params["skip.header.line.count"] = "1"
    return {"SerdeInfo": serde, "InputFormat": TEXT_INPUT, "OutputFormat": TEXT_OUTPUT, "Parameters": params}


# -- Parquet ---------------------------------------------------------------------------------
# Arrow type predicates (names in ``pyarrow.types``) -> the Hive/Glue type a crawler writes for them.
_ARROW_SIMPLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bigint", ("is_int64", "is_uint32")),
    ("int", ("is_int32", "is_uint16")),
    ("smallint", ("is_int16", "is_uint8")),
    ("tinyint", ("is_int8",)),
    ("decimal(20,0)", ("is_uint64",)),
    ("float", ("is_float16", "is_float32")),
    ("double", ("is_float64",)),
    ("boolean", ("is_boolean",)),
    ("date", ("is_date",)),
    ("timestamp", ("is_timestamp",)),
    ("string", ("is_string", "is_large_string", "is_dictionary")),
    ("binary", ("is_binary", "is_large_binary", "is_fixed_size_binary")),
)


def arrow_to_glue(t: Any) -> str:
    """Map an Arrow type to the Hive/Glue type name a crawler writes (``string`` for any other)."""
    import pyarrow as pa

    p = pa.types
    for glue_type, predicates in _ARROW_SIMPLE:
        if any(getattr(p, name)(t) for name in predicates):
            return glue_type
    if p.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if p.is_list(t) or p.is_large_list(t):
        return f"array<{arrow_to_glue(t.value_type)}>"
    if p.is_map(t):
        return f"map<{arrow_to_glue(t.key_type)},{arrow_to_glue(t.item_type)}>"
    if p.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{arrow_to_glue(f.type)}" for f in t) + ">"
    return "string"


def infer_parquet(source: Any) -> ParquetSchema:
    """Read a Parquet footer (``source``: path, buffer or seekable file) into Glue columns."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(source)
    schema = pf.schema_arrow
    meta = pf.metadata
    compression = "none"
    if meta.num_row_groups and meta.num_columns:
        codec = str(meta.row_group(0).column(0).compression).lower()
        compression = "none" if codec in ("uncompressed", "none") else codec
    cols = [(f.name.lower(), arrow_to_glue(f.type)) for f in schema]
    return ParquetSchema(columns=cols, record_count=int(meta.num_rows), compression=compression)


def parquet_storage(s: ParquetSchema) -> dict[str, Any]:
    """SerDe, formats and parameters Glue writes for a Parquet table."""
    return {
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        "InputFormat": PARQUET_INPUT,
        "OutputFormat": PARQUET_OUTPUT,
        "Parameters": {"classification": "parquet", "compressionType": s.compression, "typeOfData": "file"},
    }


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable view of an S3 object that fetches only the ranges read (the footer)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._s3, self._bucket, self._key, self._size = s3, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        resp = self._s3.get_object(Bucket=self._bucket, Key=self._key,
                                   Range=f"bytes={self._pos}-{self._pos + n - 1}")
        data = resp["Body"].read()
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

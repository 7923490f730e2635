"""Arrow record batches as PostgreSQL binary ``COPY`` data, encoded column by column.

The local ``COPY ... FORMAT AS PARQUET`` feeds PostgreSQL's ``COPY FROM STDIN (FORMAT binary)``
when every column pairs an Arrow type with a PostgreSQL type listed here; anything else takes the
CSV path (same result, the server then parses text). Binary input spares the server its text
parsing (``numeric_in``, ``date_in`` ...), which is most of a CSV load's cost.

No per-row Python: each column becomes two binary arrays, the 4-byte big-endian field lengths
(-1 for NULL) and the field bytes, built with numpy; ``pyarrow.compute.binary_join_element_wise``
then lays the fields of every row side by side, and the resulting array's data buffer is the
row-major COPY payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HEADER", "TRAILER", "batch_encoder", "warm_up"]

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, extension
TRAILER = b"\xff\xff"

_PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
_INT_WIDTH = {"int2": 2, "int4": 4, "int8": 8}
_TEXT = {"varchar", "text"}

Pieces = tuple[np.ndarray, pa.Array]  # (field lengths int32, field bytes as binary array)


def _strided(data: np.ndarray, n: int, width: int) -> pa.Array:
    """A binary array of ``n`` values of ``width`` bytes each, over ``data`` (n * width bytes)."""
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    values = pa.py_buffer(np.ascontiguousarray(data))
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), values])


def _fixed_width(data: np.ndarray, n: int, width: int, valid: np.ndarray | None) -> Pieces:
    """Fields of ``width`` bytes each (``data``: n * width bytes); NULL rows get length -1 and no bytes."""
    fields = _strided(data, n, width)
    if valid is None:
        return np.full(n, width, dtype=np.int32), fields
    return (np.where(valid, width, -1).astype(np.int32),
            pc.if_else(pa.array(valid), fields, pa.scalar(b"", pa.binary())))


def _fixed(values: np.ndarray, valid: np.ndarray | None, dtype: str) -> Pieces:
    """Fixed-width big-endian values."""
    be = values.astype(dtype, copy=False)
    return _fixed_width(be.view(np.uint8), len(be), be.dtype.itemsize, valid)


def _valid(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)


def _ints(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False))


def _enc_int(width: int) -> Callable[[pa.Array], Pieces]:
    target = {2: pa.int16(), 4: pa.int32(), 8: pa.int64()}[width]

    def enc(arr: pa.Array) -> Pieces:
        # a value that does not fit raises here (ArrowInvalid), and the COPY reports it like the text path
        return _fixed(_ints(pc.cast(arr, target)), _valid(arr), f">i{width}")

    return enc


def _enc_float(width: int) -> Callable[[pa.Array], Pieces]:
    target = pa.float32() if width == 4 else pa.float64()

    def enc(arr: pa.Array) -> Pieces:
        vals = np.asarray(pc.fill_null(pc.cast(arr, target), 0).to_numpy(zero_copy_only=False))
        return _fixed(vals, _valid(arr), f">f{width}")

    return enc


def _enc_bool(arr: pa.Array) -> Pieces:
    vals = np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=np.uint8)
    return _fixed(vals, _valid(arr), "u1")


def _enc_date(arr: pa.Array) -> Pieces:
    days = _ints(pc.cast(arr, pa.int32())).astype(np.int64) - _PG_EPOCH_DAYS
    return _fixed(days, _valid(arr), ">i4")


def _enc_timestamp(arr: pa.Array) -> Pieces:
    us = _ints(pc.cast(pc.cast(arr, pa.timestamp("us")), pa.int64())) - _PG_EPOCH_US
    return _fixed(us, _valid(arr), ">i8")


def _enc_text(arr: pa.Array) -> Pieces:
    valid = _valid(arr)
    arr = pc.fill_null(arr.cast(pa.string()) if pa.types.is_dictionary(arr.type) else arr, "")
    lengths = np.asarray(pc.binary_length(arr).to_numpy(zero_copy_only=False), dtype=np.int32)
    if valid is not None:
        lengths = np.where(valid, lengths, -1).astype(np.int32)
    return lengths, arr.cast(pa.binary())


def _enc_numeric(precision: int, scale: int) -> Callable[[pa.Array], Pieces]:
    """decimal128 (precision <= 18) as PostgreSQL's binary numeric.

    Layout: int16 ndigits, int16 weight, uint16 sign, int16 dscale, then ndigits base-10000 digits.
    Every value uses the same (unnormalised) digit layout: ``ceil((p - s) / 4)`` integer groups and
    ``ceil(s / 4)`` fraction groups; the server strips leading and trailing zero groups itself.
    """
    int_groups = max(1, -(-(precision - scale) // 4))
    frac_groups = -(-scale // 4)
    ndigits = int_groups + frac_groups
    head = np.array([ndigits, int_groups - 1, 0, scale], dtype=">i2")

    def enc(arr: pa.Array) -> Pieces:
        n = len(arr)
        words = np.frombuffer(arr.buffers()[1], dtype="<i8", count=2 * (arr.offset + n))[2 * arr.offset::2]
        unscaled = words.copy()
        valid = _valid(arr)
        if valid is not None:
            unscaled[~valid] = 0
        neg = unscaled < 0
        mag = np.abs(unscaled).astype(np.uint64)
        ipart, fpart = np.divmod(mag, np.uint64(10 ** scale))
        out = np.empty((n, 4 + ndigits), dtype=">i2")
        out[:, :4] = head
        out[:, 2] = np.where(neg, 0x4000, 0)
        for g in range(int_groups):
            out[:, 3 + int_groups - g] = (ipart // np.uint64(10_000 ** g)) % np.uint64(10_000)
        if frac_groups:
            frac = fpart * np.uint64(10 ** (4 * frac_groups - scale))
            for g in range(frac_groups):
                out[:, 4 + int_groups + frac_groups - 1 - g] = (frac // np.uint64(10_000 ** g)) % np.uint64(10_000)
        width = out.dtype.itemsize * out.shape[1]
        return _fixed_width(out.view(np.uint8).reshape(n, width), n, width, valid)

    return enc


def _column_encoder(arrow_type: pa.DataType, base: str) -> Callable[[pa.Array], Pieces] | None:
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if base in _INT_WIDTH and pa.types.is_integer(t):
        return _enc_int(_INT_WIDTH[base])
    if base in ("float4", "float8") and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        return _enc_float(4 if base == "float4" else 8)
    if base == "bool" and pa.types.is_boolean(t):
        return _enc_bool
    if base == "date" and pa.types.is_date32(t):
        return _enc_date
    if base == "timestamp" and pa.types.is_timestamp(t) and t.tz is None:
        return _enc_timestamp
    if base in _TEXT and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return _enc_text
    if base == "numeric" and pa.types.is_decimal128(t) and t.precision <= 18 and not pa.types.is_dictionary(arrow_type):
        return _enc_numeric(t.precision, t.scale)
    return None


def batch_encoder(schema: pa.Schema, columns: list[str]) -> Callable[[pa.RecordBatch], Any] | None:
    """An encoder of record batches with ``schema`` into binary COPY rows for ``columns``.

    ``columns`` are the target columns' type names (``pg_type.typname``: int8, numeric, varchar ...)
    in file order. Returns ``None`` when a
    column pair is not supported (the caller then uses CSV). The encoder returns a buffer of rows
    (no header or trailer: see :data:`HEADER` and :data:`TRAILER`).
    """
    if len(schema) != len(columns) or not columns or len(columns) > 1600:
        return None
    encoders = []
    for field, base in zip(schema, columns, strict=True):
        enc = _column_encoder(field.type, base)
        if enc is None:
            return None
        encoders.append(enc)
    count = pa.scalar(len(columns).to_bytes(2, "big"), pa.binary())

    def encode(batch: pa.RecordBatch) -> Any:
        n = batch.num_rows
        if n == 0:
            return b""
        pieces: list[Any] = [count]
        for enc, col in zip(encoders, batch.columns, strict=True):
            lengths, data = enc(col)
            pieces.append(_strided(lengths.astype(">i4").view(np.uint8), n, 4))
            pieces.append(data)
        rows = pc.binary_join_element_wise(*pieces, pa.scalar(b"", pa.binary()))
        offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=n + 1)
        return rows.buffers()[2][int(offsets[0]):int(offsets[n])]

    return encode


def warm_up() -> None:
    """Encode one tiny batch of every supported type (with NULLs), so that the one-time set-up of the
    compute kernels involved (~0.2 s) is not paid by the first COPY."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow.parquet  # noqa: F401 - the COPY reads Parquet

    table = pa.table({
        "i": pa.array([1, None], pa.int64()), "f": pa.array([1.5, None]), "b": pa.array([True, None]),
        "d": pa.array([dt.date(2020, 1, 1), None]), "t": pa.array([dt.datetime(2020, 1, 1), None]),
        "s": pa.array(["x", None]), "n": pa.array([Decimal("1.25"), None], pa.decimal128(18, 2)),
        "k": pa.array(["a", "a"]).dictionary_encode(),
    })
    encode = batch_encoder(table.schema, ["int8", "float8", "bool", "date", "timestamp", "varchar", "numeric",
                                          "varchar"])
    if encode is not None:
        encode(table.to_batches()[0])

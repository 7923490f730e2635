"""Result sets of the Data API: PostgreSQL rows -> typed ``Records`` and Redshift-style ``ColumnMetadata``."""

from __future__ import annotations

import datetime as _dt
import json
from decimal import Decimal
from typing import Any

__all__ = ["column_metadata", "to_field", "REDSHIFT_TYPE", "estimate_size"]

# PostgreSQL type name -> the name Redshift reports.
REDSHIFT_TYPE = {"text": "varchar", "jsonb": "super", "json": "super", "bytea": "varbyte", "name": "varchar",
                 "int2": "int2", "int4": "int4", "int8": "int8", "float4": "float4", "float8": "float8",
                 "numeric": "numeric", "bool": "bool", "varchar": "varchar", "bpchar": "bpchar", "date": "date",
                 "timestamp": "timestamp", "timestamptz": "timestamptz", "time": "time", "timetz": "timetz",
                 "oid": "oid", "char": "char", "unknown": "varchar", "interval": "interval"}
_PRECISION = {"int2": 5, "int4": 10, "int8": 19, "float4": 8, "float8": 17, "bool": 1, "date": 13,
              "timestamp": 29, "timestamptz": 35, "time": 15, "timetz": 21, "oid": 10}
_SIGNED = {"int2", "int4", "int8", "float4", "float8", "numeric"}
_TEXT = {"varchar", "bpchar", "text", "char", "name", "unknown"}


def column_metadata(conn: Any, cur: Any, type_names: dict[int, str]) -> list[dict[str, Any]]:
    """ColumnMetadata for the current result of ``cur`` (one catalog query for table columns)."""
    desc = cur.description or []
    res = cur.pgresult
    origins: dict[int, tuple[int, int]] = {}
    if res is not None:
        for i in range(len(desc)):
            if res.ftable(i):
                origins[i] = (res.ftable(i), res.ftablecol(i))
    info: dict[tuple[int, int], tuple[str, str, bool, str | None]] = {}
    if origins:
        pairs = sorted(set(origins.values()))
        rows = conn.execute(
            "SELECT a.attrelid::int8, a.attnum::int, n.nspname, c.relname, a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE (a.attrelid::int8, a.attnum::int) IN (SELECT * FROM unnest(%s::int8[], %s::int[]))",
            ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall()
        info = {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}
    out = []
    for i, d in enumerate(desc):
        pg_name = type_names.get(d.type_code, "unknown")
        rs_name = REDSHIFT_TYPE.get(pg_name, pg_name)
        if pg_name == "numeric":
            precision, scale = d.precision or 38, d.scale or 0
        elif pg_name in _TEXT:
            precision, scale = d.display_size or 65535, 0
        else:
            precision, scale = _PRECISION.get(pg_name, 0), 0
        origin = info.get(origins.get(i, (0, 0)))
        meta: dict[str, Any] = {
            "isCaseSensitive": pg_name in _TEXT, "isCurrency": False, "isSigned": pg_name in _SIGNED,
            "label": d.name, "name": d.name, "nullable": (0 if origin[2] else 1) if origin else 1,
            "precision": precision, "scale": scale, "schemaName": origin[0] if origin else "",
            "tableName": origin[1] if origin else "", "typeName": rs_name, "length": 0,
        }
        if origin and origin[3] is not None:
            meta["columnDefault"] = origin[3]
        out.append(meta)
    return out


def to_field(v: Any) -> dict[str, Any]:
    """One value as a Data API ``Field`` (decimals, dates and timestamps as strings, like Redshift)."""
    if v is None:
        return {"isNull": True}
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"longValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, Decimal):
        return {"stringValue": str(v)}
    if isinstance(v, _dt.datetime):
        s = v.strftime("%Y-%m-%d %H:%M:%S")
        if v.microsecond:
            s += f".{v.microsecond:06d}".rstrip("0")
        if v.tzinfo is not None:
            off = v.utcoffset() or _dt.timedelta(0)
            hours = int(off.total_seconds() // 3600)
            s += f"{hours:+03d}"
        return {"stringValue": s}
    if isinstance(v, (_dt.date, _dt.time)):
        return {"stringValue": v.isoformat()}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"blobValue": bytes(v)}
    if isinstance(v, (dict, list)):
        return {"stringValue": json.dumps(v, separators=(",", ":"))}
    return {"stringValue": str(v)}


def estimate_size(rows: list[tuple[Any, ...]]) -> int:
    """Bytes of a result set, roughly as Redshift counts ``ResultSize``."""
    total = 0
    for r in rows:
        for v in r:
            total += 8 if v is None or isinstance(v, (int, float, bool)) else len(str(v))
    return total

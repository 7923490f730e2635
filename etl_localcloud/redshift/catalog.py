"""ListDatabases / ListSchemas / ListTables / DescribeTable of the Data API, from PostgreSQL's catalog."""

from __future__ import annotations

from typing import Any

from etl_localcloud.core.paging import REDSHIFT_DATA
from etl_localcloud.redshift.results import REDSHIFT_TYPE

__all__ = ["describe_table", "list_databases", "list_schemas", "list_tables"]


def _page(items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
    return REDSHIFT_DATA.response(items, body, key)


def list_databases(conn: Any, body: dict[str, Any]) -> dict[str, Any]:
    rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1").fetchall()
    return _page([r[0] for r in rows], body, "Databases")


def list_schemas(conn: Any, body: dict[str, Any]) -> dict[str, Any]:
    rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s AND nspname NOT LIKE 'pg_toast%%' "
                        "ORDER BY 1", (body.get("SchemaPattern") or "%",)).fetchall()
    return _page([r[0] for r in rows], body, "Schemas")


def list_tables(conn: Any, body: dict[str, Any]) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT table_name, table_schema, CASE table_type WHEN 'BASE TABLE' THEN 'TABLE' "
        "WHEN 'LOCAL TEMPORARY' THEN 'LOCAL TEMPORARY' ELSE table_type END FROM information_schema.tables "
        "WHERE table_schema LIKE %s AND table_name LIKE %s ORDER BY 2, 1",
        (body.get("SchemaPattern") or "%", body.get("TablePattern") or "%")).fetchall()
    return _page([{"name": r[0], "schema": r[1], "type": r[2]} for r in rows], body, "Tables")


def describe_table(conn: Any, body: dict[str, Any]) -> dict[str, Any]:
    schema = body.get("Schema") or "public"
    table = body.get("Table") or "%"
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.udt_name, c.character_maximum_length, c.numeric_precision, "
        "c.numeric_scale, c.is_nullable, c.column_default, c.table_schema FROM information_schema.columns c "
        "WHERE c.table_schema LIKE %s AND c.table_name LIKE %s ORDER BY c.table_name, c.ordinal_position",
        (schema, table)).fetchall()
    cols = []
    for r in rows:
        meta: dict[str, Any] = {
            "name": r[1], "label": r[1], "typeName": REDSHIFT_TYPE.get(r[2], r[2]), "length": r[3] or 0,
            "precision": r[4] or r[3] or 0, "scale": r[5] or 0, "nullable": 1 if r[6] == "YES" else 0,
            "isCaseSensitive": r[2] in ("varchar", "bpchar", "text"), "isCurrency": False,
            "isSigned": r[2] in ("int2", "int4", "int8", "float4", "float8", "numeric"),
            "schemaName": r[8], "tableName": r[0],
        }
        if r[7] is not None:
            meta["columnDefault"] = r[7]
        cols.append(meta)
    out = _page(cols, body, "ColumnList")
    out["TableName"] = rows[0][0] if rows else table
    return out

"""Redshift's functions, system tables and catalog views, installed in every local database.

Redshift keeps these in ``pg_catalog``, so they answer unqualified whatever the ``search_path``
and stay out of the user's schemas (ListSchemas, ``cursor.get_tables()``). The daemon's superuser
installs them there (``allow_system_table_mods`` for its own session) in each database it creates or
restores and in ``template1`` (so ``CREATE DATABASE`` copies them). The script is idempotent and
versioned: :data:`VERSION` is what ``pg_catalog.redshift_local_dialect_version()`` answers, and a
database holding an older version (an existing pgdata) gets the new script at the next start.

The system tables are filled by the local cloud itself, through two ``SECURITY DEFINER``
functions any user may call (they record ``session_user``, so a user writes only rows of their own):
the local COPY's failures (``STL_LOAD_ERRORS``, ``SYS_LOAD_ERROR_DETAIL``) and the Data API's
statements (``SYS_QUERY_HISTORY``, ``STL_QUERY``). As on Redshift, users cannot write them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LoadError", "QueryRecord", "VERSION", "install", "log_load_error", "log_query", "raise_sql"]

VERSION = 1

_FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION pg_catalog.redshift_local_raise(message text, sqlstate text, VARIADIC args text[]
    DEFAULT '{}') RETURNS text LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION USING MESSAGE = message, ERRCODE = sqlstate; END $$;

CREATE OR REPLACE FUNCTION pg_catalog.dateadd(part text, n bigint, ts timestamp) RETURNS timestamp
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE part
  WHEN 'millennium' THEN ts + make_interval(years => (n * 1000)::int)
  WHEN 'century' THEN ts + make_interval(years => (n * 100)::int)
  WHEN 'decade' THEN ts + make_interval(years => (n * 10)::int)
  WHEN 'year' THEN ts + make_interval(years => n::int)
  WHEN 'quarter' THEN ts + make_interval(months => (n * 3)::int)
  WHEN 'month' THEN ts + make_interval(months => n::int)
  WHEN 'week' THEN ts + make_interval(weeks => n::int)
  WHEN 'day' THEN ts + make_interval(days => n::int)
  WHEN 'hour' THEN ts + n * interval '1 hour'
  WHEN 'minute' THEN ts + n * interval '1 minute'
  WHEN 'second' THEN ts + n * interval '1 second'
  WHEN 'milliseconds' THEN ts + n * interval '1 millisecond'
  WHEN 'microseconds' THEN ts + n * interval '1 microsecond'
  ELSE pg_catalog.redshift_local_raise(part || ' is not a valid datepart for DATEADD', '22023')::timestamp
END $$;

-- Redshift's DATEDIFF counts the datepart boundaries crossed between the two values (weeks start on Monday).
CREATE OR REPLACE FUNCTION pg_catalog.datediff(part text, a timestamp, b timestamp) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE part
  WHEN 'millennium' THEN floor((extract(year FROM b) - 1) / 1000) - floor((extract(year FROM a) - 1) / 1000)
  WHEN 'century' THEN floor((extract(year FROM b) - 1) / 100) - floor((extract(year FROM a) - 1) / 100)
  WHEN 'decade' THEN floor(extract(year FROM b) / 10) - floor(extract(year FROM a) / 10)
  WHEN 'year' THEN extract(year FROM b) - extract(year FROM a)
  WHEN 'quarter' THEN (extract(year FROM b) * 4 + extract(quarter FROM b))
                    - (extract(year FROM a) * 4 + extract(quarter FROM a))
  WHEN 'month' THEN (extract(year FROM b) * 12 + extract(month FROM b))
                  - (extract(year FROM a) * 12 + extract(month FROM a))
  WHEN 'week' THEN (date_trunc('week', b)::date - date_trunc('week', a)::date) / 7
  WHEN 'day' THEN b::date - a::date
  WHEN 'hour' THEN (extract(epoch FROM date_trunc('hour', b)) - extract(epoch FROM date_trunc('hour', a))) / 3600
  WHEN 'minute' THEN (extract(epoch FROM date_trunc('minute', b)) - extract(epoch FROM date_trunc('minute', a))) / 60
  WHEN 'second' THEN extract(epoch FROM date_trunc('second', b)) - extract(epoch FROM date_trunc('second', a))
  WHEN 'milliseconds' THEN (extract(epoch FROM date_trunc('milliseconds', b))
                          - extract(epoch FROM date_trunc('milliseconds', a))) * 1000
  WHEN 'microseconds' THEN (extract(epoch FROM b) - extract(epoch FROM a)) * 1000000
  ELSE pg_catalog.redshift_local_raise(part || ' is not a valid datepart for DATEDIFF', '22023')::bigint
END::bigint $$;

CREATE OR REPLACE FUNCTION pg_catalog.getdate() RETURNS timestamp LANGUAGE sql STABLE
AS $$ SELECT date_trunc('second', statement_timestamp() AT TIME ZONE 'UTC') $$;
CREATE OR REPLACE FUNCTION pg_catalog.len(s text) RETURNS integer LANGUAGE sql IMMUTABLE
AS $$ SELECT length(s) $$;
CREATE OR REPLACE FUNCTION pg_catalog.charindex(needle text, haystack text) RETURNS integer LANGUAGE sql IMMUTABLE
AS $$ SELECT position(needle IN haystack) $$;
CREATE OR REPLACE FUNCTION pg_catalog.nvl2(e anyelement, a anycompatible, b anycompatible) RETURNS anycompatible
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN e IS NOT NULL THEN a ELSE b END $$;
CREATE OR REPLACE FUNCTION pg_catalog.convert_timezone(target text, ts timestamp) RETURNS timestamp
LANGUAGE sql STABLE AS $$ SELECT (ts AT TIME ZONE 'UTC') AT TIME ZONE target $$;
CREATE OR REPLACE FUNCTION pg_catalog.convert_timezone(source text, target text, ts timestamp) RETURNS timestamp
LANGUAGE sql STABLE AS $$ SELECT (ts AT TIME ZONE source) AT TIME ZONE target $$;
CREATE OR REPLACE FUNCTION pg_catalog.trunc(ts timestamp) RETURNS date LANGUAGE sql IMMUTABLE
AS $$ SELECT ts::date $$;
CREATE OR REPLACE FUNCTION pg_catalog.last_day(d timestamp) RETURNS date LANGUAGE sql IMMUTABLE
AS $$ SELECT (date_trunc('month', d) + interval '1 month - 1 day')::date $$;
CREATE OR REPLACE FUNCTION pg_catalog.round(x double precision, digits integer) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$ SELECT round(x::numeric, digits)::double precision $$;
CREATE OR REPLACE FUNCTION pg_catalog.regexp_replace(s text, pattern text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT regexp_replace(s, pattern, '', 'g') $$;
CREATE OR REPLACE FUNCTION pg_catalog.pg_get_late_binding_view_cols() RETURNS SETOF record LANGUAGE sql STABLE
AS $$ SELECT NULL::name, NULL::name, NULL::name, NULL::text, NULL::int WHERE false $$;
"""

_SYSTEM_TABLES = r"""
CREATE SEQUENCE IF NOT EXISTS pg_catalog.redshift_local_query_id;
CREATE TABLE IF NOT EXISTS pg_catalog.stl_load_errors (
  userid integer, slice integer, tbl integer, starttime timestamp, session integer, query integer,
  filename varchar(256), line_number bigint, colname varchar(127), type varchar(10), col_length varchar(10),
  position integer, raw_line varchar(1024), raw_field_value varchar(1024), err_code integer,
  err_reason varchar(100), is_partial integer, start_offset bigint, err_message varchar(512),
  database_name varchar(64), transaction_id bigint);
CREATE TABLE IF NOT EXISTS pg_catalog.sys_query_history (
  user_id integer, query_id bigint, query_label varchar(320), transaction_id bigint, session_id integer,
  database_name varchar(128), query_type varchar(32), status varchar(10), result_cache_hit boolean,
  start_time timestamp, end_time timestamp, elapsed_time bigint, queue_time bigint, execution_time bigint,
  error_message varchar(512), returned_rows bigint, returned_bytes bigint, query_text varchar(4000),
  redshift_version varchar(256), usage_limit varchar(150), compute_type varchar(32), compile_time bigint,
  planning_time bigint, lock_wait_time bigint);
REVOKE ALL ON pg_catalog.stl_load_errors, pg_catalog.sys_query_history FROM PUBLIC;
GRANT SELECT ON pg_catalog.stl_load_errors, pg_catalog.sys_query_history TO PUBLIC;

CREATE OR REPLACE VIEW pg_catalog.sys_load_error_detail AS
SELECT userid AS user_id, query::bigint AS query_id, transaction_id, session AS session_id, database_name,
       filename AS file_name, tbl AS table_id, starttime AS start_time, line_number, colname AS column_name,
       type AS column_type, col_length AS column_length, position, err_code AS error_code,
       coalesce(err_message, err_reason)::varchar(512) AS error_message
FROM pg_catalog.stl_load_errors;

CREATE OR REPLACE VIEW pg_catalog.stl_query AS
SELECT user_id AS userid, query_id::integer AS query, query_label AS label, transaction_id AS xid,
       session_id AS pid, database_name::varchar(32) AS database, query_text AS querytxt, start_time AS starttime,
       end_time AS endtime, (status <> 'success')::int AS aborted, 0 AS insert_pristine,
       0 AS concurrency_scaling_status
FROM pg_catalog.sys_query_history;

CREATE OR REPLACE FUNCTION pg_catalog.redshift_local_log_load_error(tbl_name text, file text, line bigint,
    col text, col_type text, col_len text, raw_line text, raw_value text, code integer, reason text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  INSERT INTO pg_catalog.stl_load_errors (userid, slice, tbl, starttime, session, query, filename, line_number,
    colname, type, col_length, position, raw_line, raw_field_value, err_code, err_reason, is_partial,
    start_offset, err_message, database_name, transaction_id)
  VALUES ((SELECT oid::int FROM pg_roles WHERE rolname = session_user), 0, to_regclass(tbl_name)::oid::int,
    statement_timestamp() AT TIME ZONE 'UTC', pg_backend_pid(), nextval('pg_catalog.redshift_local_query_id')::int,
    left(file, 256), line, left(col, 127), left(col_type, 10), left(col_len, 10), 0, left(raw_line, 1024),
    left(raw_value, 1024), code, left(reason, 100), 0, 0, left(reason, 512), current_database(),
    txid_current())
$$;

CREATE OR REPLACE FUNCTION pg_catalog.redshift_local_log_query(query_type text, status text, started timestamp,
    ended timestamp, error text, returned bigint, query_text text)
RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  INSERT INTO pg_catalog.sys_query_history (user_id, query_id, transaction_id, session_id, database_name,
    query_type, status, result_cache_hit, start_time, end_time, elapsed_time, queue_time, execution_time,
    error_message, returned_rows, returned_bytes, query_text, compute_type)
  VALUES ((SELECT oid::int FROM pg_roles WHERE rolname = session_user),
    nextval('pg_catalog.redshift_local_query_id'), txid_current(), pg_backend_pid(), current_database(),
    query_type, status, false, started, ended, (extract(epoch FROM ended - started) * 1000000)::bigint, 0,
    (extract(epoch FROM ended - started) * 1000000)::bigint, left(error, 512), returned, 0,
    left(query_text, 4000), 'primary')
  RETURNING query_id
$$;
REVOKE ALL ON FUNCTION pg_catalog.redshift_local_log_load_error(text, text, bigint, text, text, text, text, text,
  integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_catalog.redshift_local_log_load_error(text, text, bigint, text, text, text, text, text,
  integer, text) TO PUBLIC;
"""

_CATALOG_VIEWS = r"""
CREATE OR REPLACE VIEW pg_catalog.svv_table_info AS
SELECT current_database()::text AS database, n.nspname::text AS schema, c.oid::int AS table_id,
       c.relname::text AS "table", 'N'::char(1) AS encoded, 'AUTO(EVEN)'::text AS diststyle, NULL::char(1) AS sortkey1,
       NULL::smallint AS max_varchar, 0::int AS sortkey1_enc, 0::int AS sortkey_num,
       ceil(pg_total_relation_size(c.oid) / 1048576.0)::bigint AS size, 0::numeric(10,4) AS pct_used,
       0::numeric(10,4) AS empty, NULL::numeric(10,4) AS unsorted, NULL::numeric(10,4) AS stats_off,
       greatest(c.reltuples, 0)::numeric(38,0) AS tbl_rows, NULL::numeric(10,4) AS skew_sortkey1,
       NULL::numeric(10,4) AS skew_rows, greatest(c.reltuples, 0)::numeric(38,0) AS estimated_visible_rows,
       NULL::text AS risk_event, NULL::text AS vacuum_sort_benefit, 'Off'::text AS create_time
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast' AND has_table_privilege(c.oid, 'SELECT');

CREATE OR REPLACE VIEW pg_catalog.pg_table_def AS
SELECT n.nspname AS schemaname, c.relname AS tablename, a.attname AS "column",
       format_type(a.atttypid, a.atttypmod) AS type, 'none'::text AS encoding, false AS distkey, 0 AS sortkey,
       a.attnotnull AS notnull
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND pg_table_is_visible(c.oid)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema');

CREATE OR REPLACE VIEW pg_catalog.svv_tables AS
SELECT table_catalog::varchar(128) AS table_catalog, table_schema::varchar(128) AS table_schema,
       table_name::varchar(128) AS table_name, table_type::varchar(128) AS table_type,
       obj_description((quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass, 'pg_class')
         ::varchar(256) AS remarks
FROM information_schema.tables;

CREATE OR REPLACE VIEW pg_catalog.svv_columns AS
SELECT c.table_catalog::varchar(128) AS table_catalog, c.table_schema::varchar(128) AS table_schema,
       c.table_name::varchar(128) AS table_name, c.column_name::varchar(128) AS column_name,
       c.ordinal_position::int AS ordinal_position, c.column_default::varchar(4000) AS column_default,
       c.is_nullable::varchar(3) AS is_nullable, c.data_type::varchar(128) AS data_type,
       c.character_maximum_length::int AS character_maximum_length, c.numeric_precision::int AS numeric_precision,
       c.numeric_precision_radix::int AS numeric_precision_radix, c.numeric_scale::int AS numeric_scale,
       c.datetime_precision::int AS datetime_precision, c.interval_type::varchar(128) AS interval_type,
       c.interval_precision::varchar(128) AS interval_precision,
       c.character_set_catalog::varchar(128) AS character_set_catalog,
       c.character_set_schema::varchar(128) AS character_set_schema,
       c.character_set_name::varchar(128) AS character_set_name,
       c.collation_catalog::varchar(128) AS collation_catalog, c.collation_schema::varchar(128) AS collation_schema,
       c.collation_name::varchar(128) AS collation_name, c.domain_name::varchar(128) AS domain_name,
       col_description((quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass,
                       c.ordinal_position::int)::varchar(256) AS remarks
FROM information_schema.columns c;

CREATE OR REPLACE VIEW pg_catalog.svv_all_schemas AS
SELECT current_database()::varchar(128) AS database_name, nspname::varchar(128) AS schema_name,
       pg_get_userbyid(nspowner)::varchar(128) AS schema_owner, 'local'::varchar(128) AS schema_type,
       nspacl::text::varchar(128) AS schema_acl, NULL::varchar(128) AS source_database,
       NULL::varchar(128) AS schema_option
FROM pg_namespace WHERE nspname !~ '^pg_toast' AND nspname !~ '^pg_temp_';

CREATE OR REPLACE VIEW pg_catalog.svv_all_tables AS
SELECT table_catalog AS database_name, table_schema AS schema_name, table_name, table_type,
       NULL::varchar(128) AS table_acl, remarks
FROM pg_catalog.svv_tables;

CREATE OR REPLACE VIEW pg_catalog.svv_all_columns AS
SELECT table_catalog AS database_name, table_schema AS schema_name, table_name, column_name, ordinal_position,
       column_default, is_nullable, data_type, character_maximum_length, numeric_precision, numeric_scale, remarks
FROM pg_catalog.svv_columns;

CREATE OR REPLACE VIEW pg_catalog.svv_external_schemas AS
SELECT NULL::oid AS esoid, NULL::smallint AS eskind, NULL::name AS schemaname, NULL::integer AS esowner,
       NULL::text AS databasename, NULL::text AS esoptions WHERE false;
CREATE OR REPLACE VIEW pg_catalog.svv_external_tables AS
SELECT NULL::varchar(128) AS redshift_database_name, NULL::name AS schemaname, NULL::name AS tablename,
       NULL::text AS tabletype, NULL::text AS location, NULL::text AS input_format, NULL::text AS output_format,
       NULL::text AS serialization_lib, NULL::text AS serde_parameters, NULL::smallint AS compressed,
       NULL::text AS parameters WHERE false;
CREATE OR REPLACE VIEW pg_catalog.svv_external_columns AS
SELECT NULL::varchar(128) AS redshift_database_name, NULL::name AS schemaname, NULL::name AS tablename,
       NULL::name AS columnname, NULL::text AS external_type, NULL::integer AS columnnum,
       NULL::integer AS part_key, NULL::text AS is_nullable WHERE false;
GRANT SELECT ON pg_catalog.svv_table_info, pg_catalog.pg_table_def, pg_catalog.svv_tables, pg_catalog.svv_columns,
  pg_catalog.svv_all_schemas, pg_catalog.svv_all_tables, pg_catalog.svv_all_columns, pg_catalog.svv_external_schemas,
  pg_catalog.svv_external_tables, pg_catalog.svv_external_columns, pg_catalog.sys_load_error_detail,
  pg_catalog.stl_query TO PUBLIC;
"""


def install(conn: Any) -> bool:
    """Install (or upgrade) the Redshift objects in ``conn``'s database; False when already current.

    ``conn`` is an autocommit superuser connection; the script runs in one transaction.
    """
    row = conn.execute("SELECT to_regprocedure('pg_catalog.redshift_local_dialect_version()') IS NOT NULL").fetchone()
    if row and row[0] and conn.execute("SELECT pg_catalog.redshift_local_dialect_version()").fetchone()[0] >= VERSION:
        return False
    with conn.transaction():
        conn.execute("SET LOCAL allow_system_table_mods = on")
        for script in (_FUNCTIONS, _SYSTEM_TABLES, _CATALOG_VIEWS):
            conn.execute(script)
        conn.execute(f"CREATE OR REPLACE FUNCTION pg_catalog.redshift_local_dialect_version() RETURNS integer "
                     f"LANGUAGE sql IMMUTABLE AS $$ SELECT {int(VERSION)} $$")
    return True


def raise_sql(message: str, sqlstate: str, parameters: int = 0) -> str:
    """A statement that fails on PostgreSQL with ``message``; it takes ``parameters`` bind values ($1..$n).

    The driver front sends it in place of a refused statement, so the client reads Redshift's error from
    the server itself (the transaction state stays right) and its Bind still matches the statement.
    """
    literal = "'" + message.replace("'", "''") + "'"
    binds = "".join(f", ${i}::text" for i in range(1, parameters + 1))
    return f"SELECT pg_catalog.redshift_local_raise({literal}, '{sqlstate}'{binds})"


@dataclass(frozen=True)
class LoadError:
    """One row of STL_LOAD_ERRORS: where a COPY failed and why."""

    table: str
    file: str
    line: int
    column: str
    column_type: str
    column_length: str
    raw_line: str
    raw_value: str
    code: int
    reason: str


def log_load_error(conn: Any, err: LoadError) -> None:
    """Record ``err`` (on ``conn``, outside the failed COPY's transaction, which has been rolled back)."""
    conn.execute("SELECT pg_catalog.redshift_local_log_load_error(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (err.table, err.file, err.line, err.column, err.column_type, err.column_length, err.raw_line,
                  err.raw_value, err.code, err.reason))


@dataclass(frozen=True)
class QueryRecord:
    """One Data API statement as SYS_QUERY_HISTORY shows it."""

    query_type: str
    status: str
    started: Any
    ended: Any
    error: str
    returned_rows: int
    text: str


def log_query(conn: Any, rec: QueryRecord) -> None:
    """Record ``rec`` in SYS_QUERY_HISTORY / STL_QUERY (on ``conn``, after its transaction ended)."""
    conn.execute("SELECT pg_catalog.redshift_local_log_query(%s, %s, %s, %s, %s, %s, %s)",
                 (rec.query_type, rec.status, rec.started, rec.ended, rec.error or None, rec.returned_rows,
                  rec.text))

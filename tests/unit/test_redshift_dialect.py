"""Redshift's dialect in the translator, driven by tests/data/redshift_dialect.yaml (both ways).

The same table drives tests/local/test_redshift_dialect.py (the statements' results through the Data API
and redshift-connector) and is listed in docs/local-cloud.md; ``python -m tests.unit.test_redshift_dialect``
rewrites that listing after the table changes (a test below fails until it is in sync).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml

from etl_localcloud.redshift.compat import raise_sql
from etl_localcloud.redshift.front import redshift_to_postgres
from etl_localcloud.redshift.sqltranslate import RefusedError, placeholders, split_statements, translate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tests" / "data" / "redshift_dialect.yaml"
DOC = ROOT / "docs" / "local-cloud.md"
START, END = "<!-- redshift-dialect-table:start -->", "<!-- redshift-dialect-table:end -->"


def load() -> dict[str, Any]:
    """The dialect table: ``setup``, ``accepted`` and ``refused`` statements."""
    return yaml.safe_load(TABLE.read_text())  # type: ignore[no-any-return]


DATA = load()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(data: dict[str, Any]) -> str:
    """The Markdown listing of the table, as docs/local-cloud.md holds it between its markers."""
    lines = [START, "", "| # | statement (Redshift accepts) | local result |", "|---|---|---|"]
    for i, case in enumerate(data["accepted"], 1):
        result = "runs" if case["rows"] is None else json.dumps(case["rows"], ensure_ascii=False)
        if case.get("differs"):
            result += f" (differs: {case['differs']})"
        lines.append(f"| A{i} | `{_cell(case['sql'])}` | {_cell(result)} |")
    lines += ["", "| # | statement (Redshift refuses) | local error |", "|---|---|---|"]
    for i, case in enumerate(data["refused"], 1):
        lines.append(f"| R{i} | `{_cell(case['sql'])}` | `ERROR: {_cell(case['error'])}` |")
    return "\n".join([*lines, "", END])


def test_the_table_has_at_least_forty_statements_each_way() -> None:
    assert len(DATA["accepted"]) >= 40 and len(DATA["refused"]) >= 40
    sqls = [c["sql"] for c in DATA["accepted"] + DATA["refused"]]
    assert len(sqls) == len(set(sqls))


@pytest.mark.parametrize("case", DATA["accepted"], ids=lambda c: c["sql"][:60])
def test_accepted_statements_translate_to_postgresql(case: dict[str, Any]) -> None:
    """Each accepted statement becomes SQL that PostgreSQL's grammar (as sqlglot reads it) accepts."""
    for stmt in split_statements(case["sql"]):
        out = translate(stmt)
        assert out and all(t.sql for t in out)
        for t in out:
            query, _ = placeholders(str(t.sql))
            sqlglot.parse_one(re.sub(r"%\(\w+\)s", "NULL", query).replace("%%", "%"), read="postgres")


@pytest.mark.parametrize("case", DATA["refused"], ids=lambda c: c["sql"][:60])
def test_refused_statements_fail_with_redshifts_error(case: dict[str, Any]) -> None:
    with pytest.raises(RefusedError) as err:
        translate(case["sql"])
    assert str(err.value) == case["error"]


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT DATEADD(day, 1, d) FROM t", "pg_catalog.dateadd('day', 1, CAST(d AS TIMESTAMP))"),
    ("SELECT DATEDIFF(mins, a, b) FROM t", "pg_catalog.datediff('minute', CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP))"),
    ("SELECT DATE_PART(qtrs, d) FROM t", "date_part('quarter', d)"),
    ("SELECT LISTAGG(x, ';') WITHIN GROUP (ORDER BY y DESC) FROM t",
     "string_agg(CAST(x AS VARCHAR), ';' ORDER BY y DESC)"),
    ("SELECT APPROXIMATE COUNT(DISTINCT x) FROM t", "COUNT(DISTINCT x)"),
    ("SELECT TOP 3 x FROM t", "LIMIT 3"),
    ("SELECT RATIO_TO_REPORT(x) OVER (PARTITION BY y) FROM t",
     "CAST(x AS DOUBLE PRECISION) / NULLIF(SUM(x) OVER (PARTITION BY y), 0)"),
])
def test_redshift_functions_are_rewritten(sql: str, expected: str) -> None:
    (t,) = translate(sql)
    assert expected.lower() in str(t.sql).lower()


def test_a_rewritten_statement_keeps_placeholders_and_redshift_escapes() -> None:
    """sqlglot's output keeps the Data API's :name placeholders and hands backslashes over as E'...'."""
    (t,) = translate("SELECT DATEADD(day, :n, d), 'a\\\\b', 'it\\'s' FROM t WHERE k = :key")
    assert ":n" in str(t.sql) and ":key" in str(t.sql)
    assert "E'a\\\\b'" in str(t.sql) and "E'it\\'s'" in str(t.sql)


def test_statements_without_redshift_functions_are_left_as_written() -> None:
    sql = "select a, extract(year from d) from t where b = :b"
    assert translate(sql)[0].sql == sql


def test_the_driver_front_answers_a_refused_statement_with_redshifts_error() -> None:
    """The endpoint sends PostgreSQL a statement raising Redshift's error, with the refused one's binds."""
    out = redshift_to_postgres("INSERT INTO t VALUES ($1, $2) ON CONFLICT DO NOTHING")
    assert out == raise_sql('syntax error at or near "ON"', "42601", 2)
    assert out.endswith("$1::text, $2::text)")
    assert redshift_to_postgres("SELECT 1") == "SELECT 1"


def test_docs_list_the_table() -> None:
    text = DOC.read_text()
    block = re.search(re.escape(START) + ".*?" + re.escape(END), text, re.S)
    assert block is not None, f"docs/local-cloud.md has no {START} block"
    assert block.group() == render(DATA), "run `python -m tests.unit.test_redshift_dialect` to update the docs"


if __name__ == "__main__":
    text = DOC.read_text()
    DOC.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: render(load()), text, flags=re.S))

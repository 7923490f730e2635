"""Redshift's dialect on PostgreSQL, both ways, on top of sqlglot (``read="redshift"``, ``write="postgres"``).

:func:`refusal` parses a statement with sqlglot's Redshift dialect and answers what Redshift
would answer for PostgreSQL-only SQL, from an explicit list (:data:`REFUSED_FUNCTIONS` and the
node checks in :func:`refusal`): ``INSERT ... ON CONFLICT``, ``RETURNING``, ``CREATE INDEX``,
``SERIAL`` types, arrays, ``jsonb`` and its operators, ``TABLESAMPLE``, ``generate_series`` over a
table, and functions Redshift does not have. sqlglot's Redshift dialect inherits PostgreSQL's
grammar, so the parse alone would accept all of these: the list is what makes them fail.

:func:`transpile` rewrites what PostgreSQL lacks (``DATEADD``/``DATEDIFF``/``DATE_PART`` with a
datepart keyword, ``LISTAGG ... WITHIN GROUP``, ``MEDIAN``, ``APPROXIMATE COUNT(DISTINCT)``,
``TOP n``, ``CHARINDEX``, ``CONVERT_TIMEZONE``, ``DECODE``, ``NVL2``, ``RATIO_TO_REPORT``) through
sqlglot's tree; ``DATEADD`` and ``DATEDIFF`` call the functions :mod:`.compat` installs in every
local database (Redshift's boundary-counting ``DATEDIFF`` has no PostgreSQL expression).
A statement without such a construct is left as the hand-written rewriter made it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["REFUSED_FUNCTIONS", "Refusal", "refusal", "transpile"]

# PostgreSQL functions Redshift does not have (Redshift answers "function ... does not exist").
REFUSED_FUNCTIONS = frozenset({
    "string_agg", "array_agg", "array_to_string", "string_to_array", "array_length", "array_append",
    "array_position", "unnest", "generate_subscripts", "regexp_split_to_table", "regexp_split_to_array",
    "to_json", "to_jsonb", "row_to_json", "json_agg", "jsonb_agg", "json_build_object", "jsonb_build_object",
    "jsonb_set", "jsonb_each", "jsonb_array_elements", "json_array_elements", "jsonb_typeof", "gen_random_uuid",
    "to_tsvector", "to_tsquery",
})
# Redshift's documented dateparts and their abbreviations -> PostgreSQL's field names.
_DATEPARTS = {
    **dict.fromkeys(("millennium", "millennia", "mil", "mils"), "millennium"),
    **dict.fromkeys(("century", "centuries", "c", "cent", "cents"), "century"),
    **dict.fromkeys(("decade", "decades", "dec", "decs"), "decade"),
    **dict.fromkeys(("epoch",), "epoch"),
    **dict.fromkeys(("year", "years", "y", "yr", "yrs"), "year"),
    **dict.fromkeys(("quarter", "quarters", "qtr", "qtrs"), "quarter"),
    **dict.fromkeys(("month", "months", "mon", "mons"), "month"),
    **dict.fromkeys(("week", "weeks", "w"), "week"),
    **dict.fromkeys(("dayofweek", "dow", "dw", "weekday"), "dow"),
    **dict.fromkeys(("dayofyear", "doy", "dy", "yearday"), "doy"),
    **dict.fromkeys(("day", "days", "d"), "day"),
    **dict.fromkeys(("hour", "hours", "h", "hr", "hrs"), "hour"),
    **dict.fromkeys(("minute", "minutes", "m", "min", "mins"), "minute"),
    **dict.fromkeys(("second", "seconds", "s", "sec", "secs"), "second"),
    **dict.fromkeys(("millisecond", "milliseconds", "ms", "msec", "msecs", "msecond", "mseconds", "millisec",
                     "millisecs", "millisecon"), "milliseconds"),
    **dict.fromkeys(("microsecond", "microseconds", "microsec", "microsecs", "usecond", "useconds", "us", "usec",
                     "usecs"), "microseconds"),
    **dict.fromkeys(("timezone", "timezone_hour", "timezone_minute"), "timezone"),
}
# EXTRACT's fields PostgreSQL knows; another (Redshift's abbreviations: qtr, w, dw, mins ...) is translated.
_PG_FIELDS = frozenset({"century", "day", "decade", "dow", "doy", "epoch", "hour", "isodow", "isoyear", "julian",
                        "microseconds", "millennium", "milliseconds", "minute", "month", "quarter", "second",
                        "timezone", "timezone_hour", "timezone_minute", "week", "year"})
_SERIALS = ("SERIAL", "BIGSERIAL", "SMALLSERIAL")
_UNSUPPORTED_LEADER = "Specified types or functions (one per INFO message) not supported on Redshift tables."


@dataclass(frozen=True)
class Refusal:
    """What Redshift answers for a statement it refuses: the message after ``ERROR:`` and its SQLSTATE."""

    message: str
    sqlstate: str


_READER: list[Any] = []


def _reader() -> Any:
    """sqlglot's Redshift dialect, keeping DATE_PART a function call (sqlglot folds it into EXTRACT, whose
    PostgreSQL result is a numeric where Redshift's DATE_PART answers a double precision)."""
    from sqlglot.dialects.redshift import Redshift

    class LocalRedshift(Redshift):
        class Parser(Redshift.Parser):  # type: ignore[misc,valid-type]
            FUNCTION_PARSERS: ClassVar[dict[str, Any]] = {
                k: v for k, v in Redshift.Parser.FUNCTION_PARSERS.items() if k != "DATE_PART"}

    return LocalRedshift


def _parse(sql: str) -> Any:
    """sqlglot's tree of one Redshift statement, or None when sqlglot cannot read it (PostgreSQL judges)."""
    import sqlglot
    from sqlglot.errors import ErrorLevel

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to a Command" is not the user's error
    if not _READER:
        _READER.append(_reader())
    try:
        return sqlglot.parse_one(sql, read=_READER[0], error_level=ErrorLevel.RAISE)
    except Exception:
        return None


def _syntax(near: str) -> Refusal:
    return Refusal(f'syntax error at or near "{near}"', "42601")


def _refused_node(node: Any) -> Refusal | None:
    """The refusal for one node of the tree, if Redshift has no such construct."""
    from sqlglot import exp

    if isinstance(node, exp.OnConflict):
        return _syntax("ON")
    if isinstance(node, exp.Returning):
        return _syntax("RETURNING")
    if isinstance(node, exp.TableSample):
        return _syntax("TABLESAMPLE")
    operators = {exp.JSONExtract: "->", exp.JSONExtractScalar: "->>", exp.JSONBExtract: "#>",
                 exp.JSONBExtractScalar: "#>>"}
    if type(node) in operators:
        return Refusal(f"operator does not exist: {operators[type(node)]}", "42883")
    if isinstance(node, (exp.JSONBContains, exp.ArrayContainsAll)):
        return Refusal("operator does not exist: @>", "42883")
    if isinstance(node, exp.JSONBContainsTopKey):
        return Refusal("operator does not exist: ?", "42883")
    if isinstance(node, exp.DataType):
        return _refused_type(node)
    return None


def _refused_type(node: Any) -> Refusal | None:
    from sqlglot import exp

    kind = node.this
    if kind == exp.DataType.Type.ARRAY:
        return _syntax("[")
    if kind in (exp.DataType.Type.JSONB, exp.DataType.Type.JSON):
        return Refusal(f'type "{kind.value.lower()}" does not exist', "42704")
    if kind.value in _SERIALS:
        column = node.find_ancestor(exp.ColumnDef)
        table = node.find_ancestor(exp.Schema)
        where = f"{table.this.name}.{column.name}" if column is not None and table is not None else kind.value
        return Refusal(f'Column "{where}" has unsupported type "{kind.value.lower()}".', "0A000")
    return None


def refusal(sql: str, tokens: Sequence[Any]) -> Refusal | None:
    """Redshift's error for ``sql`` (one statement) when Redshift refuses it, else None.

    Checked: the explicit list in this module's docstring. A statement sqlglot cannot parse is
    not refused here (PostgreSQL's own error, or success, stands), so nothing Redshift accepts is
    refused for a gap of the parser.
    """
    from sqlglot import exp

    tree = _parse(sql)
    if tree is None:
        return _command_refusal(sql)
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "INDEX":
        return Refusal('SQL command "CREATE INDEX" not supported on Redshift tables.', "0A000")
    if isinstance(tree, exp.Command):
        return _command_refusal(sql)
    for node in tree.walk():
        found = _refused_node(node)
        if found is not None:
            return found
    return _token_refusal(tokens) or _series_over_table(tree)


def _command_refusal(sql: str) -> Refusal | None:
    """Statements sqlglot keeps as raw commands: the PostgreSQL-only ones Redshift's parser does not know."""
    words = sql.split()
    head = " ".join(w.upper() for w in words[:2])
    if head in ("CREATE EXTENSION", "CREATE INDEX", "CREATE UNIQUE") or words[:1] in (["LISTEN"], ["NOTIFY"]):
        if "INDEX" in head or (len(words) > 2 and words[2].upper() == "INDEX"):
            return Refusal('SQL command "CREATE INDEX" not supported on Redshift tables.', "0A000")
        return _syntax(words[1] if head.startswith("CREATE") else words[0])
    return None


def _token_refusal(sig: Sequence[Any]) -> Refusal | None:
    """``ARRAY[...]`` (PostgreSQL's array constructor; Redshift's ARRAY(...) builds a SUPER) and calls of
    :data:`REFUSED_FUNCTIONS` (by name: sqlglot maps several of them onto Redshift's own nodes)."""
    for prev, word, nxt in zip([None, *sig], sig, [*sig[1:], None]):  # noqa: B905
        if word.upper == "ARRAY" and nxt is not None and nxt.text == "[":
            return _syntax("[")
        name = word.text.lower()
        if word.kind == "word" and name in REFUSED_FUNCTIONS and nxt is not None and nxt.text == "(" \
                and (prev is None or prev.text != "."):
            return Refusal(f"function {name} does not exist", "42883")
    return None


def _series_over_table(tree: Any) -> Refusal | None:
    """generate_series runs on Redshift's leader node only: with a table in the query it is refused."""
    from sqlglot import exp

    series = [f for f in tree.find_all(exp.GenerateSeries, exp.Anonymous)
              if isinstance(f, exp.GenerateSeries) or f.name.lower() == "generate_series"]
    if not series:
        return None
    tables = [t for t in tree.find_all(exp.Table) if t.name and not isinstance(t.this, (exp.Func, exp.Anonymous))
              and not t.find(exp.GenerateSeries)]
    return Refusal(_UNSUPPORTED_LEADER, "0A000") if tables else None


# --------------------------------------------------------------------------- transpiling
def _needs(tree: Any, sig: Sequence[Any]) -> bool:
    """Whether the tree holds a Redshift construct PostgreSQL lacks (else the text is kept as it is)."""
    from sqlglot import exp

    kinds = (exp.TsOrDsAdd, exp.DateAdd, exp.TsOrDsDiff, exp.DateDiff, exp.GroupConcat, exp.Median,
             exp.ApproxDistinct, exp.StrPosition, exp.ConvertTimezone, exp.Nvl2, exp.DecodeCase)
    if any(True for _ in tree.find_all(*kinds)) or any(_redshift_field(e) for e in tree.find_all(exp.Extract)):
        return True
    if any(_alias_refs(select) for select in tree.find_all(exp.Select)):
        return True
    if any(f.name.upper() in ("RATIO_TO_REPORT", "DATEPART", "DATE_PART") for f in tree.find_all(exp.Anonymous)):
        return True
    if any(t.upper == "TOP" for t in sig):
        return True
    # DATE_PART(dow, x): a datepart keyword, where PostgreSQL's date_part takes a string
    return any(a.upper in ("DATE_PART", "DATEPART") and b.text == "(" and c.kind == "word"
               for a, b, c in zip(sig, sig[1:], sig[2:]))  # noqa: B905


def _alias_refs(select: Any) -> list[tuple[Any, Any]]:
    """(column, aliased expression) for each reference to a select-list alias in WHERE or in a later item of
    the select list (Redshift's lateral column alias reference; PostgreSQL knows only the tables' columns)."""
    from sqlglot import exp

    def refs_in(node: Any, aliases: dict[str, Any]) -> list[tuple[Any, Any]]:
        return [(col, aliases[col.name.lower()]) for col in node.find_all(exp.Column)
                if not col.table and col.name.lower() in aliases and col.find_ancestor(exp.Select) is select]

    refs: list[tuple[Any, Any]] = []
    aliases: dict[str, Any] = {}
    columns: set[str] = set()  # names the list itself uses as columns: a table's, whatever an alias says
    for item in select.expressions:
        refs += refs_in(item, aliases)
        columns |= {c.name.lower() for c in item.find_all(exp.Column) if c.name.lower() not in aliases}
        if isinstance(item, exp.Alias) and item.alias.lower() not in columns:
            aliases[item.alias.lower()] = item.this
    where = select.args.get("where")
    return refs + (refs_in(where, aliases) if where is not None else [])


def _expand_alias_refs(tree: Any) -> Any:
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        for col, expression in _alias_refs(select):
            col.replace(exp.Paren(this=expression.copy()))
    return tree


def _redshift_field(node: Any) -> bool:
    """An EXTRACT / DATE_PART whose datepart is Redshift's spelling, not a PostgreSQL field."""
    from sqlglot import exp

    return isinstance(node.this, (exp.Var, exp.Column, exp.Identifier)) and node.this.name.lower() not in _PG_FIELDS


def _unit(node: Any) -> str:
    unit = node.args.get("unit")
    name = (unit.name if unit is not None else "day").lower()
    return _DATEPARTS.get(name, name)


def _rewrite(node: Any) -> Any:
    """One node of Redshift's meaning as PostgreSQL's (the transform sqlglot's tree walk applies)."""
    from sqlglot import exp

    if isinstance(node, (exp.TsOrDsAdd, exp.DateAdd)):
        return exp.func("pg_catalog.dateadd", exp.Literal.string(_unit(node)), node.expression,
                        exp.cast(node.this, "timestamp"))
    if isinstance(node, (exp.TsOrDsDiff, exp.DateDiff)):
        return exp.func("pg_catalog.datediff", exp.Literal.string(_unit(node)), exp.cast(node.expression, "timestamp"),
                        exp.cast(node.this, "timestamp"))
    if isinstance(node, exp.Extract) and _redshift_field(node):
        return exp.func("date_part", exp.Literal.string(_DATEPARTS.get(node.this.name.lower(), node.this.name)),
                        node.expression)
    if isinstance(node, exp.Anonymous) and node.name.upper() in ("DATEPART", "DATE_PART") \
            and len(node.expressions) == 2:
        part, value = node.expressions
        return exp.Anonymous(this="date_part", expressions=[
            exp.Literal.string(_DATEPARTS.get(part.name.lower(), part.name)), value])
    if isinstance(node, exp.ApproxDistinct):
        return exp.Count(this=exp.Distinct(expressions=[node.this]))
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.GroupConcat):
        return _listagg(node.this, node.expression)
    if isinstance(node, exp.GroupConcat) and not isinstance(node.parent, exp.WithinGroup):
        return _listagg(node, None)
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Anonymous) \
            and node.this.name.upper() == "RATIO_TO_REPORT" and len(node.this.expressions) == 1:
        value = node.this.expressions[0]
        total = node.copy()
        total.set("this", exp.Sum(this=value.copy()))
        return exp.Div(this=exp.cast(value, "double precision"),
                       expression=exp.func("nullif", total, exp.Literal.number(0)))
    return node


def _listagg(concat: Any, order: Any) -> Any:
    """``LISTAGG(x [, sep]) [WITHIN GROUP (ORDER BY ...)]`` -> ``string_agg(x::varchar, sep [ORDER BY ...])``."""
    from sqlglot import exp

    value = concat.this
    sep = concat.args.get("separator") or exp.Literal.string("")
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        if len(value.expressions) > 1:  # LISTAGG(DISTINCT x, sep): sqlglot keeps sep inside the DISTINCT
            sep = value.expressions[1]
        value = value.expressions[0]
    arg: Any = exp.cast(value, "varchar")
    if distinct:
        arg = exp.Distinct(expressions=[arg])
    if order is not None:  # string_agg(x, sep ORDER BY ...); with DISTINCT PostgreSQL orders by the argument itself
        keys = [exp.Ordered(this=arg.expressions[0].copy(), desc=o.args.get("desc"))
                if distinct and o.this == value else o for o in order.expressions]
        sep = exp.Order(this=sep, expressions=keys)
    return exp.Anonymous(this="string_agg", expressions=[arg, sep])


def _generator() -> Any:
    """PostgreSQL's generator, keeping the Data API's ``:name`` placeholders and Redshift's string escapes."""
    from sqlglot import exp
    from sqlglot.dialects.postgres import Postgres

    class LocalPostgres(Postgres):
        class Generator(Postgres.Generator):  # type: ignore[misc,valid-type]
            TRANSFORMS: ClassVar[dict[Any, Any]] = {**Postgres.Generator.TRANSFORMS,
                          exp.Placeholder: lambda self, e: f":{e.name}" if e.name else "?",
                          # PostgreSQL 15+ has Redshift's REGEXP_SUBSTR(source, pattern [, position [, occurrence]])
                          exp.RegexpExtract: lambda self, e: self.func(
                              "REGEXP_SUBSTR", e.this, e.expression, e.args.get("position"),
                              e.args.get("occurrence"))}

            def bytestring_sql(self, expression: Any) -> str:
                return self._escaped(expression.this)

            def _escaped(self, text: str) -> str:
                return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

            def literal_sql(self, expression: Any) -> str:
                if expression.is_string and "\\" in expression.this:
                    return self._escaped(expression.this)
                return str(super().literal_sql(expression))

    return LocalPostgres


_DIALECT: list[Any] = []


def transpile(sql: str, tokens: Sequence[Any]) -> str:
    """``sql`` (one statement, after the hand-written rewriter) with Redshift's functions made PostgreSQL's.

    ``tokens`` are the significant tokens of the statement as written (:func:`.sqltranslate.tokenize`).
    Returned unchanged when it holds nothing to rewrite or sqlglot cannot read it.
    """
    tree = _parse(sql)
    if tree is None or not _needs(tree, tokens):
        return sql
    if not _DIALECT:
        _DIALECT.append(_generator())
    return str(_expand_alias_refs(tree).transform(_rewrite).sql(dialect=_DIALECT[0]))

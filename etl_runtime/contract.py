"""The dataset contract as the pipeline sees it: a plain JSON dict, compiled once per file.

Runs inside Glue Python shell (Python 3.9) and Lambda: stdlib and pyarrow only, no pydantic,
no ``etl_kit.config``. The dict has the shape of ``DatasetContract.model_dump()``::

    {"columns": [{"name", "source", "type", "required", "formats", "precision", "scale",
                  "min", "max", "range_action"}, ...],
     "primary_key": ["order_id"], "delimiter": None, "encoding": "auto" | "utf-8" | [...],
     "null_values": [...], "max_line_bytes": 1048576,
     "checks": [{"name", "expr", "tolerance", "action"}, ...]}

Column types: ``string`` (stored as-is after trimming, at most :data:`MAX_STRING_BYTES` UTF-8
bytes so the warehouse's ``VARCHAR(256)`` always takes it), ``integer`` (int64), ``decimal``
(exact decimal128(precision, scale); more than ``scale`` significant decimal places is a
reject, never a rounding: money must not be rounded silently), ``date`` (date32, Java-style
formats ``yyyy yy MM M dd d`` with literal separators; ``yy`` means 20yy), ``double`` (float64).

Rules (:class:`CheckRule`): a numeric column's ``min``/``max`` become the rules ``<name>_min`` /
``<name>_max``; ``checks`` add cross-column rules. Each expression is parsed by a small
recursive-descent parser into a tree of column names, numbers and ``+ - *`` (never ``eval``) and
evaluated by the transform with pyarrow kernels.
"""

from __future__ import annotations

import decimal
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa

__all__ = [
    "MAX_STRING_BYTES",
    "ColumnRule",
    "CompiledContract",
    "DateFormat",
    "compile_contract",
    "normalise_header",
    "parquet_schema",
    "LINEAGE_COLUMNS",
    "CheckRule",
    "parse_check_expression",
]

MAX_STRING_BYTES = 256
DEFAULT_MAX_LINE_BYTES = 1 << 20  # a longer physical line is a row reject (line_too_long)
DEFAULT_NULL_VALUES = ["", "NULL", "null", "NA", "N/A", "n/a", "None", "-"]
_TYPES = ("string", "integer", "decimal", "date", "double")
_NORM_RE = re.compile(r"[\s_]+")


def normalise_header(name: str) -> str:
    """Normalise a header for matching: case, surrounding spaces, runs of spaces/underscores.

    ``"Item Type"``, ``"item_type"`` and ``" ITEM  TYPE "`` all become ``"item_type"``.
    """
    return _NORM_RE.sub("_", name.strip().lower()).strip("_")


class DateFormat:
    """One Java-style date pattern (``M/d/yyyy``) compiled to an anchored regex with y/m/d groups."""

    _TOKENS = (("yyyy", r"(?P<y>\d{4})"), ("yy", r"(?P<y>\d{2})"), ("MM", r"(?P<m>\d{2})"),
               ("M", r"(?P<m>\d{1,2})"), ("dd", r"(?P<d>\d{2})"), ("d", r"(?P<d>\d{1,2})"))

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        out: List[str] = []
        seen = set()
        i = 0
        while i < len(pattern):
            for tok, rx in self._TOKENS:
                if pattern.startswith(tok, i):
                    if tok[0] in seen:
                        raise ValueError(f"date format {pattern!r} repeats {tok[0]!r}")
                    seen.add(tok[0])
                    out.append(rx)
                    i += len(tok)
                    break
            else:
                ch = pattern[i]
                if ch.isalpha():
                    raise ValueError(f"date format {pattern!r}: unsupported letter {ch!r} (use yyyy yy MM M dd d)")
                out.append(re.escape(ch))
                i += 1
        if seen != {"y", "M", "d"}:
            raise ValueError(f"date format {pattern!r} must contain a year, a month and a day")
        self.two_digit_year = "yyyy" not in pattern
        self.regex = "^" + "".join(out) + "$"
        self._re = re.compile(self.regex)

    def parse_one(self, text: str) -> Optional[Tuple[int, int, int]]:
        """Parse one value in Python (slow path); ``None`` if it is not a real date in this format."""
        m = self._re.match(text)
        if not m:
            return None
        y, mo, d = int(m.group("y")), int(m.group("m")), int(m.group("d"))
        if self.two_digit_year:
            y += 2000
        if not 1 <= mo <= 12 or not 1 <= d <= days_in_month(y, mo):
            return None
        return y, mo, d


def days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


class ColumnRule:
    """One contract column, with its compiled checks."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.spec = spec
        self.name = str(spec["name"])
        self.source = str(spec.get("source") or spec["name"])
        self.type = str(spec.get("type", "string"))
        if self.type not in _TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r} (one of {', '.join(_TYPES)})")
        self.required = bool(spec.get("required", False))
        self.precision = int(spec.get("precision") or 18)
        scale = spec.get("scale")
        self.scale = int(scale) if scale is not None else 2
        if self.type == "decimal" and not (0 <= self.scale <= self.precision <= 38):
            raise ValueError(f"column {self.name!r}: need 0 <= scale <= precision <= 38")
        formats = list(spec.get("formats") or [])
        if self.type == "date" and not formats:
            formats = ["yyyy-MM-dd"]
        self.date_formats = [DateFormat(f) for f in formats] if self.type == "date" else []
        # Anchored RE2-compatible patterns for the vectorised fast path (pyarrow.compute).
        int_digits = self.precision - self.scale
        if self.type == "integer":
            self.ok_regex: Optional[str] = r"^[+-]?[0-9]{1,18}$"  # 18 digits always fit int64
        elif self.type == "decimal":
            frac = r"(\.[0-9]{0,%d}0*)?" % self.scale if self.scale else r"(\.0*)?"
            ipart = r"[0-9]{1,%d}" % int_digits if int_digits else "0?"
            self.ok_regex = r"^[+-]?(" + ipart + frac + (r"|\.[0-9]{1,%d}0*" % self.scale if self.scale else "") + ")$"
        elif self.type == "double":
            self.ok_regex = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
        else:
            self.ok_regex = None
        self._ok_re = re.compile(self.ok_regex) if self.ok_regex else None

    @property
    def arrow_type(self) -> pa.DataType:
        return {
            "string": pa.string(),
            "integer": pa.int64(),
            "decimal": pa.decimal128(self.precision, self.scale),
            "date": pa.date32(),
            "double": pa.float64(),
        }[self.type]

    def reject_reason(self, value: str) -> str:
        """Why a trimmed, non-null value failed (slow path, only called for rejected values)."""
        if self.type == "string":
            return "string_too_long"
        if self.type == "integer":
            if re.match(r"^[+-]?[0-9]+$", value):
                return "integer_out_of_range"
            return "not_an_integer"
        if self.type == "decimal":
            m = re.match(r"^[+-]?([0-9]*)(?:\.([0-9]*))?$", value)
            if not m or value.strip("+-.") == "":
                return "not_a_decimal"
            if len((m.group(2) or "").rstrip("0")) > self.scale:
                return "too_many_decimal_places"
            return "decimal_out_of_range"
        if self.type == "double":
            return "not_a_number"
        return "invalid_date"


class CompiledContract:
    """The contract compiled for one run (columns, null spellings, primary key, delimiter, encoding)."""

    def __init__(self, contract: Dict[str, Any]) -> None:
        if not isinstance(contract, dict) or not contract.get("columns"):
            raise ValueError("dataset contract must be a dict with a non-empty 'columns' list")
        self.columns = [ColumnRule(c) for c in contract["columns"]]
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("dataset contract has duplicate column names")
        self.primary_key: List[str] = list(contract.get("primary_key") or [])
        for pk in self.primary_key:
            if pk not in names:
                raise ValueError(f"primary key {pk!r} is not a contract column")
        delim = contract.get("delimiter")
        if delim is not None and (len(delim) != 1 or delim in "\"\r\n"):
            raise ValueError(f"delimiter {delim!r} must be one character other than quote or newline")
        self.delimiter: Optional[str] = delim
        enc = contract.get("encoding") or "utf-8"
        self.encoding: Any = [str(e) for e in enc] if isinstance(enc, (list, tuple)) else str(enc)
        self.max_line_bytes = int(contract.get("max_line_bytes") or DEFAULT_MAX_LINE_BYTES)
        if self.max_line_bytes < 1024:
            raise ValueError("max_line_bytes must be at least 1024")
        nulls = contract.get("null_values")
        if nulls is None:  # same default as DatasetContract.null_values
            nulls = DEFAULT_NULL_VALUES
        self.null_values: List[str] = [""] + [str(v).strip() for v in nulls]
        self.null_set = frozenset(self.null_values)
        self.checks = compile_checks(contract, self.columns)

    def match_header(self, header: Sequence[str]) -> Tuple[Dict[str, int], List[str], List[str], List[str]]:
        """Map contract columns to header positions.

        Returns
        -------
        (positions, missing_required, missing_optional, extra_columns)
            ``positions`` maps column name -> index in the header.

        Raises
        ------
        ValueError
            ``("duplicate", names)`` style message when two headers map to one contract column.
        """
        wanted: Dict[str, str] = {}
        for c in self.columns:
            wanted[normalise_header(c.source)] = c.name
            wanted.setdefault(normalise_header(c.name), c.name)
        positions: Dict[str, int] = {}
        dupes: List[str] = []
        extra: List[str] = []
        for i, h in enumerate(header):
            norm = normalise_header(h)
            if norm == "" and i == len(header) - 1:
                continue  # trailing delimiter on the header line
            name = wanted.get(norm)
            if name is None:
                extra.append(h)
            elif name in positions:
                dupes.append(f"{header[positions[name]]!r} and {h!r} (-> {name})")
            else:
                positions[name] = i
        if dupes:
            raise DuplicateHeader("; ".join(dupes))
        missing_req = [c.name for c in self.columns if c.required and c.name not in positions]
        missing_opt = [c.name for c in self.columns if not c.required and c.name not in positions]
        return positions, missing_req, missing_opt, extra


class DuplicateHeader(ValueError):
    """Two header cells map to the same contract column."""


def compile_contract(contract: Any) -> CompiledContract:
    """Compile a contract dict (or an object with ``model_dump()``) for the pipeline."""
    if hasattr(contract, "model_dump"):
        contract = contract.model_dump()
    return CompiledContract(contract)


LINEAGE_COLUMNS = ("source_key", "source_etag", "run_id")


def parquet_schema(cc: CompiledContract, lineage: bool = False) -> pa.Schema:
    """The output Parquet schema: contract columns in contract order plus ``source_line`` int64.

    With ``lineage`` the three constant columns :data:`LINEAGE_COLUMNS` follow (dictionary-encoded
    strings, one value per file), so the file has exactly the warehouse table's columns and job 2
    can ``COPY`` it straight into the target.
    """
    fields = [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in cc.columns]
    fields.append(pa.field("source_line", pa.int64(), nullable=False))
    if lineage:
        fields += [pa.field(n, pa.dictionary(pa.int32(), pa.string()), nullable=False) for n in LINEAGE_COLUMNS]
    return pa.schema(fields)


# ---------------------------------------------------------------------------------------------
# range and cross-column rules: data, never code
# ---------------------------------------------------------------------------------------------
CHECK_ACTIONS = ("quarantine", "warn")
_NUMERIC = ("integer", "decimal", "double")
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[a-z_][a-z0-9_]*)|(?P<op><=|>=|==|!=|[-+*()=<>]))")
_COMPARE = ("=", "==", "!=", "<", "<=", ">", ">=")


def parse_check_expression(text: str) -> Tuple[str, Any, Any]:
    """Parse ``<sum> <comparison> <sum>`` over column names, numbers, ``+ - *`` and parentheses.

    Returns ``(operator, left, right)`` where each side is a tree of tuples: ``("col", name)``,
    ``("num", float)``, ``("neg", x)``, ``("+"|"-"|"*", a, b)``. Anything else (functions,
    attributes, strings, division, a second comparison) is a ``ValueError``: the text is parsed,
    never evaluated as Python.
    """
    if not isinstance(text, str) or len(text) > 500:
        raise ValueError("a check expression must be a string of at most 500 characters")
    tokens: List[Tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"check {text!r}: unexpected {text[pos:].strip()[:20]!r} (allowed: column names, "
                             "numbers, + - * ( ) and one of = != < <= > >=)")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    parser = _Parser(tokens, text)
    left = parser.sum()
    op = parser.take("op")
    if op not in _COMPARE:
        raise ValueError(f"check {text!r}: expected one comparison (= != < <= > >=), got {op!r}")
    right = parser.sum()
    if parser.i != len(tokens):
        raise ValueError(f"check {text!r}: unexpected {tokens[parser.i][1]!r} after the comparison")
    return ("=" if op == "==" else op), left, right


class _Parser:
    def __init__(self, tokens: List[Tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.i = tokens, text, 0

    def peek(self) -> Tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self, kind: str = "") -> str:
        k, v = self.peek()
        if k == "end" or (kind and k != kind):
            raise ValueError(f"check {self.text!r}: unexpected end or {v!r}")
        self.i += 1
        return v

    def sum(self) -> Any:
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            node = (self.take(), node, self.term())
        return node

    def term(self) -> Any:
        node = self.unary()
        while self.peek() == ("op", "*"):
            self.take()
            node = ("*", node, self.unary())
        return node

    def unary(self) -> Any:
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Any:
        kind, value = self.peek()
        if kind == "num":
            self.take()
            return ("num", float(value))
        if kind == "name":
            self.take()
            return ("col", value)
        if (kind, value) == ("op", "("):
            self.take()
            node = self.sum()
            if self.take("op") != ")":
                raise ValueError(f"check {self.text!r}: missing ')'")
            return node
        raise ValueError(f"check {self.text!r}: expected a column name, a number or '(', got {value or 'the end'!r}")


def _columns_of(node: Any) -> List[str]:
    if node[0] == "col":
        return [node[1]]
    if node[0] == "num":
        return []
    return [c for child in node[1:] for c in _columns_of(child)]


class CheckRule:
    """One compiled rule: ``left op right`` within ``tolerance``, evaluated per row (see transform)."""

    def __init__(self, spec: Dict[str, Any], numeric_columns: Sequence[str]) -> None:
        self.name = str(spec.get("name") or "")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", self.name):
            raise ValueError(f"check name {self.name!r} must be lower snake_case (it is the quarantine reason)")
        self.expression = str(spec.get("expr") or "")
        self.op, self.left, self.right = parse_check_expression(self.expression)
        self.tolerance = float(spec.get("tolerance") or 0)
        if not self.tolerance >= 0:
            raise ValueError(f"check {self.name!r}: tolerance must be >= 0")
        self.action = str(spec.get("action") or "quarantine")
        if self.action not in CHECK_ACTIONS:
            raise ValueError(f"check {self.name!r}: action must be one of {', '.join(CHECK_ACTIONS)}")
        self.columns = list(dict.fromkeys(_columns_of(self.left) + _columns_of(self.right)))
        unknown = [c for c in self.columns if c not in numeric_columns]
        if unknown or not self.columns:
            raise ValueError(f"check {self.name!r}: {', '.join(unknown) or 'no column'} is not a numeric contract "
                             f"column (numeric columns: {', '.join(numeric_columns)})")


def compile_checks(contract: Dict[str, Any], columns: Sequence[ColumnRule]) -> List[CheckRule]:
    """The contract's rules: per-column ``min``/``max`` first (as ``<column>_min``/``_max``), then ``checks``."""
    numeric = [c.name for c in columns if c.type in _NUMERIC]
    specs: List[Dict[str, Any]] = []
    for c in columns:
        for bound, op in (("min", ">="), ("max", "<=")):
            value = c.spec.get(bound)
            if value is None:
                continue
            if c.type not in _NUMERIC:
                raise ValueError(f"column {c.name!r}: {bound} needs a numeric type, not {c.type}")
            number = format(decimal.Decimal(str(value)), "f")  # never an exponent the parser would refuse
            specs.append({"name": f"{c.name}_{bound}", "expr": f"{c.name} {op} {number}",
                          "action": c.spec.get("range_action") or "quarantine"})
    specs.extend(contract.get("checks") or [])
    rules = [CheckRule(s, numeric) for s in specs]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("dataset contract checks have duplicate names")
    return rules

"""Job 1's checks on typed columns, vectorised with pyarrow kernels: per-column types and bounds, and the
contract's rules (``checks``) evaluated in float64.

A column's result for a batch is a :class:`Checked`; :class:`ColumnChecker` keeps the per-file cache of
low-cardinality columns. The slow paths (:func:`rule_reject`, :meth:`Checked.values_at`) run only for
rejected rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from etl_runtime.arrowconst import INT, any_true, f64, int64s
from etl_runtime.contract import MAX_STRING_BYTES, ColumnRule

__all__ = ["Checked", "ColumnChecker", "check_plain", "eval_checks", "rule_reject", "take_list"]

_NULL_I64 = pa.nulls(1, pa.int64())[0]
_NULL_STR = pa.nulls(1, pa.string())[0]
_MAX_STRING_BYTES = int64s([MAX_STRING_BYTES])[0]
_MONTH_DAYS = int64s([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


# ---------------------------------------------------------------------------------------------
# per-column vectorised checks
# ---------------------------------------------------------------------------------------------
def _to_decimal(src: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """Validated decimal strings as ``arrow_type``; pyarrow 7 (Glue Python shell 3.9's) has no string->decimal
    cast kernel, so there each value is parsed by :class:`decimal.Decimal` (same values, slower)."""
    try:
        return pc.cast(src, arrow_type)
    except pa.ArrowNotImplementedError:
        return pa.array([None if s is None else Decimal(s) for s in src.to_pylist()], type=arrow_type)


def _date_days(v: pa.Array, rule: ColumnRule) -> pa.Array:
    """Days since epoch (int32) for values that are real dates in one of the formats, else null."""
    result = None
    for fmt in rule.date_formats:
        parts = pc.extract_regex(v, fmt.regex)
        # flatten() carries the struct's validity into the children (non-matching values become null)
        f = dict(zip([field.name for field in parts.type], parts.flatten()))  # StructType.field(): pyarrow 8+
        y = pc.cast(f["y"], pa.int64())
        m = pc.cast(f["m"], pa.int64())
        d = pc.cast(f["d"], pa.int64())
        if fmt.two_digit_year:
            y = pc.add(y, INT[2000])
        m_ok = pc.and_(pc.greater_equal(m, INT[1]), pc.less_equal(m, INT[12]))
        mi = pc.if_else(m_ok, m, INT[0])
        leap = pc.or_(
            pc.and_(pc.equal(_mod(y, 4), INT[0]), pc.not_equal(_mod(y, 100), INT[0])), pc.equal(_mod(y, 400), INT[0])
        )
        dim = pc.add(pc.take(_MONTH_DAYS, mi), pc.cast(pc.and_(leap, pc.equal(mi, INT[2])), pa.int64()))
        ok = pc.and_(pc.and_(m_ok, pc.greater_equal(y, INT[1])),
                     pc.and_(pc.greater_equal(d, INT[1]), pc.less_equal(d, dim)))
        # days_from_civil (H. Hinnant), valid for year >= 1 where integer division truncates correctly
        feb = pc.cast(pc.less_equal(m, INT[2]), pa.int64())
        y2 = pc.subtract(y, feb)
        era = pc.divide(y2, INT[400])
        yoe = pc.subtract(y2, pc.multiply(era, INT[400]))
        mp = pc.add(m, pc.subtract(pc.multiply(feb, INT[12]), INT[3]))
        doy = pc.add(pc.divide(pc.add(pc.multiply(mp, INT[153]), INT[2]), INT[5]), pc.subtract(d, INT[1]))
        doe = pc.add(pc.add(pc.multiply(yoe, INT[365]), pc.divide(yoe, INT[4])),
                     pc.subtract(doy, pc.divide(yoe, INT[100])))
        days = pc.subtract(pc.add(pc.multiply(era, INT[146097]), doe), INT[719468])
        days = pc.if_else(ok, days, _NULL_I64)
        result = days if result is None else pc.coalesce(result, days)
    assert result is not None
    return pc.cast(pc.cast(result, pa.int32()), pa.date32())


def _mod(a: pa.Array, k: int) -> pa.Array:
    ks = INT[k]
    return pc.subtract(a, pc.multiply(pc.divide(a, ks), ks))


class Checked:
    """One column's validation result for a batch.

    ``isnull`` / ``fail`` are boolean arrays, or ``None`` when no value of the batch is null / failed
    (the common case costs no mask at all).
    """

    __slots__ = ("fail", "isnull", "raw", "typed")

    def __init__(self, isnull: Optional[pa.Array], fail: Optional[pa.Array], typed: pa.Array, raw: pa.Array) -> None:
        self.isnull = isnull
        self.fail = fail
        self.typed = typed
        self.raw = raw

    def values_at(self, rows: pa.Array) -> List[Any]:
        """Trimmed values at the given row indices (slow path for rejected rows)."""
        return pc.utf8_trim_whitespace(pc.take(self.raw, rows)).to_pylist()


def check_plain(raw: pa.Array, rule: ColumnRule, null_set: pa.Array) -> Checked:
    v = pc.utf8_trim_whitespace(raw)
    isnull = pc.is_in(v, value_set=null_set)
    if rule.type == "string":
        fail = pc.and_(pc.invert(isnull), pc.greater(pc.binary_length(v), _MAX_STRING_BYTES))
        good = pc.invert(pc.or_(isnull, fail))
        typed = pc.if_else(good, v, _NULL_STR)
    elif rule.type == "date":
        days = _date_days(v, rule)
        fail = pc.and_(pc.invert(isnull), pc.is_null(days))
        typed = days
    else:
        assert rule.ok_regex is not None
        ok = pc.match_substring_regex(v, rule.ok_regex)
        fail = pc.and_(pc.invert(isnull), pc.invert(ok))
        good = pc.and_(ok, pc.invert(isnull))
        src = pc.if_else(good, v, _NULL_STR)
        if rule.type == "integer":
            src = pc.utf8_ltrim(src, characters="+")  # arrow's int cast refuses a leading '+'
        typed = _to_decimal(src, rule.arrow_type) if pa.types.is_decimal(rule.arrow_type) \
            else pc.cast(src, rule.arrow_type)
    if rule.required:
        fail = pc.or_(fail, isnull)
    return Checked(isnull, fail, typed, raw)


def _value_bytes(raw: pa.Array) -> Optional[bytes]:
    """The bytes of all values of a string array, concatenated (None if not a plain string array)."""
    if raw.type != pa.string():
        return None
    bufs = raw.buffers()
    if bufs[2] is None:
        return b""
    offsets = memoryview(bufs[1]).cast("B")
    first, last = (int.from_bytes(offsets[4 * i:4 * i + 4], "little", signed=True)
                   for i in (raw.offset, raw.offset + len(raw)))
    return bufs[2].to_pybytes()[first:last]


_DIGITS = b"0123456789"
_DECIMAL_CHARS = b"0123456789.+-"


def _fast_numeric(raw: pa.Array, rule: ColumnRule) -> Optional[Checked]:
    """Integer/decimal batch where every value is a plain, in-range number: cast without regex.

    Only values made of digits (integers) or digits, one point and a sign (decimals) qualify, no
    value empty, none longer than the digits the type allows (so leading zeros cannot hide an
    over-long number); arrow's cast then rejects anything else the rule rejects (two points, a bare
    sign, too many decimal places), except exponents and hex, which the byte check already excluded.
    Returns ``None`` when the batch needs the full check.
    """
    if rule.type == "integer":
        allowed, max_len = _DIGITS, 18
    elif rule.type == "decimal":
        allowed, max_len = _DECIMAL_CHARS, rule.precision - rule.scale
    else:
        return None
    if raw.null_count or max_len < 1:
        return None
    lengths = pc.min_max(pc.binary_length(raw)).as_py()
    if not lengths["min"] or lengths["max"] > max_len:
        return None
    data = _value_bytes(raw)
    if data is None or data.translate(None, allowed):
        return None
    try:
        typed = pc.cast(raw, rule.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return Checked(None, None, typed, raw)


class ColumnChecker:
    """Validates one contract column batch by batch.

    Low-cardinality columns (dates, prices, countries ...) are dictionary-encoded and each distinct
    value is checked once per file: results are cached across batches (up to ``CACHE_MAX`` values).
    High-cardinality numbers (ids, totals) take :func:`_fast_numeric` when the batch is clean and the
    full regex check otherwise. The choice adapts per column.
    """

    CACHE_MAX = 1 << 16

    def __init__(self, rule: ColumnRule, null_set: pa.Array) -> None:
        self.rule = rule
        self.null_set = null_set
        self.use_dict = True
        self._known: Optional[pa.Array] = None  # distinct raw values seen so far
        self._k_isnull: Optional[pa.Array] = None
        self._k_fail: Optional[pa.Array] = None
        self._k_typed: Optional[pa.Array] = None
        self._any_null = False  # some cached value is a null spelling / fails its check
        self._any_fail = False

    def check(self, raw: pa.Array) -> Checked:
        if len(raw) < 64 or raw.null_count:
            return check_plain(raw, self.rule, self.null_set)
        if self.use_dict:
            if self._known is None:  # first batch: is the column of low cardinality?
                distinct = pc.unique(raw)
                if self.rule.type != "date" and len(distinct) * 4 > len(raw):
                    self.use_dict = False  # ids, totals: hashing every value does not pay
                else:
                    self._learn(distinct)
            cached = self._check_cached(raw) if self.use_dict else None
            if cached is not None:
                return cached
        fast = _fast_numeric(raw, self.rule)
        return fast if fast is not None else check_plain(raw, self.rule, self.null_set)

    def _learn(self, new: pa.Array) -> None:
        """Check values not seen before and add them to the cache (or give the cache up when too big)."""
        c = check_plain(new, self.rule, self.null_set)
        assert c.isnull is not None and c.fail is not None
        if self._known is None:
            self._known, self._k_isnull, self._k_fail, self._k_typed = new, c.isnull, c.fail, c.typed
        else:
            assert self._k_isnull is not None and self._k_fail is not None and self._k_typed is not None
            self._known = pa.concat_arrays([self._known, new])
            self._k_isnull = pa.concat_arrays([self._k_isnull, c.isnull])
            self._k_fail = pa.concat_arrays([self._k_fail, c.fail])
            self._k_typed = pa.concat_arrays([self._k_typed, c.typed])
        self._any_null = bool(self._any_null or any_true(c.isnull))
        self._any_fail = bool(self._any_fail or any_true(c.fail))
        if len(self._known) > self.CACHE_MAX:  # too many distinct values for a cache
            self.use_dict = False
            self._known = self._k_isnull = self._k_fail = self._k_typed = None

    def _check_cached(self, raw: pa.Array) -> Optional[Checked]:
        pos = pc.index_in(raw, value_set=self._known)
        if pos.null_count:  # values not seen before
            new = pc.unique(pc.filter(raw, pc.is_null(pos)))
            if len(new) * 4 > len(raw):
                self.use_dict = False  # the column turned out to be of high cardinality
                self._known = self._k_isnull = self._k_fail = self._k_typed = None
                return None
            self._learn(new)
            if not self.use_dict:
                return None
            pos = pc.index_in(raw, value_set=self._known)
        assert self._k_isnull is not None and self._k_fail is not None and self._k_typed is not None
        typed = pc.take(self._k_typed, pos)
        isnull = pc.take(self._k_isnull, pos) if self._any_null else None
        fail = pc.take(self._k_fail, pos) if self._any_fail else None
        return Checked(isnull if isnull is not None and any_true(isnull) else None,
                        fail if fail is not None and any_true(fail) else None, typed, raw)



# ---------------------------------------------------------------------------------------------
# the contract's rules
# ---------------------------------------------------------------------------------------------
_EPS = 4 * 2.220446049250313e-16  # float64 rounding slack per unit of magnitude


_FEPS = f64(_EPS)


def eval_checks(rules: List[Any], typed: Dict[str, pa.Array]) -> List[Tuple[Any, pa.Array, pa.Array, pa.Array]]:
    """Evaluate the contract's rules on a batch's typed columns: ``(rule, fails, left, right)`` each.

    Vectorised in float64 (pyarrow's decimal arithmetic overflows its precision on ``a * b - c``);
    the comparison allows the rule's tolerance plus a rounding slack of a few ulps of the operands'
    magnitude, far below a cent for amounts under 10^13. A row with a null operand is not checked.
    """
    if not rules:
        return []
    cols: Dict[str, pa.Array] = {}

    def ev(node: Any) -> Any:
        kind = node[0]
        if kind == "col":
            if node[1] not in cols:
                cols[node[1]] = pc.cast(typed[node[1]], pa.float64())
            return cols[node[1]]
        if kind == "num":
            return f64(node[1])
        if kind == "neg":
            return pc.negate(ev(node[1]))
        return {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[kind](ev(node[1]), ev(node[2]))

    out = []
    for rule in rules:
        left, right = ev(rule.left), ev(rule.right)
        diff = pc.subtract(left, right)
        tol = f64(rule.tolerance)
        slack = pc.add(tol, pc.multiply(pc.add(pc.abs(left), pc.abs(right)), _FEPS))
        ok = _compare(rule.op, diff, tol, slack)
        fails = pc.and_kleene(pc.invert(ok), pc.is_valid(ok))  # a null operand: not checked
        out.append((rule, fails, left, right))
    return out


def _compare(op: str, diff: Any, tol: Any, slack: Any) -> Any:
    """``left op right`` as a test on ``diff = left - right`` (``=``/``<=``/``>=`` allow ``slack``)."""
    if op == "=":
        return pc.less_equal(pc.abs(diff), slack)
    if op == "!=":
        return pc.greater(pc.abs(diff), slack)
    if op == "<":
        return pc.less(diff, tol)
    if op == "<=":
        return pc.less_equal(diff, slack)
    if op == ">":
        return pc.greater(diff, pc.negate(tol))
    return pc.greater_equal(diff, pc.negate(slack))


def rule_reject(rule_checks: List[Tuple[Any, List[Any], List[Any], List[Any]]], r: int) -> Tuple[str, str, str]:
    """(reason, column, value) for a row that only a quarantining rule failed (slow path)."""
    for rule, fails, left, right in rule_checks:
        if fails[r]:
            tol = f" within {rule.tolerance:g}" if rule.tolerance else ""
            return (rule.name, rule.columns[0],
                    f"{rule.expression}{tol} is false: {_num(left[r])} vs {_num(right[r])}")
    return "unknown", "", ""  # pragma: no cover - any_fail guarantees a failing rule


def take_list(values: Any, idx: pa.Array) -> List[Any]:
    if isinstance(values, pa.Scalar):  # a constant side of a rule
        return [values.as_py()] * len(idx)
    return list(pc.take(values, idx).to_pylist())


def _num(v: Any) -> str:
    return "null" if v is None else f"{v:.10g}"


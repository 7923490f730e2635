"""The engines that ``etl-kit bench`` runs, each in a fresh subprocess (``python benchmarks/bench_refs.py``).

Every engine applies the dataset contract's rules to the same CSV and writes the same two outputs:
valid rows as Parquet (contract columns + ``source_line``, snappy) and rejected rows as a CSV with
at least ``source_line, reason, column`` (the first failing column in contract order). The parent
(``benchmarks/bench.py``) then checks that every engine wrote the same rows.

- ``job1``: job 1 itself, :func:`etl_runtime.transform.transform_stream`.
- ``pandas``: what awswrangler does: ``pandas.read_csv`` (C engine, ``usecols``, all text) then
  ``to_numeric``/``to_datetime(format=...)`` plus validation masks, then ``to_parquet`` (pyarrow).
- ``polars``: ``scan_csv`` (all text) -> the rules as expressions -> ``sink_parquet`` and
  ``sink_csv`` in one streaming query (``collect_all``).
- ``arrow_parse``: the ceiling, ``pyarrow.csv.read_csv`` of the contract's columns as text,
  multi-threaded, nothing validated or written. ``arrow_parse_1t`` is the same on one thread
  (job 1's tokenizer runs on one thread so that it knows the line of every ragged row).

Only the engine's own imports happen in the child, so peak RSS is the engine's.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import sys
import time
from typing import Any

__all__ = ["ENGINES", "run_engine", "date_strptime"]

ENGINES = ("job1", "polars", "pandas", "arrow_parse", "arrow_parse_1t")

_REASON_BY_TYPE = {"integer": "not_an_integer", "decimal": "not_a_decimal", "date": "invalid_date",
                   "double": "not_a_number", "string": "string_too_long"}


def _maxrss_mb() -> float:
    """Peak RSS of this process's address space, in MB.

    ``VmHWM`` from ``/proc/self/status``: unlike ``ru_maxrss`` (of RUSAGE_SELF, RUSAGE_CHILDREN or
    ``wait4``), it does not inherit the high-water mark of the parent that forked this process, which
    would otherwise put the benchmark parent's own RSS under every child's figure.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux; macOS: bytes


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def date_strptime(pattern: str) -> str:
    """A contract date pattern (``M/d/yyyy``) as a strptime format (``%m/%d/%Y``)."""
    out = []
    i = 0
    tokens = (("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("M", "%m"), ("dd", "%d"), ("d", "%d"))
    while i < len(pattern):
        for tok, fmt in tokens:
            if pattern.startswith(tok, i):
                out.append(fmt)
                i += len(tok)
                break
        else:
            out.append("%%" if pattern[i] == "%" else pattern[i])
            i += 1
    return "".join(out)


def _columns(contract: dict[str, Any], csv_path: str) -> tuple[Any, list[tuple[Any, str]]]:
    """The compiled contract and (rule, header name in this file) for each contract column."""
    from etl_runtime.contract import compile_contract

    cc = compile_contract(contract)
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader([fh.readline().rstrip("\r\n")]))
    positions, missing, _opt, _extra = cc.match_header(header)
    if missing:
        raise SystemExit(f"{csv_path}: missing required columns {missing}")
    return cc, [(rule, header[positions[rule.name]]) for rule in cc.columns if rule.name in positions]


# ---------------------------------------------------------------------------------------------
# engines
# ---------------------------------------------------------------------------------------------
def _job1(spec: dict[str, Any]) -> dict[str, Any]:
    from etl_runtime.transform import TransformOptions, transform_stream

    with open(spec["csv"], "rb") as raw, open(spec["quarantine"], "wb") as q:
        report = transform_stream(raw, spec["contract"], spec["parquet"], q, source_name=spec["csv"],
                                  options=TransformOptions(max_reject_ratio=1.0, **spec.get("kwargs", {})),
                                  lineage=spec.get("lineage"))
    return {"rows_read": report["rows_read"], "rows_written": report["rows_written"],
            "rows_quarantined": report["rows_quarantined"], "rejects_by_reason": report["rejects_by_reason"],
            "stages": report.get("cpu_seconds")}


def _polars(spec: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    cc, cols = _columns(spec["contract"], spec["csv"])
    nulls = [v for v in cc.null_values if v != ""]
    lf = pl.scan_csv(spec["csv"], infer_schema=False, has_header=True, encoding="utf8",
                     row_index_name="__row", row_index_offset=2)
    typed: list[Any] = []
    fails: list[tuple[str, Any, Any]] = []  # (column, fail expr, isnull expr)
    for rule, src in cols:
        v = pl.col(src).str.strip_chars()
        isnull = v.is_null() | (v == "") | v.is_in(nulls)
        if rule.type == "string":
            t = v
            bad = v.str.len_bytes() > 256
        elif rule.type == "date":
            parsed = [pl.when(v.str.contains(fmt.regex)).then(
                v.str.strptime(pl.Date, date_strptime(fmt.pattern), strict=False)) for fmt in rule.date_formats]
            t = parsed[0] if len(parsed) == 1 else pl.coalesce(parsed)
            bad = t.is_null()
        else:
            ok = v.str.contains(rule.ok_regex)
            if rule.type == "integer":
                t = pl.when(ok).then(v.str.strip_chars_start("+").cast(pl.Int64, strict=False))
            elif rule.type == "decimal":
                t = pl.when(ok).then(v.cast(pl.Decimal(rule.precision, rule.scale), strict=False))
            else:
                t = pl.when(ok).then(v.cast(pl.Float64, strict=False))
            bad = t.is_null()
        fail = ~isnull & bad
        if rule.required:
            fail = fail | isnull
        typed.append(pl.when(~isnull).then(t).alias(rule.name))
        fails.append((rule.name, fail, isnull))
    # stage 1: typed values and one boolean per check, computed once per row
    staged = lf.select(
        pl.col("__row").cast(pl.Int64).alias("source_line"), *typed,
        *[fail.alias(f"__f{i}") for i, (_n, fail, _z) in enumerate(fails)],
        *[isnull.alias(f"__z{i}") for i, (_n, _f, isnull) in enumerate(fails)],
    )
    # stage 2: the first failing column (contract order) and its reason, from those booleans
    types = {rule.name: rule.type for rule, _ in cols}
    column: Any = None
    reason: Any = None
    for i, (name, _fail, _isnull) in enumerate(fails):
        f, z = pl.col(f"__f{i}"), pl.col(f"__z{i}")
        column = (pl.when(f) if column is None else column.when(f)).then(pl.lit(name))
        reason = (pl.when(f & z) if reason is None else reason.when(f & z)).then(pl.lit("missing_value"))
        reason = reason.when(f).then(pl.lit(_REASON_BY_TYPE[types[name]]))
    any_fail = pl.any_horizontal([pl.col(f"__f{i}") for i in range(len(fails))])
    names = [rule.name for rule, _ in cols]
    good = staged.filter(~any_fail).select(*names, "source_line")
    bad_rows = staged.filter(any_fail).select("source_line", reason.otherwise(None).alias("reason"),
                                              column.otherwise(None).alias("column"))
    if spec.get("polars_single_sink"):
        good.sink_parquet(spec["parquet"], compression="snappy")
        bad_rows.sink_csv(spec["quarantine"])
    else:
        pl.collect_all([good.sink_parquet(spec["parquet"], compression="snappy", lazy=True),
                        bad_rows.sink_csv(spec["quarantine"], lazy=True)])
    return {}


def _pandas_column(rule: Any, s: Any, nulls: list[str]) -> tuple[Any, Any, Any]:
    """One column the awswrangler way: (typed values, null mask, failure mask)."""
    import numpy as np
    import pandas as pd

    if rule.type == "string":
        v = s.str.strip()
        isnull = v.isin(nulls)
        bad = v.str.len() > 256
        typed: Any = v
    else:
        # null spellings first; numbers and dates are not trimmed here (to_numeric/to_datetime parse them)
        isnull = s.isin(nulls)
        if rule.type == "date":
            typed = None
            for fmt in rule.date_formats:
                d = pd.to_datetime(s, format=date_strptime(fmt.pattern), errors="coerce")
                typed = d if typed is None else typed.fillna(d)
            bad = typed.isna()
        else:
            x = pd.to_numeric(s, errors="coerce")
            if rule.type == "integer":
                xf = x.astype("float64")
                bad = x.isna() | (np.floor(xf) != xf) | (xf.abs() >= 1e18)
            elif rule.type == "decimal":
                xf = x.astype("float64")
                scaled = xf * (10 ** rule.scale)
                bad = (x.isna() | ~np.isfinite(xf) | (xf.abs() >= 10.0 ** (rule.precision - rule.scale))
                       | (np.abs(scaled - np.round(scaled)) > 1e-6 * np.maximum(1.0, np.abs(scaled)) + 1e-9))
            else:
                bad = x.isna()
            typed = x
    fail = ~isnull & bad
    if rule.required:
        fail = fail | isnull
    return typed, isnull, fail


def _pandas_quarantine(cols: list[tuple[Any, str]], fails: Any, null_masks: list[Any], lines: Any) -> Any:
    """The rejected rows (line, reason, first failing column) as a DataFrame."""
    import numpy as np
    import pandas as pd

    any_fail = fails.any(axis=0)
    if not any_fail.any():
        return pd.DataFrame({"source_line": [], "reason": [], "column": []})
    first = fails.argmax(axis=0)
    names = np.array([rule.name for rule, _ in cols], dtype=object)
    idx = np.nonzero(any_fail)[0]
    col_idx = first[idx]
    was_null = np.vstack(null_masks)[col_idx, idx]
    kinds = np.array([_REASON_BY_TYPE[rule.type] for rule, _ in cols], dtype=object)
    return pd.DataFrame({"source_line": lines[idx], "reason": np.where(was_null, "missing_value", kinds[col_idx]),
                         "column": names[col_idx]})


def _pandas_arrow(rule: Any, s: Any) -> Any:
    """A kept column as the Arrow array to_parquet writes (decimals rounded to the contract's scale)."""
    import pyarrow as pa

    if rule.type == "date":
        return pa.array(s.to_numpy(dtype="datetime64[ms]")).cast(pa.date32())
    if rule.type == "decimal":
        import pyarrow.compute as pc

        return pc.round(pa.array(s.to_numpy(dtype="float64")), rule.scale).cast(
            pa.decimal128(rule.precision, rule.scale))
    if rule.type == "integer":
        return pa.array(s.to_numpy(dtype="int64"))
    if rule.type == "double":
        return pa.array(s.to_numpy(dtype="float64"))
    return pa.array(s.to_numpy(dtype=object), pa.string())


def _pandas(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    cc, cols = _columns(spec["contract"], spec["csv"])
    nulls = list(cc.null_values)
    df = pd.read_csv(spec["csv"], engine="c", usecols=[src for _, src in cols], dtype=str,
                     keep_default_na=False, na_filter=False, encoding="utf-8")
    n = len(df)
    out: dict[str, Any] = {}
    fail_masks: list[Any] = []
    null_masks: list[Any] = []
    for rule, src in cols:
        typed, isnull, fail = _pandas_column(rule, df[src], nulls)
        out[rule.name] = typed
        fail_masks.append(fail.to_numpy())
        null_masks.append(isnull.to_numpy())
    fails = np.vstack(fail_masks) if fail_masks else np.zeros((0, n), bool)
    lines = np.arange(2, n + 2, dtype=np.int64)
    _pandas_quarantine(cols, fails, null_masks, lines).to_csv(spec["quarantine"], index=False)
    keep = ~fails.any(axis=0)
    arrays = []
    fields = []
    for rule, _src in cols:
        arr = _pandas_arrow(rule, out[rule.name][keep])
        arrays.append(arr)
        fields.append(pa.field(rule.name, arr.type, nullable=not rule.required))
    arrays.append(pa.array(lines[keep]))
    fields.append(pa.field("source_line", pa.int64(), nullable=False))
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), spec["parquet"], compression="snappy")
    return {}


def _arrow_parse(spec: dict[str, Any], threads: bool) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    _cc, cols = _columns(spec["contract"], spec["csv"])
    names = [src for _, src in cols]
    table = pcsv.read_csv(
        spec["csv"], read_options=pcsv.ReadOptions(use_threads=threads),
        convert_options=pcsv.ConvertOptions(include_columns=names, column_types={c: pa.string() for c in names},
                                            strings_can_be_null=False),
    )
    return {"rows_read": table.num_rows}


def run_engine(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one engine on one file; return its timings and the engine's own counts."""
    engine = spec["engine"]
    funcs = {"job1": _job1, "polars": _polars, "pandas": _pandas,
             "arrow_parse": lambda s: _arrow_parse(s, True), "arrow_parse_1t": lambda s: _arrow_parse(s, False)}
    if engine not in funcs:
        raise SystemExit(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    # import the engine's libraries before the clock starts (what a warm Glue job has done too)
    mods = {"job1": ["etl_runtime.transform"], "polars": ["polars", "etl_runtime.contract"],
            "pandas": ["pandas", "pyarrow.parquet", "etl_runtime.contract"],
            "arrow_parse": ["pyarrow.csv", "etl_runtime.contract"],
            "arrow_parse_1t": ["pyarrow.csv", "etl_runtime.contract"]}[engine]
    for m in mods:
        __import__(m)
    base = _maxrss_mb()
    c0, t0 = _cpu(), time.perf_counter()
    result = funcs[engine](spec)
    seconds = time.perf_counter() - t0
    result.update(engine=engine, seconds=seconds, cpu_seconds=_cpu() - c0, base_rss_mb=base,
                  peak_rss_mb=_maxrss_mb())
    return result


def main(argv: list[str]) -> int:
    """``python benchmarks/bench_refs.py SPEC.json``: run the engine, write ``SPEC.result.json``."""
    with open(argv[0]) as fh:
        spec = json.load(fh)
    result = run_engine(spec)
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh)
    os.replace(tmp, spec["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

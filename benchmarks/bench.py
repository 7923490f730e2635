"""``etl-kit bench``: job 1 and job 2 measured against their references, in one run, on the same files.

What one run does (see ``docs/benchmarks.md``):

1. generates Sales Records CSVs (:func:`etl_kit.datagen.generate_sales_csv`, cached under ``OUT/data``);
2. **transform**: job 1 (:func:`etl_runtime.transform.transform_stream`) against a pandas C-engine
   path (what awswrangler does), a polars lazy ``scan_csv -> sink_parquet`` and the pyarrow parse-only
   ceiling, every engine in a fresh subprocess (``benchmarks/bench_refs.py``) so that its peak RSS
   (the child's ``VmHWM``) is its own; every engine's outputs are checked to hold the same rows;
3. **memory**: job 1's peak RSS at each ``--memory-sizes`` (and the references' for context);
4. **load**: job 2 (``etl_runtime.job2.run_load``, Data API ``COPY ... FORMAT AS PARQUET`` +
   MERGE) against a raw ADBC binary-COPY ingest of the same Parquet into the same embedded PostgreSQL;
5. **e2e**: the whole pipeline provisioned into a throwaway local cloud, ``put_object`` into ``input/``,
   time until the ledger row exists;
6. **intake**: a burst of :data:`BURST_N` uploads at once through the durable intake
   (:func:`etl_kit.burst.run_burst`): runs started, ledger rows, states, queue and DLQ depth (counts);
7. **crawl**: the cost per file of a crawl at 10, 100 and 1,000 objects in the bucket, S3 event mode against
   the full crawl (``benchmarks/bench_crawl.py``).

The benchmarks live in the checkout's ``benchmarks/`` folder, not in the installed package: ``etl-kit bench``
finds them next to the project it runs in (see ``etl_kit.cli``). Parts whose code has not landed yet are
reported as skipped, with the reason. Results go to
``OUT/bench.json`` and ``OUT/bench.md``. Nothing here asserts on time: the targets are evaluated
and printed as PASS/FAIL, never raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

__all__ = ["register", "run_bench", "BenchOptions", "options_from_cli", "TARGETS", "PARTS"]

PARTS = ("transform", "memory", "load", "e2e", "intake", "crawl")
BURST_N = 1_000
DEFAULT_SIZES = (1_000_000, 5_000_000)
DEFAULT_MEMORY_SIZES = (1_000_000, 5_000_000, 20_000_000)
QUICK_SIZES = (20_000,)
QUICK_MEMORY_SIZES = (20_000, 100_000)
E2E_SIZES = (100, 1_000_000)
QUICK_E2E_SIZES = (100, 20_000)
REFERENCE_MAX_ROWS = 5_000_000  # pandas/polars memory runs beyond this are skipped (context only)
TRANSFORM_ENGINES = ("arrow_parse", "job1", "polars", "pandas", "arrow_parse_1t")
LABELS = {
    "job1": "job 1 (transform_stream, pyarrow)",
    "polars": "polars lazy scan_csv -> sink_parquet",
    "pandas": "pandas C engine + to_parquet (awswrangler path)",
    "arrow_parse": "pyarrow.csv parse only, 2 threads (ceiling)",
    "arrow_parse_1t": "pyarrow.csv parse only, 1 thread (context)",
}
# The targets: (key, text, comparison, threshold)
TARGETS = (
    ("job1_vs_polars", "job 1 throughput >= polars reference", ">=", 1.0),
    ("job1_vs_pandas", "job 1 throughput >= 4x pandas path", ">=", 4.0),
    ("job1_vs_parse_ceiling", "job 1 throughput >= 60% of parse-only ceiling", ">=", 0.6),
    ("job1_peak_rss_mb", "job 1 peak RSS < 512 MB (every size)", "<", 512.0),
    ("job1_rss_growth", "job 1 peak RSS flat from smallest to largest size (growth <= 10%)", "<=", 0.10),
    ("load_vs_adbc", "job 2 load >= 0.9x raw ADBC ingest", ">=", 0.9),
    ("e2e_small_seconds", "e2e local: 100-row file queryable < 3 s", "<", 3.0),
    ("e2e_large_seconds", "e2e local: 1M-row file queryable < 15 s", "<", 15.0),
    ("crawl_event_growth", "event-mode crawl duration flat from the smallest to the largest bucket (growth <= 50%)",
     "<=", 0.5),
)
ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks/ sits next to pyproject.toml
ENGINE_SCRIPT = Path(__file__).resolve().with_name("bench_refs.py")


def _sibling(name: str) -> Any:
    """The module ``benchmarks/<name>.py``, loaded by path as this one is (``benchmarks`` is no installed package)."""
    import importlib.util

    full = f"benchmarks.{name}"
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, Path(__file__).resolve().with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None, f"benchmarks/{name}.py is missing"
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
    return sys.modules[full]


_crawl = _sibling("bench_crawl")
crawl_part, crawl_growth, md_crawl = _crawl.crawl_part, _crawl.crawl_growth, _crawl.md_crawl
CRAWL_SIZES, QUICK_CRAWL_SIZES = _crawl.CRAWL_SIZES, _crawl.QUICK_CRAWL_SIZES


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1_000 and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts() -> dict[str, Any]:
    """CPU, memory, Python and library versions, git commit: what the figures were measured on."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("pyarrow", "polars", "pandas", "numpy", "duckdb", "adbc-driver-postgresql", "psycopg", "moto"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    mem_total = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "memory_gb": mem_total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_start": list(os.getloadavg()),
        "busy_cores_start": _busy_cores(),
    }


def _busy_cores(seconds: float = 1.0) -> float | None:
    """CPU cores in use by anything over ``seconds`` right now (from /proc/stat; None elsewhere).

    The load average is a poor check here: it decays over minutes (a test run that just ended still
    shows) and the benchmark's own engines drive it to the CPU count.
    """
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            vals = [int(x) for x in fh.readline().split()[1:]]
        return sum(vals), vals[3] + (vals[4] if len(vals) > 4 else 0)  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if t1 <= t0:
        return None
    return round((1 - (i1 - i0) / (t1 - t0)) * (os.cpu_count() or 1), 2)


def _load_settings(params: str | None) -> Any:
    from etl_kit.config import Settings, load_settings

    path = Path(params) if params else ROOT / "params" / "local.yaml"
    if path.exists():
        return load_settings(path)
    if params:
        raise click.BadParameter(f"{params} does not exist", param_hint="--params")
    return Settings.model_validate({})


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _bad_rows(rows: int) -> int:
    """Deliberately broken rows: 1 in 10,000 (at least 8, so every reason shows up); none below 1,000 rows."""
    return max(8, rows // 10_000) if rows >= 1_000 else 0


def ensure_csv(data_dir: Path, rows: int, seed: int = 7) -> dict[str, Any]:
    """Generate (or reuse) the Sales Records CSV with ``rows`` data rows; returns its facts."""
    from etl_kit.datagen import generate_sales_csv

    data_dir.mkdir(parents=True, exist_ok=True)
    bad = _bad_rows(rows)
    path = data_dir / f"sales_{rows}_s{seed}_b{bad}.csv"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size:
            meta["path"] = str(path.resolve())
            meta["generated_seconds"] = 0.0
            meta["cached"] = True
            return dict(meta)
    t0 = time.perf_counter()
    info = generate_sales_csv(str(path), rows, seed=seed, bad_rows=bad)
    meta = {"path": str(path.resolve()), "rows": rows, "bad_rows": info.bad_rows,
            "bad_rows_by_reason": info.bad_rows_by_reason, "bytes": path.stat().st_size, "seed": seed,
            "total_revenue_good": str(info.total_revenue), "generated_seconds": round(time.perf_counter() - t0, 2)}
    meta_path.write_text(json.dumps(meta, indent=2))
    meta["cached"] = False
    return meta


# ---------------------------------------------------------------------------------------------
# engine runs (fresh subprocess each) and the parity check
# ---------------------------------------------------------------------------------------------
def run_child(engine: str, csv_meta: dict[str, Any], contract: dict[str, Any], work: Path,
              tag: str = "") -> dict[str, Any]:
    """Run one engine on one CSV in a fresh ``python benchmarks/bench_refs.py`` and collect its figures."""
    rows = csv_meta["rows"]
    work.mkdir(parents=True, exist_ok=True)
    stem = f"{engine}_{rows}{tag}"
    spec = {
        "engine": engine, "csv": csv_meta["path"], "contract": contract,
        "parquet": str(work / f"{stem}.parquet"), "quarantine": str(work / f"{stem}.quarantine.csv"),
        "result": str(work / f"{stem}.result.json"),
    }
    if engine == "job1":  # as run_csv_to_parquet calls it: the Parquet carries its lineage columns
        from etl_runtime.contract import LINEAGE_COLUMNS

        values = (f"input/{Path(csv_meta['path']).name}", "bench", "bench")
        spec["lineage"] = dict(zip(LINEAGE_COLUMNS, values, strict=True))
    for key in ("parquet", "quarantine", "result"):
        Path(spec[key]).unlink(missing_ok=True)
    spec_path = work / f"{stem}.spec.json"
    spec_path.write_text(json.dumps(spec))
    log_path = work / f"{stem}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ENGINE_SCRIPT), str(spec_path)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(work))
        proc.wait()
    out: dict[str, Any] = {"engine": engine, "rows": rows, "bytes": csv_meta["bytes"]}
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()
        out["error"] = f"exit {proc.returncode}: {tail[-1] if tail else '(no output)'} (log: {log_path})"
        return out
    res = json.loads(Path(spec["result"]).read_text())
    sec = float(res["seconds"])
    out.update(
        seconds=round(sec, 3), cpu_seconds=round(float(res["cpu_seconds"]), 3),
        mb_s=round(csv_meta["bytes"] / 1e6 / sec, 1) if sec > 0 else None,
        rows_s=round(rows / sec) if sec > 0 else None,
        base_rss_mb=round(float(res["base_rss_mb"]), 1), peak_rss_mb=round(float(res["peak_rss_mb"]), 1),
    )
    if engine.startswith("arrow_parse"):
        out["rows_read"] = res.get("rows_read")
    else:
        out.update(_outputs(Path(spec["parquet"]), Path(spec["quarantine"]), contract))
        out["parquet"] = spec["parquet"]
        if res.get("stages"):
            out["stages"] = res["stages"]
    return out


def _outputs(parquet: Path, quarantine: Path, contract: dict[str, Any]) -> dict[str, Any]:
    """What an engine wrote, measured from its files: row counts, rejects by column and checksums."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    out: dict[str, Any] = {"rows_written": None, "rows_quarantined": None, "rejects_by_column": {},
                           "checksums": {}}
    if parquet.exists():
        pf = pq.ParquetFile(parquet)
        out["rows_written"] = pf.metadata.num_rows
        out["parquet_bytes"] = parquet.stat().st_size
        table = pf.read()
        sums: dict[str, str] = {}
        for col in contract["columns"]:
            name = col["name"]
            if name not in table.column_names:
                sums[name] = "missing"
                continue
            arr = table.column(name)
            if col["type"] == "string":
                value = pc.sum(pc.binary_length(arr)).as_py()
            elif col["type"] == "date":
                value = pc.sum(pc.cast(pc.cast(arr, pa.int32()), pa.int64())).as_py()
            elif col["type"] == "decimal":
                value = pc.sum(pc.cast(arr, pa.decimal128(38, int(col.get("scale") or 0)))).as_py()
            else:
                value = pc.sum(arr).as_py()
            sums[name] = str(value)
        if "source_line" in table.column_names:
            sums["source_line"] = str(pc.sum(table.column("source_line")).as_py())
        out["checksums"] = sums
        del table
    q_rows = 0
    by_col: dict[str, int] = {}
    lines: list[int] = []
    if quarantine.exists() and quarantine.stat().st_size > 0:
        qt = pcsv.read_csv(quarantine, convert_options=pcsv.ConvertOptions(
            include_columns=["source_line", "column"], column_types={"source_line": pa.int64(),
                                                                      "column": pa.string()}))
        q_rows = qt.num_rows
        for name in qt.column("column").to_pylist():
            by_col[str(name)] = by_col.get(str(name), 0) + 1
        lines = sorted(qt.column("source_line").to_pylist())
    out["rows_quarantined"] = q_rows
    out["rejects_by_column"] = dict(sorted(by_col.items()))
    out["quarantined_lines_sum"] = sum(lines)
    return out


def parity(runs: list[dict[str, Any]]) -> None:
    """Mark each run ``parity: true`` when it wrote what job 1 wrote (counts, rejects, checksums)."""
    by_rows: dict[int, dict[str, Any]] = {r["rows"]: r for r in runs if r["engine"] == "job1" and "error" not in r}
    for r in runs:
        ref = by_rows.get(r["rows"])
        if "error" in r:
            r["parity"] = False
            r["parity_diff"] = r["error"]
            continue
        if ref is None:
            r["parity"] = None
            continue
        diffs = []
        if r["engine"].startswith("arrow_parse"):
            expected = ref["rows_written"] + ref["rows_quarantined"]
            if r.get("rows_read") != expected:
                diffs.append(f"rows parsed {r.get('rows_read')} != job 1 rows read {expected}")
        else:
            for key in ("rows_written", "rows_quarantined", "rejects_by_column", "quarantined_lines_sum",
                        "checksums"):
                if r.get(key) != ref.get(key):
                    diffs.append(f"{key}: {r.get(key)} != job 1 {ref.get(key)}")
        r["parity"] = not diffs
        if diffs:
            r["parity_diff"] = "; ".join(diffs)


# ---------------------------------------------------------------------------------------------
# the local cloud: job 2 load and end to end
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def throwaway_cloud(base: Any) -> Iterator[Any]:
    """A local cloud in a temporary state dir on a free port; stopped and removed afterwards."""
    from etl_kit import local as localcloud
    from etl_localcloud.spec import free_port

    state = tempfile.mkdtemp(prefix="etlkit-bench-cloud-")
    settings = base.model_copy(update={"local_state_dir": state, "local_port": free_port(), "target": "local"})
    try:
        localcloud.up(settings)
        yield settings
    finally:
        with contextlib.suppress(Exception):
            localcloud.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def _pg_uri(settings: Any, database: str | None = None) -> str:
    from urllib.parse import quote

    from etl_kit import local as localcloud

    info = localcloud.warehouse_info(settings)
    db = database or info.get("admin_db") or "postgres"
    # the bootstrap superuser logs in over the unix socket only
    host = f"?host={quote(info['socket_dir'], safe='')}" if info.get("socket_dir") else ""
    return f"postgresql://{info['user']}:{info['password']}@{'' if host else info['host']}:{info['port']}/{db}{host}"


def _pg_database(settings: Any) -> str | None:
    """The warehouse database (``redshift_database``) if it exists in the embedded PostgreSQL."""
    import psycopg

    with contextlib.suppress(Exception), psycopg.connect(_pg_uri(settings), autocommit=True) as conn:
        row = conn.execute("select 1 from pg_database where datname = %s", (settings.redshift_database,)).fetchone()
        return settings.redshift_database if row else None
    return None


def adbc_ingest(settings: Any, parquet: str, rows: int, database: str | None) -> dict[str, Any]:
    """Raw ADBC binary-COPY ingest of ``parquet`` into a fresh table (the reference for job 2)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    table = f"bench_adbc_{uuid.uuid4().hex[:8]}"
    uri = _pg_uri(settings, database)
    t0 = time.perf_counter()
    with adbc.connect(uri) as conn:
        with conn.cursor() as cur:
            pf = pq.ParquetFile(parquet)
            loaded = cur.adbc_ingest(table, pf.iter_batches(batch_size=131072), mode="create")
        conn.commit()
        seconds = time.perf_counter() - t0
        with conn.cursor() as cur:
            cur.execute(f"select count(*) from {table}")
            row = cur.fetchone()
            count = int(row[0]) if row else -1
            cur.execute(f"drop table {table}")
        conn.commit()
    return {"method": "adbc", "label": "raw ADBC ingest (binary COPY)", "rows": rows, "rows_loaded": count,
            "rows_reported": loaded, "seconds": round(seconds, 3), "rows_s": round(count / seconds)}


def _loader_module() -> tuple[Any, str]:
    """(etl_runtime.job2, "") or (None, why it is not available)."""
    try:
        from etl_runtime import job2
    except ImportError as exc:
        return None, f"etl_runtime.job2 is not importable yet ({exc})"
    if not hasattr(job2, "run_load"):
        return None, "etl_runtime.job2 has no run_load yet"
    return job2, ""


def _job1_report(parquet: str, key_column: str) -> dict[str, Any]:
    """What job 1's report tells job 2 about ``parquet``: rows, duplicate keys, key range, lineage columns."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from etl_runtime.contract import LINEAGE_COLUMNS

    keys = pq.read_table(parquet, columns=[key_column]).column(0)
    counts = pc.value_counts(keys).field("counts")
    mm = pc.min_max(keys).as_py()
    names = pq.read_schema(parquet).names
    rows = len(keys)
    return {"rows_read": rows, "rows_written": rows, "rows_quarantined": 0,
            "duplicate_keys_in_file": int(pc.sum(pc.greater(counts, 1)).as_py() or 0),
            "key_min": mm["min"], "key_max": mm["max"], "output_lineage": all(c in names for c in LINEAGE_COLUMNS)}


def _call_run_load(loader: Any, settings: Any, *, bucket: str, key: str, source_key: str,
                   run_id: str, report: dict[str, Any], table: str | None = None) -> Any:
    """Call job 2's entry point the way ``etl_runtime/entrypoints/parquet_to_redshift.py`` does."""
    from etl_kit.clients import account_id, client
    from etl_runtime.contract import compile_contract
    from etl_runtime.loadsql import LoadSpec
    from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, Warehouse, WorkflowRun

    spec = LoadSpec(
        target=LoadTarget(schema=settings.redshift_schema, table=table or f"bench_load_{run_id[-6:]}",
                          ledger_table=f"bench_ledger_{run_id[-6:]}",
                          redshift_role_arn=f"arn:aws:iam::{account_id(settings)}:role/{settings.redshift_role}"),
        contract=compile_contract(settings.dataset_contract.model_dump(mode="json")),
        parquet=SourceObject(bucket, key), source=SourceObject(bucket, source_key, uuid.uuid4().hex),
        run=WorkflowRun("bench", run_id), summary=Job1Summary(**report))
    warehouse = Warehouse(settings.redshift_workgroup, settings.redshift_database)
    return loader.run_load(spec, warehouse, rsd=client("redshift-data", settings))


def intake_part(settings: Any, n: int = BURST_N) -> dict[str, Any]:
    """A burst of ``n`` uploads through the durable intake, in a throwaway local cloud; counts only."""
    from etl_kit.burst import run_burst

    try:
        with throwaway_cloud(settings) as cloud:
            why = provision(cloud)
            if why:
                return {"uploads": 0, "skipped": why}
            return run_burst(cloud, n).as_dict()
    except Exception as exc:
        return {"uploads": 0, "skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}


def provision(settings: Any) -> str:
    """Provision the whole pipeline into ``settings``' cloud; '' on success, else why not."""
    try:
        from etl_kit.provision import apply_all
    except ImportError as exc:
        return f"etl_kit.provision.apply_all is not importable yet ({exc})"
    try:
        apply_all(settings, progress=False)
    except Exception as exc:  # the reason goes into the report
        return f"provisioning failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return ""


def e2e_workarounds(settings: Any) -> list[str]:
    """Put right what provisioning left inconsistent in the throwaway cloud; each fix is reported.

    Checks (and fixes, saying so) two gaps seen while the pipeline was being assembled: the data bucket's
    EventBridge notifications not switched on (then no event reaches the Lambda), and a target table
    without job 2's lineage columns (then job 2's MERGE fails).
    """
    from etl_kit.clients import client
    from etl_kit.warehouse import execute, query

    notes: list[str] = []
    s3 = client("s3", settings)
    bucket = settings.bucket_name()
    conf = s3.get_bucket_notification_configuration(Bucket=bucket)
    if "EventBridgeConfiguration" not in conf:
        s3.put_bucket_notification_configuration(Bucket=bucket,
                                                 NotificationConfiguration={"EventBridgeConfiguration": {}})
        notes.append(f"bench switched on EventBridge notifications of s3://{bucket}: apply_all had not "
                     "(etl_kit/provision/s3.py ntf_read reports them on for any local bucket)")
    notes.extend(_job_script_workaround(settings))
    with contextlib.suppress(Exception):
        cols = query("select column_name from information_schema.columns where table_schema = "
                     f"'{settings.redshift_schema}' and table_name = '{settings.redshift_table}'", settings,
                     via="direct")
        names = set(cols["column_name"]) if len(cols) else set()
        if names and "source_key" not in names:
            execute([f"drop table if exists {settings.redshift_schema}.{settings.redshift_table}",
                     f"drop table if exists {settings.redshift_schema}.{settings.ledger_table}"], settings)
            notes.append(f"bench dropped the provisioned {settings.redshift_table}/{settings.ledger_table} so job 2 "
                         "creates its own: the provisioned DDL lacks job 2's lineage columns (provision/redshift.py "
                         "table_ddl calls loader.ddl_statements, which loader.py does not define)")
    return notes


def _job_script_workaround(settings: Any) -> list[str]:
    """A Glue job whose ScriptLocation is missing gets the one uploaded script no other job uses."""
    from etl_kit.clients import client

    glue, s3 = client("glue", settings), client("s3", settings)
    notes: list[str] = []
    locations = {}
    for name in (settings.csv_job, settings.load_job):
        with contextlib.suppress(Exception):
            locations[name] = glue.get_job(JobName=name)["Job"]["Command"]["ScriptLocation"]
    for name, loc in locations.items():
        bucket, _, key = loc.removeprefix("s3://").partition("/")
        try:
            s3.head_object(Bucket=bucket, Key=key)
            continue
        except Exception:
            pass
        prefix = key.rsplit("/", 1)[0] + "/"
        used = {v.removeprefix("s3://").partition("/")[2] for v in locations.values()}
        spare = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                 if o["Key"].endswith(".py") and o["Key"] not in used]
        if len(spare) == 1:
            s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": spare[0]})
            notes.append(f"bench copied s3://{bucket}/{spare[0]} to {loc}: job {name}'s ScriptLocation names a "
                         "script that provisioning does not upload (provision/glue_jobs.py)")
    return notes


def _statement_breakdown(settings: Any, statement_id: Any) -> list[dict[str, Any]]:
    """Seconds per sub-statement of job 2's batch (where the Data API reports durations)."""
    from etl_kit.clients import client

    if not statement_id:
        return []
    out = []
    with contextlib.suppress(Exception):
        desc = client("redshift-data", settings).describe_statement(Id=statement_id)
        for sub in desc.get("SubStatements") or []:
            dur = sub.get("Duration")
            out.append({"sql": " ".join(str(sub.get("QueryString", "")).split())[:60],
                        "seconds": round(dur / 1e9, 3) if isinstance(dur, (int, float)) and dur >= 0 else None,
                        "rows": sub.get("ResultRows")})
    return out


def load_part(settings: Any, parquets: dict[int, str], provisioned: str, bar: Any) -> list[dict[str, Any]]:
    """Job 2 vs raw ADBC on each job 1 Parquet, in the running throwaway cloud."""
    from etl_kit.clients import client

    rows_out: list[dict[str, Any]] = []
    database = _pg_database(settings)
    loader, why = _loader_module()
    if loader is not None and provisioned:
        loader, why = None, provisioned
    bucket = settings.bucket_name()
    for rows, parquet in sorted(parquets.items()):
        bar.set_postfix_str(f"load {_human(rows)}: ADBC")
        try:
            rows_out.append(adbc_ingest(settings, parquet, rows, database))
        except Exception as exc:
            rows_out.append({"method": "adbc", "rows": rows, "skipped": f"ADBC ingest failed: {exc}"})
        bar.update(1)
        bar.set_postfix_str(f"load {_human(rows)}: job 2")
        if loader is None:
            rows_out.append({"method": "loader", "label": "job 2 run_load", "rows": rows,
                             "skipped": f"not available: {why}"})
            bar.update(1)
            continue
        stem = f"bench-load-{rows}-{uuid.uuid4().hex[:6]}"
        key = f"{settings.output_prefix}{stem}/part-0000.parquet"
        # Twice into one table: first as new data (keys not in the table yet: job 2 appends), then the
        # same file again as a new version of the object (every key present: job 2 upserts via staging).
        table = f"bench_load_{stem[-6:]}"
        for method, label, source_key in (
                ("loader", "job 2 run_load, new keys (append)", f"{settings.input_prefix}{stem}.csv"),
                ("loader_upsert", "job 2 run_load, every key already loaded (upsert)",
                 f"{settings.input_prefix}{stem}-v2.csv")):
            try:
                client("s3", settings).upload_file(parquet, bucket, key)
                report = _job1_report(parquet, settings.dataset_contract.primary_key[0])  # job 1 computed it
                t0 = time.perf_counter()
                result = _call_run_load(loader, settings, bucket=bucket, key=key, source_key=source_key,
                                        run_id=stem, report=report, table=table)
                seconds = time.perf_counter() - t0
                entry = {"method": method, "label": label, "rows": rows, "seconds": round(seconds, 3),
                         "rows_s": round(rows / seconds)}
                if isinstance(result, dict):
                    entry["result"] = {k: result[k] for k in list(result)[:14]
                                       if isinstance(result[k], (str, int, float, bool, type(None)))}
                    entry["statements"] = _statement_breakdown(settings, result.get("statement_id"))
                rows_out.append(entry)
            except Exception as exc:
                rows_out.append({"method": method, "label": label, "rows": rows,
                                 "skipped": f"run_load failed: {type(exc).__name__}: {str(exc)[:400]}"})
        bar.update(1)
    return rows_out


def _ledger_has(settings: Any, key: str) -> dict[str, Any] | None:
    from etl_kit.warehouse import query

    table = f"{settings.redshift_schema}.{settings.ledger_table}"
    try:
        df = query(f"select * from {table}", settings, via="direct", timeout=30)
    except Exception:  # no ledger table yet (job 2 creates it), or no direct driver: try the Data API
        try:
            df = query(f"select * from {table}", settings, timeout=30)
        except Exception:
            return None
    for rec in df.to_dict("records"):
        if key in {str(v) for v in rec.values()}:
            return {k: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for k, v in rec.items()}
    return None


def _workflow_state(settings: Any) -> str:
    from etl_kit.clients import client

    with contextlib.suppress(Exception):
        runs = client("glue", settings).get_workflow_runs(Name=settings.workflow, MaxResults=1,
                                                          IncludeGraph=True).get("Runs", [])
        if runs:
            run = runs[0]
            nodes = []
            for node in run.get("Graph", {}).get("Nodes", []):
                det = node.get("JobDetails") or node.get("CrawlerDetails") or {}
                items = det.get("JobRuns") or det.get("Crawls") or []
                if items:
                    st = items[-1].get("JobRunState") or items[-1].get("State")
                    err = items[-1].get("ErrorMessage") or ""
                    nodes.append(f"{node.get('Name')}={st}{(' (' + err[:120] + ')') if err else ''}")
            return f"last workflow run {run.get('Status')}: " + ", ".join(nodes)
    return "no workflow run seen"


def e2e_part(settings: Any, datasets: dict[str, dict[str, Any]], sizes: list[int], provisioned: str,
             bar: Any) -> list[dict[str, Any]]:
    """put_object of each file into input/, then the time until its ledger row exists."""
    from etl_kit.clients import client

    out: list[dict[str, Any]] = []
    loader, why = _loader_module()
    reason = provisioned or ("" if loader is not None else why)
    if reason:
        for rows in sizes:
            out.append({"rows": rows, "skipped": f"not available: {reason}"})
            bar.update(1)
        return out
    s3 = client("s3", settings)
    bucket = settings.bucket_name()
    for rows in sizes:
        bar.set_postfix_str(f"e2e {_human(rows)}")
        meta = datasets[str(rows)]
        key = f"{settings.input_prefix}bench/e2e-{_human(rows)}-{uuid.uuid4().hex[:6]}.csv"
        timeout = 60.0 + rows / 10_000
        t0 = time.perf_counter()
        with open(meta["path"], "rb") as fh:
            s3.put_object(Bucket=bucket, Key=key, Body=fh)
        put_seconds = time.perf_counter() - t0
        ledger = None
        why = f"no ledger row after {timeout:.0f} s"
        next_check = t0 + 30.0
        while time.perf_counter() - t0 < timeout:
            ledger = _ledger_has(settings, key)
            if ledger is not None:
                break
            if time.perf_counter() > next_check:  # give up early when nothing is happening
                state = _workflow_state(settings)
                if state.startswith("no workflow run") or " COMPLETED" in state or " ERROR" in state:
                    why = f"no ledger row after {time.perf_counter() - t0:.0f} s"
                    break
                next_check += 10.0
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        if ledger is None:
            out.append({"rows": rows, "key": key, "skipped": f"{why}; {_workflow_state(settings)}"})
        else:
            out.append({"rows": rows, "key": key, "seconds": round(seconds, 2), "put_seconds": round(put_seconds, 2),
                        "state": ledger.get("state"), "ledger": ledger})
        bar.update(1)
    return out


# ---------------------------------------------------------------------------------------------
# figures, targets, markdown
# ---------------------------------------------------------------------------------------------
def ratios(transform: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """job 1 MB/s divided by each reference's MB/s, per size."""
    out: dict[str, dict[str, float | None]] = {}
    sizes = sorted({r["rows"] for r in transform})
    for rows in sizes:
        by = {r["engine"]: r for r in transform if r["rows"] == rows and r.get("mb_s")}
        job1 = by.get("job1")
        entry: dict[str, float | None] = {}
        for ref, key in (("polars", "job1_vs_polars"), ("pandas", "job1_vs_pandas"),
                         ("arrow_parse", "job1_vs_parse_ceiling"), ("arrow_parse_1t", "job1_vs_parse_1thread")):
            entry[key] = round(job1["mb_s"] / by[ref]["mb_s"], 3) if job1 and ref in by else None
        for ref in ("polars", "pandas"):  # CPU seconds of the reference / job 1's: robust when the box is busy
            cpu = job1.get("cpu_seconds") if job1 else None
            entry[f"cpu_{ref}_over_job1"] = round(by[ref]["cpu_seconds"] / cpu, 3) if cpu and ref in by else None
        out[str(rows)] = entry
    return out


def _best(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With ``--repeat``: keep each (engine, rows)'s fastest run, with the worst peak RSS of all runs."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for r in runs:
        k = (r["engine"], r["rows"])
        cur = best.get(k)
        if cur is None:
            best[k] = dict(r, runs=1)
            continue
        peak = max(cur.get("peak_rss_mb") or 0, r.get("peak_rss_mb") or 0)
        n = cur["runs"] + 1
        if "error" not in r and (cur.get("seconds") is None or r.get("seconds", 1e18) < cur["seconds"]):
            cur = dict(r)
        best[k] = dict(cur, peak_rss_mb=peak, runs=n, parity=bool(cur.get("parity")) and bool(r.get("parity")))
    return list(best.values())


def evaluate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of the issue's targets with its measured value and PASS / FAIL / SKIP."""
    measured: dict[str, tuple[float | None, str]] = {}
    sizes = sorted(int(k) for k in doc.get("ratios", {}))
    if sizes:
        top = doc["ratios"][str(sizes[-1])]
        for key in ("job1_vs_polars", "job1_vs_pandas", "job1_vs_parse_ceiling"):
            measured[key] = (top.get(key), f"at {_human(sizes[-1])} rows")
    mem = sorted((r for r in doc.get("memory", []) if r["engine"] == "job1" and r.get("peak_rss_mb")),
                 key=lambda r: r["rows"])
    if mem:
        measured["job1_peak_rss_mb"] = (max(r["peak_rss_mb"] for r in mem),
                                        "max over " + ", ".join(_human(r["rows"]) for r in mem))
        if len(mem) > 1:
            growth = mem[-1]["peak_rss_mb"] / mem[0]["peak_rss_mb"] - 1
            measured["job1_rss_growth"] = (round(growth, 3), f"{_human(mem[0]['rows'])} -> {_human(mem[-1]['rows'])}")
    loads = doc.get("load", [])
    lr = [r for r in loads if r.get("method") == "loader" and r.get("rows_s")]
    ar = {r["rows"]: r for r in loads if r.get("method") == "adbc" and r.get("rows_s")}
    pairs = [(r, ar[r["rows"]]) for r in lr if r["rows"] in ar]
    if pairs:
        r, a = max(pairs, key=lambda p: p[0]["rows"])
        measured["load_vs_adbc"] = (round(r["rows_s"] / a["rows_s"], 3), f"at {_human(r['rows'])} rows")
    if doc.get("crawl"):
        measured["crawl_event_growth"] = crawl_growth(doc["crawl"])
    e2e = [r for r in doc.get("e2e", []) if r.get("seconds") is not None]
    if e2e:
        small = min(e2e, key=lambda r: r["rows"])
        measured["e2e_small_seconds"] = (small["seconds"], f"{_human(small['rows'])} rows")
        large = max(e2e, key=lambda r: r["rows"])
        if large is not small:
            measured["e2e_large_seconds"] = (large["seconds"], f"{_human(large['rows'])} rows")
    out = []
    for key, text, op, threshold in TARGETS:
        value, where = measured.get(key, (None, ""))
        if value is None:
            status = "SKIP"
        else:
            ok = {">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]
            status = "PASS" if ok else "FAIL"
        out.append({"key": key, "target": text, "threshold": f"{op} {threshold:g}", "measured": value,
                    "where": where, "status": status})
    return out


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _md_header(doc: dict[str, Any]) -> list[str]:
    """The title, what the run was measured on, and a warning when the machine was busy."""
    m = doc["machine"]
    v = m["versions"]
    busy = m.get("busy_cores_start") or 0.0
    warning = ([f"**The machine was busy** ({busy:.2f} of {m['cpu_count']} cores in use by other work at the start): "
                "wall-clock figures and ratios are unreliable in this run; compare CPU seconds, or rerun on a quiet "
                "machine (`--repeat 3` keeps each engine's fastest run).", ""] if busy > 0.5 else [])
    return [
        "# etl-kit bench",
        "",
        f"Run {doc['started_at']} ({doc['seconds_total']:.0f} s) on {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"{m['memory_gb']} GB, Python {m['python']}, pyarrow {v.get('pyarrow')}, polars {v.get('polars')}, "
        f"pandas {v.get('pandas')}; commit `{(m['git_commit'] or '?')[:10]}`{' (dirty)' if m['git_dirty'] else ''}; "
        f"load average {m['loadavg_start'][0]:.1f} at start; "
        f"{_fmt(m.get('busy_cores_start'), 2)} cores busy with other work when it started.",
        "",
        *warning,
    ]


def _md_targets(doc: dict[str, Any]) -> list[str]:
    lines = ["## Targets", "", "| target | threshold | measured | | status |", "|---|---|---:|---|---|"]
    for t in doc["targets"]:
        lines.append(f"| {t['target']} | {t['threshold']} | {_fmt(t['measured'], 2)} | {t['where']} | "
                     f"**{t['status']}** |")
    return lines


def _md_transform(doc: dict[str, Any]) -> list[str]:
    """Every engine's run, then the ratios the targets use."""
    lines = ["", "## Transform: CSV -> validated Parquet + quarantine (same files, same rules)", "",
             "| engine | rows | CSV MB | wall s | CPU s | MB/s | rows/s | peak RSS MB | written | quarantined "
             "| same result as job 1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(doc["transform"], key=lambda r: (r["rows"], TRANSFORM_ENGINES.index(r["engine"]))):
        same = _fmt(r.get("parity")) if r.get("parity") is not None else "-"
        if r.get("parity") is False:
            same += f" ({r.get('parity_diff', '')[:120]})"
        lines.append(
            f"| {LABELS[r['engine']]} | {_fmt(r['rows'])} | {_fmt(r['bytes'] / 1e6)} | {_fmt(r.get('seconds'), 2)} "
            f"| {_fmt(r.get('cpu_seconds'), 2)} | {_fmt(r.get('mb_s'))} | {_fmt(r.get('rows_s'))} "
            f"| {_fmt(r.get('peak_rss_mb'), 0)} | {_fmt(r.get('rows_written'))} "
            f"| {_fmt(r.get('rows_quarantined'))} | {same} |")
    lines += ["", "Throughput ratios (wall clock; the targets use these) and CPU-second ratios:", "",
              "| rows | job 1 / polars | job 1 / pandas | job 1 / parse ceiling | job 1 / 1-thread parse "
              "| CPU s polars / job 1 | CPU s pandas / job 1 |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for rows, rt in sorted(doc["ratios"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {_fmt(int(rows))} | {_fmt(rt['job1_vs_polars'], 2)} | {_fmt(rt['job1_vs_pandas'], 2)} "
                     f"| {_fmt(rt['job1_vs_parse_ceiling'], 2)} | {_fmt(rt['job1_vs_parse_1thread'], 2)} "
                     f"| {_fmt(rt.get('cpu_polars_over_job1'), 2)} | {_fmt(rt.get('cpu_pandas_over_job1'), 2)} |")
    return lines + _md_stages(doc)


def _md_stages(doc: dict[str, Any]) -> list[str]:
    """Where job 1's CPU goes, stage by stage (empty when no run reported its stages)."""
    staged = [r for r in doc["transform"] if r["engine"] == "job1" and r.get("stages")]
    if not staged:
        return []
    lines = ["", "Where job 1's CPU goes (seconds of each stage's own thread; parse = pyarrow's tokenizer on "
             "one thread, write = Parquet encoding and compression, keys = duplicate-key counting):", "",
             "| rows | parse | validate | write | keys | sum | parse-only ceiling CPU s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    ceiling = {r["rows"]: r for r in doc["transform"] if r["engine"] == "arrow_parse"}
    for r in staged:
        st = r["stages"]
        lines.append(f"| {_fmt(r['rows'])} | {_fmt(st.get('parse'), 2)} | {_fmt(st.get('validate'), 2)} "
                     f"| {_fmt(st.get('write'), 2)} | {_fmt(st.get('keys'), 2)} "
                     f"| {_fmt(sum(v for v in st.values() if v), 2)} "
                     f"| {_fmt(ceiling.get(r['rows'], {}).get('cpu_seconds'), 2)} |")
    return lines


def _md_memory(doc: dict[str, Any]) -> list[str]:
    engines = [e for e in TRANSFORM_ENGINES if any(r["engine"] == e for r in doc["memory"])]
    sizes = sorted({r["rows"] for r in doc["memory"]})
    lines = ["", "## Peak RSS (MB), fresh process per run", "",
             "| engine | " + " | ".join(_human(s) for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for e in engines:
        cells = []
        for s in sizes:
            hit = [r for r in doc["memory"] if r["engine"] == e and r["rows"] == s]
            cells.append(_fmt(hit[0].get("peak_rss_mb"), 0) if hit else "-")
        lines.append(f"| {LABELS[e]} | " + " | ".join(cells) + " |")
    return lines


def _md_load(doc: dict[str, Any]) -> list[str]:
    lines = ["", "## Load: Parquet -> local warehouse (embedded PostgreSQL)", "",
             "| method | rows | seconds | rows/s | note |", "|---|---:|---:|---:|---|"]
    for r in doc["load"]:
        note = r.get("skipped", "")
        steps = [st for st in r.get("statements", []) if st.get("seconds")]
        if steps:
            note = "; ".join(f"{st['sql'].split(' ')[0]} {st['seconds']:.2f}s"
                             for st in sorted(steps, key=lambda st: -st["seconds"])[:4])
        lines.append(f"| {r.get('label', r['method'])} | {_fmt(r['rows'])} | {_fmt(r.get('seconds'), 2)} "
                     f"| {_fmt(r.get('rows_s'))} | {note} |")
    return lines


def _md_e2e(doc: dict[str, Any]) -> list[str]:
    lines = ["", "## End to end on the local target: put_object -> ledger row", "",
             "| rows | seconds | state | note |", "|---:|---:|---|---|"]
    for r in doc["e2e"]:
        lines.append(f"| {_fmt(r['rows'])} | {_fmt(r.get('seconds'), 2)} | {r.get('state') or ''} "
                     f"| {r.get('skipped', '')} |")
    return lines


def _md_intake(burst: dict[str, Any]) -> list[str]:
    return ["", f"## Durable intake: a burst of {burst['uploads']:,} uploads", "",
            "| runs started | ledger rows | states | left in queue | in DLQ | waits | seconds |",
            "|---:|---:|---|---:|---:|---:|---:|",
            f"| {burst['runs_started']:,} | {burst['ledger_rows']:,} | {burst['states']} "
            f"| {burst['intake_messages']} | {burst['dlq_messages']} | {burst['waiting_decisions']:,} "
            f"| {_fmt(burst['seconds'], 1)} |"]


def _md_footer(doc: dict[str, Any]) -> list[str]:
    """What was skipped, the notes, and the generated data."""
    lines: list[str] = []
    if doc.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- {s}" for s in doc["skipped"]]
    if doc.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {s}" for s in doc["notes"]]
    data = ", ".join(f"{_human(int(k))} rows = {d['bytes'] / 1e6:,.0f} MB ({d['bad_rows']} bad rows)"
                     for k, d in sorted(doc["datasets"].items(), key=lambda kv: int(kv[0])))
    return [*lines, "", "Wall-clock figures are noisy when other work shares the machine; CPU seconds and ratios "
            f"measured in the same run are the comparable figures. Generated data: {data}.", ""]


def render_markdown(doc: dict[str, Any]) -> str:
    """The run as markdown tables: targets, transform, ratios, memory, load, e2e, machine."""
    lines = _md_header(doc) + _md_targets(doc)
    for key, section in (("transform", _md_transform), ("memory", _md_memory), ("load", _md_load),
                         ("e2e", _md_e2e)):
        if doc.get(key):
            lines += section(doc)
    burst = doc.get("intake") or {}
    if burst.get("uploads"):
        lines += _md_intake(burst)
    if doc.get("crawl"):
        lines += md_crawl(doc["crawl"])
    return "\n".join(lines + _md_footer(doc))


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchOptions:
    """What one ``etl-kit bench`` run measures, and where its results go."""

    sizes: list[int]
    memory_sizes: list[int]
    parts: list[str]
    out: Path
    e2e_sizes: list[int]
    crawl_sizes: list[int] = field(default_factory=lambda: list(CRAWL_SIZES))
    repeat: int = 1
    params: str | None = None
    progress: bool = True
    keep: bool = False

    def wants(self, part: str) -> bool:
        return part in self.parts

    def plan(self) -> list[tuple[int, str, bool]]:
        """Which engine runs on which size: ``(rows, engine, timed-for-transform)`` in run order."""
        plan: list[tuple[int, str, bool]] = []
        for rows in self.engine_sizes():
            if self.wants("transform") and rows in self.sizes:
                for _ in range(self.repeat):
                    plan.extend((rows, e, True) for e in TRANSFORM_ENGINES)
            elif self.wants("load") and rows in self.sizes and not (self.wants("memory") and rows in self.memory_sizes):
                plan.append((rows, "job1", False))  # the load needs job 1's Parquet
            elif self.wants("memory") and rows in self.memory_sizes:
                plan.append((rows, "job1", False))
                if rows <= REFERENCE_MAX_ROWS:
                    plan.extend((rows, e, False) for e in ("polars", "pandas"))
        return plan

    def engine_sizes(self) -> list[int]:
        """The sizes some engine runs on."""
        return sorted(set(self.sizes if self.wants("transform") or self.wants("load") else [])
                      | set(self.memory_sizes if self.wants("memory") else []))

    def csv_sizes(self) -> list[int]:
        """The sizes a CSV is generated for."""
        return sorted(set(self.engine_sizes()) | (set(self.e2e_sizes) if self.wants("e2e") else set()))

    def needs_cloud(self) -> bool:
        return self.wants("load") or self.wants("e2e")

    def steps(self) -> int:
        """Progress-bar steps: CSVs, engine runs, loads, e2e files, the cloud start and the intake burst."""
        n_load = 2 * len(self.sizes) if self.wants("load") else 0
        n_e2e = len(self.e2e_sizes) if self.wants("e2e") else 0
        return (len(self.csv_sizes()) + len(self.plan()) + n_load + n_e2e + int(self.needs_cloud())
                + int(self.wants("intake")) + int(self.wants("crawl")))


def _new_doc(opts: BenchOptions, contract: dict[str, Any]) -> dict[str, Any]:
    return {"started_at": _now(), "machine": machine_facts(), "config": {
        "sizes": opts.sizes, "memory_sizes": opts.memory_sizes, "parts": opts.parts, "repeat": opts.repeat,
        "e2e_sizes": opts.e2e_sizes, "crawl_sizes": opts.crawl_sizes,
        "contract_columns": [c["name"] for c in contract["columns"]]},
        "datasets": {}, "transform": [], "memory": [], "ratios": {}, "load": [], "e2e": [], "skipped": [], "notes": [],
        "intake": {}, "crawl": []}


def _engine_part(opts: BenchOptions, doc: dict[str, Any], contract: dict[str, Any], bar: Any,
                 say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every planned engine run in a fresh subprocess; fills transform, memory and ratios; returns the best runs."""
    runs: list[dict[str, Any]] = []
    for i, (rows, engine, timed) in enumerate(opts.plan()):
        bar.set_postfix_str(f"{engine} {_human(rows)}")
        r = run_child(engine, doc["datasets"][str(rows)], contract, opts.out / "work", tag=f"_{i}")
        r["timed"] = timed
        runs.append(r)
        bar.update(1)
        if "error" in r:
            say(f"{engine} at {_human(rows)} rows failed: {r['error']}")
    parity(runs)
    best = _best(runs)
    doc["transform"] = [r for r in best if r["rows"] in opts.sizes and opts.wants("transform")]
    doc["memory"] = [{k: r.get(k) for k in ("engine", "rows", "peak_rss_mb", "base_rss_mb", "seconds")}
                     for r in best if opts.wants("memory") and r["rows"] in opts.memory_sizes
                     and r["engine"] in ("job1", "polars", "pandas")]
    doc["ratios"] = ratios(doc["transform"])
    return best


def _cloud_part(opts: BenchOptions, doc: dict[str, Any], settings: Any, best: list[dict[str, Any]],
                bar: Any) -> None:
    """Load and e2e in one throwaway local cloud; when it cannot start, both are skipped with the reason."""
    parquets = {r["rows"]: r["parquet"] for r in best
                if r["engine"] == "job1" and r["rows"] in opts.sizes and r.get("parquet") and "error" not in r}
    bar.set_postfix_str("local cloud up + provision")
    try:
        with throwaway_cloud(settings) as cloud:
            provisioned = provision(cloud)
            bar.update(1)
            if provisioned:
                doc["skipped"].append(provisioned)
            elif opts.wants("e2e"):
                doc["notes"].extend(e2e_workarounds(cloud))
            if opts.wants("load"):
                doc["load"] = load_part(cloud, parquets, provisioned, bar)
            if opts.wants("e2e"):
                doc["e2e"] = e2e_part(cloud, doc["datasets"], opts.e2e_sizes, provisioned, bar)
    except Exception as exc:
        why = f"local cloud unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        doc["skipped"].append(why)
        for rows in opts.sizes if opts.wants("load") else []:
            doc["load"].append({"method": "adbc+loader", "rows": rows, "skipped": why})
        for rows in opts.e2e_sizes if opts.wants("e2e") else []:
            doc["e2e"].append({"rows": rows, "skipped": why})


def _measure(opts: BenchOptions, doc: dict[str, Any], settings: Any, bar: Any, say: Callable[[str], None]) -> None:
    """Every chosen part, in order, into ``doc``; what could not run goes to ``doc["skipped"]``."""
    contract = settings.dataset_contract.model_dump(mode="json")
    for rows in opts.csv_sizes():
        bar.set_postfix_str(f"generate {_human(rows)} rows")
        doc["datasets"][str(rows)] = ensure_csv(opts.out / "data", rows)
        bar.update(1)
    best = _engine_part(opts, doc, contract, bar, say)
    if opts.needs_cloud():
        _cloud_part(opts, doc, settings, best, bar)
    if opts.wants("intake"):
        bar.set_postfix_str(f"intake burst of {BURST_N}")
        doc["intake"] = intake_part(settings)
        bar.update(1)
        if doc["intake"].get("skipped"):
            doc["skipped"].append(f"intake burst: {doc['intake']['skipped']}")
    if opts.wants("crawl"):
        bar.set_postfix_str("crawl cost at " + ",".join(map(str, opts.crawl_sizes)) + " objects")
        try:
            with throwaway_cloud(settings) as cloud:
                doc["crawl"] = crawl_part(cloud, opts.crawl_sizes, repeat=max(3, opts.repeat))
        except Exception as exc:
            doc["skipped"].append(f"crawl cost: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        bar.update(1)
    for r in doc["load"] + doc["e2e"]:
        if r.get("skipped"):
            doc["skipped"].append(f"{r.get('method', 'e2e')} {_human(r['rows'])}: {r['skipped']}")
    doc["skipped"] = list(dict.fromkeys(doc["skipped"]))


def run_bench(options: BenchOptions, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and write ``out/bench.json`` and ``out/bench.md``; returns the JSON document.

    Parameters
    ----------
    options
        What to measure and where the results go (``options.out`` is made absolute).
    log
        Called with a line for each engine run that failed; nothing is printed without it.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    opts = replace(options, out=options.out.resolve())
    opts.out.mkdir(parents=True, exist_ok=True)
    settings = _load_settings(opts.params)
    doc = _new_doc(opts, settings.dataset_contract.model_dump(mode="json"))
    bar = tqdm(total=opts.steps(), desc="bench", unit="step", disable=not opts.progress, dynamic_ncols=True)
    try:
        _measure(opts, doc, settings, bar, log or (lambda msg: None))
    finally:
        bar.close()
        if not opts.keep:
            shutil.rmtree(opts.out / "work", ignore_errors=True)
    for r in doc["transform"]:
        r.pop("parquet", None)
    doc["targets"] = evaluate(doc)
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["seconds_total"] = round(time.perf_counter() - started, 1)
    (opts.out / "bench.json").write_text(json.dumps(doc, indent=2, default=str))
    (opts.out / "bench.md").write_text(render_markdown(doc))
    return doc


def _int_list(value: str) -> list[int]:
    try:
        out = [int(float(v.strip().replace("_", ""))) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of row counts") from exc
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: row counts must be positive")
    return sorted(set(out))


def options_from_cli(ctx: click.Context) -> BenchOptions:
    """The command line's options as one :class:`BenchOptions` (``--quick`` fills the sizes not given)."""
    p = ctx.params
    parts = [x.strip() for x in p["parts"].split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        raise click.BadParameter(f"unknown part(s) {bad}; choose from {', '.join(PARTS)}", param_hint="--parts")

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)

    quick = p["quick"]
    return BenchOptions(
        sizes=_int_list(p["sizes"]) if (given("sizes") or not quick) else list(QUICK_SIZES),
        memory_sizes=_int_list(p["memory_sizes"]) if (given("memory_sizes") or not quick) else list(QUICK_MEMORY_SIZES),
        parts=parts, out=Path(p["out_dir"]),
        e2e_sizes=_int_list(p["e2e_sizes"]) if p["e2e_sizes"] else list(QUICK_E2E_SIZES if quick else E2E_SIZES),
        crawl_sizes=(_int_list(p["crawl_sizes"]) if p["crawl_sizes"]
                     else list(QUICK_CRAWL_SIZES if quick else CRAWL_SIZES)),
        repeat=p["repeat"], params=p["params"], progress=not p["no_progress"], keep=p["keep"])


def register(group: click.Group) -> None:
    """Add ``etl-kit bench`` to the CLI."""

    @group.command("bench")
    @click.option("--sizes", default=",".join(map(str, DEFAULT_SIZES)), show_default=True,
                  help="rows of the CSVs for the transform (and load) comparison")
    @click.option("--memory-sizes", default=",".join(map(str, DEFAULT_MEMORY_SIZES)), show_default=True,
                  help="rows of the CSVs for job 1's peak RSS (fresh process each)")
    @click.option("--parts", default=",".join(PARTS), show_default=True,
                  help=f"comma-separated subset of {', '.join(PARTS)}")
    @click.option("--e2e-sizes", default=None, help="rows of the end-to-end files [default: 100,1000000]")
    @click.option("--crawl-sizes", default=None,
                  help="objects in the bucket for the crawl cost part [default: 10,100,1000; quick: 10,100]")
    @click.option("--out", "out_dir", default="bench-results", show_default=True, type=click.Path(file_okay=False),
                  help="where bench.json, bench.md and the cached data go (git-ignored)")
    @click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, 10),
                  help="transform runs per engine and size; the fastest counts")
    @click.option("--params", default=None, help="params file with the dataset contract [default: params/local.yaml]")
    @click.option("--quick", is_flag=True, help="smoke run on small files (20k rows; memory 20k,100k; e2e 100,20k)")
    @click.option("--keep", is_flag=True, help="keep the engines' outputs under OUT/work")
    @click.option("--no-progress", is_flag=True, help="no progress bar")
    @click.pass_context
    def bench(ctx: click.Context, **_options: Any) -> None:
        """Measure job 1 and job 2 against their references in one run; write bench.json and bench.md."""
        opts = options_from_cli(ctx)
        doc = run_bench(opts, log=lambda msg: click.secho(msg, fg="yellow", err=True))
        click.echo(render_markdown(doc))
        click.echo(f"wrote {opts.out / 'bench.json'} and {opts.out / 'bench.md'}")

"""One helper per notebook cell: each returns something a notebook displays (a table, a figure, a dict).

The notebooks stay thin (a heading, then one call); every bit of logic lives here or in the
modules these call. Each notebook stands alone: it reads its settings from ``params_file`` and finds
the upload or run it looks at in S3 and Glue (``source_key`` / ``run_id``, default the newest upload).
Results worth a summary are recorded in ``<state_dir>/notebook-results.json`` for ``etl-kit notebooks run``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_kit.clients import account_id, client
from etl_kit.config import Settings, load_settings
from etl_kit.exceptions import EtlKitError, ValidationFailed, aws_errors

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["SAMPLE_METADATA", "settings_from", "record", "chosen_upload", "chosen_run", "setup",
           "params_table", "contract_table", "plan", "provision", "inventory", "architecture", "make_sample", "upload",
           "pipeline_picture", "lambda_decision", "started_run", "follow_run", "node_table", "graph_picture",
           "notifications", "failed_logs", "replay_failed", "validate", "assert_checks", "first_rows", "sql",
           "teardown"]


def _show_figures_in_notebooks() -> None:
    """Render matplotlib ``Figure`` objects as PNG in a notebook (they are built without pyplot)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    import io

    from matplotlib.figure import Figure

    def png(fig: Figure) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()

    ip.display_formatter.formatters["image/png"].for_type(Figure, png)
    import pandas as pd

    # The kit's tables (plans, inventories, checks) are meant to be read whole.
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_columns", 50)
    pd.set_option("display.width", 200)
    # Paths, ARNs and error texts are read whole too: pandas would cut them at 50 characters with "...".
    pd.set_option("display.max_colwidth", None)


_show_figures_in_notebooks()


# -- parameters ----------------------------------------------------------------------------
def _params_path(params_file: str | Path) -> Path:
    """``params_file`` as given, or (relative and not found from the kernel's directory) from the project root."""
    from etl_kit.config import _project_root

    p = Path(params_file).expanduser()
    if p.is_absolute() or p.is_file():
        return p
    return _project_root() / p


def settings_from(namespace: Mapping[str, Any]) -> Settings:
    """The validated settings of a notebook: its ``params_file``, then the keys its `parameters` cell sets.

    A key left at ``None`` takes the params file's value (one source of truth); any other value wins
    (what papermill's ``-p`` or a user's edit of the cell gives).
    """
    params_file = namespace.get("params_file")
    if not params_file:
        raise EtlKitError("the notebook's parameters cell sets no params_file; set it to params/local.yaml or "
                          "params/aws.yaml (papermill: -p params_file params/local.yaml)")
    overrides = {k: namespace[k] for k in Settings.model_fields if namespace.get(k) is not None}
    return load_settings(_params_path(params_file), **overrides)


def _results_file(settings: Settings) -> Path:
    from etl_kit.runner import RESULTS_FILE

    return settings.state_dir / RESULTS_FILE


def record(settings: Settings, key: str, value: Any) -> None:
    """Record a result for the run summary (JSON-serialisable); no notebook reads another's results."""
    path = _results_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    import time

    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = {"value": value, "at": time.time()}
    path.write_text(json.dumps(data, indent=2, default=str))


def _frame(rows: list[dict[str, Any]] | dict[str, Any], columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    if isinstance(rows, dict):
        rows = [{"key": k, "value": v} for k, v in rows.items()]
    return pd.DataFrame(rows, columns=columns)


# -- 00 setup --------------------------------------------------------------------------
def setup(settings: Settings) -> pd.DataFrame:
    """Target, identity, region and endpoint; starts the local cloud when the target is local.

    Locally it also shows the runtime each Glue job and Lambda function runs on (the pinned Python and
    libraries, or that a runtime falls back to the daemon's Python and why).
    """
    info: dict[str, Any] = {"target": settings.target, "region": settings.region}
    if settings.target == "local":
        from etl_kit import local

        st = local.up(settings, progress=print)
        info.update(endpoint=st["endpoint"], warehouse=st.get("postgres"),
                    providers=", ".join(f"{k}:{'ok' if v.get('ok') else 'FAILING'}"
                                        for k, v in st.get("providers", {}).items()))
        for line in local.runtime_lines(st.get("runtimes") or {}):  # what jobs and functions run on, or why not
            name, _, text = line.partition(": ")
            info[f"runtime {name}"] = text
    with aws_errors("identify caller", "sts"):
        ident = client("sts", settings).get_caller_identity()
    info["identity"] = ident["Arn"].split(":", 5)[-1]  # the role/user, without the account id
    info["project bucket"] = settings.bucket_name(account_id(settings)) if settings.target == "local" \
        else f"{settings.bucket}{settings.name_suffix} (suffix resolved per account)"
    info["python"] = "{}.{}".format(*sys.version_info[:2])  # the kernel's Python; the patch level is the machine's
    return _frame(info)


def params_table(settings: Settings) -> pd.DataFrame:
    """The parameters in force (the dataset contract is shown by :func:`contract_table`)."""
    return _frame({k: v for k, v in settings.to_params().items() if k != "dataset_contract"})


def contract_table(settings: Settings) -> pd.DataFrame:
    """The dataset contract: source column -> target column, type, required, formats."""
    return _frame([c.model_dump() for c in settings.dataset_contract.columns])


# -- 01 provision -----------------------------------------------------------------------
def _changes(changes: list[Any]) -> pd.DataFrame:
    rows = []
    for c in changes:
        d = c if isinstance(c, dict) else c.__dict__
        rows.append({"step": d.get("step"), "resource": d.get("resource_type"), "name": d.get("name"),
                     "action": d.get("action"), "differs": ", ".join(sorted((d.get("diffs") or {}).keys()))})
    return _frame(rows, ["step", "resource", "name", "action", "differs"])


def plan(settings: Settings) -> pd.DataFrame:
    """What provisioning would do per resource (create / update / no-change); changes nothing."""
    from etl_kit.provision import plan_all

    return _changes(plan_all(settings))


def provision(settings: Settings) -> pd.DataFrame:
    """Apply the seed's steps (idempotent); one row per resource with what was done."""
    from etl_kit.provision import apply_all

    df = _changes(apply_all(settings))
    record(settings, "provision", df["action"].value_counts().to_dict())
    return df


def inventory(settings: Settings) -> pd.DataFrame:
    """Every provisioned resource with its ARN (and a console link on aws)."""
    from etl_kit.provision import inventory as inv

    rows = []
    for step, items in inv(settings).items():
        for name, info in items.items():
            info = info if isinstance(info, dict) else {"value": info}
            rows.append({"step": step, "type": info.get("type", ""), "name": name,
                         "exists": info.get("exists", ""), "arn": info.get("arn", ""),
                         "console": info.get("console", "")})
    return _frame(rows, ["step", "type", "name", "exists", "arn", "console"])


def architecture(settings: Settings) -> Figure:
    """The pipeline drawn from the live resources (green: exists, grey: missing)."""
    acct = account_id(settings)
    bucket = settings.bucket_name(acct)

    def exists(fn: Any) -> bool:
        try:
            fn()
            return True
        except Exception:  # any error means "not there" for the picture
            return False

    s3, ev, lam, glue = (client(s, settings) for s in ("s3", "events", "lambda", "glue"))
    rs, sns, sqs = (client(s, settings) for s in ("redshift-serverless", "sns", "sqs"))
    topic = f"arn:aws:sns:{settings.region}:{acct}:{settings.sns_topic}"
    boxes = [
        ("S3 " + bucket + "/" + settings.input_prefix, lambda: s3.head_bucket(Bucket=bucket), (0, 2)),
        ("rule " + settings.start_rule, lambda: ev.describe_rule(Name=settings.start_rule), (1, 2)),
        ("Lambda " + settings.lambda_function, lambda: lam.get_function(FunctionName=settings.lambda_function),
         (2, 2)),
        ("crawler " + settings.csv_crawler, lambda: glue.get_crawler(Name=settings.csv_crawler), (3, 2)),
        ("job " + settings.csv_job, lambda: glue.get_job(JobName=settings.csv_job), (4, 2)),
        ("crawler " + settings.parquet_crawler, lambda: glue.get_crawler(Name=settings.parquet_crawler), (5, 2)),
        ("job " + settings.load_job, lambda: glue.get_job(JobName=settings.load_job), (6, 2)),
        ("Redshift " + settings.redshift_workgroup,
         lambda: rs.get_workgroup(workgroupName=settings.redshift_workgroup), (7, 2)),
        ("workflow " + settings.workflow, lambda: glue.get_workflow(Name=settings.workflow), (4.5, 3.1)),
        ("4 state rules", lambda: [ev.describe_rule(Name=n) for n in (settings.crawler01_rule, settings.job01_rule,
                                                                        settings.crawler02_rule, settings.job02_rule)],
         (4.5, 0.9)),
        ("SNS " + settings.sns_topic, lambda: sns.get_topic_attributes(TopicArn=topic), (6, 0.9)),
        ("SQS " + settings.notification_queue, lambda: sqs.get_queue_url(QueueName=settings.notification_queue),
         (7.3, 0.9)),
    ]
    return pipeline_picture([(label, exists(check), xy) for label, check, xy in boxes],
                            f"etl-kit pipeline on {settings.target} ({settings.region})")


#: Width and height of a box of :func:`pipeline_picture`, in data units (boxes sit on a grid of 1.0).
BOX_W, BOX_H = 0.78, 0.6
#: Arrows between boxes at the grid positions of :func:`architecture`: the main row (S3 ... Redshift), the
#: workflow that runs the Glue part of it, the Glue nodes' state-change rules, SNS and its SQS subscriber.
PIPELINE_ARROWS = [*(((i + BOX_W, 2.0), (i + 1.0, 2.0)) for i in range(7)),
                   ((4.89, 2.8), (4.89, 2.3)), ((4.89, 1.7), (4.89, 1.2)),
                   ((4.5 + BOX_W, 0.9), (6.0, 0.9)), ((6.0 + BOX_W, 0.9), (7.3, 0.9))]


def pipeline_picture(boxes: list[tuple[str, bool, tuple[float, float]]], title: str) -> Figure:
    """Boxes ``(label, exists, (x, y))`` (green: exists, grey: missing) joined by :data:`PIPELINE_ARROWS`."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = Figure(figsize=(14, 4.2))
    ax = fig.add_subplot(111)
    ax.set_xlim(-0.2, 8.3)
    ax.set_ylim(0.3, 3.7)
    ax.axis("off")
    for label, ok, (x, y) in boxes:
        ax.add_patch(FancyBboxPatch((x, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.03",
                                    fc="#2e7d32" if ok else "#9e9e9e", ec="black", lw=0.6))
        kind, _, name = label.partition(" ")
        ax.text(x + BOX_W / 2, y, "\n".join([kind, *textwrap.wrap(name, 20)]), ha="center", va="center",
                fontsize=6.5, color="white")
    for start, end in PIPELINE_ARROWS:  # drawn on top, from box edge to box edge, in black
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2, color="black",
                                     shrinkA=1, shrinkB=1, zorder=3))
    ax.set_title(title, fontsize=10)
    return fig


# -- 02 upload ----------------------------------------------------------------------------
def make_sample(settings: Settings) -> dict[str, Any]:
    """Generate sales data (``sample_rows``, ``sample_bad_rows``) or take ``upload_file``; returns its facts."""
    if settings.upload_file:
        path = Path(settings.upload_file).expanduser()
        if not path.is_file():
            raise EtlKitError(f"upload_file {settings.upload_file!r} does not exist; give a CSV path or null")
        return {"path": str(path), "generated": False, "bytes": path.stat().st_size}
    from etl_kit.datagen import generate_sales_csv

    out = settings.state_dir / "samples"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sales_{settings.sample_rows}_{settings.sample_seed}.csv"
    info = generate_sales_csv(path, settings.sample_rows, seed=settings.sample_seed,
                              bad_rows=settings.sample_bad_rows)
    facts = info if isinstance(info, dict) else {k: v for k, v in vars(info).items() if not k.startswith("_")}
    return {"path": str(path), "generated": True, "bytes": path.stat().st_size, **facts}


#: The S3 user metadata key that carries a generated sample's facts (what 04 checks the load against).
SAMPLE_METADATA = "etl-kit-sample"


def upload(sample: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Upload the sample to ``input/`` with a progress bar.

    A generated sample's facts (rows, good and bad rows, sums) travel with the object as S3 metadata, so
    that 04 can check any upload on its own.
    """
    import datetime as _dt

    from tqdm import tqdm

    path = Path(sample["path"])
    bucket = settings.bucket_name(account_id(settings))
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    key = f"{settings.input_prefix}{path.stem}_{stamp}{''.join(path.suffixes)}"
    s3 = client("s3", settings)
    facts = {k: v for k, v in sample.items() if k in {"generated", "rows", "good_rows", "bad_rows",
                                                     "bad_rows_by_reason", "total_revenue", "total_profit"}}
    extra = {"Metadata": {SAMPLE_METADATA: json.dumps(facts, default=str)}} if sample.get("generated") else {}
    with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"upload {path.name}") as bar, \
            aws_errors("upload to", f"s3://{bucket}/{key}"):
        s3.upload_file(str(path), bucket, key, Callback=bar.update, ExtraArgs=extra)
    head = s3.head_object(Bucket=bucket, Key=key)
    up = {"bucket": bucket, "key": key, "etag": head["ETag"].strip('"'), "size": head["ContentLength"],
          "version_id": head.get("VersionId"), "sample": {k: v for k, v in sample.items() if k != "path"},
          "uploaded_at": _dt.datetime.now(_dt.UTC).isoformat()}
    record(settings, "upload", up)
    return up


def lambda_decision(up: dict[str, Any], settings: Settings, timeout: float = 60.0) -> pd.DataFrame:
    """What the S3 event made the Lambda do for the upload ``up`` (from the Lambda's JSON log lines)."""
    import time

    logs = client("logs", settings)
    group = f"/aws/lambda/{settings.lambda_function}"
    deadline = time.monotonic() + timeout
    while True:
        rows: list[dict[str, Any]] = []
        try:
            for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
                for e in page["events"]:
                    msg = e["message"].strip()
                    if msg.startswith("{") and up["key"] in msg:
                        try:
                            rows.append(json.loads(msg))
                        except ValueError:
                            continue
        except Exception:  # the log group appears with the first invocation
            rows = []
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if not rows:
        raise EtlKitError(f"the Lambda {settings.lambda_function!r} logged nothing for {up['key']!r} in "
                          f"{timeout:.0f}s; check rule {settings.start_rule!r} and the bucket's EventBridge setting")
    return _frame(rows)


def started_run(up: dict[str, Any], settings: Settings) -> pd.DataFrame:
    """The workflow run the Lambda started for the upload ``up``."""
    from etl_kit.monitor import wait_for_run_of

    run = wait_for_run_of(up["key"], settings, bucket=up["bucket"], timeout=60)
    props = run.get("WorkflowRunProperties", {})
    return _frame({"run id": run["WorkflowRunId"], "status": run["Status"], "started": run.get("StartedOn"),
                   **{f"property {k}": v for k, v in sorted(props.items())}})


# -- 03 and 04: which upload, which run ----------------------------------------------------
def _newest_upload(settings: Settings, bucket: str) -> str:
    """The key of the newest object under ``input_prefix`` (what 02 uploaded last, or anyone else)."""
    s3 = client("s3", settings)
    newest: dict[str, Any] | None = None
    with aws_errors("list uploads in", f"s3://{bucket}/{settings.input_prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=settings.input_prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/") and (newest is None or obj["LastModified"] > newest["LastModified"]):
                    newest = obj
    if newest is None:
        raise EtlKitError(f"no upload under s3://{bucket}/{settings.input_prefix}: run 02_upload_test_data first, "
                          "or pass source_key")
    return str(newest["Key"])


def _run_source(settings: Settings, run_id: str) -> tuple[str, str]:
    """(bucket, key) of the object the workflow run ``run_id`` processed (its run properties)."""
    with aws_errors("get workflow run", f"{settings.workflow} {run_id}"):
        run = client("glue", settings).get_workflow_run(Name=settings.workflow, RunId=run_id)["Run"]
    props = run.get("WorkflowRunProperties", {})
    if not props.get("source_key"):
        raise EtlKitError(f"workflow run {run_id} of {settings.workflow!r} names no source_key in its run "
                          "properties: it was not started by the kit's Lambda; pass source_key instead")
    return str(props.get("source_bucket") or settings.bucket_name()), str(props["source_key"])


def chosen_upload(settings: Settings, source_key: str = "", run_id: str = "") -> dict[str, Any]:
    """The upload 03/04 look at: ``run_id``'s object, else ``source_key`` (a key or s3:// URI), else the newest.

    Returns ``{"bucket", "key", "etag", "size", "last_modified", "sample"}``; ``sample`` holds the generator's
    facts when the object is a generated sample (its S3 metadata), else ``{}``.
    """
    from etl_kit.replay import parse_target

    if run_id:
        bucket, key = _run_source(settings, run_id)
    elif source_key:
        bucket, key = parse_target(source_key, settings)
    else:
        bucket = settings.bucket_name(account_id(settings))
        key = _newest_upload(settings, bucket)
    with aws_errors("read upload", f"s3://{bucket}/{key}"):
        head = client("s3", settings).head_object(Bucket=bucket, Key=key)
    meta = head.get("Metadata", {}).get(SAMPLE_METADATA)
    return {"bucket": bucket, "key": key, "etag": head["ETag"].strip('"'), "size": head["ContentLength"],
            "last_modified": str(head.get("LastModified")), "sample": json.loads(meta) if meta else {}}


def chosen_run(settings: Settings, source_key: str = "", run_id: str = "", timeout: float = 60.0) -> str:
    """The workflow run 03 follows: ``run_id``, else the run the Lambda started for the chosen upload."""
    from etl_kit.monitor import wait_for_run_of

    if run_id:
        return run_id
    up = chosen_upload(settings, source_key)
    return str(wait_for_run_of(up["key"], settings, bucket=up["bucket"], timeout=timeout)["WorkflowRunId"])


# -- 03 monitor ---------------------------------------------------------------------------
def follow_run(settings: Settings, source_key: str = "", run_id: str = "") -> dict[str, Any]:
    """Follow a workflow run to its end (progress bar + updating graph picture).

    The run is ``run_id``, else the run of ``source_key``, else the run of the newest upload.
    """
    from etl_kit.monitor import follow, run_summary

    run_id = chosen_run(settings, source_key, run_id)
    in_notebook = "ipykernel" in sys.modules
    run = follow(run_id, settings, picture=in_notebook)
    summary = run_summary(run)
    record(settings, "run", {k: v for k, v in summary.items() if k != "properties"})
    return run


def cost_table(run: dict[str, Any], settings: Settings) -> pd.DataFrame:
    """What the run cost by component (:func:`etl_kit.cost.run_cost`), with a total row; records the total."""
    from etl_kit.cost import run_cost

    cost = run_cost(run, settings)
    record(settings, "cost", {"run_id": cost.run_id, "total_usd": cost.total_usd, "note": cost.note})
    rows = [dict(x.__dict__) for x in cost.lines]
    rows.append({"component": "total", "usd": cost.total_usd, "derivation": cost.note})
    return _frame(rows, ["component", "quantity", "unit", "unit_usd", "usd", "derivation"])


def node_table(run: dict[str, Any]) -> pd.DataFrame:
    """Each node's state, start, end, duration (as "2.4 s", as the graph shows it) and error."""
    from etl_kit.monitor import node_states

    rows = []
    for n in node_states(run):
        row = dict(n.__dict__)
        seconds = row.pop("duration_s")
        rows.append({**row, "duration": f"{seconds:.1f} s" if seconds is not None else ""})
    return _frame(rows, ["order", "name", "type", "state", "started", "completed", "duration", "error", "run_id"])


def graph_picture(run: dict[str, Any]) -> Figure:
    """The finished run's graph as a picture."""
    from etl_kit.monitor import draw_graph, node_states

    return draw_graph(node_states(run), f"run {run['WorkflowRunId']} · {run['Status']}")


def notifications(settings: Settings, *, expect: int = 5, timeout: float = 10.0) -> pd.DataFrame:
    """The SNS notifications that arrived (Lambda status and every crawler/job state change)."""
    import time

    import pandas as pd

    from etl_kit.monitor import notifications as drain

    frames: list[pd.DataFrame] = []
    deadline = time.monotonic() + timeout
    while True:
        frames.append(drain(settings, wait_seconds=1))
        total = sum(len(f) for f in frames)
        if total >= expect or time.monotonic() > deadline:
            break
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["time", "subject", "message"])
    record(settings, "notifications", len(df))
    return df


def failed_logs(run: dict[str, Any], settings: Settings) -> str:
    """The log tail of each failed node, or a line saying none failed."""
    from etl_kit.monitor import log_tail, node_states

    failed = [n for n in node_states(run) if n.state not in {"SUCCEEDED"}]
    if not failed:
        return "no node failed"
    return "\n\n".join(f"--- {n.name} ({n.state}): {n.error}\n{log_tail(n, settings)}" for n in failed)


def replay_failed(settings: Settings) -> pd.DataFrame:
    """Replay every object whose newest ledger attempt failed (exactly once each); a table of what happened.

    Empty when nothing failed. Rejected objects are not replayed here (the same bytes would be rejected
    again): ``etl-kit replay KEY`` runs one on request.
    """
    from etl_kit import replay

    df = replay.results_frame(replay.replay_failed(settings, progress="ipykernel" in sys.modules))
    record(settings, "replayed", len(df))
    return df


# -- 04 validate --------------------------------------------------------------------------
def first_rows(settings: Settings, limit: int = 10) -> pd.DataFrame:
    """A first look at the loaded table: ``SELECT * FROM <table> LIMIT <limit>``."""
    from etl_kit.warehouse import query

    table = f'"{settings.redshift_schema}"."{settings.redshift_table}"'
    return query(f"SELECT * FROM {table} LIMIT {int(limit)}", settings)


def validate(upload: dict[str, Any], settings: Settings) -> pd.DataFrame:
    """Run the validation checks for ``upload`` (see :func:`chosen_upload`); a pass/fail table (also recorded)."""
    from etl_kit.validate import run_checks

    df = run_checks(settings, upload)
    record(settings, "checks", df.to_dict(orient="records"))
    return df


def assert_checks(checks: pd.DataFrame) -> str:
    """Raise :class:`ValidationFailed` listing the failed checks (so a papermill run goes red)."""
    bad = checks[~checks["passed"]]
    if len(bad):
        raise ValidationFailed("validation failed: " + "; ".join(f"{r.check}: {r.detail}" for r in bad.itertuples()))
    return f"all {len(checks)} checks passed"


# -- 05 analysis --------------------------------------------------------------------------
def sql(text: str, settings: Settings, *, via: str = "data_api") -> pd.DataFrame:
    """Any SQL against the warehouse as a DataFrame (``via="direct"`` uses a driver connection)."""
    from etl_kit.warehouse import query

    return query(text, settings, via="direct" if via == "direct" else "data_api")


# -- 99 teardown --------------------------------------------------------------------------
def teardown(settings: Settings) -> pd.DataFrame:
    """Remove what 01 made, in reverse order; asks first unless ``teardown_confirm`` is false."""
    from etl_kit.provision import teardown_all

    if settings.teardown_confirm:
        what = "keeping the data" if settings.keep_data else "INCLUDING the bucket data and the warehouse"
        try:
            answer = input(f"Delete every etl-kit resource on {settings.target}, {what}? Type 'yes': ")
        except Exception as exc:  # papermill/headless kernels cannot prompt (StdinNotImplementedError, EOFError)
            raise EtlKitError("teardown needs confirmation and this kernel cannot ask: set teardown_confirm=false "
                              "to run it unattended") from exc
        if answer.strip().lower() != "yes":
            raise EtlKitError("teardown cancelled: nothing was deleted")
    return _changes(teardown_all(settings, keep_data=settings.keep_data, yes=True))

"""Watch the pipeline: workflow runs (polled with their graph), SNS notifications, node logs.

Workflow progress has no EventBridge event, so :func:`follow` polls
``get_workflow_run(IncludeGraph=True)`` and shows each node's state and duration,
with a tqdm bar and, in a notebook, a picture of the graph that updates in place.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.exceptions import ResourceNotFound, WaitTimeout, aws_errors

if TYPE_CHECKING:
    import boto3
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["NodeState", "find_run_for_object", "wait_for_run_of", "node_states", "follow", "draw_graph",
           "notifications", "log_tail", "run_summary"]

_DONE_RUN = {"COMPLETED", "STOPPED", "ERROR"}
_COLORS = {"SUCCEEDED": "#2e7d32", "FAILED": "#c62828", "TIMEOUT": "#c62828", "ERROR": "#c62828",
           "STOPPED": "#6d6d6d", "RUNNING": "#1565c0", "STARTING": "#1565c0", "WAITING": "#f9a825",
           "CANCELLED": "#6d6d6d", "NOT STARTED": "#bdbdbd"}


@dataclass
class NodeState:
    """One job or crawler of a workflow run."""

    order: int
    name: str
    type: str
    state: str
    started: _dt.datetime | None
    completed: _dt.datetime | None
    duration_s: float | None
    error: str
    run_id: str


def _runs(settings: Settings, session: boto3.Session | None) -> list[dict[str, Any]]:
    glue = client("glue", settings, session)
    runs: list[dict[str, Any]] = []
    token: str | None = None
    with aws_errors("list workflow runs", settings.workflow):
        while True:
            kw: dict[str, Any] = {"Name": settings.workflow, "IncludeGraph": False, "MaxResults": 1000}
            if token:
                kw["NextToken"] = token
            page = glue.get_workflow_runs(**kw)
            runs.extend(page.get("Runs", []))
            token = page.get("NextToken")
            if not token:
                return runs


def find_run_for_object(key: str, settings: Settings, session: boto3.Session | None = None,
                        *, bucket: str | None = None) -> dict[str, Any] | None:
    """The newest workflow run whose run properties name ``key`` (and ``bucket``), or None."""
    matches = [r for r in _runs(settings, session)
               if r.get("WorkflowRunProperties", {}).get("source_key") == key
               and (bucket is None or r.get("WorkflowRunProperties", {}).get("source_bucket") == bucket)]
    matches.sort(key=lambda r: r.get("StartedOn") or _dt.datetime.min.replace(tzinfo=_dt.UTC), reverse=True)
    return matches[0] if matches else None


def wait_for_run_of(key: str, settings: Settings, session: boto3.Session | None = None, *,
                    timeout: float = 60.0, bucket: str | None = None) -> dict[str, Any]:
    """Wait until the Lambda has started a workflow run for ``key``; return that run."""
    deadline = time.monotonic() + timeout
    while True:
        run = find_run_for_object(key, settings, session, bucket=bucket)
        if run is not None:
            return run
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"no run of workflow {settings.workflow!r} started for {key!r} within {timeout:.0f}s; check the "
                f"Lambda's log group /aws/lambda/{settings.lambda_function} and rule {settings.start_rule!r}")
        time.sleep(0.2)


def _order(graph: dict[str, Any]) -> dict[str, int]:
    """Topological position of each node, so tables and pictures read left to right."""
    nodes = {n["UniqueId"]: n for n in graph.get("Nodes", [])}
    incoming: dict[str, int] = dict.fromkeys(nodes, 0)
    out: dict[str, list[str]] = {k: [] for k in nodes}
    for e in graph.get("Edges", []):
        if e["SourceId"] in nodes and e["DestinationId"] in nodes:
            out[e["SourceId"]].append(e["DestinationId"])
            incoming[e["DestinationId"]] += 1
    ready = sorted([k for k, v in incoming.items() if v == 0], key=lambda k: nodes[k]["Name"])
    order: dict[str, int] = {}
    while ready:
        k = ready.pop(0)
        order[k] = len(order)
        for d in out[k]:
            incoming[d] -= 1
            if incoming[d] == 0:
                ready.append(d)
    for k in nodes:
        order.setdefault(k, len(order))
    return order


# How get_workflow_run(IncludeGraph=True) spells a node's attempts: node type -> (details key, attempts key,
# state key, id key). A job's attempts are job runs (id: the run id); a crawler's are crawls (id: the log stream).
_NODE_KINDS = {"JOB": ("JobDetails", "JobRuns", "JobRunState", "Id"),
               "CRAWLER": ("CrawlerDetails", "Crawls", "State", "LogStream")}


def node_states(run: dict[str, Any]) -> list[NodeState]:
    """The jobs and crawlers of a run (from ``get_workflow_run(IncludeGraph=True)``) in graph order."""
    graph = run.get("Graph", {})
    order = _order(graph)
    out: list[NodeState] = []
    for n in graph.get("Nodes", []):
        kind = _NODE_KINDS.get(n["Type"])
        if kind is None:
            continue
        details, attempts, state_key, id_key = kind
        tries = sorted((n.get(details) or {}).get(attempts) or [], key=lambda r: r.get("StartedOn") or 0)
        last = tries[-1] if tries else {}
        state = last.get(state_key, "NOT STARTED")
        started, completed = last.get("StartedOn"), last.get("CompletedOn")
        err, rid = last.get("ErrorMessage", ""), last.get(id_key, "")
        dur = None
        if started:
            end = completed or _dt.datetime.now(started.tzinfo)
            dur = round((end - started).total_seconds(), 2)
        out.append(NodeState(order.get(n["UniqueId"], 0), n["Name"], n["Type"], state, started, completed, dur,
                             err or "", rid or ""))
    out.sort(key=lambda s: s.order)
    for i, s in enumerate(out):
        s.order = i + 1
    return out


def draw_graph(nodes: list[NodeState], title: str = "") -> Figure:
    """A left-to-right picture of the run: one box per node, coloured by state, with durations."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = Figure(figsize=(max(6.0, 2.6 * len(nodes)), 2.0))
    ax = fig.add_subplot(111)
    ax.set_xlim(0, max(1, len(nodes)) * 2.6)
    ax.set_ylim(0, 2)
    ax.axis("off")
    for i, n in enumerate(nodes):
        x = i * 2.6 + 0.15
        ax.add_patch(FancyBboxPatch((x, 0.5), 2.1, 1.0, boxstyle="round,pad=0.05",
                                    fc=_COLORS.get(n.state, "#bdbdbd"), ec="black", lw=0.8))
        dur = f"{n.duration_s:.1f} s" if n.duration_s is not None else ""
        ax.text(x + 1.05, 1.15, n.name, ha="center", va="center", fontsize=8, color="white", weight="bold")
        ax.text(x + 1.05, 0.8, f"{n.type.lower()} · {n.state} {dur}", ha="center", va="center", fontsize=7,
                color="white")
        if i:
            ax.add_patch(FancyArrowPatch((x - 0.5, 1.0), (x - 0.05, 1.0), arrowstyle="->", mutation_scale=12))
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _get_run(settings: Settings, run_id: str, session: boto3.Session | None) -> dict[str, Any]:
    with aws_errors("get workflow run", f"{settings.workflow}/{run_id}"):
        return dict(client("glue", settings, session).get_workflow_run(Name=settings.workflow, RunId=run_id,
                                                                       IncludeGraph=True)["Run"])


def follow(run_id: str, settings: Settings, session: boto3.Session | None = None, *, timeout: float | None = None,
           progress: bool = True, picture: bool = False) -> dict[str, Any]:
    """Poll a workflow run until it ends; show a progress bar (and an updating picture in a notebook).

    Returns the final run (with ``Graph``). Raises :class:`WaitTimeout` naming the run and the node
    still running when ``timeout`` (default ``settings.wait_timeout_seconds``) passes.
    """
    from tqdm import tqdm

    timeout = timeout if timeout is not None else settings.wait_timeout_seconds
    deadline = time.monotonic() + timeout
    handle = None
    bar = None
    last_sig = None
    try:
        while True:
            run = _get_run(settings, run_id, session)
            nodes = node_states(run)
            done = sum(n.state in {"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR", "CANCELLED"} for n in nodes)
            if progress:
                if bar is None:
                    bar = tqdm(total=max(len(nodes), 1), desc=f"{settings.workflow} {run_id[-8:]}", unit="node")
                bar.total = max(len(nodes), 1)
                bar.n = done
                running = [n.name for n in nodes if n.state in {"RUNNING", "STARTING", "WAITING"}]
                bar.set_postfix_str(", ".join(running) or run["Status"])
                bar.refresh()
            sig = [(n.name, n.state) for n in nodes]
            if picture and sig != last_sig:
                from IPython.display import display

                fig = draw_graph(nodes, f"{settings.workflow} · {run['Status']}")
                if handle is None:
                    handle = display(fig, display_id=True)
                else:
                    handle.update(fig)
                last_sig = sig
            if run["Status"] in _DONE_RUN:
                return run
            if time.monotonic() > deadline:
                busy = [n.name for n in nodes if n.state not in {"SUCCEEDED", "FAILED", "NOT STARTED"}]
                raise WaitTimeout(f"workflow run {run_id} of {settings.workflow!r} still {run['Status']} after "
                                  f"{timeout:.0f}s (running: {', '.join(busy) or 'none'}); raise "
                                  f"wait_timeout_seconds or inspect it with etl-kit / the Glue console")
            time.sleep(0.3)
    finally:
        if bar is not None:
            bar.close()


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """Status, statistics, per-node durations and the data-quality counts from the run properties."""
    props = run.get("WorkflowRunProperties", {})
    nodes = node_states(run)
    return {
        "run_id": run["WorkflowRunId"],
        "status": run["Status"],
        "all_succeeded": bool(nodes) and all(n.state == "SUCCEEDED" for n in nodes),
        "statistics": run.get("Statistics", {}),
        "nodes": [{k: v for k, v in asdict(n).items() if k in {"name", "type", "state", "duration_s", "error"}}
                  for n in nodes],
        "source": f"s3://{props.get('source_bucket', '?')}/{props.get('source_key', '?')}",
        "rows_read": int(props.get("dq_rows_read", 0) or 0),
        "rows_written": int(props.get("dq_rows_written", 0) or 0),
        "rows_quarantined": int(props.get("dq_rows_quarantined", 0) or 0),
        "properties": props,
    }


def _queue_url(settings: Settings, session: boto3.Session | None) -> str:
    sqs = client("sqs", settings, session)
    try:
        return str(sqs.get_queue_url(QueueName=settings.notification_queue)["QueueUrl"])
    except Exception as exc:
        raise ResourceNotFound(f"notifications queue {settings.notification_queue!r} not found; run "
                               f"`etl-kit provision` (it subscribes the queue to {settings.sns_topic!r})") from exc


def notifications(settings: Settings, session: boto3.Session | None = None, *, wait_seconds: int = 1,
                  max_batches: int = 20, delete: bool = True) -> pd.DataFrame:
    """Drain the SNS notifications queue: one row per message (time, subject, message)."""
    import pandas as pd

    sqs = client("sqs", settings, session)
    url = _queue_url(settings, session)
    rows: list[dict[str, Any]] = []
    for _ in range(max_batches):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
                                   VisibilityTimeout=30).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            try:
                env = json.loads(m["Body"])
            except ValueError:
                env = {"Message": m["Body"]}
            rows.append({"time": env.get("Timestamp", ""), "subject": env.get("Subject") or "",
                         "message": env.get("Message", m["Body"])})
        if delete:
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(msgs)])
    return pd.DataFrame(rows, columns=["time", "subject", "message"]).sort_values("time", ignore_index=True)


def log_tail(node: NodeState, settings: Settings, session: boto3.Session | None = None, *, lines: int = 40) -> str:
    """The last ``lines`` of a node's CloudWatch log (a job run's error log, a crawler's log)."""
    logs = client("logs", settings, session)
    if node.type == "JOB":
        groups = [("/aws-glue/python-jobs/error", node.run_id), ("/aws-glue/python-jobs/output", node.run_id),
                  ("/aws-glue/jobs/error", node.run_id)]
    else:
        groups = [("/aws-glue/crawlers", node.name)]
    for group, stream in groups:
        try:
            events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=False,
                                         limit=lines)["events"]
        except Exception:  # that group/stream does not exist for this kind of node
            continue
        if events:
            return "\n".join(e["message"] for e in events[-lines:])
    return f"(no log found for {node.type.lower()} {node.name})"

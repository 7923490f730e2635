"""Job 1 on S3 (Glue job ``csv-to-parquet-job``, Python shell 3.9): validate one CSV object, write Parquet + quarantine.

:func:`run_csv_to_parquet` streams the object through :func:`etl_runtime.transform.transform_stream` and
publishes the results; :func:`main` is the Glue entry point behind ``etl_runtime/entrypoints/csv_to_parquet.py``.
The job needs the ``etl_runtime`` package on its path (``--extra-py-files s3://<assets>/scripts/etl_runtime.zip``)
and pyarrow (library set ``analytics``).

Arguments: ``--WORKFLOW_NAME --WORKFLOW_RUN_ID`` (set by the workflow), ``--dataset_contract`` (JSON),
``--output_prefix --quarantine_prefix --reports_prefix --max_reject_ratio`` and optionally
``--input_prefix``, ``--source_bucket --source_key`` (run without a workflow), and
``--workgroup --database --schema --ledger_table [--secret_arn]`` to record the ledger row of a file that
does not reach job 2: ``rejected`` (or ``skipped`` when the source changed) with the reason, or ``failed``
with ``<exception type>: <message>`` on anything unexpected (the report says the same).
Exits non-zero with one line naming the object and the reason when the file is rejected, and re-raises
unexpected exceptions so Glue marks the run FAILED with the real message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

from etl_runtime.awsutil import error_code, iso_now
from etl_runtime.errors import FileRejected
from etl_runtime.jobargs import parse_job_args
from etl_runtime.keys import output_keys
from etl_runtime.transform import TransformOptions, TransformRejected, transform_stream
from etl_runtime.values import Job1Summary, LoadTarget, SourceObject, Warehouse, WorkflowRun

__all__ = ["Job1Options", "run_csv_to_parquet", "failure_report", "run_properties_from_report", "parse_args",
           "main"]

OPTIONAL = ["WORKFLOW_NAME", "WORKFLOW_RUN_ID", "dataset_contract", "output_prefix", "quarantine_prefix",
            "reports_prefix", "input_prefix", "max_reject_ratio", "source_bucket", "source_key", "source_etag",
            "workgroup", "database", "schema", "ledger_table", "secret_arn", "engine"]
DEFAULTS = {"output_prefix": "output/", "quarantine_prefix": "quarantine/", "reports_prefix": "reports/",
            "input_prefix": "input/", "max_reject_ratio": "0.5", "schema": "public", "engine": "auto"}


@dataclass(frozen=True)
class Job1Options:
    """Where job 1 reads and writes (prefixes of the bucket) and how strict it is.

    Attributes
    ----------
    max_reject_ratio
        Reject the file when quarantined / read rows exceed this.
    engine
        The tokenizer: ``"auto"``, ``"arrow"`` or ``"python"`` (see :class:`~etl_runtime.transform.TransformOptions`).
    """

    input_prefix: str = "input/"
    output_prefix: str = "output/"
    quarantine_prefix: str = "quarantine/"
    reports_prefix: str = "reports/"
    max_reject_ratio: float = 0.5
    engine: str = "auto"

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Job1Options:
        """The options of the job's arguments (:func:`parse_args`, defaults filled in)."""
        return cls(input_prefix=args["input_prefix"], output_prefix=args["output_prefix"],
                   quarantine_prefix=args["quarantine_prefix"], reports_prefix=args["reports_prefix"],
                   max_reject_ratio=float(args["max_reject_ratio"]), engine=args["engine"])

    def keys(self, key: str) -> Dict[str, str]:
        """The keys job 1 writes for source ``key`` (see :func:`etl_runtime.keys.output_keys`)."""
        return output_keys(key, input_prefix=self.input_prefix, output_prefix=self.output_prefix,
                           quarantine_prefix=self.quarantine_prefix, reports_prefix=self.reports_prefix)

    def transform_options(self) -> TransformOptions:
        return TransformOptions(max_reject_ratio=self.max_reject_ratio, engine=self.engine)


# ---------------------------------------------------------------------------------------------
# the job on S3
# ---------------------------------------------------------------------------------------------
def run_csv_to_parquet(source: SourceObject, contract: Any, *, options: Optional[Job1Options] = None,
                       workflow: Optional[WorkflowRun] = None, s3: Any = None, glue: Any = None) -> Dict[str, Any]:
    """Job 1 on S3: stream ``source`` through :func:`transform_stream` and publish the results.

    Output goes to deterministic keys (see :func:`~etl_runtime.keys.output_keys`), so re-running a source
    overwrites. Nothing half-written is visible: results are built in local temp files and uploaded only
    after success. On file rejection the previous output and row quarantine for the key are deleted, the
    source is copied to ``quarantine/<source id>.rejected.csv[.gz]`` and the report is written with state
    ``rejected``. When ``workflow`` names a run the summary is put into its run properties (string values).

    Parameters
    ----------
    source
        The object; its ``etag`` (from the run properties) makes the GET use ``IfMatch`` so an object
        overwritten since the event is detected (reason ``source_changed``: nothing is written, the
        newer version has its own run); its ``version_id`` pins the version read.
    contract
        The dataset contract (dict or :class:`~etl_runtime.contract.CompiledContract`).
    options
        Prefixes, reject ratio and tokenizer (:class:`Job1Options`; its defaults when omitted).
    workflow
        The Glue workflow run the job belongs to (none when omitted).
    s3, glue
        boto3 clients (created when omitted; ``glue`` only when ``workflow`` names a run).

    Returns
    -------
    dict
        The report (also at ``report_key``) plus ``output_key``, ``quarantine_key``, ``report_key``.

    Raises
    ------
    FileRejected
        The object was rejected (``TransformRejected``) or changed (``source_changed``).
    Exception
        Anything unexpected (S3 errors, bugs) is re-raised after a report with state ``failed`` and
        reason ``<exception type>: <message>`` was written to ``report_key`` and the run properties
        (as far as S3 and Glue still answer), so the object's state is never left unrecorded.
    """
    import boto3

    opts = options or Job1Options()
    wf = workflow or WorkflowRun()
    s3 = s3 or boto3.client("s3")
    if glue is None and wf.workflow_name and wf.run_id:
        glue = boto3.client("glue")
    job = _Job1Run(source, wf, opts.keys(source.key), iso_now(), s3, glue)
    try:
        return job.run(contract, opts.transform_options())
    except FileRejected:
        raise
    except Exception as exc:
        rep = failure_report(exc, bucket=source.bucket, key=source.key, etag=source.etag, run_id=wf.run_id,
                             workflow_name=wf.workflow_name, started_at=job.started)
        rep.update(job.keys, output_key="", quarantine_key="")
        with contextlib.suppress(Exception):  # S3 may be what failed; the exception itself is the story
            _put_json(s3, source.bucket, job.keys["report_key"], rep)
        with contextlib.suppress(Exception):
            _put_props(glue, wf, rep)
        raise


def failure_report(exc: BaseException, **meta: Any) -> Dict[str, Any]:
    """The report of a job 1 run that failed unexpectedly: state ``failed``, reason ``Type: message``."""
    text = f"{type(exc).__name__}: {exc}"
    return {"state": "failed", "reason": text[:200], "message": text[:4000], "finished_at": iso_now(), **meta}


class _Job1Run:
    """One run of job 1 on one object: read it, transform it in a temp dir, publish or reject."""

    def __init__(self, source: SourceObject, workflow: WorkflowRun, keys: Dict[str, str], started: str,
                 s3: Any, glue: Any) -> None:
        self.source, self.workflow, self.keys, self.started = source, workflow, keys, started
        self.s3, self.glue = s3, glue

    def run(self, contract: Any, options: TransformOptions) -> Dict[str, Any]:
        obj = self._get_object()
        etag = str(obj.get("ETag", "")).strip('"')
        meta = self._meta(obj, etag)
        src = self.source
        tmp = tempfile.mkdtemp(prefix="etlkit-job1-")
        try:
            pq_path = os.path.join(tmp, "part-0000.parquet")
            q_path = os.path.join(tmp, "quarantine.csv")
            try:
                with open(q_path, "wb") as qf:
                    report = transform_stream(obj["Body"], contract, pq_path, qf, source_name=src.uri,
                                              options=options,
                                              lineage={"source_key": src.key, "source_etag": etag,
                                                       "run_id": self.workflow.run_id})
            except TransformRejected as exc:
                self._reject(exc, meta)
                raise
            finally:
                close = getattr(obj["Body"], "close", None)
                if close:
                    close()
            report.update(meta, finished_at=iso_now())
            self._check_unchanged(etag)
            return self._publish(report, pq_path, q_path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _get_object(self) -> Dict[str, Any]:
        """GET the source (``IfMatch`` its ETag, its version when known); a changed or missing object is
        a ``FileRejected`` (``source_changed`` / ``source_missing``)."""
        src = self.source
        get_args: Dict[str, Any] = {"Bucket": src.bucket, "Key": src.key}
        if src.etag:
            get_args["IfMatch"] = src.etag if src.etag.startswith('"') else f'"{src.etag}"'
        if src.version_id:
            get_args["VersionId"] = src.version_id
        try:
            return dict(self.s3.get_object(**get_args))
        except Exception as exc:
            code = error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise FileRejected(
                    f"{src.uri} changed since the event (ETag is no longer {src.etag}); "
                    "the newer version is processed by its own run", reason="source_changed", bucket=src.bucket,
                    key=src.key,
                ) from exc
            if code in ("NoSuchKey", "404", "NoSuchVersion"):
                raise FileRejected(f"{src.uri} does not exist (deleted since the event?)",
                                   reason="source_missing", bucket=src.bucket, key=src.key) from exc
            raise

    def _meta(self, obj: Dict[str, Any], etag: str) -> Dict[str, Any]:
        """What the report says of the object and the run, plus the keys job 1 writes."""
        src = self.source
        meta = {
            "bucket": src.bucket, "key": src.key, "etag": etag, "version_id": obj.get("VersionId") or src.version_id,
            "size": obj.get("ContentLength"), "run_id": self.workflow.run_id,
            "workflow_name": self.workflow.workflow_name, "started_at": self.started,
        }
        meta.update(self.keys)
        return meta

    def _reject(self, exc: TransformRejected, meta: Dict[str, Any]) -> None:
        """Publish a rejection: no output, a copy of the source in quarantine, the report, the run properties."""
        s3, bucket, keys = self.s3, self.source.bucket, self.keys
        rep = dict(exc.report)
        rep.update(meta, finished_at=iso_now(), quarantine_key="", output_key="")
        _delete_quiet(s3, bucket, keys["output_key"])
        _delete_quiet(s3, bucket, keys["quarantine_key"])
        try:
            s3.copy_object(Bucket=bucket, Key=keys["rejected_copy_key"],
                           CopySource={"Bucket": bucket, "Key": self.source.key,
                                       **({"VersionId": meta["version_id"]} if meta["version_id"] else {})})
            rep["rejected_copy_key"] = keys["rejected_copy_key"]
        except Exception as cexc:  # a copy failure must not hide the rejection itself
            rep["rejected_copy_key"] = ""
            rep["rejected_copy_error"] = str(cexc)
        _put_json(s3, bucket, keys["report_key"], rep)
        _put_props(self.glue, self.workflow, rep)
        exc.bucket, exc.key = bucket, self.source.key

    def _check_unchanged(self, etag: str) -> None:
        """Guard against a newer version having been uploaded meanwhile (its run owns these keys)."""
        src = self.source
        if not src.etag:
            return
        try:
            head = self.s3.head_object(Bucket=src.bucket, Key=src.key)
            if str(head.get("ETag", "")).strip('"') != etag:
                raise FileRejected(f"{src.uri} changed while it was processed; results discarded",
                                   reason="source_changed", bucket=src.bucket, key=src.key)
        except FileRejected:
            raise
        except Exception:  # deleted meanwhile: still publish what we read
            pass

    def _publish(self, report: Dict[str, Any], pq_path: str, q_path: str) -> Dict[str, Any]:
        """Upload the Parquet (and the quarantine, if any row went there), the report and the run properties."""
        s3, bucket, keys = self.s3, self.source.bucket, self.keys
        s3.upload_file(pq_path, bucket, keys["output_key"],
                       ExtraArgs={"ContentType": "application/vnd.apache.parquet"})
        if report["rows_quarantined"]:
            s3.upload_file(q_path, bucket, keys["quarantine_key"], ExtraArgs={"ContentType": "text/csv"})
        else:
            report["quarantine_key"] = ""
            _delete_quiet(s3, bucket, keys["quarantine_key"])
        _delete_quiet(s3, bucket, keys["rejected_copy_key"])
        _put_json(s3, bucket, keys["report_key"], report)
        _put_props(self.glue, self.workflow, report)
        return report


def _delete_quiet(s3: Any, bucket: str, key: str) -> None:
    with contextlib.suppress(Exception):  # deleting something that is not there is fine
        s3.delete_object(Bucket=bucket, Key=key)


def _put_json(s3: Any, bucket: str, key: str, doc: Dict[str, Any]) -> None:
    body = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def run_properties_from_report(report: Dict[str, Any]) -> Dict[str, str]:
    """The run-property summary of a job 1 report (all values strings, as Glue requires).

    The ``dq_*`` figures job 2 reads come from :meth:`Job1Summary.to_run_properties`.
    """
    props = {
        "job1_state": str(report.get("state", "")),
        "job1_reason": str(report.get("reason", "")),
        "dq_rejects_by_reason": json.dumps(report.get("rejects_by_reason", {}), sort_keys=True),
        "dq_warnings_by_rule": json.dumps(report.get("warnings_by_rule", {}), sort_keys=True),
        "dq_report_key": str(report.get("report_key", "")),
        "output_key": str(report.get("output_key", "")),
        "quarantine_key": str(report.get("quarantine_key", "")),
    }
    props.update(Job1Summary.from_report(report).to_run_properties())
    if report.get("message"):
        props["job1_message"] = str(report["message"])[:2000]
    return props


def _put_props(glue: Any, workflow: WorkflowRun, report: Dict[str, Any]) -> None:
    if glue is None or not workflow.workflow_name or not workflow.run_id:
        return
    glue.put_workflow_run_properties(Name=workflow.workflow_name, RunId=workflow.run_id,
                                     RunProperties=run_properties_from_report(report))


# ---------------------------------------------------------------------------------------------
# the Glue entry point
# ---------------------------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Parse job arguments (Glue passes extra ones such as --JOB_ID; they are ignored)."""
    return parse_job_args(OPTIONAL, DEFAULTS, argv, __doc__ or "")


def main(argv: Optional[List[str]] = None) -> int:
    """Run job 1 as Glue starts it: 0 on success, 2 on missing arguments; ``SystemExit`` naming the object
    and the reason when the file is rejected; unexpected exceptions are re-raised (the run FAILs with them)."""
    import boto3

    args = parse_args(argv)
    if "dataset_contract" not in args:
        print("csv_to_parquet: --dataset_contract (JSON) is required", file=sys.stderr)
        return 2
    contract = json.loads(args["dataset_contract"])
    workflow = WorkflowRun(args.get("WORKFLOW_NAME") or "", args.get("WORKFLOW_RUN_ID") or "")
    started_by_workflow = bool(workflow.workflow_name and workflow.run_id)
    glue = boto3.client("glue")
    props: Dict[str, str] = {}
    if started_by_workflow:
        props = glue.get_workflow_run_properties(Name=workflow.workflow_name,
                                                 RunId=workflow.run_id).get("RunProperties", {})
    source = _source_object(args, props)
    if source is None:
        print("csv_to_parquet: no source object: need run properties source_bucket/source_key "
              "(started by the Lambda) or --source_bucket/--source_key", file=sys.stderr)
        return 2
    ledger = _Ledger(args, source, workflow)
    try:
        report = run_csv_to_parquet(source, contract, options=Job1Options.from_args(args), workflow=workflow,
                                    glue=glue if started_by_workflow else None)
    except FileRejected as exc:
        rep = getattr(exc, "report", {}) or {}
        ledger.record("rejected" if exc.reason != "source_changed" else "skipped", exc.reason, str(exc), rep)
        # one line, naming the object and the reason; raising makes Glue mark the run FAILED with it
        raise SystemExit(f"REJECTED {source.uri}: {exc.reason}: {exc}") from None
    except Exception as exc:
        # anything unexpected: the object still gets a terminal state (failed, retryable), then the
        # job FAILs with the real exception
        text = f"{type(exc).__name__}: {exc}"
        ledger.record("failed", text, f"job 1 failed on {source.uri}: {text}", {})
        raise
    print(json.dumps({"state": report["state"], "rows_read": report["rows_read"],
                      "rows_written": report["rows_written"], "rows_quarantined": report["rows_quarantined"],
                      "output_key": report["output_key"], "report_key": report["report_key"]}))
    return 0


def _source_object(args: Mapping[str, str], props: Mapping[str, str]) -> Optional[SourceObject]:
    """The object to read: from the arguments, else the run properties the Lambda set (None when neither)."""
    bucket = args.get("source_bucket") or props.get("source_bucket")
    key = args.get("source_key") or props.get("source_key")
    if not bucket or not key:
        return None
    return SourceObject(bucket=bucket, key=key, etag=args.get("source_etag") or props.get("source_etag") or "",
                        version_id=props.get("source_version_id") or "")


class _Ledger:
    """Records the object's ledger row when the job was given the warehouse (``--workgroup`` ...)."""

    def __init__(self, args: Dict[str, str], source: SourceObject, workflow: WorkflowRun) -> None:
        self.args, self.source, self.workflow = args, source, workflow

    def record(self, state: str, reason: str, message: str, report: Dict[str, Any]) -> None:
        args, src = self.args, self.source
        if not (args.get("workgroup") and args.get("database") and args.get("ledger_table")):
            return
        from etl_runtime.job2 import record_ledger
        from etl_runtime.loadsql import LedgerEntry

        source = SourceObject(src.bucket, src.key, etag=str(report.get("etag") or src.etag),
                              version_id=str(report.get("version_id") or src.version_id))
        entry = LedgerEntry(source=source, state=state, run=self.workflow, reason=reason, message=message,
                            rows_read=report.get("rows_read"), rows_written=report.get("rows_written"),
                            rows_quarantined=report.get("rows_quarantined"))
        try:
            record_ledger(Warehouse(args["workgroup"], args["database"], args.get("secret_arn")),
                          LoadTarget(schema=args["schema"], ledger_table=args["ledger_table"]), entry)
        except Exception as lexc:  # the job's own outcome is the story; the ledger failure is a footnote
            print(f"csv_to_parquet: could not record the ledger row ({state}): {lexc}", file=sys.stderr)

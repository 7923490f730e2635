"""Step ``glue_jobs``: the security configuration and the two jobs (Python shell by default).

Job 1 (``csv_job``) validates one CSV into Parquet; job 2 (``load_job``) loads it into Redshift
through the Data API; it is attached to the Glue connection only with ``network_placement``
``one_az`` / ``every_az`` (see docs/provisioning.md).
Both import the runtime package from ``etl_runtime.zip`` (``--extra-py-files``).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from etl_kit.provision.base import TAGS, Ctx, Resource, Step, read_with
from etl_kit.provision.packaging import CSV_SCRIPT, LOAD_SCRIPT, PIPELINE_ZIP_NAME

__all__ = ["STEP", "job_specs", "CSV_SCRIPT", "LOAD_SCRIPT", "PYTHONSHELL_MODULES"]

# Glue Python shell 3.9's analytics set ships boto3 1.22.5 / botocore 1.25.5 (May 2022), whose Redshift Data
# API has no WorkgroupName: the jobs could not address a Redshift Serverless workgroup with it (found by running
# them on that set locally, etl_localcloud/runtimes.py). So they ask Glue for a newer SDK, the documented way;
# this one is the Lambda python3.12 runtime's, which still supports Python 3.9.
PYTHONSHELL_MODULES = "boto3==1.34.145,botocore==1.34.145"

_JOB_FIELDS = ("Role", "Command", "DefaultArguments", "MaxRetries", "Timeout", "ExecutionProperty",
               "SecurityConfiguration", "Connections", "MaxCapacity", "GlueVersion", "WorkerType", "NumberOfWorkers",
               "Description")


def _security_configuration(ctx: Ctx) -> dict[str, Any]:
    kms = ctx.arns.kms_key
    s3 = {"S3EncryptionMode": "SSE-KMS", "KmsKeyArn": kms} if kms else {"S3EncryptionMode": "SSE-S3"}
    # CloudWatch encryption stays off: turning it on moves job logs to per-configuration log groups.
    return {
        "S3Encryption": [s3],
        "CloudWatchEncryption": {"CloudWatchEncryptionMode": "DISABLED"},
        "JobBookmarksEncryption": {"JobBookmarksEncryptionMode": "DISABLED"},
    }


def _loader_secret_arn(ctx: Ctx) -> str | None:
    from etl_kit.provision.redshift import available
    from etl_kit.provision.redshift_loader import loader_secret_arn

    return loader_secret_arn(ctx) if available(ctx) else None


def job_specs(ctx: Ctx) -> dict[str, dict[str, Any]]:
    """The desired ``create_job`` arguments of each job (without ``Name``)."""
    s = ctx.settings
    a = ctx.arns
    scripts = f"s3://{a.assets_bucket}/{s.scripts_prefix}"
    contract = json.dumps(s.dataset_contract.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    common = {
        "--extra-py-files": scripts + PIPELINE_ZIP_NAME,
        "--TempDir": f"s3://{a.assets_bucket}/temporary/",
        "--job-language": "python",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--dataset_contract": contract,
        "--bucket": a.bucket,
    }
    if s.job_type == "pythonshell":
        common["library-set"] = "analytics"
        common["--additional-python-modules"] = PYTHONSHELL_MODULES
    job1_args = {
        **common,
        "--input_prefix": s.input_prefix,
        "--output_prefix": s.output_prefix,
        "--quarantine_prefix": s.quarantine_prefix,
        "--reports_prefix": s.reports_prefix,
        "--max_reject_ratio": str(s.max_reject_ratio),
        # job 1 writes the ledger row of a rejected file (the workflow stops before job 2 then)
        "--workgroup": s.redshift_workgroup,
        "--database": s.redshift_database,
        "--schema": s.redshift_schema,
        "--ledger_table": s.ledger_table,
    }
    job2_args = {
        **common,
        "--output_prefix": s.output_prefix,
        "--reports_prefix": s.reports_prefix,
        "--workgroup": s.redshift_workgroup,
        "--database": s.redshift_database,
        "--schema": s.redshift_schema,
        "--table": s.redshift_table,
        "--ledger_table": s.ledger_table,
        "--redshift_role_arn": a.role(s.redshift_role),
    }
    # both jobs sign in to the warehouse as the loader user (step redshift), never as the namespace's admin
    secret = _loader_secret_arn(ctx)
    if secret:
        job1_args["--secret_arn"] = job2_args["--secret_arn"] = secret

    def spec(script: str, role: str, args: dict[str, Any], what: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Description": f"etl-kit: {what}",
            "Role": a.role(role),
            "Command": {"Name": s.job_type, "PythonVersion": s.job_python_version, "ScriptLocation": scripts + script},
            "DefaultArguments": args,
            "MaxRetries": s.job_max_retries,
            "Timeout": s.job_timeout_minutes,
            "ExecutionProperty": {"MaxConcurrentRuns": s.job_max_concurrent_runs},
            "SecurityConfiguration": a.security_configuration,
        }
        if s.job_type == "pythonshell":
            out.update(MaxCapacity=0.0625, GlueVersion="3.0")
        else:
            out.update(GlueVersion="4.0", WorkerType="G.1X", NumberOfWorkers=2)
        return out

    job2 = spec(LOAD_SCRIPT, s.load_job_role, job2_args, "load Parquet into Redshift via the Data API")
    if s.network_placement != "none":  # the Data API needs no VPC; on the connection only by choice
        job2["Connections"] = {"Connections": [s.glue_connection]}
    return {
        s.csv_job: spec(CSV_SCRIPT, s.csv_job_role, job1_args, "validate one CSV into Parquet"),
        s.load_job: job2,
    }


def _security_configuration_resource(ctx: Ctx) -> Resource:
    glue = ctx.client("glue")
    name = ctx.arns.security_configuration
    want = _security_configuration(ctx)

    def project(r: dict[str, Any]) -> dict[str, Any] | None:
        sc = r.get("SecurityConfiguration")
        return {"EncryptionConfiguration": sc.get("EncryptionConfiguration")} if sc else None

    def create() -> None:
        glue.create_security_configuration(Name=name, EncryptionConfiguration=want)

    def replace(_: Any) -> None:  # no UpdateSecurityConfiguration API: replace it
        glue.delete_security_configuration(Name=name)
        create()

    return Resource("glue-security-configuration", name,
                    read=read_with(partial(glue.get_security_configuration, Name=name), project),
                    desired={"EncryptionConfiguration": want}, create=create, update=replace,
                    delete=partial(glue.delete_security_configuration, Name=name), arn=ctx.arns.catalog)


def _job_state(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r["Job"].get(k) for k in _JOB_FIELDS}
    if not (out["Connections"] or {}).get("Connections"):
        out["Connections"] = None  # absent or empty: no connection
    return out


def _job(ctx: Ctx, name: str, spec: dict[str, Any]) -> Resource:
    glue = ctx.client("glue")
    return Resource("glue-job", name,
                    read=read_with(partial(glue.get_job, JobName=name),
                                   _job_state),
                    # no connection is desired as None, so a job left on one is updated (UpdateJob replaces
                    # the whole definition, which drops the connection)
                    desired={"Connections": None, **spec}, create=partial(glue.create_job, Name=name, Tags=TAGS,
                                                                          **spec),
                    update=lambda _: glue.update_job(JobName=name, JobUpdate=spec),
                    delete=partial(glue.delete_job, JobName=name), arn=ctx.arns.job(name))


STEP = Step("glue_jobs", lambda ctx: [_security_configuration_resource(ctx),
                                      *(_job(ctx, name, spec) for name, spec in job_specs(ctx).items())])

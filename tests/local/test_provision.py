"""Provisioning against the local cloud: create, idempotence, drift, failure injection, teardown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from etl_kit.clients import client
from etl_kit.config import Settings
from etl_kit.provision import (
    STEP_NAMES,
    InjectedFailure,
    apply_all,
    inventory,
    plan_all,
    teardown_all,
)
from etl_kit.provision.base import Change
from tests.local._provision_helpers import unique

pytestmark = pytest.mark.local

SHARED_LOG_GROUPS = ("/aws-glue/",)


def _actions(changes: list[Change]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in changes:
        out.setdefault(c.action, []).append(f"{c.step}:{c.resource_type}:{c.name}")
    return out


def _leftovers(settings: Settings) -> list[str]:
    left = []
    for step, items in inventory(settings).items():
        for name, info in items.items():
            if not isinstance(info, dict) or not info.get("exists") or name.startswith(SHARED_LOG_GROUPS):
                continue
            left.append(f"{step}:{name}")
    return left



@pytest.fixture
def settings(cloud: Settings, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Any:
    tag = "".join(ch for ch in request.node.name.lower() if ch.isalnum())[-20:]
    s = unique(cloud, tag)
    yield s
    teardown_all(s, yes=True)


def _assert_configuration(s: Settings) -> None:
    acct = "123456789012"
    bucket = s.bucket_name(acct)
    s3 = client("s3", s)
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(pab.values())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s.assets_bucket_name(acct)).get("Contents", [])]
    assert f"{s.scripts_prefix}etl_runtime.zip" in keys
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # no prefix markers

    iam = client("iam", s)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NoSuchEntity"):  # EventBridge reaches its targets without a role
        iam.get_role(RoleName=s.events_role)
    for role in (s.lambda_role, s.crawler_role, s.csv_job_role, s.load_job_role, s.redshift_role):
        r = iam.get_role(RoleName=role)["Role"]
        assert r["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        doc = iam.get_role_policy(RoleName=role, PolicyName="etl-kit-least-privilege")["PolicyDocument"]
        for st in doc["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert all("*" not in a for a in acts)

    # both jobs sign in to the warehouse as the loader user, with its secret (never the admin's)
    loader = client("secretsmanager", s).describe_secret(SecretId=s.redshift_loader_secret)["ARN"]
    for job in (s.csv_job, s.load_job):
        assert client("glue", s).get_job(JobName=job)["Job"]["DefaultArguments"]["--secret_arn"] == loader

    lam = client("lambda", s)
    cfg = lam.get_function_configuration(FunctionName=s.lambda_function)
    assert cfg["Timeout"] == s.lambda_timeout_seconds and cfg["Handler"] == "etl_runtime.lambda_handler.handler"
    assert cfg["Runtime"] == "python3.12"
    assert set(cfg["Environment"]["Variables"]) == {"WORKFLOW_NAME", "BUCKET", "INPUT_PREFIX", "STATE_PREFIX",
                                                    "TOPIC_ARN", "BACKOFF_BASE_SECONDS", "BACKOFF_MAX_SECONDS"}
    # the durable intake: rule -> queue -> mapping -> function; no direct invocation left
    sqs = client("sqs", s)
    qurl = sqs.get_queue_url(QueueName=s.intake_queue)["QueueUrl"]
    qattrs = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["All"])["Attributes"]
    assert int(qattrs["VisibilityTimeout"]) == 6 * s.lambda_timeout_seconds
    redrive = json.loads(qattrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{s.intake_dlq}") and int(redrive["maxReceiveCount"]) == 1000
    qpol = json.loads(qattrs["Policy"])["Statement"]
    assert [(st["Principal"], st["Action"], st["Condition"]["ArnEquals"]["aws:SourceArn"]) for st in qpol] == [
        ({"Service": "events.amazonaws.com"}, "sqs:SendMessage",
         [f"arn:aws:events:{s.region}:{acct}:rule/{s.start_rule}"])]
    [esm] = lam.list_event_source_mappings(FunctionName=s.lambda_function)["EventSourceMappings"]
    assert esm["EventSourceArn"] == qattrs["QueueArn"] and esm["State"] == "Enabled"
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["ScalingConfig"]["MaximumConcurrency"] >= 2
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        lam.get_function_event_invoke_config(FunctionName=s.lambda_function)
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName=f"{s.lambda_function}-dlq")
    policy = client("iam", s).get_role_policy(RoleName=s.lambda_role, PolicyName="etl-kit-least-privilege")
    consume = next(st for st in policy["PolicyDocument"]["Statement"] if st["Sid"] == "ConsumeIntake")
    assert sorted(consume["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
                                         "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert consume["Resource"] in (qattrs["QueueArn"], [qattrs["QueueArn"]])

    glue = client("glue", s)
    crawler = glue.get_crawler(Name=s.csv_crawler)["Crawler"]
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    assert crawler["Targets"]["S3Targets"][0]["Path"] == f"s3://{bucket}/{s.input_prefix}"
    job1 = glue.get_job(JobName=s.csv_job)["Job"]
    assert job1["Command"]["Name"] == "pythonshell" and job1["MaxCapacity"] == 0.0625
    assert job1["Command"]["ScriptLocation"].endswith("/scripts/csv_to_parquet.py")
    assert json.loads(job1["DefaultArguments"]["--dataset_contract"])["primary_key"] == ["order_id"]
    assert job1["DefaultArguments"]["--extra-py-files"].endswith("etl_runtime.zip")
    assert job1["SecurityConfiguration"] == f"{s.workflow}-security"
    job2 = glue.get_job(JobName=s.load_job)["Job"]
    # the default placement: job 2 reaches Redshift through the Data API, off the Glue connection
    assert "Connections" not in job2 or not job2["Connections"].get("Connections")
    assert job2["DefaultArguments"]["--table"] == s.redshift_table
    assert glue.get_security_configuration(Name=f"{s.workflow}-security")["SecurityConfiguration"]
    assert glue.get_workflow(Name=s.workflow)["Workflow"]["MaxConcurrentRuns"] == s.workflow_max_concurrent_runs
    start = glue.get_trigger(Name=f"{s.workflow}-start")["Trigger"]
    assert start["Type"] == "ON_DEMAND" and start["Actions"][0]["CrawlerName"] == s.csv_crawler
    t2 = glue.get_trigger(Name=f"{s.workflow}-after-{s.csv_job}")["Trigger"]
    assert t2["Predicate"]["Conditions"][0]["State"] == "SUCCEEDED"
    assert t2["Actions"][0]["CrawlerName"] == s.parquet_crawler

    sns = client("sns", s)
    topic = f"arn:aws:sns:{s.region}:{acct}:{s.sns_topic}"
    tpol = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert {st["Sid"] for st in tpol["Statement"]} == {"EventBridgeRules", "StartLambda"}
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [x["Protocol"] for x in subs] == ["sqs"]

    ev = client("events", s)
    pattern = json.loads(ev.describe_rule(Name=s.start_rule)["EventPattern"])
    assert pattern["detail"]["object"]["key"] == [{"prefix": s.input_prefix}]
    [target] = ev.list_targets_by_rule(Rule=s.start_rule)["Targets"]
    assert target["Arn"] == qattrs["QueueArn"] and target["RetryPolicy"]["MaximumRetryAttempts"] == 4
    assert target["DeadLetterConfig"]["Arn"].endswith(f":{s.intake_dlq}")
    jt = ev.list_targets_by_rule(Rule=s.job01_rule)["Targets"][0]
    assert "<state>" in jt["InputTransformer"]["InputTemplate"]

    logs = client("logs", s)
    g = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{s.lambda_function}")["logGroups"][0]
    assert g["retentionInDays"] == s.log_retention_days

    ec2 = client("ec2", s)
    sg = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{s.redshift_workgroup}-sg"]}])
    group = sg["SecurityGroups"][0]
    assert any(p.get("UserIdGroupPairs", [{}])[0].get("GroupId") == group["GroupId"] for p in group["IpPermissions"])
    assert _kit_endpoints(s) == {}  # nothing needs them: no hourly charge


def _kit_endpoints(s: Settings) -> dict[str, list[str]]:
    """The kit's VPC endpoints: service -> the subnets it sits in."""
    found = client("ec2", s).describe_vpc_endpoints(Filters=[{"Name": "tag:etl-kit", "Values": ["managed"]}])
    return {e["ServiceName"]: sorted(e.get("SubnetIds", [])) for e in found["VpcEndpoints"]
            if e.get("State", "").lower() not in ("deleted", "deleting")}


def test_seed_placement_puts_job2_on_the_connection_with_endpoints_in_every_az(settings: Settings) -> None:
    seed = settings.model_copy(update={"network_placement": "every_az"})
    apply_all(seed, progress=False)
    job2 = client("glue", seed).get_job(JobName=seed.load_job)["Job"]
    assert job2["Connections"]["Connections"] == [seed.glue_connection]
    ec2 = client("ec2", seed)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    azs = {x["AvailabilityZone"] for x in subnets}
    endpoints = _kit_endpoints(seed)
    assert set(endpoints) == {f"com.amazonaws.{seed.region}.{svc}"
                              for svc in ("s3", "secretsmanager", "redshift-data", "sts", "glue", "logs")}
    for svc in ("secretsmanager", "redshift-data", "sts", "glue", "logs"):
        assert len(endpoints[f"com.amazonaws.{seed.region}.{svc}"]) == len(azs) > 1
    assert set(_actions(apply_all(seed, progress=False))) <= {"no-change", "skip"}

    # one_az: the kit's interface endpoints move to the connection's subnet only
    one = settings.model_copy(update={"network_placement": "one_az"})
    moved = {x for x in _actions(apply_all(one, progress=False)).get("update", []) if ":vpc-endpoint-" in x}
    assert len(moved) == 5, moved
    first = sorted(subnets, key=lambda x: (x["AvailabilityZone"], x["SubnetId"]))[0]["SubnetId"]
    assert {svc: sn for svc, sn in _kit_endpoints(one).items() if not svc.endswith(".s3")} == {
        f"com.amazonaws.{one.region}.{svc}": [first] for svc in ("secretsmanager", "redshift-data", "sts", "glue",
                                                                  "logs")}
    assert set(_actions(apply_all(one, progress=False))) <= {"no-change", "skip"}

    # back to the default: the kit's endpoints are planned for deletion, then removed; job 2 leaves the VPC
    plan = _actions(plan_all(settings, only=["network"]))
    assert len([x for x in plan.get("delete", []) if ":vpc-endpoint-" in x]) == 6, plan
    assert any(x.endswith(f"glue-job:{settings.load_job}") for x in _actions(plan_all(settings)).get("update", []))
    apply_all(settings, progress=False)
    assert _kit_endpoints(settings) == {}
    assert not client("glue", settings).get_job(JobName=settings.load_job)["Job"].get("Connections")


def test_apply_creates_everything_then_noop_then_teardown(settings: Settings) -> None:
    plan = plan_all(settings)
    assert "update" not in _actions(plan) and _actions(plan).get("create")

    first = apply_all(settings, progress=False)
    assert "update" not in _actions(first), _actions(first).get("update")
    _assert_configuration(settings)

    second = apply_all(settings, progress=False)
    acts = _actions(second)
    assert set(acts) <= {"no-change", "skip"}, {k: v for k, v in acts.items() if k not in ("no-change", "skip")}
    assert set(_actions(plan_all(settings))) <= {"no-change", "skip"}

    inv = inventory(settings)
    assert inv["lambda"][settings.lambda_function]["arn"].startswith("arn:aws:lambda:")
    assert inv["iam"][settings.lambda_role]["exists"]

    teardown_all(settings, yes=True)
    assert _leftovers(settings) == []
    again = teardown_all(settings, yes=True)
    assert set(_actions(again)) <= {"skip"}


def test_drift_is_corrected_and_reported(settings: Settings) -> None:
    apply_all(settings, progress=False)
    acct = "123456789012"
    client("lambda", settings).update_function_configuration(FunctionName=settings.lambda_function, Timeout=7)
    client("s3", settings).delete_bucket_encryption(Bucket=settings.bucket_name(acct))
    client("events", settings).put_rule(Name=settings.job01_rule,
                                        EventPattern=json.dumps({"source": ["aws.glue"]}), State="ENABLED")
    client("logs", settings).put_retention_policy(logGroupName=f"/aws/lambda/{settings.lambda_function}",
                                                  retentionInDays=1)
    client("glue", settings).update_workflow(Name=settings.workflow, MaxConcurrentRuns=1)
    lam = client("lambda", settings)
    [esm] = lam.list_event_source_mappings(FunctionName=settings.lambda_function)["EventSourceMappings"]
    lam.update_event_source_mapping(UUID=esm["UUID"], Enabled=False, BatchSize=3)
    sqs = client("sqs", settings)
    qurl = sqs.get_queue_url(QueueName=settings.intake_queue)["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=settings.intake_dlq)["QueueUrl"],
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=qurl, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq, "maxReceiveCount": 2})})

    plan = {(c.resource_type, c.name): c for c in plan_all(settings) if c.action != "no-change"}
    assert plan[("lambda-function", settings.lambda_function)].diffs["Timeout"] == {"actual": 7, "desired": 60}
    assert plan[("s3-encryption", settings.bucket_name(acct))].action == "create"
    assert "EventPattern" in plan[("events-rule", settings.job01_rule)].diffs
    assert "retentionInDays" in plan[("log-group", f"/aws/lambda/{settings.lambda_function}")].diffs
    assert "MaxConcurrentRuns" in plan[("glue-workflow", settings.workflow)].diffs
    mapping = plan[("lambda-event-source-mapping", f"{settings.intake_queue} -> {settings.lambda_function}")]
    assert set(mapping.diffs) == {"State", "BatchSize"}
    assert "RedrivePolicy" in plan[("sqs-queue", settings.intake_queue)].diffs

    fixed = {(c.resource_type, c.name) for c in apply_all(settings, progress=False)
             if c.action in ("update", "create")}
    assert ("lambda-function", settings.lambda_function) in fixed
    assert ("events-rule", settings.job01_rule) in fixed
    assert client("lambda", settings).get_function_configuration(FunctionName=settings.lambda_function)[
        "Timeout"] == 60
    [esm] = lam.list_event_source_mappings(FunctionName=settings.lambda_function)["EventSourceMappings"]
    assert (esm["State"], esm["BatchSize"]) == ("Enabled", 10)
    assert json.loads(sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["RedrivePolicy"])["Attributes"][
        "RedrivePolicy"])["maxReceiveCount"] == 1000
    final = _actions(apply_all(settings, progress=False))
    assert set(final) <= {"no-change", "skip"}, final.get("update")


def test_apply_removes_the_direct_invocation_layout(settings: Settings) -> None:
    """A pipeline provisioned before the intake queue: its DLQs, invoke config and permission go on apply."""
    apply_all(settings, progress=False)
    lam, sqs = client("lambda", settings), client("sqs", settings)
    old_dlq = sqs.create_queue(QueueName=f"{settings.lambda_function}-dlq")["QueueUrl"]
    sqs.create_queue(QueueName=f"{settings.start_rule}-dlq")
    lam.put_function_event_invoke_config(FunctionName=settings.lambda_function, MaximumRetryAttempts=2,
                                         DestinationConfig={"OnFailure": {"Destination": sqs.get_queue_attributes(
                                             QueueUrl=old_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]}})
    lam.add_permission(FunctionName=settings.lambda_function, StatementId="etl-kit-start-rule",
                       Action="lambda:InvokeFunction", Principal="events.amazonaws.com")
    # the EventBridge role an earlier etl-kit made (attached to nothing), with its inline policy
    iam = client("iam", settings)
    iam.create_role(RoleName=settings.events_role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName=settings.events_role, PolicyName="etl-kit-least-privilege", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}))
    legacy = {("iam-role", settings.events_role), ("lambda-event-invoke-config", settings.lambda_function),
              ("lambda-permission", f"{settings.lambda_function}/etl-kit-start-rule"),
              ("sqs-queue", f"{settings.lambda_function}-dlq"), ("sqs-queue", f"{settings.start_rule}-dlq")}
    assert {(c.resource_type, c.name) for c in plan_all(settings) if c.action == "delete"} == legacy
    assert {(c.resource_type, c.name) for c in apply_all(settings, progress=False) if c.action == "delete"} == legacy
    _assert_configuration(settings)
    assert set(_actions(apply_all(settings, progress=False))) <= {"no-change", "skip"}


@pytest.mark.parametrize("step", STEP_NAMES)
def test_failure_after_step_converges_and_partial_teardown_is_clean(settings: Settings, step: str) -> None:
    with pytest.raises(InjectedFailure):
        apply_all(settings, fail_after_step=step, progress=False)
    teardown_all(settings, yes=True)  # from a partial state
    assert _leftovers(settings) == []
    with pytest.raises(InjectedFailure):
        apply_all(settings, fail_after_step=step, progress=False)
    apply_all(settings, progress=False)
    final = _actions(apply_all(settings, progress=False))
    assert set(final) <= {"no-change", "skip"}, final.get("update")


def test_keep_data_keeps_bucket_and_contents(settings: Settings) -> None:
    apply_all(settings, only=["s3"], progress=False)
    bucket = settings.bucket_name("123456789012")
    client("s3", settings).put_object(Bucket=bucket, Key="input/x.csv", Body=b"a\n1\n")
    changes = teardown_all(settings, keep_data=True, only=["s3"])
    assert any(c.action == "skip" and c.name == bucket for c in changes)
    assert client("s3", settings).head_object(Bucket=bucket, Key="input/x.csv")
    from etl_kit.exceptions import EtlKitError

    with pytest.raises(EtlKitError, match="not confirmed"):
        teardown_all(settings, only=["s3"], confirm=lambda q: False)


def test_redshift_step(settings: Settings) -> None:
    apply_all(settings, only=["network", "iam", "redshift"], progress=False)
    rs = client("redshift-serverless", settings)
    wg = rs.get_workgroup(workgroupName=settings.redshift_workgroup)["workgroup"]
    assert wg["publiclyAccessible"] is False
    ns = rs.get_namespace(namespaceName=settings.redshift_namespace)["namespace"]
    assert ns["adminPasswordSecretArn"]
    conn = client("glue", settings).get_connection(Name=settings.glue_connection)["Connection"]
    assert conn["ConnectionProperties"]["JDBC_CONNECTION_URL"].startswith("jdbc:redshift://")
    again = apply_all(settings, only=["network", "iam", "redshift"], progress=False)
    assert set(_actions(again)) <= {"no-change", "skip"}, _actions(again)
    teardown_all(settings, yes=True, only=["network", "iam", "redshift"])


REDSHIFT = ["network", "iam", "redshift"]


def _loader_refusal(rd: Any, target: Any, sql: str, secret: str) -> str:
    from tests.local._data_api import run_statement

    d = run_statement(rd, target, sql, SecretArn=secret)
    assert d["Status"] == "FAILED", f"the loader could run {sql!r}"
    return str(d["Error"])


def test_the_loader_user_can_load_and_record_but_nothing_more(settings: Settings) -> None:
    """Provisioning makes the loader user with a load's grants only; its password is made once; teardown drops
    the user and deletes its secret."""
    from etl_runtime.job2 import record_ledger
    from etl_runtime.loadsql import LedgerEntry
    from etl_runtime.values import LoadTarget, SourceObject, Warehouse, WorkflowRun
    from tests.local._data_api import Target, finished, rows

    apply_all(settings, only=REDSHIFT, progress=False)
    sm, rd = client("secretsmanager", settings), client("redshift-data", settings)
    loader = sm.describe_secret(SecretId=settings.redshift_loader_secret)["ARN"]
    value = json.loads(sm.get_secret_value(SecretId=loader)["SecretString"])
    assert value["username"] == settings.redshift_loader_user and len(value["password"]) == 32
    target = Target(settings.redshift_workgroup, settings.redshift_database)
    assert rows(rd, target, "SELECT current_user", SecretArn=loader) == [[settings.redshift_loader_user]]

    # what job 1's rejected path does, as the loader: its ledger row is written
    schema, ledger, table = settings.redshift_schema, settings.ledger_table, settings.redshift_table
    entry = LedgerEntry(SourceObject("bkt", "input/x.csv", "e1"), "rejected", WorkflowRun("wf", "wr_loader"),
                        reason="no_data_rows", message="rejected as the loader")
    record_ledger(Warehouse(settings.redshift_workgroup, settings.redshift_database, loader),
                  LoadTarget(schema=schema, ledger_table=ledger), entry, rd)
    assert rows(rd, target, f'SELECT "state", "message" FROM "{schema}"."{ledger}" WHERE "run_id" = \'wr_loader\'',
                SecretArn=loader) == [["rejected", "rejected as the loader"]]
    # and a load's statements on the target: staging, COPY-free insert, delete
    finished(rd, target, ["CREATE TEMP TABLE etl_kit_staging (x INT)", "DROP TABLE etl_kit_staging",
                          f'LOCK "{schema}"."{table}"', f'DELETE FROM "{schema}"."{table}" WHERE 1 = 0'],
             SecretArn=loader)
    # nothing outside its grants
    admin = client("redshift-serverless", settings).get_namespace(
        namespaceName=settings.redshift_namespace)["namespace"]["adminPasswordSecretArn"]
    other = f"loader_cannot_read_{settings.redshift_loader_user}"
    finished(rd, target, f"CREATE TABLE {schema}.{other} (x INT)", SecretArn=admin)
    for sql in (f'DROP TABLE "{schema}"."{table}"', f'ALTER TABLE "{schema}"."{ledger}" ADD COLUMN y INT',
                f'TRUNCATE "{schema}"."{ledger}"', "CREATE SCHEMA loader_cannot_create",
                f"SELECT * FROM {schema}.{other}", "CREATE USER loader_cannot_make PASSWORD 'Abcdefg1'"):
        err = _loader_refusal(rd, target, sql, loader).lower()
        assert "permission denied" in err or "must be owner" in err, (sql, err)
    finished(rd, target, f"DROP TABLE {schema}.{other}", SecretArn=admin)

    # idempotent: nothing to change, and the password is not made again
    version = sm.describe_secret(SecretId=loader)["VersionIdsToStages"]
    assert set(_actions(apply_all(settings, only=REDSHIFT, progress=False))) <= {"no-change", "skip"}
    assert sm.describe_secret(SecretId=loader)["VersionIdsToStages"] == version
    # drift: a revoked grant and a changed password are put back (the password from the secret)
    finished(rd, target, [f'REVOKE DELETE ON "{schema}"."{table}" FROM "{settings.redshift_loader_user}"',
                          f"ALTER USER \"{settings.redshift_loader_user}\" PASSWORD 'Changed12345'"], SecretArn=admin)
    [drift] = [c for c in plan_all(settings, only=REDSHIFT) if c.action != "no-change" and c.action != "skip"]
    assert drift.resource_type == "redshift-user" and set(drift.diffs) == {"signs_in", "grants"}
    apply_all(settings, only=REDSHIFT, progress=False)
    assert rows(rd, target, "SELECT current_user", SecretArn=loader) == [[settings.redshift_loader_user]]
    assert set(_actions(plan_all(settings, only=REDSHIFT))) <= {"no-change", "skip"}

    # teardown (keeping the warehouse) drops the user and deletes its secret
    gone = teardown_all(settings, keep_data=True, only=REDSHIFT)
    assert {(c.resource_type, c.name) for c in gone if c.action == "delete"} >= {
        ("redshift-user", settings.redshift_loader_user), ("secretsmanager-secret", settings.redshift_loader_secret)}
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="ResourceNotFound"):
        sm.describe_secret(SecretId=settings.redshift_loader_secret)
    assert rows(rd, target, "SELECT count(*) FROM pg_user WHERE usename = :u", SecretArn=admin,
                Parameters=[{"name": "u", "value": settings.redshift_loader_user}]) == [[0]]
    teardown_all(settings, yes=True, only=REDSHIFT)


def test_cli_plan_and_resources(settings: Settings, tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from etl_kit.cli import cli

    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(settings.to_params()))
    r = CliRunner().invoke(cli, ["provision", "--params", str(params), "--plan"])
    assert r.exit_code == 0, r.output
    assert "create" in r.output and settings.lambda_function in r.output
    assert "idle cost per month (what these resources would cost on AWS" in r.output, r.output
    assert "0 endpoints x 0 AZ x 730 h" in r.output and "$    0.80" in r.output, r.output
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({**settings.to_params(), "network_placement": "every_az"}))
    r = CliRunner().invoke(cli, ["provision", "--params", str(seed), "--plan"])
    assert r.exit_code == 0 and "5 endpoints x 6 AZ x 730 h" in r.output and "$  219.80" in r.output, r.output
    r = CliRunner().invoke(cli, ["resources", "--params", str(params)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["teardown", "--params", str(params)], input="n\n")
    assert r.exit_code != 0


def test_provisioning_migrates_an_old_ledger_the_loader_may_not_alter(settings: Settings) -> None:
    """The loader user does not own the ledger, so an older etl-kit's ledger is migrated by provisioning."""
    from etl_kit.warehouse import execute
    from etl_runtime.job2 import record_ledger
    from etl_runtime.loadsql import LEDGER_COLUMNS, LedgerEntry
    from etl_runtime.values import LoadTarget, SourceObject, Warehouse, WorkflowRun
    from tests.local._data_api import Target, rows

    s = settings.model_copy(update={"ledger_table": f"ledger_{settings.redshift_loader_user}"})
    apply_all(s, only=REDSHIFT, progress=False)
    schema, ledger = s.redshift_schema, s.ledger_table
    old_cols = [f'"{n}" {t}' for n, t in LEDGER_COLUMNS if n != "attempt"]
    execute([f"DROP TABLE {schema}.{ledger}",
             f'CREATE TABLE {schema}.{ledger} ({", ".join(old_cols)}, PRIMARY KEY ("bucket", "key", "etag"))',
             f"INSERT INTO {schema}.{ledger} (bucket, key, etag, run_id, state, rows_loaded) "
             "VALUES ('b', 'input/o.csv', 'e1', 'wr_old', 'failed', 0)"], s)
    [change] = [c for c in plan_all(s, only=REDSHIFT) if c.action not in ("no-change", "skip")
                and c.resource_type == "redshift-tables"]
    assert change.diffs["ledger_layout"] == {"actual": "before attempts", "desired": "attempts"}
    apply_all(s, only=REDSHIFT, progress=False)  # migrates it and grants the loader the new table again
    assert set(_actions(plan_all(s, only=REDSHIFT))) <= {"no-change", "skip"}
    loader = client("secretsmanager", s).describe_secret(SecretId=s.redshift_loader_secret)["ARN"]
    rd = client("redshift-data", s)
    record_ledger(Warehouse(s.redshift_workgroup, s.redshift_database, loader),
                  LoadTarget(schema=schema, ledger_table=ledger),
                  LedgerEntry(SourceObject("b", "input/o.csv", "e1"), "rejected", WorkflowRun(run_id="wr_new")), rd)
    assert rows(rd, Target(s.redshift_workgroup), f'SELECT "run_id", "attempt" FROM {schema}.{ledger} ORDER BY 2',
                SecretArn=loader) == [["wr_old", 1], ["wr_new", 2]]
    execute(f"DROP TABLE {schema}.{ledger}", s)
    teardown_all(s, yes=True, only=REDSHIFT)

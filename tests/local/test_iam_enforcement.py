"""IAM enforced for the pipeline's own principals (issue 12 part 1), on a local cloud of this module's own.

The first tests use a probe role (trusting the account, so the admin may assume it) to show the decision
logic and the error shapes; the rest run the provisioned pipeline with one statement of one kit role
removed and assert that the node needing it fails with AccessDenied naming the action, and that
provisioning restores it.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from etl_kit import local
from etl_kit.config import Settings
from etl_kit.provision import apply_all
from etl_kit.provision.policies import INLINE_POLICY_NAME, ROLE_SERVICES, bucket_policy, role_policies
from tests.conftest import wait_for
from tests.local._pipeline_helpers import csv_bytes, ledger_rows, outcome, put, row, wait_idle

pytestmark = pytest.mark.local

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def kit(module_cloud: Settings) -> Settings:
    """The module's own cloud with the whole pipeline provisioned, enforcement on (the default)."""
    apply_all(module_cloud, progress=False)
    return module_cloud


def health(settings: Settings) -> dict[str, Any]:
    with urllib.request.urlopen(f"{settings.local_endpoint}/_etl_kit/health", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def denials_after(settings: Settings, seq: int) -> list[dict[str, str]]:
    return [d for d in health(settings)["iam"]["recent_denials"] if int(d["seq"]) > seq]


def last_seq(settings: Settings) -> int:
    return int(health(settings)["iam"].get("denial_seq", 0))


@pytest.fixture(scope="module")
def probe(kit: Settings, module_boto: Callable[[str], Any]) -> Callable[..., Callable[[str], Any]]:
    """``probe(*documents)``: clients signed with a fresh session of a role holding ``documents`` inline."""
    iam, sts = module_boto("iam"), module_boto("sts")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}

    def make(*documents: dict[str, Any]) -> Callable[[str], Any]:
        name = f"iam-probe-{uuid.uuid4().hex[:8]}"
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        for i, doc in enumerate(documents):
            iam.put_role_policy(RoleName=name, PolicyName=f"p{i}", PolicyDocument=json.dumps(doc))
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName="probe")["Credentials"]
        session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"], region_name=kit.region)
        def clients(service: str) -> Any:
            return session.client(service, endpoint_url=kit.local_endpoint)

        clients.role = name  # type: ignore[attr-defined]
        return clients

    return make


def denied(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response  # type: ignore[no-any-return]


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def without(document: dict[str, Any], sid: str) -> dict[str, Any]:
    return {**document, "Statement": [s for s in document["Statement"] if s.get("Sid") != sid]}


# -- the decision and its answer ---------------------------------------------------------------------
def test_a_missing_statement_is_access_denied_naming_principal_action_and_resource(kit: Settings, probe, module_boto):
    bucket = kit.bucket_name()
    crawler = role_policies(kit, ACCOUNT)["crawler"]
    module_boto("s3").put_object(Bucket=bucket, Key="input/iam/x.csv", Body=b"a,b\n1,2\n")
    full, partial = probe(crawler), probe(without(crawler, "ReadData"))
    assert full("s3").get_object(Bucket=bucket, Key="input/iam/x.csv")["Body"].read() == b"a,b\n1,2\n"
    err = denied(lambda: partial("s3").get_object(Bucket=bucket, Key="input/iam/x.csv"))
    assert err["Error"]["Code"] == "AccessDenied" and err["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{partial.role}/probe is not authorized to perform: "
        f"s3:GetObject on resource: arn:aws:s3:::{bucket}/input/iam/x.csv because no identity-based policy "
        "allows the s3:GetObject action")
    # JSON protocol (Glue, via the kit's provider and moto alike) and query protocol (SNS) shapes
    err = denied(lambda: partial("glue").get_workflow(Name=kit.workflow))
    assert err["Error"]["Code"] == "AccessDeniedException"
    assert f"glue:GetWorkflow on resource: arn:aws:glue:{kit.region}:{ACCOUNT}:workflow/{kit.workflow}" in \
        err["Error"]["Message"]
    err = denied(lambda: partial("sns").publish(TopicArn=f"arn:aws:sns:{kit.region}:{ACCOUNT}:{kit.sns_topic}",
                                                Message="x"))
    assert err["Error"]["Code"] == "AuthorizationError" and "sns:Publish" in err["Error"]["Message"]
    assert partial("sts").get_caller_identity()["Arn"].endswith(f"assumed-role/{partial.role}/probe")


def test_explicit_deny_wins_and_a_bucket_policy_deny_applies(kit: Settings, probe, module_boto):
    bucket = kit.bucket_name()
    admin_s3 = module_boto("s3")
    admin_s3.put_object(Bucket=bucket, Key="input/iam/deny.csv", Body=b"x")
    allow = doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    deny = doc({"Effect": "Deny", "Action": "s3:Get*", "Resource": f"arn:aws:s3:::{bucket}/input/iam/deny*"})
    c = probe(allow, deny)
    err = denied(lambda: c("s3").get_object(Bucket=bucket, Key="input/iam/deny.csv"))
    assert err["Error"]["Message"].endswith("with an explicit deny in an identity-based policy")
    c2 = probe(allow)
    assert c2("s3").get_object(Bucket=bucket, Key="input/iam/deny.csv")["Body"].read() == b"x"
    policy = bucket_policy(bucket)
    policy["Statement"].append({"Sid": "DenyProbe", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:"
                                                                                          f"role/{c2.role}"},
                                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/input/iam/*"})
    admin_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        err = denied(lambda: c2("s3").get_object(Bucket=bucket, Key="input/iam/deny.csv"))
        assert err["Error"]["Message"].endswith("with an explicit deny in a resource-based policy")
        assert admin_s3.get_object(Bucket=bucket, Key="input/iam/deny.csv")["Body"].read() == b"x"  # not the admin
    finally:
        admin_s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy(bucket)))
    assert c2("s3").get_object(Bucket=bucket, Key="input/iam/deny.csv")["Body"].read() == b"x"


def test_the_prefix_condition_is_evaluated_from_the_listing(kit: Settings, probe):
    c = probe(role_policies(kit, ACCOUNT)["crawler"])
    s3, bucket = c("s3"), kit.bucket_name()
    assert s3.list_objects_v2(Bucket=bucket, Prefix=kit.input_prefix)["ResponseMetadata"]["HTTPStatusCode"] == 200
    for other in ({"Prefix": kit.state_prefix}, {}):
        err = denied(lambda other=other: s3.list_objects_v2(Bucket=bucket, **other))
        assert f"s3:ListBucket on resource: arn:aws:s3:::{bucket} " in err["Error"]["Message"]


def test_unknown_or_forged_session_keys_are_refused(kit: Settings, probe):
    bucket = kit.bucket_name()
    fake = boto3.Session(aws_access_key_id="ASIAUNKNOWNKEY000000", aws_secret_access_key="x",
                         aws_session_token="nope", region_name=kit.region)
    err = denied(lambda: fake.client("s3", endpoint_url=kit.local_endpoint).list_objects_v2(Bucket=bucket))
    assert err["Error"]["Code"] == "InvalidAccessKeyId"
    err = denied(lambda: fake.client("glue", endpoint_url=kit.local_endpoint).get_databases())
    assert err["Error"]["Code"] == "UnrecognizedClientException"
    real = probe(role_policies(kit, ACCOUNT)["crawler"])("s3")
    creds = real._request_signer._credentials
    forged = boto3.Session(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                           aws_session_token="forged", region_name=kit.region)
    err = denied(lambda: forged.client("sqs", endpoint_url=kit.local_endpoint).list_queues())
    assert err["Error"]["Code"] == "InvalidClientTokenId"


def test_enforcement_off_allows_and_status_and_daemon_json_say_which_is_in_force(kit: Settings, probe):
    c = probe(doc({"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}))
    bucket = kit.bucket_name()
    assert local.status(kit)["iam_enforcement"] is True
    assert json.loads((kit.state_dir / "daemon.json").read_text())["iam_enforcement"] is True
    denied(lambda: c("s3").list_objects_v2(Bucket=bucket, Prefix="input/"))
    off = kit.model_copy(update={"local_iam_enforcement": False})
    try:
        assert local.up(off)["iam_enforcement"] is False
        assert json.loads((kit.state_dir / "daemon.json").read_text())["iam_enforcement"] is False
        assert c("s3").list_objects_v2(Bucket=bucket, Prefix="input/")["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        assert local.up(kit)["iam_enforcement"] is True
    denied(lambda: c("s3").list_objects_v2(Bucket=bucket, Prefix="input/"))


# -- the pipeline's principals ----------------------------------------------------------------------
def _put_policy(settings: Settings, boto: Callable[[str], Any], key: str, document: dict[str, Any]) -> None:
    role = getattr(settings, ROLE_SERVICES[key][0])
    boto("iam").put_role_policy(RoleName=role, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(document))


def _restore(settings: Settings) -> None:
    """What `etl-kit provision` does to a drifted role: its step puts the kit's document back."""
    apply_all(settings, progress=False, only=["iam"])


def log_lines(boto: Callable[[str], Any], group: str, needle: str) -> list[str]:
    """The lines of log group ``group`` that contain ``needle``."""
    logs = boto("logs")
    try:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
        return [e["message"] for page in pages for e in page["events"] if needle in e["message"]]
    except logs.exceptions.ResourceNotFoundException:
        return []


def lambda_errors(settings: Settings, boto: Callable[[str], Any], needle: str) -> list[str]:
    return log_lines(boto, f"/aws/lambda/{settings.lambda_function}", needle)


def node_errors(run: dict[str, Any]) -> dict[str, str]:
    """Each graph node's error text: job runs' ErrorMessage, crawls' ErrorMessage."""
    out: dict[str, str] = {}
    for node in run.get("Graph", {}).get("Nodes", []):
        for jr in (node.get("JobDetails") or {}).get("JobRuns", []):
            out[node["Name"]] = out.get(node["Name"], "") + str(jr.get("ErrorMessage", ""))
        for crawl in (node.get("CrawlerDetails") or {}).get("Crawls", []):
            out[node["Name"]] = out.get(node["Name"], "") + str(crawl.get("ErrorMessage", ""))
    return out


def test_a_function_whose_role_does_not_trust_lambda_fails_as_on_aws(kit: Settings, module_boto):
    iam = module_boto("iam")
    glue_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "glue.amazonaws.com"}}]}
    iam.update_assume_role_policy(RoleName=kit.lambda_role, PolicyDocument=json.dumps(glue_only))
    try:
        got = module_boto("lambda").invoke(FunctionName=kit.lambda_function, Payload=b"{}")
        assert got["FunctionError"] == "Unhandled"
        assert "The role defined for the function cannot be assumed by Lambda." in got["Payload"].read().decode()
        assert lambda_errors(kit, module_boto, "cannot be assumed by Lambda")  # and in the function's log
    finally:
        _restore(kit)


# (role key, Sid) -> the node that needs it in a plain upload's run. Statements no scenario needs are listed in
# NOT_NEEDED with the reason: each is a least-privilege finding (or a gap of the local cloud, said so).
NEEDED = {
    ("lambda", "ConsumeIntake"): "the intake queue's event source mapping (receive/delete as the function's role)",
    ("lambda", "DedupeState"): "the Lambda's claim of the object",
    ("lambda", "ReadInput"): "the Lambda's head of the uploaded object",
    ("lambda", "WorkflowRun"): "the Lambda's StartWorkflowRun",
    ("crawler", "ReadData"): "the CSV crawl's reads (an unreadable object is logged and skipped, as Glue does)",
    ("crawler", "Catalog"): "the CSV crawl's catalog writes",
    ("crawler", "ConsumeS3Events"): "the event-mode crawl's receive from its S3 event queue",
    ("csv_job", "ReadScripts"): "job 1's script download",
    ("csv_job", "WorkflowRun"): "job 1's run properties",
    ("csv_job", "ReadInput"): "job 1's read of the upload",
    ("csv_job", "WriteResults"): "job 1's Parquet and report",
    ("load_job", "ReadScripts"): "job 2's script download",
    ("load_job", "WorkflowRun"): "job 2's run properties",
    ("load_job", "RunStatements"): "job 2's Data API load",
    ("load_job", "ReadOwnStatements"): "job 2's wait for its own statements",
    ("load_job", "LoaderSecret"): "job 2's sign-in as the loader user",
}
NOT_NEEDED = {
    ("lambda", "Notify"): "the topic policy's StartLambda statement already grants sns:Publish to the role",
    ("lambda", "ReleaseClaim"): "only a failed StartWorkflowRun releases a claim (not a plain upload)",
    ("lambda", "ListPrefixes"): "the Lambda lists nothing in a plain upload",
    ("lambda", "WriteLogs"): "local log delivery is written with the admin key (docs/local-cloud.md)",
    ("crawler", "ListPrefixes"): "an event-mode crawl lists its target only on its first crawl, after a change of "
                                 "its definition or after lost events (test_after_provisioning_restores...)",
    ("crawler", "CrawlerState"): "the local crawler does not read its own definition with its role",
    ("crawler", "WriteLogs"): "local log delivery is written with the admin key",
    ("csv_job", "ListPrefixes"): "job 1 lists nothing",
    ("csv_job", "WriteLogs"): "local log delivery is written with the admin key",
    ("csv_job", "RunStatements"): "only a rejected file's ledger row (test_a_rejected_file_writes_its_ledger_row...)",
    ("csv_job", "ReadOwnStatements"): "only a rejected file's ledger row",
    ("csv_job", "LoaderSecret"): "only a rejected file's ledger row",
    ("load_job", "WriteLogs"): "local log delivery is written with the admin key",
    ("redshift", "CopyFromOutput"): "the local COPY reads S3 in-process, not as the Redshift role",
    ("redshift", "ListPrefixes"): "the local COPY reads S3 in-process, not as the Redshift role",
    ("redshift", "BucketLocation"): "the local COPY reads S3 in-process, not as the Redshift role",
}


def test_every_statement_of_every_role_is_classified(kit: Settings) -> None:
    sids = {(key, st["Sid"]) for key, document in role_policies(kit, ACCOUNT).items() for st in document["Statement"]}
    assert sids == set(NEEDED) | set(NOT_NEEDED), "classify each new statement in NEEDED or NOT_NEEDED"


def test_a_plain_upload_uses_exactly_the_needed_statements(kit: Settings, module_boto) -> None:
    key = f"input/iam/audit-{uuid.uuid4().hex[:6]}.csv"
    wait_idle(kit)  # earlier tests' uploads (some failing, so using other statements) have all run
    before = health(kit)["iam"]["statements_used"]
    etag = put(module_boto("s3"), kit, key, csv_bytes([row(1), row(2)]))
    assert outcome(kit, kit.bucket_name(), key, etag, timeout=120).state == "loaded"
    # what this upload used (the counts are the module's: earlier tests' failures used other statements)
    used = {k for k, n in health(kit)["iam"]["statements_used"].items() if n > before.get(k, 0)}
    names = {key: getattr(kit, attr) for key, (attr, _) in ROLE_SERVICES.items()}
    for role, sid in NEEDED:
        assert f"{names[role]}/{sid}" in used, (role, sid)
    sometimes = {("lambda", "Notify"),  # allowed first by the identity statement, which the topic policy duplicates
                 ("crawler", "ListPrefixes")}  # used when this upload's crawl is the crawler's first
    for role, sid in set(NOT_NEEDED) - sometimes:
        assert f"{names[role]}/{sid}" not in used, (role, sid)


@pytest.mark.parametrize(("role", "sid"), sorted(NEEDED))
def test_removing_a_needed_statement_fails_the_node_that_needs_it(kit: Settings, module_boto, role: str,
                                                                 sid: str) -> None:
    document = role_policies(kit, ACCOUNT)[role]
    actions = {a.lower() for st in document["Statement"] if st["Sid"] == sid for a in st["Action"]}
    role_name = getattr(kit, ROLE_SERVICES[role][0])
    seq = last_seq(kit)
    _put_policy(kit, module_boto, role, without(document, sid))
    try:
        key = f"input/iam/{role}-{sid}-{uuid.uuid4().hex[:6]}.csv"
        etag = put(module_boto("s3"), kit, key, csv_bytes([row(1), row(2)]))
        hit = wait_for(f"a denial of {role}/{sid}", lambda: [
            d for d in denials_after(kit, seq)
            if f"assumed-role/{role_name}/" in d["principal"] and d["action"].lower() in actions], timeout=90)[0]
        if (role, sid) == ("crawler", "ReadData"):
            # as Glue does, a crawl logs an object it cannot read and goes on (the table stays as it was)
            wait_for("the crawl's read error", lambda: log_lines(module_boto, "/aws-glue/crawlers",
                                                                 f"not authorized to perform: {hit['action']}"))
        elif role in ("crawler", "csv_job", "load_job"):
            run = outcome(kit, kit.bucket_name(), key, etag, timeout=120).run
            errors = " ".join(node_errors(run).values())
            assert "AccessDenied" in errors or "Forbidden" in errors or "not authorized" in errors, errors
            if hit["operation"] not in ("s3:HeadObject", "s3:HeadBucket"):  # a HEAD's 403 carries no message
                assert hit["action"] in errors, errors
        elif sid != "ConsumeIntake":  # the mapping's poller is no invocation: the denial is its only trace
            needles = ["Forbidden"] if hit["operation"] == "s3:HeadObject" else [
                f"not authorized to perform: {a}" for st in document["Statement"] if st["Sid"] == sid
                for a in st["Action"]]
            wait_for("the Lambda's error", lambda: [n for n in needles if lambda_errors(kit, module_boto, n)],
                     timeout=60)
    finally:
        _restore(kit)


def test_after_provisioning_restores_a_removed_statement_the_same_upload_loads(kit: Settings, module_boto) -> None:
    from etl_kit.replay import replay_object

    _put_policy(kit, module_boto, "crawler", without(role_policies(kit, ACCOUNT)["crawler"], "ConsumeS3Events"))
    key = f"input/iam/restore-{uuid.uuid4().hex[:6]}.csv"
    try:
        etag = put(module_boto("s3"), kit, key, csv_bytes([row(7), row(8)]))
        failed = outcome(kit, kit.bucket_name(), key, etag, timeout=120)
        assert failed.state == "failed"
        queue = f"arn:aws:sqs:{kit.region}:{ACCOUNT}:{kit.csv_crawler}-events"
        error = node_errors(failed.run)[kit.csv_crawler]  # the crawl's first call on its queue is denied
        assert "is not authorized to perform: sqs:" in error and f"on resource: {queue} " in error, error
    finally:
        _restore(kit)
    replay_object(kit, key)
    loaded = wait_for("the replayed upload's load", lambda: [r for r in ledger_rows(kit, kit.bucket_name(), key)
                                                             if r["state"] == "loaded"], timeout=120)
    assert loaded[0]["etag"] == etag


def test_a_rejected_file_writes_its_ledger_row_under_enforcement(kit: Settings, module_boto) -> None:
    key = f"input/iam/rejected-{uuid.uuid4().hex[:6]}.csv"
    etag = put(module_boto("s3"), kit, key, csv_bytes([row(3_000_010 + i, units="many") for i in range(5)]))
    out = outcome(kit, kit.bucket_name(), key, etag, timeout=120)
    assert out.state == "rejected" and out.reason == "too_many_rejects"


"""The local cloud's IAM evaluation on the kit's own documents, and requests read as IAM reads them."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest

from etl_kit.config import Settings
from etl_kit.provision import policies
from etl_localcloud.iam.policy import Caller, Check, UnsupportedPolicy, evaluate, wildcard
from etl_localcloud.iam.requests import operation, signer
from etl_localcloud.iam.resources import Scope, checks

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
S = Settings()
A = policies.Arns(S, ACCOUNT)
ROLES = policies.role_policies(S, ACCOUNT)


def caller(role_key: str) -> Caller:
    role = A.role(getattr(S, policies.ROLE_SERVICES[role_key][0]))
    return Caller(ACCOUNT, role_arn=role, session_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/')[-1]}/s")


def allowed(role_key: str, action: str, resource: str, policy: dict[str, Any] | None = None,
            **ctx: tuple[str, ...]) -> bool:
    check = Check(action, resource, {k.replace("__", ":").lower(): v for k, v in ctx.items()}, policy)
    return evaluate(check, caller(role_key), [("inline", ROLES[role_key])]).allowed


def test_the_kit_policies_allow_what_they_name_and_nothing_else() -> None:
    b = A.bucket
    assert allowed("lambda", "s3:GetObject", f"arn:aws:s3:::{b}/input/x.csv")
    assert not allowed("lambda", "s3:GetObject", f"arn:aws:s3:::{b}/output/x.parquet")
    assert allowed("lambda", "S3:getobject", f"arn:aws:s3:::{b}/input/x.csv")  # actions are case-insensitive
    assert not allowed("lambda", "s3:GetObject", f"arn:aws:s3:::{b.upper()}/input/x.csv")  # resources are not
    loader = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{S.redshift_loader_secret}"
    admin = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:redshift!{S.redshift_namespace}-{S.redshift_admin_user}"
    for job in ("load_job", "csv_job"):  # both jobs sign in as the loader user, never as the namespace's admin
        assert allowed(job, "secretsmanager:GetSecretValue", f"{loader}-AbC123")
        assert not allowed(job, "secretsmanager:GetSecretValue", f"{admin}-AbC123")
        # ``?`` is one character: the secret's suffix is exactly six
        assert not allowed(job, "secretsmanager:GetSecretValue", f"{loader}-AbC1234")
    # job 1 writes its rejected files' ledger rows through the Data API, in this account's workgroups only
    assert allowed("csv_job", "redshift-data:ExecuteStatement",
                   f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT}:workgroup/abc")
    assert not allowed("csv_job", "redshift-data:ExecuteStatement",
                       "arn:aws:redshift-serverless:us-east-1:210987654321:workgroup/abc")
    assert not allowed("lambda", "redshift-data:ExecuteStatement",
                       f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT}:workgroup/abc")


def test_s3_prefix_condition_is_evaluated_from_the_request() -> None:
    bucket = f"arn:aws:s3:::{A.bucket}"
    assert allowed("crawler", "s3:ListBucket", bucket, s3__prefix=(S.input_prefix,))
    assert allowed("crawler", "s3:ListBucket", bucket, s3__prefix=(S.input_prefix + "2024/",))
    assert not allowed("crawler", "s3:ListBucket", bucket, s3__prefix=("secret/",))
    assert not allowed("crawler", "s3:ListBucket", bucket)  # no prefix in the request: StringLike fails


def test_explicit_deny_wins_over_any_allow_in_identity_or_resource_policy() -> None:
    key = f"arn:aws:s3:::{A.bucket}/input/x.csv"
    deny = {"Statement": [{"Effect": "Deny", "Action": "s3:Get*", "Resource": key}]}
    check = Check("s3:GetObject", key, {})
    assert not evaluate(check, caller("lambda"), [("inline", ROLES["lambda"]), ("deny", deny)]).allowed
    d = evaluate(check, caller("lambda"), [("deny", deny), ("inline", ROLES["lambda"])])
    assert (d.allowed, d.reason) == (False, "identity")
    bucket_deny = {"Statement": [{"Effect": "Deny", "Principal": {"AWS": caller("lambda").role_arn},
                                  "Action": "s3:GetObject", "Resource": key}]}
    d = evaluate(Check("s3:GetObject", key, {}, bucket_deny), caller("lambda"), [("inline", ROLES["lambda"])])
    assert (d.allowed, d.reason) == (False, "resource")


def test_bucket_policy_tls_deny_applies_only_without_tls() -> None:
    key = f"arn:aws:s3:::{A.bucket}/input/x.csv"
    tls = policies.bucket_policy(A.bucket)
    assert allowed("lambda", "s3:GetObject", key, tls, aws__SecureTransport=("true",))
    assert not allowed("lambda", "s3:GetObject", key, tls, aws__SecureTransport=("false",))


def test_topic_policy_source_arn_and_role_principal() -> None:
    topic = policies.topic_policy(S, ACCOUNT)
    events = Caller(ACCOUNT, service="events.amazonaws.com")
    rule = A.notification_rules[0]
    assert evaluate(Check("sns:Publish", A.topic, {"aws:sourcearn": (rule,)}, topic), events, []).allowed
    assert not evaluate(Check("sns:Publish", A.topic, {"aws:sourcearn": (A.rule("other"),)}, topic), events,
                        []).allowed
    # the Lambda role is granted by the topic policy alone (same account): its Notify statement is redundant
    assert evaluate(Check("sns:Publish", A.topic, {}, topic), caller("lambda"), []).allowed
    assert not evaluate(Check("sns:Publish", A.topic, {}, topic), caller("crawler"), []).allowed


def test_account_principal_in_a_resource_policy_grants_nothing_by_itself() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                          "Action": "sns:Publish", "Resource": A.topic}]}
    assert not evaluate(Check("sns:Publish", A.topic, {}, doc), caller("crawler"), []).allowed


def test_passed_to_service_and_tag_keys_conditions() -> None:
    deployer = policies.deployer_policy(S, ACCOUNT)
    who = caller("lambda")
    role = A.role(S.csv_job_role)
    ok = Check("iam:PassRole", role, {"iam:passedtoservice": ("glue.amazonaws.com",)})
    bad = Check("iam:PassRole", role, {"iam:passedtoservice": ("ec2.amazonaws.com",)})
    assert evaluate(ok, who, [("d", deployer)]).allowed and not evaluate(bad, who, [("d", deployer)]).allowed
    s = Settings(network_placement="one_az")
    doc = policies.role_policies(s, ACCOUNT)["load_job"]
    eni = f"arn:aws:ec2:us-east-1:{ACCOUNT}:network-interface/eni-1"
    tagged = Check("ec2:CreateTags", eni, {"aws:tagkeys": ("aws-glue-service-resource",)})
    other = Check("ec2:CreateTags", eni, {"aws:tagkeys": ("aws-glue-service-resource", "owner")})
    assert evaluate(tagged, who, [("d", doc)]).allowed and not evaluate(other, who, [("d", doc)]).allowed


def test_trust_policy_needs_the_service_and_the_account() -> None:
    trust = policies.trust_policy(("lambda.amazonaws.com",), ACCOUNT)
    role = A.role(S.lambda_role)
    ours = {"aws:sourceaccount": (ACCOUNT,)}
    assert evaluate(Check("sts:AssumeRole", role, ours, trust), Caller(ACCOUNT, service="lambda.amazonaws.com"),
                    []).allowed
    assert not evaluate(Check("sts:AssumeRole", role, ours, trust), Caller(ACCOUNT, service="glue.amazonaws.com"),
                        []).allowed
    assert not evaluate(Check("sts:AssumeRole", role, {"aws:sourceaccount": ("999999999999",)}, trust),
                        Caller(ACCOUNT, service="lambda.amazonaws.com"), []).allowed


def test_operators_missing_keys_and_unsupported_ones() -> None:
    def one(cond: dict[str, Any], **ctx: tuple[str, ...]) -> bool:
        doc = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": cond}]}
        return evaluate(Check("s3:GetObject", "arn:aws:s3:::b/k", {k.lower(): v for k, v in ctx.items()}),
                        caller("lambda"), [("p", doc)]).allowed

    assert one({"StringNotEquals": {"aws:SourceVpc": "vpc-1"}})  # negated operator, key absent: true
    assert not one({"StringEquals": {"aws:SourceVpc": "vpc-1"}})
    assert one({"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}})
    assert one({"Null": {"aws:SourceVpc": "true"}}) and not one({"Null": {"aws:SourceVpc": "false"}})
    assert one({"NumericLessThan": {"s3:max-keys": "10"}}, **{"s3:max-keys": ("5",)})
    assert one({"ForAnyValue:StringLike": {"aws:TagKeys": ["a*"]}}, **{"aws:tagkeys": ("x", "ab")})
    with pytest.raises(UnsupportedPolicy, match="DateGreaterThan"):
        one({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
    assert wildcard("a?c*", "abcdef") and not wildcard("a.c", "abc")


# -- requests ------------------------------------------------------------------------------------
def _environ(service: str, op: str, **params: Any) -> dict[str, Any]:
    """The WSGI environ of the request boto3 would send (signed with a session key)."""
    sent: list[Any] = []

    def grab(request: Any, **_: Any) -> None:
        sent.append(request)
        raise RuntimeError("captured")

    c = boto3.client(service, endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                     aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="x", aws_session_token="tok")
    c.meta.events.register("before-send", grab)
    with pytest.raises(RuntimeError, match="captured"):
        getattr(c, op)(**params)
    req = sent[0]
    url = urlsplit(req.url)
    body = req.body or b""
    body = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else body.read()
    env: dict[str, Any] = {"REQUEST_METHOD": req.method, "PATH_INFO": unquote(url.path), "QUERY_STRING": url.query,
                           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    for k, v in req.headers.items():
        v = v.decode() if isinstance(v, bytes) else v
        if k.lower() == "content-type":
            env["CONTENT_TYPE"] = v
        env["HTTP_" + k.upper().replace("-", "_")] = v
    return env


@pytest.mark.parametrize(("service", "op", "params", "expected"), [
    ("s3", "list_objects_v2", {"Bucket": "b", "Prefix": "input/"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
    ("s3", "head_object", {"Bucket": "b", "Key": "in put/x.csv"}, [("s3:GetObject", "arn:aws:s3:::b/in put/x.csv")]),
    ("s3", "put_object", {"Bucket": "b", "Key": "k", "Body": b"x"}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ("s3", "copy_object", {"Bucket": "b", "Key": "to", "CopySource": {"Bucket": "a", "Key": "from"}},
     [("s3:GetObject", "arn:aws:s3:::a/from"), ("s3:PutObject", "arn:aws:s3:::b/to")]),
    ("s3", "delete_objects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "x"}, {"Key": "y"}]}},
     [("s3:DeleteObject", "arn:aws:s3:::b/x"), ("s3:DeleteObject", "arn:aws:s3:::b/y")]),
    ("sqs", "delete_message_batch", {"QueueUrl": f"http://h/{ACCOUNT}/q", "Entries": [{"Id": "1",
                                                                                      "ReceiptHandle": "r"}]},
     [("sqs:DeleteMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:q")]),
    ("sns", "publish", {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:t", "Message": "m"},
     [("sns:Publish", f"arn:aws:sns:us-east-1:{ACCOUNT}:t")]),
    ("glue", "get_table", {"DatabaseName": "d", "Name": "t"},
     [("glue:GetTable", f"arn:aws:glue:us-east-1:{ACCOUNT}:{r}") for r in ("catalog", "database/d", "table/d/t")]),
    ("glue", "start_workflow_run", {"Name": "w"}, [("glue:StartWorkflowRun", f"arn:aws:glue:us-east-1:{ACCOUNT}:"
                                                                               "workflow/w")]),
    ("lambda", "invoke", {"FunctionName": "f"}, [("lambda:InvokeFunction",
                                                  f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f")]),
    ("redshift-data", "execute_statement", {"WorkgroupName": "wg1", "Database": "dev", "Sql": "select 1",
                                            "SecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-AbCdEf"},
     [("redshift-data:ExecuteStatement", f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT}:workgroup/wg1"),
      ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-AbCdEf")]),
    ("sts", "get_caller_identity", {}, []),
])
def test_requests_are_authorised_as_the_actions_aws_checks(service: str, op: str, params: dict[str, Any],
                                                          expected: list[tuple[str, str]]) -> None:
    env = _environ(service, op, **params)
    signed = signer(env)
    assert signed is not None and (signed.access_key_id, signed.token) == ("ASIAEXAMPLE", "tok")
    got = checks(operation(env, signed.service), Scope(ACCOUNT, "us-east-1"))
    assert [(c.action, c.resource) for c in got] == expected


def test_list_prefix_reaches_the_condition_context() -> None:
    env = _environ("s3", "list_objects_v2", Bucket="b", Prefix="input/")
    (check,) = checks(operation(env, "s3"), Scope(ACCOUNT, "us-east-1"))
    assert check.context["s3:prefix"] == ("input/",)


def test_policy_variables_resolve_from_the_request_and_scope_statements_to_their_owner() -> None:
    me = "AROAEXAMPLE:GlueJobRunnerSession"
    key = "redshift-data__statement-owner-iam-userid"
    for job in ("load_job", "csv_job"):
        # the job's own statement: ${aws:userid} is the caller's id and equals the statement's owner
        assert allowed(job, "redshift-data:DescribeStatement", "*", aws__userid=(me,), **{key: (me,)})
        assert allowed(job, "redshift-data:GetStatementResult", "*", aws__userid=(me,), **{key: (me,)})
        # another principal's statement, or one with no known owner, is not readable
        assert not allowed(job, "redshift-data:DescribeStatement", "*", aws__userid=(me,),
                           **{key: ("AROAOTHER:someone",)})
        assert not allowed(job, "redshift-data:DescribeStatement", "*", aws__userid=(me,))
        # no caller id in the request: the variable matches nothing
        assert not allowed(job, "redshift-data:DescribeStatement", "*", **{key: (me,)})

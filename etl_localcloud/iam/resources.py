"""Which IAM actions on which resources an operation is authorised as, as AWS's service authorization
reference lists them, with the condition keys the request carries and the resource's policy.

S3 maps operations to actions (``ListObjectsV2`` -> ``s3:ListBucket``, ``HeadObject`` -> ``s3:GetObject``,
multipart parts -> ``s3:PutObject``, ``CopyObject`` -> ``s3:GetObject`` on the source and ``s3:PutObject`` on
the target, ``DeleteObjects`` -> ``s3:DeleteObject`` per key); every other service's action is
``prefix:Operation``. Glue catalog calls are checked on the catalog, the database and the table as Glue
checks them; the Data API with ``SecretArn`` also needs ``secretsmanager:GetSecretValue`` on the secret,
without it ``redshift-serverless:GetCredentials`` on the workgroup; creating a job, crawler or function
with a role needs ``iam:PassRole`` with ``iam:PassedToService``.
"""

from __future__ import annotations

import contextvars
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from etl_localcloud.iam.policy import Check
from etl_localcloud.iam.requests import Operation
from etl_localcloud.motohooks import iam as moto_iam

__all__ = ["Scope", "checks", "register_resolver", "FREE_ACTIONS", "current_caller", "set_caller"]

# Actions AWS authorises for every caller (no policy needed).
FREE_ACTIONS = frozenset({"sts:GetCallerIdentity"})

_S3_ACTIONS = {
    "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket",
    "HeadObject": "GetObject", "GetObjectAttributes": "GetObject",
    "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
    "ListMultipartUploads": "ListBucketMultipartUploads", "ListParts": "ListMultipartUploadParts",
    "ListObjectVersions": "ListBucketVersions", "GetBucketNotificationConfiguration": "GetBucketNotification",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
}
# Operations authorised as another action of their service (AWS's service authorization reference).
_ACTIONS = {("sqs", "SendMessageBatch"): "SendMessage", ("sqs", "DeleteMessageBatch"): "DeleteMessage",
            ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
            ("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction",
            ("lambda", "InvokeWithResponseStream"): "InvokeFunction"}
_PASS_ROLE = {("glue", "CreateJob"): ("Role", "glue.amazonaws.com"),
              ("glue", "UpdateJob"): ("JobUpdate.Role", "glue.amazonaws.com"),
              ("glue", "CreateCrawler"): ("Role", "glue.amazonaws.com"),
              ("glue", "UpdateCrawler"): ("Role", "glue.amazonaws.com"),
              ("lambda", "CreateFunction"): ("Role", "lambda.amazonaws.com"),
              ("lambda", "UpdateFunctionConfiguration"): ("Role", "lambda.amazonaws.com")}

# The IAM user id (``aws:userid``) of the session whose request this thread serves, None for the user's own key.
# A provider reads it to record who made what (the Data API's statement owner, which AWS checks later).
_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("etl_localcloud_iam_caller", default=None)


def current_caller() -> str | None:
    """``aws:userid`` of the role session making the request being served (None: the user's own credentials)."""
    return _CALLER.get()


def set_caller(userid: str | None) -> None:
    """Set by the enforcement point for the request this thread serves."""
    _CALLER.set(userid)


# kind (e.g. "redshift-serverless:workgroup") -> resolver(account, region, name) -> ARN or None
_RESOLVERS: dict[str, Callable[[str, str, str], str | None]] = {}


def register_resolver(kind: str, resolver: Callable[[str, str, str], str | None]) -> None:
    """Let a provider say the ARN of one of its resources by name (e.g. a workgroup's generated id)."""
    _RESOLVERS[kind] = resolver


@dataclass(frozen=True)
class Scope:
    """Where the request is served and the context keys every check carries."""

    account: str
    region: str
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def check(self, action: str, resource: str, policy: dict[str, Any] | None = None,
              **keys: tuple[str, ...]) -> Check:
        ctx = dict(self.context)
        ctx.update({k.replace("__", ":").lower(): v for k, v in keys.items()})
        return Check(action, resource, ctx, policy)


def _dig(params: dict[str, Any], path: str) -> Any:
    cur: Any = params
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _tag_keys(op: Operation) -> tuple[str, ...] | None:
    p = op.params
    keys: list[str] = []
    tags = p.get("Tags", p.get("tags"))
    if isinstance(tags, dict):
        keys += [str(k) for k in tags]
    elif isinstance(tags, list):
        keys += [str(t.get("Key")) for t in tags if isinstance(t, dict) and "Key" in t]
    keys += [str(v) for k, v in p.items() if isinstance(k, str) and k.startswith("Tag") and k.endswith(".Key")]
    return tuple(keys) if keys else None


# -- S3 ----------------------------------------------------------------------------------------------
def _s3_objects(body: bytes) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]


def _s3(op: Operation, scope: Scope) -> list[Check]:
    bucket, key = str(op.params.get("Bucket", "")), str(op.params.get("Key", ""))
    if not bucket:
        return [scope.check(f"s3:{op.name}", "arn:aws:s3:::*")]
    policy = moto_iam.resource_policy("s3", scope.account, scope.region, bucket)
    target = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key else "")
    if op.name == "DeleteObjects":
        return [scope.check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}", policy)
                for k in _s3_objects(op.params.get("Delete", b""))]
    if op.name in ("CopyObject", "UploadPartCopy"):
        source = unquote(op.headers.get("x-amz-copy-source", "").split("?")[0]).lstrip("/")
        src_bucket = source.split("/", 1)[0]
        src_policy = moto_iam.resource_policy("s3", scope.account, scope.region, src_bucket)
        return [scope.check("s3:GetObject", f"arn:aws:s3:::{source}", src_policy),
                scope.check("s3:PutObject", target, policy)]
    keys: dict[str, tuple[str, ...]] = {}
    if op.name in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
        for name in ("prefix", "delimiter", "max-keys"):
            if name in op.params:
                keys[f"s3__{name}"] = (str(op.params[name]),)
    return [scope.check(f"s3:{_S3_ACTIONS.get(op.name, op.name)}", target, policy, **keys)]


# -- the JSON / query services --------------------------------------------------------------------
def _glue_catalog(op: Operation, scope: Scope) -> list[str] | None:
    p = op.params
    db = p.get("DatabaseName") or (p.get("Name") if op.name in ("GetDatabase", "DeleteDatabase",
                                                                   "UpdateDatabase") else None)
    if op.name == "GetDatabases":
        return [scope.arn("glue", "catalog"), scope.arn("glue", "database/*")]
    if op.name in ("CreateDatabase",):
        db = _dig(p, "DatabaseInput.Name")
    if not db:
        return None
    out = [scope.arn("glue", "catalog"), scope.arn("glue", f"database/{db}")]
    table = p.get("TableName") or _dig(p, "TableInput.Name") or (p.get("Name") if "Table" in op.name else None)
    if op.name in ("GetTables", "SearchTables"):
        table = "*"
    if table:
        out.append(scope.arn("glue", f"table/{db}/{table}"))
    return out


_GLUE_KINDS = (("Workflow", "workflow"), ("Crawler", "crawler"), ("Trigger", "trigger"), ("Connection", "connection"),
               ("Job", "job"))


def _glue(op: Operation, scope: Scope) -> list[str]:
    catalog = _glue_catalog(op, scope)
    if catalog is not None:
        return catalog
    p = op.params
    for noun, kind in _GLUE_KINDS:
        if noun in op.name:
            name = p.get(f"{noun}Name") or p.get("Name")
            if name:
                extra = [scope.arn("glue", "catalog")] if kind == "connection" else []
                return [*extra, scope.arn("glue", f"{kind}/{name}")]
    return ["*"]


def _named(op: Operation, scope: Scope) -> list[str]:
    """The resource of SQS, SNS, Logs, Lambda, Events, Secrets Manager, Redshift and other calls."""
    p, svc = op.params, op.service
    if svc == "sqs":
        url = str(p.get("QueueUrl", ""))
        parts = url.rstrip("/").split("/")
        if url and len(parts) >= 2:
            return [scope.arn("sqs", parts[-1])]
        return [scope.arn("sqs", str(p.get("QueueName", "*")))]
    if svc == "sns":
        return [str(p.get("TopicArn") or p.get("TargetArn") or scope.arn("sns", str(p.get("Name", "*"))))]
    if svc == "logs":
        group = p.get("logGroupName") or p.get("logGroupIdentifier")
        if not group:
            return [scope.arn("logs", "log-group:*")]
        stream = p.get("logStreamName")
        return [scope.arn("logs", f"log-group:{group}" + (f":log-stream:{stream}" if stream else ""))]
    if svc == "lambda":
        fn = str(p.get("FunctionName", ""))
        return [fn if fn.startswith("arn:") else scope.arn("lambda", f"function:{fn}" if fn else "*")]
    if svc == "secretsmanager":
        sid = str(p.get("SecretId") or p.get("Name") or "")
        return [moto_iam.secret_arn(scope.account, scope.region, sid) or
                (sid if sid.startswith("arn:") else scope.arn("secretsmanager", f"secret:{sid}" if sid else "*"))]
    if svc == "events":
        if op.name == "PutEvents":
            buses = {str(e.get("EventBusName") or "default") for e in p.get("Entries", []) if isinstance(e, dict)}
            return [b if b.startswith("arn:") else scope.arn("events", f"event-bus/{b}") for b in sorted(buses)]
        name = p.get("Rule") or p.get("Name")
        return [scope.arn("events", f"rule/{name}")] if name else ["*"]
    if svc in ("redshift-serverless", "redshift-data"):
        return _redshift(op, scope)
    if svc == "iam":
        role = p.get("RoleName")
        return [scope.arn("iam", f"role/{role}", region=False)] if role else ["*"]
    if svc == "sts" and op.name == "AssumeRole":
        return [str(p.get("RoleArn", "*"))]
    arns = [str(v) for k, v in p.items() if isinstance(v, str) and v.startswith("arn:") and k.lower().endswith("arn")]
    return arns[:1] or ["*"]


def _workgroup(scope: Scope, name: str) -> str:
    resolve = _RESOLVERS.get("redshift-serverless:workgroup")
    found = resolve(scope.account, scope.region, name) if resolve else None
    return found or scope.arn("redshift-serverless", f"workgroup/{name}")


def _redshift(op: Operation, scope: Scope) -> list[str]:
    p = op.params
    wg = p.get("workgroupName") or p.get("WorkgroupName")
    if wg:
        return [_workgroup(scope, str(wg))]
    if p.get("ClusterIdentifier"):
        return [scope.arn("redshift", f"cluster:{p['ClusterIdentifier']}")]
    ns = p.get("namespaceName")
    return [scope.arn("redshift-serverless", f"namespace/{ns}")] if ns else ["*"]


_RESOURCE_POLICY_SERVICES = {"sqs": lambda a: a.rsplit(":", 1)[-1], "sns": lambda a: a,
                             "secretsmanager": lambda a: a, "lambda": lambda a: a.split(":")[6] if a.count(":") >= 6
                             else a}


_OWNED_STATEMENT_CALLS = ("DescribeStatement", "GetStatementResult", "GetStatementResultV2", "CancelStatement")


def _service_checks(op: Operation, scope: Scope) -> list[Check]:
    action = f"{op.service}:{_ACTIONS.get((op.service, op.name), op.name)}"
    resources = _glue(op, scope) if op.service == "glue" else _named(op, scope)
    keys: dict[str, tuple[str, ...]] = {}
    if op.service == "redshift-data" and op.name in _OWNED_STATEMENT_CALLS:
        owner = _RESOLVERS.get("redshift-data:statement-owner")
        found = owner(scope.account, scope.region, str(op.params.get("Id", "")).partition(":")[0]) if owner else None
        if found:  # AWS scopes these calls by the statement's owner (redshift-data:statement-owner-iam-userid)
            keys["redshift-data__statement-owner-iam-userid"] = (found,)
    tags = _tag_keys(op)
    if tags is not None:
        keys["aws__TagKeys"] = tags
    out = []
    for arn in resources:
        ident = _RESOURCE_POLICY_SERVICES.get(op.service)
        policy = (moto_iam.resource_policy(op.service, scope.account, scope.region, ident(arn))
                  if ident and arn != "*" else None)
        out.append(scope.check(action, arn, policy, **keys))
    return out


def _implied(op: Operation, scope: Scope) -> list[Check]:
    """The authorisations AWS makes besides the operation's own (secrets, credentials, PassRole)."""
    p = op.params
    out: list[Check] = []
    if op.service == "redshift-data" and op.name in ("ExecuteStatement", "BatchExecuteStatement"):
        if p.get("SecretArn"):
            sid = str(p["SecretArn"])
            arn = moto_iam.secret_arn(scope.account, scope.region, sid) or sid
            policy = moto_iam.resource_policy("secretsmanager", scope.account, scope.region, sid)
            out.append(scope.check("secretsmanager:GetSecretValue", arn, policy))
        elif p.get("WorkgroupName"):
            out.append(scope.check("redshift-serverless:GetCredentials", _workgroup(scope, str(p["WorkgroupName"]))))
    passed = _PASS_ROLE.get((op.service, op.name))
    role = _dig(p, passed[0]) if passed else None
    if passed and role:
        arn = role if str(role).startswith("arn:") else scope.arn("iam", f"role/{role}", region=False)
        out.append(scope.check("iam:PassRole", str(arn), iam__PassedToService=(passed[1],)))
    return out


def checks(op: Operation, scope: Scope) -> list[Check]:
    """Every authorisation AWS makes for ``op`` (empty for actions every caller may call)."""
    if op.service == "s3":
        return _s3(op, scope)
    if f"{op.service}:{op.name}" in FREE_ACTIONS:
        return []
    return _service_checks(op, scope) + _implied(op, scope)

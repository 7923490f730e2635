"""Every IAM document the kit creates, built from settings alone (pure: no AWS calls).

Roles get least-privilege inline policies scoped to exact ARNs. No action is a wildcard;
``Resource: "*"`` appears only for actions that support no resource-level permission,
each marked in :data:`STAR_ONLY_ACTIONS`. ``tests/unit/test_policies.py`` lints every
document here with parliament.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from etl_kit.config import Settings

__all__ = [
    "Arns",
    "STAR_ONLY_ACTIONS",
    "ROLE_SERVICES",
    "LEGACY_ROLES",
    "trust_policy",
    "role_policies",
    "bucket_policy",
    "topic_policy",
    "queue_policy",
    "s3_queue_policy",
    "all_documents",
]

VERSION = "2012-10-17"
INLINE_POLICY_NAME = "etl-kit-least-privilege"

# Actions AWS authorises only with Resource "*" (no resource-level permissions exist for them).
STAR_ONLY_ACTIONS = frozenset(
    {
        # EC2 describe calls Glue makes to place a job's ENI in the connection's subnet.
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeRouteTables",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkInterfaces",
        # Redshift Data API statement calls name no resource; a condition scopes them to the caller's own
        # statements (redshift-data:statement-owner-iam-userid, see _data_api).
        "redshift-data:DescribeStatement",
        "redshift-data:GetStatementResult",
    }
)


@dataclass(frozen=True)
class Arns:
    """Every ARN the kit's resources have, derived from settings and the account id."""

    settings: Settings
    account: str

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        r = self.region if region else ""
        a = self.account if account else ""
        return f"arn:{self.partition}:{service}:{r}:{a}:{resource}"

    # names
    @property
    def bucket(self) -> str:
        return self.settings.bucket_name(self.account)

    @property
    def assets_bucket(self) -> str:
        return self.settings.assets_bucket_name(self.account)

    @property
    def lambda_dlq(self) -> str:
        """The on-failure queue of the direct invocation that the intake queue replaced (removed on apply)."""
        return f"{self.settings.lambda_function}-dlq"

    @property
    def rule_dlq(self) -> str:
        """The start rule's former DLQ (removed on apply; the rule's target now uses the intake DLQ)."""
        return f"{self.settings.start_rule}-dlq"

    @property
    def security_configuration(self) -> str:
        return f"{self.settings.workflow}-security"

    @property
    def security_group(self) -> str:
        return f"{self.settings.redshift_workgroup}-sg"

    # S3
    def s3(self, bucket: str, key: str = "") -> str:
        return f"arn:{self.partition}:s3:::{bucket}{'/' + key if key else ''}"

    # IAM
    def role(self, name: str) -> str:
        return self._arn("iam", f"role/{name}", region=False)

    # Lambda
    @property
    def function(self) -> str:
        return self._arn("lambda", f"function:{self.settings.lambda_function}")

    # SQS / SNS
    def queue(self, name: str) -> str:
        return self._arn("sqs", name)

    @staticmethod
    def crawler_queue(crawler: str) -> str:
        """The queue of the bucket's object events for ``crawler`` (``crawl_mode: events``)."""
        return f"{crawler}-events"

    @staticmethod
    def crawler_dlq(crawler: str) -> str:
        """The DLQ of :meth:`crawler_queue` (the crawler's ``DlqEventQueueArn``)."""
        return f"{crawler}-events-dlq"

    @property
    def event_crawlers(self) -> list[str]:
        """The crawlers that consume S3 events (none with ``crawl_mode: full``)."""
        s = self.settings
        return [s.csv_crawler, s.parquet_crawler] if s.crawl_mode == "events" else []

    @property
    def topic(self) -> str:
        return self._arn("sns", self.settings.sns_topic)

    # EventBridge
    def rule(self, name: str) -> str:
        return self._arn("events", f"rule/{name}")

    @property
    def notification_rules(self) -> list[str]:
        s = self.settings
        return [self.rule(n) for n in (s.crawler01_rule, s.job01_rule, s.crawler02_rule, s.job02_rule)]

    # Glue
    @property
    def catalog(self) -> str:
        return self._arn("glue", "catalog")

    @property
    def database(self) -> str:
        return self._arn("glue", f"database/{self.settings.glue_database}")

    @property
    def tables(self) -> str:
        return self._arn("glue", f"table/{self.settings.glue_database}/*")

    @property
    def workflow(self) -> str:
        return self._arn("glue", f"workflow/{self.settings.workflow}")

    def crawler(self, name: str) -> str:
        return self._arn("glue", f"crawler/{name}")

    def job(self, name: str) -> str:
        return self._arn("glue", f"job/{name}")

    def trigger(self, name: str) -> str:
        return self._arn("glue", f"trigger/{name}")

    @property
    def connection(self) -> str:
        return self._arn("glue", f"connection/{self.settings.glue_connection}")

    # Logs
    def log_group(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}")

    @property
    def lambda_log_group(self) -> str:
        return f"/aws/lambda/{self.settings.lambda_function}"

    @property
    def job_log_groups(self) -> list[str]:
        return ["/aws-glue/python-jobs/output", "/aws-glue/python-jobs/error", "/aws-glue/python-jobs/logs-v2"]

    @property
    def crawler_log_group(self) -> str:
        return "/aws-glue/crawlers"

    # Redshift Serverless
    @property
    def workgroup(self) -> str:
        # Real workgroup ARNs end in a generated id; the name is not part of them.
        return self._arn("redshift-serverless", "workgroup/*")

    @property
    def namespace(self) -> str:
        return self._arn("redshift-serverless", "namespace/*")

    @property
    def loader_secret(self) -> str:
        # Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN.
        return self._arn("secretsmanager", f"secret:{self.settings.redshift_loader_secret}-??????")

    @property
    def kms_key(self) -> str | None:
        k = self.settings.kms_key_id
        if not k:
            return None
        if k.startswith("arn:"):
            return k
        if k.startswith("alias/"):
            return self._arn("kms", k)
        return self._arn("kms", f"key/{k}")


# role key -> (settings attribute with its name, service principals)
ROLE_SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lambda": ("lambda_role", ("lambda.amazonaws.com",)),
    "crawler": ("crawler_role", ("glue.amazonaws.com",)),
    "csv_job": ("csv_job_role", ("glue.amazonaws.com",)),
    "load_job": ("load_job_role", ("glue.amazonaws.com",)),
    "redshift": ("redshift_role", ("redshift.amazonaws.com", "redshift-serverless.amazonaws.com")),
}
# Roles an earlier etl-kit created that nothing uses any more (removed by provisioning): EventBridge sends
# to its SQS and SNS targets through their resource policies (queue policy, topic policy), so its role was
# attached to nothing.
LEGACY_ROLES: dict[str, str] = {"events": "events_role"}


def _stmt(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    st: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        st["Condition"] = condition
    return st


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def trust_policy(services: tuple[str, ...], account: str) -> dict[str, Any]:
    """Trust policy for service principals, bound to this account (confused-deputy guard)."""
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": sorted(services)},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
    )


def _list_bucket(a: Arns, bucket: str, prefixes: list[str]) -> dict[str, Any]:
    return _stmt(
        "ListPrefixes",
        ["s3:ListBucket"],
        [a.s3(bucket)],
        {"StringLike": {"s3:prefix": sorted({p + "*" for p in prefixes} | {p for p in prefixes})}},
    )


def _logs(a: Arns, groups: list[str]) -> dict[str, Any]:
    return _stmt(
        "WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [a.log_group(g) + ":*" for g in groups]
    )


def _kms(a: Arns, *, encrypt: bool) -> list[dict[str, Any]]:
    if a.kms_key is None:
        return []
    actions = ["kms:Decrypt"] + (["kms:GenerateDataKey"] if encrypt else [])
    return [_stmt("UseBucketKey", actions, [a.kms_key])]


def _workflow_run(a: Arns, extra: list[str] | None = None) -> dict[str, Any]:
    actions = ["glue:GetWorkflowRun", "glue:GetWorkflowRunProperties", "glue:PutWorkflowRunProperties"]
    return _stmt("WorkflowRun", actions + (extra or []), [a.workflow])


_CATALOG_READ = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions",
                 "glue:BatchGetPartition"]


def _catalog(a: Arns, actions: list[str]) -> dict[str, Any]:
    return _stmt("Catalog", actions, [a.catalog, a.database, a.tables])


def _scripts(a: Arns) -> dict[str, Any]:
    return _stmt("ReadScripts", ["s3:GetObject"], [a.s3(a.assets_bucket, a.settings.scripts_prefix + "*")])


def _lambda_policy(a: Arns) -> dict[str, Any]:
    s, b = a.settings, a.bucket
    return _doc(
        _workflow_run(a, ["glue:StartWorkflowRun", "glue:GetWorkflow"]),
        _stmt("ReadInput", ["s3:GetObject"], [a.s3(b, s.input_prefix + "*")]),
        _stmt("DedupeState", ["s3:GetObject", "s3:PutObject"], [a.s3(b, s.state_prefix + "*")]),
        # a claim whose StartWorkflowRun failed is released so the retried event can take it
        _stmt("ReleaseClaim", ["s3:DeleteObject"], [a.s3(b, s.state_prefix + "claims/*")]),
        _list_bucket(a, b, [s.input_prefix, s.state_prefix]),
        _stmt("Notify", ["sns:Publish"], [a.topic]),
        # The intake queue's event source mapping runs as this role (and the handler delays waiting records).
        _stmt("ConsumeIntake", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                "sqs:ChangeMessageVisibility"], [a.queue(s.intake_queue)]),
        _logs(a, [a.lambda_log_group]),
        *_kms(a, encrypt=True),
    )


def _crawler_queues(a: Arns) -> list[dict[str, Any]]:
    """What an event-mode crawler does with its queue and DLQ (AWS's list for S3 event crawls).

    Without ``sqs:SetQueueAttributes``, which AWS's list also names: it can rewrite the queue's policy
    (parliament: PERMISSIONS_MANAGEMENT_ACTIONS) and provisioning sets every attribute the queue needs
    (docs/provisioning.md, "Crawl mode").
    """
    queues = [a.queue(q) for c in a.event_crawlers for q in (a.crawler_queue(c), a.crawler_dlq(c))]
    if not queues:
        return []
    return [_stmt("ConsumeS3Events", ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
                                      "sqs:ListDeadLetterSourceQueues", "sqs:PurgeQueue", "sqs:ReceiveMessage"],
                  queues)]


def _crawler_policy(a: Arns) -> dict[str, Any]:
    s, b = a.settings, a.bucket
    return _doc(
        _stmt("ReadData", ["s3:GetObject"], [a.s3(b, s.input_prefix + "*"), a.s3(b, s.output_prefix + "*")]),
        _list_bucket(a, b, [s.input_prefix, s.output_prefix]),
        _catalog(a, [*_CATALOG_READ, "glue:CreateTable", "glue:UpdateTable", "glue:BatchCreatePartition",
                     "glue:CreatePartition", "glue:UpdatePartition", "glue:BatchUpdatePartition"]),
        _stmt("CrawlerState", ["glue:GetCrawler"], [a.crawler(s.csv_crawler), a.crawler(s.parquet_crawler)]),
        *_crawler_queues(a),
        _logs(a, [a.crawler_log_group]),
        *_kms(a, encrypt=False),
    )


def _csv_job_policy(a: Arns) -> dict[str, Any]:
    s, b = a.settings, a.bucket
    return _doc(
        _stmt("ReadInput", ["s3:GetObject"], [a.s3(b, s.input_prefix + "*")]),
        _stmt(
            "WriteResults",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [a.s3(b, p + "*") for p in (s.output_prefix, s.quarantine_prefix, s.reports_prefix)],
        ),
        _list_bucket(a, b, [s.input_prefix, s.output_prefix, s.quarantine_prefix, s.reports_prefix]),
        _scripts(a),
        _workflow_run(a),  # job 1 reads no catalog table: it knows its input from the run properties
        # the ledger row of a file that does not reach job 2, written as the loader user
        *_data_api(a),
        _logs(a, a.job_log_groups),
        *_kms(a, encrypt=True),
    )


def _connection_network(a: Arns) -> list[dict[str, Any]]:
    """What Glue needs to place a job's network interface in the connection's subnet."""
    ec2 = f"arn:{a.partition}:ec2:{a.region}:{a.account}"
    return [
        # EC2 needs "*" for these describe calls.
        _stmt(
            "ConnectionNetworkRead",
            ["ec2:DescribeVpcEndpoints", "ec2:DescribeRouteTables", "ec2:DescribeSubnets",
             "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces"],
            ["*"],
        ),
        _stmt(
            "ConnectionInterfaces",
            ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeVpcAttribute"],
            [f"{ec2}:{r}/*" for r in ("network-interface", "subnet", "security-group", "vpc")],
        ),
        _stmt(
            "TagInterfaces",
            ["ec2:CreateTags", "ec2:DeleteTags"],
            [f"{ec2}:network-interface/*"],
            {"ForAllValues:StringEquals": {"aws:TagKeys": ["aws-glue-service-resource"]}},
        ),
    ]


def _data_api(a: Arns) -> list[dict[str, Any]]:
    """Run statements on the workgroup as the loader user and read back only the role's own statements."""
    return [
        _stmt("RunStatements", ["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"],
              [a.workgroup]),
        # DescribeStatement / GetStatementResult name no resource: AWS scopes them by the statement's owner
        # (the service authorization reference; as in the AmazonRedshiftDataFullAccess managed policy)
        _stmt("ReadOwnStatements", ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"], ["*"],
              {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}),
        _stmt("LoaderSecret", ["secretsmanager:GetSecretValue"], [a.loader_secret]),
    ]


def _load_job_policy(a: Arns) -> dict[str, Any]:
    # No S3 statement: job 2 reads no object itself (COPY reads the Parquet file with the Redshift role;
    # job 1's counts arrive as workflow run properties). Glue fetches the scripts with this role.
    s = a.settings
    return _doc(
        _scripts(a),
        _workflow_run(a),
        *_data_api(a),
        # on the Glue connection only with network_placement one_az / every_az (docs/provisioning.md)
        *([] if s.network_placement == "none" else
          [_stmt("GetConnection", ["glue:GetConnection"], [a.catalog, a.connection]), *_connection_network(a)]),
        _logs(a, a.job_log_groups),
        *_kms(a, encrypt=False),
    )


def _redshift_policy(a: Arns) -> dict[str, Any]:
    s, b = a.settings, a.bucket
    return _doc(
        _stmt("CopyFromOutput", ["s3:GetObject"], [a.s3(b, s.output_prefix + "*")]),
        _list_bucket(a, b, [s.output_prefix]),
        _stmt("BucketLocation", ["s3:GetBucketLocation"], [a.s3(b)]),
        *_kms(a, encrypt=False),
    )


# role key (as in ROLE_SERVICES) -> its inline policy
_ROLE_POLICIES = {
    "lambda": _lambda_policy,
    "crawler": _crawler_policy,
    "csv_job": _csv_job_policy,
    "load_job": _load_job_policy,
    "redshift": _redshift_policy,
}


def role_policies(settings: Settings, account: str) -> dict[str, dict[str, Any]]:
    """The inline least-privilege policy of each of the five roles, keyed like :data:`ROLE_SERVICES`."""
    a = Arns(settings, account)
    return {key: _ROLE_POLICIES[key](a) for key in ROLE_SERVICES}


def pass_role_statement(settings: Settings, account: str) -> dict[str, Any]:
    """What a deployer needs to hand the roles to their services (documented; scoped by PassedToService)."""
    a = Arns(settings, account)
    s = settings
    return _stmt(
        "PassKitRoles",
        ["iam:PassRole"],
        sorted(a.role(getattr(s, attr)) for attr, _ in ROLE_SERVICES.values()),
        {"StringEquals": {"iam:PassedToService": ["glue.amazonaws.com", "lambda.amazonaws.com",
                                                  "redshift.amazonaws.com", "redshift-serverless.amazonaws.com"]}},
    )


def deployer_policy(settings: Settings, account: str) -> dict[str, Any]:
    """The PassRole part of the policy the person running ``etl-kit provision`` needs."""
    return _doc(pass_role_statement(settings, account))


def bucket_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Deny every request to the bucket that does not use TLS."""
    return _doc(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def topic_policy(settings: Settings, account: str) -> dict[str, Any]:
    """Only the four notification rules (via EventBridge) and the Lambda role may publish."""
    a = Arns(settings, account)
    return _doc(
        {
            "Sid": "EventBridgeRules",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": a.topic,
            "Condition": {"ArnEquals": {"aws:SourceArn": a.notification_rules}},
        },
        {
            "Sid": "StartLambda",
            "Effect": "Allow",
            "Principal": {"AWS": a.role(settings.lambda_role)},
            "Action": "sns:Publish",
            "Resource": a.topic,
        },
    )


def queue_policy(queue_arn: str, service: str, source_arns: list[str]) -> dict[str, Any]:
    """Let ``service`` send to the queue only on behalf of ``source_arns``."""
    return _doc(
        {
            "Sid": "AllowSource",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": sorted(source_arns)}},
        }
    )


def s3_queue_policy(queue_arn: str, bucket_arn: str, account: str) -> dict[str, Any]:
    """Let S3 send the object events of ``bucket_arn`` (in ``account``) to the queue, and nobody else."""
    return _doc(
        {
            "Sid": "AllowBucketEvents",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}, "StringEquals": {"aws:SourceAccount": account}},
        }
    )


def all_documents(settings: Settings, account: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every document, as ``name -> (kind, document)``; kind is ``identity``, ``trust`` or ``resource``."""
    a = Arns(settings, account)
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, doc in role_policies(settings, account).items():
        out[f"role:{key}"] = ("identity", doc)
    for key, (_, services) in ROLE_SERVICES.items():
        out[f"trust:{key}"] = ("trust", trust_policy(services, account))
    out["deployer:passrole"] = ("identity", deployer_policy(settings, account))
    out["bucket"] = ("resource", bucket_policy(a.bucket, a.partition))
    out["assets-bucket"] = ("resource", bucket_policy(a.assets_bucket, a.partition))
    out["topic"] = ("resource", topic_policy(settings, account))
    out["notifications-queue"] = (
        "resource", queue_policy(a.queue(settings.notification_queue), "sns.amazonaws.com", [a.topic])
    )
    for key, queue in (("intake-queue", settings.intake_queue), ("intake-dlq", settings.intake_dlq)):
        out[key] = ("resource", queue_policy(a.queue(queue), "events.amazonaws.com", [a.rule(settings.start_rule)]))
    for crawler in a.event_crawlers:
        queue = a.queue(a.crawler_queue(crawler))
        out[f"events-queue:{crawler}"] = ("resource", s3_queue_policy(queue, a.s3(a.bucket), account))
    return out


def dumps(doc: dict[str, Any]) -> str:
    """Canonical JSON of a policy document."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))

"""Step ``s3``: the project bucket and the Glue assets bucket with the uploaded scripts.

The project bucket gets Block Public Access, default encryption (SSE-S3, or SSE-KMS when
``kms_key_id`` is set), a policy denying non-TLS access and EventBridge notifications.
The ``input/``, ``output/``, ``quarantine/`` and ``reports/`` prefixes exist implicitly:
zero-byte markers would themselves raise "Object Created" events.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from etl_kit.config import Settings
from etl_kit.exceptions import AlreadyExistsOwnedByOther
from etl_kit.provision import packaging
from etl_kit.provision.base import Change, Ctx, Resource, const, or_none, run_delete, run_describe, run_ensure, run_plan
from etl_kit.provision.policies import bucket_policy, dumps

__all__ = ["STEP", "plan", "ensure", "describe", "delete", "empty_bucket", "assets"]

STEP = "s3"
SHA_KEY = "etl-kit-sha256"
# moto 5.2.5 applies a bucket policy's Deny statement whatever its Bool condition, and the local cloud is
# plain HTTP: the non-TLS deny would block every object request there. AWS gets the policy.
_LOCAL_TLS_SKIP = "local cloud is plain HTTP and moto ignores the aws:SecureTransport condition"


def _bucket_exists(ctx: Ctx, bucket: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    s3 = ctx.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=ctx.account)
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return None
        if code in ("403", "AccessDenied"):
            raise AlreadyExistsOwnedByOther(
                f"Bucket {bucket!r} exists but is not in account {ctx.account}; choose another `bucket` "
                "or set `name_suffix` in params (e.g. '-{account_id}-{region}').",
                code=code,
                resource=bucket,
            ) from err
        raise
    return {}


def _create_bucket(ctx: Ctx, bucket: str) -> None:
    kw: dict[str, Any] = {"Bucket": bucket}
    if ctx.settings.region != "us-east-1":
        kw["CreateBucketConfiguration"] = {"LocationConstraint": ctx.settings.region}
    ctx.client("s3").create_bucket(**kw)


def empty_bucket(ctx: Ctx, bucket: str) -> None:
    """Delete every object version and delete marker in ``bucket``."""
    s3 = ctx.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})


def _bucket_resources(ctx: Ctx, bucket: str, *, is_data: bool, notifications: bool) -> list[Resource]:
    s3 = ctx.client("s3")
    s = ctx.settings
    arn = ctx.arns.s3(bucket)
    pab = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
           "RestrictPublicBuckets": True}

    def enc_desired() -> dict[str, Any]:
        if s.kms_key_id:
            return {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": s.kms_key_id, "BucketKeyEnabled": True}
        return {"SSEAlgorithm": "AES256"}

    def enc_read() -> dict[str, Any] | None:
        r = or_none(lambda: s3.get_bucket_encryption(Bucket=bucket))
        if r is None:
            return None
        rule = r["ServerSideEncryptionConfiguration"]["Rules"][0]
        d = rule.get("ApplyServerSideEncryptionByDefault", {})
        out = {"SSEAlgorithm": d.get("SSEAlgorithm")}
        if "KMSMasterKeyID" in d:
            out["KMSMasterKeyID"] = d["KMSMasterKeyID"]
        if "BucketKeyEnabled" in rule:
            out["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
        return out

    def enc_put(_: Any = None) -> None:
        want = enc_desired()
        default = {k: v for k, v in want.items() if k != "BucketKeyEnabled"}
        rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default}
        if "BucketKeyEnabled" in want:
            rule["BucketKeyEnabled"] = True
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})

    def pab_read() -> dict[str, Any] | None:
        r = or_none(lambda: s3.get_public_access_block(Bucket=bucket))
        return None if r is None else dict(r["PublicAccessBlockConfiguration"])

    def pab_put(_: Any = None) -> None:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=pab)

    policy = bucket_policy(bucket, ctx.arns.partition)

    def pol_read() -> dict[str, Any] | None:
        r = or_none(lambda: s3.get_bucket_policy(Bucket=bucket))
        return None if r is None else {"Policy": json.loads(r["Policy"])}

    def pol_put(_: Any = None) -> None:
        s3.put_bucket_policy(Bucket=bucket, Policy=dumps(policy))

    def _exists() -> dict[str, Any] | None:
        return _bucket_exists(ctx, bucket)

    def _delete() -> None:
        empty_bucket(ctx, bucket)
        s3.delete_bucket(Bucket=bucket)

    out = [
        Resource("s3-bucket", bucket, _exists, dict, lambda: _create_bucket(ctx, bucket), lambda d: None,
                 _delete, arn=arn, is_data=is_data),
        Resource("s3-public-access-block", bucket, pab_read, lambda: pab, pab_put, pab_put, lambda: None,
                 arn=arn, sub=True),
        Resource("s3-encryption", bucket, enc_read, enc_desired, enc_put, enc_put, lambda: None, arn=arn, sub=True),
        Resource("s3-bucket-policy", bucket, pol_read, lambda: {"Policy": policy}, pol_put, pol_put, lambda: None,
                 arn=arn, sub=True, skip=_LOCAL_TLS_SKIP if ctx.local else ""),
    ]
    if notifications:
        def ntf_read() -> dict[str, Any] | None:
            r = or_none(lambda: s3.get_bucket_notification_configuration(Bucket=bucket))
            if r is None:
                return None
            return {"EventBridge": "EventBridgeConfiguration" in r}

        def ntf_put(_: Any = None) -> None:
            # Only EventBridge: the rule start-lambda-rule filters on bucket and input/ prefix.
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

        out.append(Resource("s3-eventbridge-notifications", bucket, ntf_read, lambda: {"EventBridge": True},
                            ntf_put, ntf_put, lambda: None, arn=arn, sub=True))
    return out


def assets(ctx: Ctx) -> dict[str, bytes]:
    """Objects to upload under the assets bucket's scripts prefix (key -> bytes)."""
    prefix = ctx.settings.scripts_prefix
    out = {prefix + name: data for name, data in packaging.glue_scripts().items()}
    out[prefix + packaging.PIPELINE_ZIP_NAME] = packaging.pipeline_zip()
    return out


def _object_resources(ctx: Ctx, bucket: str) -> list[Resource]:
    s3 = ctx.client("s3")
    out = []
    for key, data in assets(ctx).items():
        sha = packaging.sha256_b64(data)

        def read(key: str = key) -> dict[str, Any] | None:
            r = or_none(lambda: s3.head_object(Bucket=bucket, Key=key))
            return None if r is None else {"sha256": r.get("Metadata", {}).get(SHA_KEY)}

        def put(_: Any = None, key: str = key, data: bytes = data, sha: str = sha) -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA_KEY: sha})

        def rm(key: str = key) -> None:
            s3.delete_object(Bucket=bucket, Key=key)

        out.append(Resource("s3-object", f"s3://{bucket}/{key}", read, const({"sha256": sha}), put, put, rm,
                            arn=ctx.arns.s3(bucket, key), sub=True))
    return out


def _resources(ctx: Ctx) -> list[Resource]:
    a = ctx.arns
    return [
        *_bucket_resources(ctx, a.bucket, is_data=True, notifications=True),
        *_bucket_resources(ctx, a.assets_bucket, is_data=False, notifications=False),
        *_object_resources(ctx, a.assets_bucket),
    ]


def plan(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """What :func:`ensure` would change."""
    return run_plan(STEP, _resources(Ctx(settings, session)))


def ensure(settings: Settings, session: boto3.Session | None = None) -> list[Change]:
    """Create or correct both buckets and upload changed scripts."""
    return run_ensure(STEP, _resources(Ctx(settings, session)))


def describe(settings: Settings, session: boto3.Session | None = None) -> dict[str, Any]:
    """Inventory of the buckets."""
    return run_describe(_resources(Ctx(settings, session)))


def delete(settings: Settings, session: boto3.Session | None = None, *, keep_data: bool = False) -> list[Change]:
    """Empty and delete the assets bucket, and the project bucket unless ``keep_data``."""
    return run_delete(STEP, _resources(Ctx(settings, session)), keep_data=keep_data)

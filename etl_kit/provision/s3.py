"""Step ``s3``: the project bucket and the Glue assets bucket with the uploaded scripts.

The project bucket gets Block Public Access, default encryption (SSE-S3, or SSE-KMS when
``kms_key_id`` is set), a policy denying non-TLS access and its notifications: EventBridge (the start
rule) and, with ``crawl_mode: events``, each crawler's prefix to its event queue (the queues come first:
S3 checks the destinations when the configuration is put; :mod:`etl_kit.provision.crawl_events`).
The ``input/``, ``output/``, ``quarantine/`` and ``reports/`` prefixes exist implicitly:
zero-byte markers would themselves raise "Object Created" events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

from etl_kit.exceptions import AlreadyExistsOwnedByOther, error_code, is_not_found
from etl_kit.provision import crawl_events, packaging
from etl_kit.provision.base import Ctx, Resource, Step, read_with
from etl_kit.provision.policies import bucket_policy, dumps

__all__ = ["STEP", "empty_bucket", "assets"]

SHA_KEY = "etl-kit-sha256"
# moto 5.2.5 applies a bucket policy's Deny statement whatever its Bool condition, and the local cloud is
# plain HTTP: the non-TLS deny would block every object request there. AWS gets the policy.
_LOCAL_TLS_SKIP = "local cloud is plain HTTP and moto ignores the aws:SecureTransport condition"
_PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                        "RestrictPublicBuckets": True}


def _bucket_exists(ctx: Ctx, bucket: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    s3 = ctx.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=ctx.account)
    except ClientError as err:
        if is_not_found(err):
            return None
        if error_code(err) in ("403", "AccessDenied"):
            raise AlreadyExistsOwnedByOther(
                f"Bucket {bucket!r} exists but is not in account {ctx.account}; choose another `bucket` "
                "or set `name_suffix` in params (e.g. '-{account_id}-{region}').",
                code=error_code(err),
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


def _bucket(ctx: Ctx, bucket: str, *, is_data: bool) -> Resource:
    s3 = ctx.client("s3")

    def delete() -> None:
        empty_bucket(ctx, bucket)
        s3.delete_bucket(Bucket=bucket)

    return Resource("s3-bucket", bucket, read=lambda: _bucket_exists(ctx, bucket),
                    create=lambda: _create_bucket(ctx, bucket), delete=delete, arn=ctx.arns.s3(bucket),
                    is_data=is_data)


def _encryption(ctx: Ctx, bucket: str) -> Resource:
    s3 = ctx.client("s3")
    kms = ctx.settings.kms_key_id
    want = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms, "BucketKeyEnabled": True} if kms else \
        {"SSEAlgorithm": "AES256"}

    def project(r: dict[str, Any]) -> dict[str, Any]:
        rule = r["ServerSideEncryptionConfiguration"]["Rules"][0]
        d = rule.get("ApplyServerSideEncryptionByDefault", {})
        out = {"SSEAlgorithm": d.get("SSEAlgorithm")}
        if "KMSMasterKeyID" in d:
            out["KMSMasterKeyID"] = d["KMSMasterKeyID"]
        if "BucketKeyEnabled" in rule:
            out["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
        return out

    def put(_: Any = None) -> None:
        rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": {k: v for k, v in want.items()
                                                                       if k != "BucketKeyEnabled"}}
        if "BucketKeyEnabled" in want:
            rule["BucketKeyEnabled"] = True
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})

    return Resource("s3-encryption", bucket, read=read_with(partial(s3.get_bucket_encryption, Bucket=bucket), project),
                    desired=want, create=put, update=put, arn=ctx.arns.s3(bucket), part_of=bucket)


def _setting(ctx: Ctx, bucket: str, kind: str, read: Callable[[], dict[str, Any] | None],
             desired: dict[str, Any], put: Callable[[], Any], skip: str = "") -> Resource:
    """A setting of ``bucket`` that one ``put_bucket_*`` call sets whole."""
    return Resource(kind, bucket, read=read, desired=desired, create=put, update=lambda _: put(),
                    arn=ctx.arns.s3(bucket), part_of=bucket, skip=skip)


def _bucket_resources(ctx: Ctx, bucket: str, *, is_data: bool, notifications: bool) -> list[Resource]:
    s3 = ctx.client("s3")
    policy = bucket_policy(bucket, ctx.arns.partition)
    out = [
        _bucket(ctx, bucket, is_data=is_data),
        _setting(ctx, bucket, "s3-public-access-block",
                 read_with(partial(s3.get_public_access_block, Bucket=bucket),
                           lambda r: dict(r["PublicAccessBlockConfiguration"])),
                 _PUBLIC_ACCESS_BLOCK,
                 partial(s3.put_public_access_block, Bucket=bucket,
                         PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK)),
        _encryption(ctx, bucket),
        _setting(ctx, bucket, "s3-bucket-policy",
                 read_with(partial(s3.get_bucket_policy, Bucket=bucket), lambda r: {"Policy": json.loads(r["Policy"])}),
                 {"Policy": policy}, partial(s3.put_bucket_policy, Bucket=bucket, Policy=dumps(policy)),
                 skip=_LOCAL_TLS_SKIP if ctx.local else ""),
    ]
    if notifications:
        out.append(_notifications(ctx, bucket))
    return out


def _queue_entry(q: dict[str, Any]) -> dict[str, Any]:
    """A ``QueueConfigurations`` entry as compared (S3 answers filter rule names in either case)."""
    rules = [{"Name": r["Name"].lower(), "Value": r["Value"]}
             for r in q.get("Filter", {}).get("Key", {}).get("FilterRules", [])]
    return {"Id": q.get("Id"), "QueueArn": q.get("QueueArn"), "Events": sorted(q.get("Events", [])),
            "Filter": {"Key": {"FilterRules": rules}}}


def _notifications(ctx: Ctx, bucket: str) -> Resource:
    """EventBridge (the start rule filters on bucket and ``input/``) plus the crawlers' event queues.

    Teardown deletes a queue after taking it out of this configuration
    (:func:`etl_kit.provision.crawl_events.queue_resources`), so a kept bucket points at no deleted queue.
    """
    s3 = ctx.client("s3")
    queues = [_queue_entry(q) for q in crawl_events.queue_configurations(ctx)]

    def project(r: dict[str, Any]) -> dict[str, Any]:
        return {"EventBridge": "EventBridgeConfiguration" in r,
                "Queues": sorted((_queue_entry(q) for q in r.get("QueueConfigurations", [])), key=str)}

    full = {"EventBridgeConfiguration": {}, **({"QueueConfigurations": queues} if queues else {})}
    return _setting(ctx, bucket, "s3-notifications",
                    read_with(partial(s3.get_bucket_notification_configuration, Bucket=bucket), project),
                    {"EventBridge": True, "Queues": sorted(queues, key=str)},
                    partial(s3.put_bucket_notification_configuration, Bucket=bucket,
                            NotificationConfiguration=full))


def assets(ctx: Ctx) -> dict[str, bytes]:
    """Objects to upload under the assets bucket's scripts prefix (key -> bytes)."""
    prefix = ctx.settings.scripts_prefix
    out = {prefix + name: data for name, data in packaging.glue_scripts().items()}
    out[prefix + packaging.PIPELINE_ZIP_NAME] = packaging.pipeline_zip()
    return out


def _object(ctx: Ctx, bucket: str, key: str, data: bytes) -> Resource:
    s3 = ctx.client("s3")
    sha = packaging.sha256_b64(data)
    put = partial(s3.put_object, Bucket=bucket, Key=key, Body=data, Metadata={SHA_KEY: sha})
    return Resource("s3-object", f"s3://{bucket}/{key}",
                    read=read_with(partial(s3.head_object, Bucket=bucket, Key=key),
                                   lambda r: {"sha256": r.get("Metadata", {}).get(SHA_KEY)}),
                    desired={"sha256": sha}, create=put, update=lambda _: put(),
                    delete=partial(s3.delete_object, Bucket=bucket, Key=key), arn=ctx.arns.s3(bucket, key),
                    part_of=bucket)


def _resources(ctx: Ctx) -> list[Resource]:
    a = ctx.arns
    return [
        *crawl_events.queue_resources(ctx),
        *_bucket_resources(ctx, a.bucket, is_data=True, notifications=True),
        *_bucket_resources(ctx, a.assets_bucket, is_data=False, notifications=False),
        *(_object(ctx, a.assets_bucket, key, data) for key, data in assets(ctx).items()),
    ]


STEP = Step("s3", _resources, legacy=crawl_events.legacy_queues)

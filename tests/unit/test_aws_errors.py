"""What the aws target answers when AWS says no: the kit's own errors, naming the resource and the fix.

S3's answers are played by botocore's Stubber on a real client (the request shapes are validated by botocore).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from etl_kit.config import load_settings
from etl_kit.exceptions import AlreadyExistsOwnedByOther, ResourceNotFound, translate
from etl_kit.provision import s3 as s3_step
from etl_kit.provision.base import Ctx

pytestmark = pytest.mark.unit


def _ctx_with(client: object) -> Ctx:
    settings = load_settings(None, target="aws", name_suffix="-{account_id}-{region}")
    ctx = Ctx(settings, boto3.Session(region_name="us-east-1"))
    ctx.__dict__["account"] = "111122223333"  # cached_property: no STS call
    ctx._clients["s3"] = client
    return ctx


def test_a_bucket_owned_by_another_account_names_the_bucket_and_the_fix() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403,
                              expected_params={"Bucket": "taken-name", "ExpectedBucketOwner": "111122223333"})
        with pytest.raises(AlreadyExistsOwnedByOther) as exc:
            s3_step._bucket_exists(_ctx_with(s3), "taken-name")
    msg = str(exc.value)
    assert "'taken-name'" in msg and "111122223333" in msg and "name_suffix" in msg
    assert exc.value.__cause__ is not None  # the botocore error is kept


def test_a_missing_bucket_is_reported_as_absent_not_as_an_error() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        assert s3_step._bucket_exists(_ctx_with(s3), "free-name") is None


def test_botocore_errors_translate_to_the_kits_own() -> None:
    from botocore.exceptions import ClientError

    err = ClientError({"Error": {"Code": "BucketAlreadyExists", "Message": "taken"}}, "CreateBucket")
    out = translate(err, action="create bucket", resource="sales-data-etl-project")
    assert isinstance(out, AlreadyExistsOwnedByOther) and "name_suffix" in str(out)
    err = ClientError({"Error": {"Code": "EntityNotFoundException", "Message": "no job"}}, "GetJob")
    out = translate(err, action="get job", resource="csv-to-parquet-job")
    assert isinstance(out, ResourceNotFound) and "csv-to-parquet-job" in str(out) and "etl-kit provision" in str(out)


def test_one_error_code_and_one_not_found_set_serve_every_service() -> None:
    from botocore.exceptions import ClientError

    from etl_kit.exceptions import AccessDenied, AwsError, error_code, is_not_found

    def err(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")

    assert error_code(err("EntityNotFoundException")) == "EntityNotFoundException"
    assert error_code(AwsError("x", code="NoSuchKey")) == "NoSuchKey"
    assert error_code(ValueError("no response")) == ""
    for code in ("NoSuchBucketPolicy", "InvalidGroup.NotFound", "AWS.SimpleQueueService.NonExistentQueue", "404",
                 "ResourceNotFoundException"):
        assert is_not_found(err(code)), code
        translated = translate(err(code), action="read thing", resource="the-thing")
        assert isinstance(translated, ResourceNotFound) and is_not_found(translated) and "the-thing" in str(translated)
    for code in ("AccessDenied", "ThrottlingException", ""):
        assert not is_not_found(err(code)), code
    denied = translate(err("AccessDeniedException"), action="get job", resource="csv-job")
    assert isinstance(denied, AccessDenied) and not is_not_found(denied)

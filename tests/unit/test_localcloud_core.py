"""The local cloud's shared helpers (etl_localcloud/core): ARNs and AWS-shaped errors (unit: no server)."""

from __future__ import annotations

import pytest

from etl_localcloud.core.arns import arn
from etl_localcloud.core.errors import AwsError

pytestmark = pytest.mark.unit


def test_arns_are_spelled_as_aws_spells_them() -> None:
    assert arn("redshift-serverless", "eu-west-1", "111122223333", "workgroup/wg") == \
        "arn:aws:redshift-serverless:eu-west-1:111122223333:workgroup/wg"
    assert arn("lambda", "us-east-1", "123456789012", "function:router") == \
        "arn:aws:lambda:us-east-1:123456789012:function:router"
    assert arn("iam", "", "123456789012", "user/local") == "arn:aws:iam::123456789012:user/local"


def test_an_error_class_is_its_aws_code_with_its_status() -> None:
    class ResourceNotFoundException(AwsError):
        http_status = 404

    class ValidationException(AwsError):
        pass

    err = ResourceNotFoundException("Function not found: f")
    assert (err.code, err.message, err.status, str(err)) == (
        "ResourceNotFoundException", "Function not found: f", 404, "Function not found: f")
    assert (ValidationException("bad").code, ValidationException("bad").status) == ("ValidationException", 400)

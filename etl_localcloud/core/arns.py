"""ARNs as the providers build them: one spelling of AWS's ``arn:partition:service:region:account:resource``."""

from __future__ import annotations

__all__ = ["arn", "PARTITION"]

PARTITION = "aws"


def arn(service: str, region: str, account_id: str, resource: str) -> str:
    """The ARN of ``resource`` (``workgroup/wg``, ``function:f``, ``user/local``) in ``service``.

    ``region`` is empty for global services (IAM), as in AWS's ARNs.

    Examples
    --------
    >>> arn("redshift-serverless", "us-east-1", "123456789012", "workgroup/wg")
    'arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/wg'
    >>> arn("iam", "", "123456789012", "user/local")
    'arn:aws:iam::123456789012:user/local'
    """
    return f"arn:{PARTITION}:{service}:{region}:{account_id}:{resource}"

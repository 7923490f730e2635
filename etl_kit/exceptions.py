"""The kit's one exceptions module.

Every error the kit raises derives from :class:`EtlKitError`. botocore errors are
translated by :func:`translate` (or the :func:`aws_errors` context manager) into the
kit's own classes; the original exception stays available as ``__cause__`` and the
message names the resource and the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from etl_runtime.awsutil import error_code as runtime_error_code
from etl_runtime.errors import EtlKitError, FileRejected, PipelineError, WarehouseError

__all__ = [
    "EtlKitError",
    "ConfigError",
    "AwsError",
    "ResourceNotFound",
    "AccessDenied",
    "AlreadyExistsOwnedByOther",
    "CredentialsError",
    "LocalCloudError",
    "PipelineError",
    "FileRejected",
    "WarehouseError",
    "WaitTimeout",
    "ValidationFailed",
    "NOT_FOUND_CODES",
    "error_code",
    "is_not_found",
    "translate",
    "aws_errors",
]


class ConfigError(EtlKitError, ValueError):
    """A parameter file or value is invalid (names the key, the file and the expected form)."""


class AwsError(EtlKitError):
    """An AWS (or local cloud) call failed; ``code`` is the AWS error code."""

    def __init__(self, message: str, *, code: str = "", resource: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.resource = resource


class ResourceNotFound(AwsError):
    """The named resource does not exist."""


class AccessDenied(AwsError):
    """The caller may not perform the call."""


class AlreadyExistsOwnedByOther(AwsError):
    """A globally unique name (an S3 bucket) belongs to someone else."""


class CredentialsError(EtlKitError):
    """No usable AWS credentials or region for the ``aws`` target."""


class LocalCloudError(EtlKitError):
    """The local cloud daemon could not be started, reached or stopped."""


class WaitTimeout(EtlKitError):
    """A wait for a resource or run did not finish in time."""


class ValidationFailed(EtlKitError):
    """One or more data validation checks failed."""


# Error codes meaning "this resource is not there", across the services the kit calls. One set for the
# whole kit: provisioning reads an absent resource as "to create", the other modules as ResourceNotFound.
NOT_FOUND_CODES = frozenset({
    "NoSuchBucket", "NoSuchKey", "NotFound", "404", "NoSuchEntity", "EntityNotFoundException",
    "ResourceNotFoundException", "NotFoundException", "NoSuchEntityException", "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue", "NoSuchBucketPolicy", "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError", "InvalidGroup.NotFound", "InvalidVpcEndpointId.NotFound",
    "InvalidVpcID.NotFound", "NoSuchTagSet",
})
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}

_FIX = {
    "not_found": "create it with `etl-kit provision --params FILE` or check the name in your params file",
    "denied": "check that your credentials' policy allows this call on this resource",
    "other_bucket": "choose another bucket name or set `name_suffix` in params (e.g. '-{account_id}-{region}')",
}


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (or of a translated :class:`AwsError`); ``""`` otherwise."""
    if isinstance(err, AwsError):
        return err.code
    return runtime_error_code(err)


def is_not_found(err: BaseException) -> bool:
    """True when ``err`` says the resource does not exist (a :data:`NOT_FOUND_CODES` code or
    :class:`ResourceNotFound`)."""
    return isinstance(err, ResourceNotFound) or error_code(err) in NOT_FOUND_CODES


def translate(err: BaseException, *, action: str, resource: str) -> EtlKitError:
    """Translate a botocore error into the kit's exception; the caller raises it ``from err``.

    Parameters
    ----------
    err
        The exception raised by boto3/botocore.
    action
        What the kit was doing, e.g. ``"get crawler"``.
    resource
        The name or ARN of the resource concerned.
    """
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

    if isinstance(err, (NoCredentialsError,)):
        return CredentialsError(
            f"Cannot {action} {resource!r}: no AWS credentials found. "
            "Set AWS_PROFILE or `aws_profile` in params, or use target: local."
        )
    if isinstance(err, NoRegionError):
        return CredentialsError(f"Cannot {action} {resource!r}: no region set; set `region` in params.")
    if isinstance(err, EndpointConnectionError):
        return LocalCloudError(
            f"Cannot {action} {resource!r}: endpoint unreachable ({err}). "
            "For target local, start it with `etl-kit local up`."
        )
    if isinstance(err, ClientError):
        code = error_code(err)
        msg = str(err.response.get("Error", {}).get("Message", "")) or str(err)
        if code in NOT_FOUND_CODES:
            return ResourceNotFound(
                f"Cannot {action}: {resource!r} does not exist ({code}: {msg}); {_FIX['not_found']}.",
                code=code,
                resource=resource,
            )
        if code in _DENIED:
            return AccessDenied(
                f"Cannot {action} {resource!r}: access denied ({code}: {msg}); {_FIX['denied']}.",
                code=code,
                resource=resource,
            )
        if code == "BucketAlreadyExists":
            return AlreadyExistsOwnedByOther(
                f"Bucket {resource!r} already exists and belongs to another account; {_FIX['other_bucket']}.",
                code=code,
                resource=resource,
            )
        return AwsError(f"Cannot {action} {resource!r}: {code}: {msg}", code=code, resource=resource)
    return EtlKitError(f"Cannot {action} {resource!r}: {err}")


@contextlib.contextmanager
def aws_errors(action: str, resource: str) -> Iterator[None]:
    """Context manager: re-raise botocore errors as the kit's, keeping the cause."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as err:
        raise translate(err, action=action, resource=resource) from err

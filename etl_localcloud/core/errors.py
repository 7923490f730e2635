"""AWS-shaped errors for every provider: one class per AWS error code, and moto's errors passed on.

A provider raises ``EntityNotFoundException("Job with name: x not found")``; the dispatcher answers
with that code, message and status, as AWS would. moto's own refusals reach a provider as botocore
``ClientError`` s (providers read moto's records through a client); :func:`from_client_error` turns
one back into the same AWS error for the provider's caller.
"""

from __future__ import annotations

from typing import Any, ClassVar

from etl_localcloud.dispatcher import ServiceError

__all__ = ["AwsError", "client_error_code", "from_client_error"]


class AwsError(ServiceError):
    """Base of the errors named after AWS's codes: the class name is the code.

    Subclass per code (``class EntityNotFoundException(AwsError)``); set ``http_status`` for a code
    AWS does not answer with 400.
    """

    http_status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(type(self).__name__, message, self.http_status)


def client_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    resp: Any = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


def from_client_error(exc: Exception) -> Exception:
    """A botocore ``ClientError`` from moto as the same AWS error for our caller (others unchanged)."""
    code = client_error_code(exc)
    if not code:
        return exc
    resp: Any = getattr(exc, "response", None)
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
    return ServiceError(code, str(resp["Error"].get("Message", "")), status)

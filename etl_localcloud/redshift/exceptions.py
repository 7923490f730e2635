"""The errors the Redshift providers answer, named after the codes AWS uses (as moto's ``exceptions.py``).

Both ``redshift-serverless`` and ``redshift-data`` answer with these; the class name is the code
(:class:`~etl_localcloud.dispatcher.AwsError`) and the dispatcher answers AWS's JSON error shape.
"""

from __future__ import annotations

from etl_localcloud.core.errors import AwsError

__all__ = [
    "ValidationException",
    "ResourceNotFoundException",
    "ConflictException",
    "TooManyTagsException",
    "InternalServerException",
    "DatabaseConnectionException",
]


class ValidationException(AwsError):
    """A request AWS refuses as invalid (400)."""


class ResourceNotFoundException(AwsError):
    """A namespace, workgroup, ARN or statement that does not exist (400)."""


class ConflictException(AwsError):
    """A name already taken, or a resource still in use (400)."""


class TooManyTagsException(AwsError):
    """More than 50 tags on one resource (400)."""


class InternalServerException(AwsError):
    """The local warehouse is not running (500)."""

    http_status = 500


class DatabaseConnectionException(AwsError):
    """The Data API could not run a catalog query on the database (500)."""

    http_status = 500

"""The errors the Redshift providers answer, named after the codes AWS uses (as moto's ``exceptions.py``).

Both ``redshift-serverless`` and ``redshift-data`` answer with these; the dispatcher turns any
:class:`~etl_localcloud.dispatcher.ServiceError` into AWS's JSON error shape.
"""

from __future__ import annotations

from etl_localcloud.dispatcher import ServiceError

__all__ = [
    "ValidationException",
    "ResourceNotFoundException",
    "ConflictException",
    "TooManyTagsException",
    "InternalServerException",
    "DatabaseConnectionException",
]


class ValidationException(ServiceError):
    """A request AWS refuses as invalid (400)."""

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


class ResourceNotFoundException(ServiceError):
    """A namespace, workgroup, ARN or statement that does not exist (400)."""

    def __init__(self, message: str) -> None:
        super().__init__("ResourceNotFoundException", message)


class ConflictException(ServiceError):
    """A name already taken, or a resource still in use (400)."""

    def __init__(self, message: str) -> None:
        super().__init__("ConflictException", message)


class TooManyTagsException(ServiceError):
    """More than 50 tags on one resource (400)."""

    def __init__(self, message: str) -> None:
        super().__init__("TooManyTagsException", message)


class InternalServerException(ServiceError):
    """The local warehouse is not running (500)."""

    def __init__(self, message: str) -> None:
        super().__init__("InternalServerException", message, 500)


class DatabaseConnectionException(ServiceError):
    """The Data API could not run a catalog query on the database (500)."""

    def __init__(self, message: str) -> None:
        super().__init__("DatabaseConnectionException", message, 500)

"""Errors raised by the code shipped to AWS, and the root of the kit's error hierarchy.

The runtime package cannot import the kit, so the classes both sides raise live here;
:mod:`etl_kit.exceptions` re-exports them and adds the kit's own.
"""

from __future__ import annotations

__all__ = ["EtlKitError", "PipelineError", "FileRejected", "WarehouseError"]



class EtlKitError(Exception):
    """Base class of every error the kit raises."""


class PipelineError(EtlKitError):
    """A pipeline step (Lambda, job 1, job 2) failed."""


class FileRejected(PipelineError):
    """A source object cannot be processed at all; ``reason`` is a short machine code."""

    def __init__(self, message: str, *, reason: str, bucket: str = "", key: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.bucket = bucket
        self.key = key


class WarehouseError(EtlKitError):
    """A statement in the warehouse failed; the message holds the database's own text."""

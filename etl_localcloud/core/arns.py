"""ARNs as the providers build them: one spelling of ``arn:aws:<service>:<region>:<account>:<resource>``."""

from __future__ import annotations

__all__ = ["arn"]


def arn(service: str, region: str, account_id: str, resource: str) -> str:
    """``arn:aws:{service}:{region}:{account_id}:{resource}`` (``region`` empty for global services like IAM)."""
    return f"arn:aws:{service}:{region}:{account_id}:{resource}"

"""In-process SNS delivery (EventBridge -> SNS).

Touches: ``moto.sns.models.sns_backends[account][region].publish``.
"""

from __future__ import annotations

from etl_localcloud.motohooks.probe import backend_lacks

__all__ = ["sns_publish", "contract"]


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.sns.models import sns_backends

    return backend_lacks(sns_backends, "SNSBackend", "publish")


def sns_publish(account_id: str, region: str, topic_arn: str, message: str, subject: str | None = None) -> None:
    """Publish to an SNS topic in-process (EventBridge -> SNS delivery)."""
    from moto.sns.models import sns_backends

    sns_backends[account_id][region].publish(message=message, arn=topic_arn, subject=subject)

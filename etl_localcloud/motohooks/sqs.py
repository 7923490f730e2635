"""In-process SQS delivery (EventBridge -> SQS), as moto itself delivers.

Touches: ``moto.sqs.models.sqs_backends[account][region].send_message``.
"""

from __future__ import annotations

from etl_localcloud.motohooks.probe import backend_lacks

__all__ = ["sqs_send", "contract"]


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.sqs.models import sqs_backends

    return backend_lacks(sqs_backends, "SQSBackend", "send_message")


def sqs_send(account_id: str, region: str, queue_arn: str, body: str, group_id: str | None = None) -> None:
    """Send a message to a queue in-process (EventBridge -> SQS delivery, as moto itself does)."""
    from moto.sqs.models import sqs_backends

    sqs_backends[account_id][region].send_message(queue_name=queue_arn.split(":")[5], message_body=body,
                                                  group_id=group_id)

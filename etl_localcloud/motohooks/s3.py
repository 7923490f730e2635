"""S3's GetBucketNotificationConfiguration with the EventBridge configuration moto stores but does not show.

Touches: ``moto.s3.responses.S3Response.get_bucket_notification`` (wrapped) and
``S3Backend.get_bucket_notification_configuration(...).event_bridge``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install_s3_notification_fix", "contract"]


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.s3.responses import S3Response

    if not hasattr(S3Response, "get_bucket_notification"):
        return ["S3Response lacks get_bucket_notification"]
    return []


def install_s3_notification_fix() -> None:
    """Show ``EventBridgeConfiguration`` in GetBucketNotificationConfiguration.

    moto 5.2.5 stores it (and delivers the events) but leaves it out of the GET response, so
    nobody could see whether a bucket sends events to EventBridge, or correct drift.
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response.get_bucket_notification, "_etl_kit", False):
        return
    original = S3Response.get_bucket_notification

    def get_bucket_notification(self: Any) -> Any:
        result = original(self)
        cfg = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if cfg is None or getattr(cfg, "event_bridge", None) is None:
            return result
        tag = b"<EventBridgeConfiguration></EventBridgeConfiguration>"
        if isinstance(result, tuple):
            status, headers, body = result
        else:
            status, headers, body = 200, {}, result
        raw = body.encode() if isinstance(body, str) else bytes(body or b"")
        if b"</NotificationConfiguration>" in raw:
            raw = raw.replace(b"</NotificationConfiguration>", tag + b"</NotificationConfiguration>")
        else:
            raw = (b'<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                   b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + tag + b"</NotificationConfiguration>")
        if isinstance(headers, dict):
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return status, headers, raw

    get_bucket_notification._etl_kit = True  # type: ignore[attr-defined]
    S3Response.get_bucket_notification = get_bucket_notification  # type: ignore[method-assign]

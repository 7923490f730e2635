"""The pinned moto version and the check that every internal the hook modules touch is still there."""

from __future__ import annotations

__all__ = ["MOTO_VERSION", "check_contract"]

MOTO_VERSION = "5.2.5"


def check_contract() -> list[str]:
    """Return the list of moto internals that are missing or changed (empty = all good)."""
    problems: list[str] = []
    try:
        import moto

        if moto.__version__ != MOTO_VERSION:
            problems.append(f"moto version {moto.__version__} != pinned {MOTO_VERSION}")
        from etl_localcloud.motohooks import events, glue, iam, lambda_, s3, s3_blobs, s3_multipart, server, sns, sqs

        for module in (server, events, lambda_, glue, iam, s3, sns, sqs, s3_blobs, s3_multipart):
            problems.extend(module.contract())
    except ImportError as exc:
        problems.append(f"moto import failed: {exc}")
    return problems

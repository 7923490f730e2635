"""How the hook modules' ``contract()`` checks look at moto: a sample backend and its methods."""

from __future__ import annotations

from typing import Any

__all__ = ["backend_lacks"]

SAMPLE_ACCOUNT, SAMPLE_REGION = "123456789012", "us-east-1"


def backend_lacks(backends: Any, label: str, *methods: str) -> list[str]:
    """``"<label> lacks <method>"`` for each of ``methods`` a sample backend of ``backends`` does not have."""
    backend = backends[SAMPLE_ACCOUNT][SAMPLE_REGION]
    return [f"{label} lacks {m}" for m in methods if not hasattr(backend, m)]

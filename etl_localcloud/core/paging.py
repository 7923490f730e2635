"""One pagination helper for every provider: AWS's ``MaxResults``/``NextToken`` contract.

Services differ only in spelling (``NextToken`` vs ``nextToken``), in the default page size and in
whether the token is plain or base64; :class:`Paging` names those per operation. The token is an
offset into a list the provider sorts stably, opaque to callers as AWS's are.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from etl_localcloud.dispatcher import ServiceError

__all__ = ["Paging", "GLUE", "REDSHIFT_SERVERLESS", "REDSHIFT_DATA"]


@dataclass(frozen=True)
class Paging:
    """How one service spells paging: token and size fields, default page size, token encoding."""

    token_field: str = "NextToken"
    size_field: str = "MaxResults"
    default_size: int = 100
    base64_token: bool = False
    error_code: str = "InvalidInputException"

    def _decode(self, token: str) -> int:
        try:
            text = base64.b64decode(token, validate=True).decode() if self.base64_token else token
            start = int(text)
        except (ValueError, UnicodeDecodeError):
            raise ServiceError(self.error_code, f"Invalid {self.token_field}") from None
        if start < 0:
            raise ServiceError(self.error_code, f"Invalid {self.token_field}")
        return start

    def _encode(self, offset: int) -> str:
        return base64.b64encode(str(offset).encode()).decode() if self.base64_token else str(offset)

    def slice(
        self, items: list[Any], body: dict[str, Any], default_size: int | None = None
    ) -> tuple[list[Any], str | None]:
        """The page of ``items`` the request asks for, and the token of the next page (``None`` at the end)."""
        token = body.get(self.token_field)
        start = self._decode(str(token)) if token else 0
        size = int(body.get(self.size_field) or default_size or self.default_size)
        if size < 1:
            raise ServiceError(self.error_code, f"{self.size_field} must be at least 1")
        end = start + size
        return items[start:end], (self._encode(end) if end < len(items) else None)

    def response(
        self, items: list[Any], body: dict[str, Any], key: str, default_size: int | None = None
    ) -> dict[str, Any]:
        """``{key: page}`` plus the next token under the service's spelling when there is more."""
        chunk, nxt = self.slice(items, body, default_size)
        out: dict[str, Any] = {key: chunk}
        if nxt is not None:
            out[self.token_field] = nxt
        return out


GLUE = Paging()
REDSHIFT_SERVERLESS = Paging("nextToken", "maxResults", 100, base64_token=True, error_code="ValidationException")
REDSHIFT_DATA = Paging("NextToken", "MaxResults", 1000, base64_token=True, error_code="ValidationException")

"""The local cloud's own error: what its callers (the kit's CLI, notebooks, tests) catch and show."""

from __future__ import annotations

__all__ = ["CloudError"]


class CloudError(Exception):
    """The local cloud could not start, stop, repair or answer; the message names the part and the fix."""

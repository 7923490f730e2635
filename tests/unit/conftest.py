"""The unit tier's shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["arrow", "python"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each CSV engine of the runtime's reader: pyarrow's (skipped where pyarrow lacks ``invalid_row_handler``)
    and the pure-Python fallback."""
    from etl_runtime.csvread import arrow_supports_handler

    if request.param == "arrow" and not arrow_supports_handler():
        pytest.skip("pyarrow without invalid_row_handler")
    return str(request.param)

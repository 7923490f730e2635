"""Arrow constants and small mask helpers shared by job 1's modules (pyarrow only).

Constants are built from buffers, and compute calls get Arrow scalars rather than Python values:
turning a Python object into Arrow (``pa.array``, ``pa.scalar``, a bare ``1`` in ``pc.add(x, 1)``)
makes pyarrow import pandas to check for pandas types, ~40 MB of RSS job 1 does not need.
"""

from __future__ import annotations

import array
from typing import Any, List

import pyarrow as pa
import pyarrow.compute as pc

from etl_runtime.csvread import int64_array

__all__ = ["INT", "int64s", "strings", "f64", "count", "any_true"]


def int64s(values: List[int]) -> pa.Array:
    """An int64 array of ``values``, built from a buffer."""
    return int64_array(values)


def strings(values: List[str]) -> pa.Array:
    """A string array of ``values``, built from buffers."""
    data = [v.encode("utf-8") for v in values]
    offsets = [0]
    for d in data:
        offsets.append(offsets[-1] + len(d))
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [None, pa.py_buffer(array.array("i", offsets)), pa.py_buffer(b"".join(data))])


def f64(value: float) -> Any:
    """A float64 Arrow scalar."""
    return pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(array.array("d", [value]))])[0]


# the int64 scalars the kernels of job 1 use, by value
INT = {v: int64s([v])[0]
     for v in (0, 1, 2, 3, 4, 5, 8, 12, 31, 100, 128, 131, 153, 255, 365, 400, 2000, 146097, 719468)}


def count(mask: pa.Array) -> int:
    """How many values of a boolean array are true."""
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def any_true(mask: pa.Array) -> bool:
    """Whether some value of a boolean array is true."""
    return bool(pc.any(mask).as_py())

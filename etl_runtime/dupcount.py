"""Counting duplicate primary keys of a file with bounded memory (spilled to disk in hash partitions)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from etl_runtime.arrowconst import INT, strings

__all__ = ["KeyCounter", "key_array"]

_ASCII = strings([chr(i) for i in range(128)])


class KeyCounter:
    """Counts primary keys seen more than once with bounded memory.

    Keys are buffered in memory up to ``spill_rows``; past that they are hash-partitioned into
    ``PARTS`` (256) partitions spilled to Arrow IPC files in a temp dir, and the counting is done one
    partition at a time, so the working set of :meth:`result` is about ``rows / PARTS`` keys whatever
    the file size. Partitioning sorts each spill by partition (one counting sort) rather than
    filtering once per partition.
    """

    PARTS = 256

    def __init__(self, spill_rows: int = 500_000) -> None:
        self._mem: List[pa.Array] = []
        self._mem_rows = 0
        self._spill_rows = spill_rows
        self._dir: Optional[str] = None
        self._writers: Dict[int, Any] = {}
        self.min: Optional[int] = None  # smallest / largest key seen (integer keys only)
        self.max: Optional[int] = None

    def add(self, keys: pa.Array) -> None:
        if len(keys) == 0:
            return
        if pa.types.is_integer(keys.type):
            mm = pc.min_max(keys).as_py()
            self.min = mm["min"] if self.min is None else min(self.min, mm["min"])
            self.max = mm["max"] if self.max is None else max(self.max, mm["max"])
        self._mem.append(keys)
        self._mem_rows += len(keys)
        if self._mem_rows >= self._spill_rows:
            self._spill()

    def _partition_of(self, keys: pa.Array) -> pa.Array:
        """A partition number in [0, PARTS) per key, identical for equal keys."""
        mask = self.PARTS - 1
        if pa.types.is_integer(keys.type):
            k = pc.cast(keys, pa.int64(), safe=False)
            # mix high bits in, so keys that are multiples of PARTS still spread
            return pc.bit_wise_and(pc.bit_wise_xor(k, pc.shift_right(k, INT[8])), INT[mask])
        # strings: length and the last two characters (ASCII; anything else counts as 128)
        text = pc.cast(keys, pa.string())
        ln = pc.cast(pc.utf8_length(text), pa.int64())
        h = pc.multiply(ln, INT[31])
        for start, stop, mult in ((-1, None, 1), (-2, -1, 131)):
            ch = pc.utf8_slice_codeunits(text, start, stop)
            code = pc.fill_null(pc.cast(pc.index_in(ch, value_set=_ASCII), pa.int64()), INT[128])
            h = pc.add(h, pc.multiply(code, INT[mult]))
        return pc.bit_wise_and(h, INT[mask])

    def _spill(self) -> None:
        import pyarrow.ipc as ipc

        if not self._mem:
            return
        keys = pa.concat_arrays(self._mem) if len(self._mem) > 1 else self._mem[0]
        self._mem = []
        self._mem_rows = 0
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="etlkit-keys-")
        part = self._partition_of(keys)
        order = pc.sort_indices(part)
        keys = pc.take(keys, order)
        part = pc.take(part, order)
        vc = pc.value_counts(part)  # in order of first appearance, i.e. ascending partition
        start = 0
        for p, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            if p not in self._writers:
                sink = pa.OSFile(os.path.join(self._dir, f"p{p}.arrow"), "wb")
                self._writers[p] = (sink, ipc.new_stream(sink, pa.schema([pa.field("k", keys.type)])))
            self._writers[p][1].write_batch(pa.record_batch([keys.slice(start, n)], names=["k"]))
            start += n

    @staticmethod
    def _dups(keys: Any) -> Tuple[int, int]:
        counts = pc.value_counts(keys).field("counts")
        multi = pc.filter(counts, pc.greater(counts, INT[1]))
        return len(multi), int(pc.sum(multi).as_py() or 0) - len(multi)

    def result(self) -> Tuple[int, int]:
        """(distinct keys seen more than once, rows beyond the first per key)."""
        import pyarrow.ipc as ipc

        try:
            if self._dir is None:  # small file: everything is still in memory (< spill_rows keys)
                if not self._mem:
                    return 0, 0
                return self._dups(pa.chunked_array(self._mem))
            self._spill()
            for sink, w in self._writers.values():
                w.close()
                sink.close()
            directory = self._dir

            def count(p: int) -> Tuple[int, int]:
                with pa.memory_map(os.path.join(directory, f"p{p}.arrow")) as f:
                    arrays = [b.column(0) for b in ipc.open_stream(f)]
                    return self._dups(pa.chunked_array(arrays))

            # partitions are independent and value_counts releases the GIL: count them on two threads
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=2) as pool:
                counts = list(pool.map(count, sorted(self._writers)))
            return sum(k for k, _ in counts), sum(r for _, r in counts)
        finally:
            self._mem = []
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)



def key_array(rb: pa.RecordBatch, pk: List[str]) -> pa.Array:
    """The primary key of each row of a batch: the integer column itself, else the key columns as text
    (joined with the unit separator)."""
    if len(pk) == 1 and pa.types.is_integer(rb.schema.field(pk[0]).type):
        return rb.column(rb.schema.get_field_index(pk[0]))
    parts = [pc.cast(rb.column(rb.schema.get_field_index(k)), pa.string()) for k in pk]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")

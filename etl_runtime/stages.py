"""Job 1's thread plumbing: parse ahead in one thread, write Parquet (and count keys) in another.

pyarrow releases the GIL in parsing, compute kernels and the Parquet writer, so the three stages
(parse -> validate -> write) keep both cores of a Glue Python shell busy. Each stage adds the CPU
seconds of its own thread to a shared ``cpu`` dict (reported as ``cpu_seconds``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any, Dict, List, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from etl_runtime.dupcount import KeyCounter, key_array

__all__ = ["Prefetch", "LazyParquetWriter", "BackgroundWriter"]


def _timed(it: Any, cpu: Dict[str, float], stage: str) -> Any:
    """Yield from ``it``, adding the CPU time this thread spends producing each item to ``cpu[stage]``."""
    it = iter(it)
    while True:
        c0 = time.thread_time()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            cpu[stage] = cpu.get(stage, 0.0) + time.thread_time() - c0
        yield item


class Prefetch:
    """Run an iterator in a background thread, one item ahead (bounded memory)."""

    _END = object()

    def __init__(self, it: Any, cpu: Optional[Dict[str, float]] = None) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._stop = threading.Event()
        self._it = it
        self._cpu = cpu if cpu is not None else {}
        self._t = threading.Thread(target=self._run, name="etlkit-parse", daemon=True)
        self._t.start()

    def _run(self) -> None:
        it = self._it
        self._it = None  # the generator (and pyarrow's reader) must die in this thread
        try:
            for item in _timed(it, self._cpu, "parse"):
                while not self._stop.is_set():
                    try:
                        self._q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._q.put((True, self._END))
        except BaseException as exc:  # handed to the consumer
            self._q.put((False, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            del it

    def __iter__(self) -> Any:
        while True:
            ok, item = self._q.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._t.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get(timeout=0.05)
        self._t.join()


class LazyParquetWriter:
    """A snappy ``ParquetWriter`` opened at the first batch, dictionary-encoding only the columns
    that turned out to be of low cardinality (``dict_columns()`` is asked then).

    Dictionary-encoding ids and totals costs a hash per value and is then abandoned by the
    encoder anyway (the dictionary outgrows its page); skipping it makes the write ~40% cheaper
    and the file smaller.
    """

    def __init__(self, sink: Any, schema: pa.Schema, dict_columns: Any) -> None:
        self._sink = sink
        self._schema = schema
        self._dict_columns = dict_columns
        self._writer: Optional[Any] = None

    def _open(self) -> Any:
        if self._writer is None:
            names = set(self._schema.names)
            use = [c for c in self._dict_columns() if c in names]
            self._writer = pq.ParquetWriter(self._sink, self._schema, compression="snappy", use_dictionary=use)
        return self._writer

    def write_batch(self, rb: pa.RecordBatch) -> None:
        self._open().write_batch(rb)

    def close(self) -> None:
        self._open().close()


class BackgroundWriter:
    """Write record batches (and count their keys) in a background thread."""

    def __init__(self, writer: Any, keys: KeyCounter, pk: List[str], cpu: Optional[Dict[str, float]] = None) -> None:
        self._writer = writer
        self._keys = keys
        self._pk = pk
        self._cpu = cpu if cpu is not None else {}
        self._q: queue.Queue[Any] = queue.Queue(maxsize=3)
        self._error: Optional[BaseException] = None
        self._t = threading.Thread(target=self._run, name="etlkit-write", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            rb = self._q.get()
            if rb is None:
                return
            if self._error is not None:
                continue
            try:
                c0 = time.thread_time()
                self._writer.write_batch(rb)
                c1 = time.thread_time()
                if self._pk:
                    self._keys.add(key_array(rb, self._pk))
                self._cpu["write"] = self._cpu.get("write", 0.0) + c1 - c0
                self._cpu["keys"] = self._cpu.get("keys", 0.0) + time.thread_time() - c1
            except BaseException as exc:
                self._error = exc

    def write(self, rb: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(rb)

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()
        if self._error is not None:
            raise self._error


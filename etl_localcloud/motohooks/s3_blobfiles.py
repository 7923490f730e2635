"""The files S3 object bodies live in: one immutable file per body, under the blob dir.

No moto internals here (:mod:`.s3_blobs` and :mod:`.s3_multipart` hook moto's keys and uploads to
these files). The thread-local ``_local`` carries what a hook must hand to the next one on the
same thread: ``adopt`` = (name, size) while a multipart upload completes, ``restoring`` while a
snapshot is loaded, ``collect`` while one is written, ``lazy`` during a GET.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

__all__ = ["Blob", "LAZY_BODY_BYTES", "LazyBody", "write_blob", "take_dead_blobs", "set_blob_dir", "blob_path",
           "mark_dead", "new_blob_name"]

_blob_dir: Path | None = None  # set once install_s3_blob_store ran
_dead_blobs: set[str] = set()  # blob names of disposed keys: deleted once a snapshot no longer names them
_blob_lock = threading.Lock()
_local = threading.local()


def set_blob_dir(blob_dir: Path) -> None:
    """Keep the bodies under ``blob_dir`` from now on."""
    global _blob_dir
    blob_dir.mkdir(parents=True, exist_ok=True)
    _blob_dir = blob_dir


def blob_path(name: str) -> Path:
    """The file of blob ``name``."""
    assert _blob_dir is not None, "install_s3_blob_store has not run"
    return _blob_dir / name


def mark_dead(name: str) -> None:
    """Blob ``name`` is no longer any key's body (its file goes once no snapshot names it)."""
    with _blob_lock:
        _dead_blobs.add(name)


def take_dead_blobs() -> set[str]:
    """Names of blob files whose keys were disposed since the last call."""
    with _blob_lock:
        out = set(_dead_blobs)
        _dead_blobs.clear()
        return out


def new_blob_name() -> str:
    """A fresh blob name (no file yet)."""
    return uuid.uuid4().hex


def write_blob(chunks: Any) -> tuple[str, int]:
    """Write ``chunks`` (an iterable of bytes) to a new blob file, fsynced. Returns (name, size)."""
    name = new_blob_name()
    size = 0
    with open(blob_path(name), "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return name, size


class Blob:
    """A FakeKey's body as an immutable file in the blob dir, opened per read (no descriptor held).

    moto only ever ``seek``s and ``read``s a key's buffer outside the value setter (which we replace),
    so this is the whole interface it needs. A new body always gets a new file: copies of a key
    (``copy.deepcopy``, versioning) never see each other's writes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.pos = 0
        self.closed = False

    @property
    def path(self) -> Any:
        return blob_path(self.name)

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.path.stat().st_size + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed blob")
        with open(self.path, "rb") as fh:
            fh.seek(self.pos)
            data = fh.read() if size is None or size < 0 else fh.read(size)
        self.pos += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            mark_dead(self.name)


LAZY_BODY_BYTES = 1024 * 1024  # GET bodies from this size on stream from their file


class LazyBody:
    """A GET response's body read from the object's file in chunks; ``len()`` and slicing work like bytes.

    moto's range handling takes ``len(body)`` and ``body[a:b]``; the WSGI server iterates it.
    The file is opened when moto builds the response, so a later delete cannot pull it away.
    """

    def __init__(self, fh: Any, start: int, stop: int) -> None:
        self.fh = fh
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __bool__(self) -> bool:
        return self.stop > self.start

    def __getitem__(self, item: slice) -> LazyBody:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("LazyBody supports plain slices only")
        lo, hi, _ = item.indices(len(self))
        return LazyBody(self.fh, self.start + lo, self.start + max(lo, hi))

    def __iter__(self) -> Any:
        pos = self.start
        try:
            while pos < self.stop:
                self.fh.seek(pos)
                block = self.fh.read(min(1024 * 1024, self.stop - pos))
                if not block:
                    break
                pos += len(block)
                yield block
        finally:
            self.close()

    def close(self) -> None:
        self.fh.close()


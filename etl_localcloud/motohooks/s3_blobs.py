"""S3 object bodies as files (:mod:`.s3_blobfiles`): moto's keys read and write them, snapshots name them.

Touches: ``moto.s3.models.FakeKey`` (its ``value`` property, ``_value_buffer``, ``contentsize``,
``lock``, ``__getstate__`` / ``__setstate__``: all replaced or relied on),
``moto.s3.responses.S3Response.get_object`` (wrapped to stream large bodies; it must return
``key.value`` as the body) and ``_handle_range_header`` (it must slice the body), and
``moto.s3.utils._VersionedKeyStore`` (a dict of version lists, pickled whole).
"""

from __future__ import annotations

import inspect
import logging
import shutil
import threading
from collections.abc import Callable
from typing import Any

from etl_localcloud.motohooks import s3_multipart
from etl_localcloud.motohooks.s3_blobfiles import (
    LAZY_BODY_BYTES,
    Blob,
    LazyBody,
    _local,
    blob_path,
    new_blob_name,
    set_blob_dir,
    write_blob,
)

__all__ = ["install_s3_blob_store", "reducers", "restoring", "collecting_blobs", "contract"]

log = logging.getLogger("etl_localcloud.moto")

# How FakeKey may use its buffer: what a Blob provides.
_BUFFER_USES = ("self._value_buffer.seek(", "self._value_buffer.read(", "r = self._value_buffer.read(",
                "block = self._value_buffer.read(", "self._value_buffer.close(",
                "self._value_buffer.truncate(", "self._value_buffer.write(")


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response
    from moto.s3.utils import _VersionedKeyStore

    problems = []
    if not isinstance(inspect.getattr_static(FakeKey, "value"), property):
        problems.append("FakeKey.value is no longer a property")
    key_src = inspect.getsource(FakeKey)
    for needle in ("self._value_buffer = tempfile.SpooledTemporaryFile", "self.value = value",
                   "self.contentsize = len(new_value)", "def dispose", "def __getstate__", "def __setstate__"):
        if needle not in key_src:
            problems.append(f"FakeKey changed: no {needle!r}")
    uses = [ln.strip() for ln in key_src.splitlines() if "_value_buffer." in ln]
    if any(not ln.startswith(_BUFFER_USES) for ln in uses):
        problems.append(f"FakeKey uses its buffer in a new way: {uses}")
    get_src = inspect.getsource(inspect.unwrap(S3Response.get_object))
    if get_src.count("key.value") != 2 or "return 200, response_headers, key.value" not in get_src:
        problems.append("S3Response.get_object no longer returns key.value as the body")
    range_src = inspect.getsource(S3Response._handle_range_header)
    if "len(response_content)" not in range_src or "response_content[begin : end + 1]" not in range_src:
        problems.append("S3Response._handle_range_header no longer slices the body")
    if "_VersionedKeyStore(dict)" not in inspect.getsource(_VersionedKeyStore):
        problems.append("_VersionedKeyStore is no longer a dict of version lists")
    return problems


def _get_value(key: Any) -> Any:
    buf = key._value_buffer
    if getattr(_local, "lazy", False) and isinstance(buf, Blob) and key.contentsize >= LAZY_BODY_BYTES:
        return LazyBody(open(buf.path, "rb"), 0, key.contentsize)
    with key.lock:
        buf.seek(0)
        return buf.read()


def _streaming_get_object(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_object(self: Any) -> Any:
        _local.lazy = True
        try:
            return original(self)
        finally:
            _local.lazy = False

    get_object._etl_kit = True  # type: ignore[attr-defined]
    get_object.__wrapped__ = original  # type: ignore[attr-defined]
    return get_object



def _set_value(key: Any, new_value: Any) -> None:
    adopt = getattr(_local, "adopt", None)
    old = getattr(key, "_value_buffer", None)
    if adopt is not None and not new_value:
        _local.adopt = None
        name, size = adopt
    else:
        if isinstance(new_value, str):
            new_value = new_value.encode("utf-8")
        name, size = write_blob([new_value] if new_value else [])
    key._value_buffer = Blob(name)
    key.contentsize = size
    if old is not None:
        old.close()


def _key_getstate(key: Any) -> dict[str, Any]:
    state = key.__dict__.copy()
    buf = state.pop("_value_buffer", None)
    state.pop("lock", None)
    state["_etl_kit_blob"] = buf.name if isinstance(buf, Blob) and not buf.closed else None
    collect = getattr(_local, "collect", None)
    if collect is not None and state["_etl_kit_blob"]:
        collect.add(state["_etl_kit_blob"])
    return state


def _key_setstate(key: Any, state: dict[str, Any]) -> None:
    name = state.pop("_etl_kit_blob", None)
    key.__dict__.update(state)
    key.lock = threading.Lock()
    if name is None or not blob_path(name).exists():
        if name is not None:
            log.error("S3 object %s/%s: its body file %s is missing; restored empty", key.bucket_name, key.name, name)
            key.contentsize = 0
        name = write_blob([])[0]
    elif not getattr(_local, "restoring", False):
        # a copy of a live key (copy.deepcopy): its own file, so that the two never share a body
        copy_name = new_blob_name()
        shutil.copyfile(blob_path(name), blob_path(copy_name))
        name = copy_name
    key._value_buffer = Blob(name)
    collect = getattr(_local, "collect", None)
    if collect is not None:
        collect.add(name)

def install_s3_blob_store(blob_dir: Any, stream_gets: bool = True) -> None:
    """Keep every S3 object body (and upload part) as a file under ``blob_dir`` instead of in memory.

    Pickling a key (a snapshot) then records only its file's name; a completed multipart upload is
    assembled on disk (moto 5.2.5 builds it in memory, three times over). With ``stream_gets`` (moto's
    server; not its in-process mock, which wants bytes) a GET of a large object streams from its file.
    """
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    set_blob_dir(blob_dir)
    if getattr(FakeKey, "_etl_kit_blobs", False):
        return
    FakeKey.value = property(_get_value, _set_value)  # type: ignore[method-assign,assignment]
    if stream_gets:
        S3Response.get_object = _streaming_get_object(  # type: ignore[method-assign]
            inspect.unwrap(S3Response.get_object))
    FakeKey.__getstate__ = _key_getstate  # type: ignore[method-assign,assignment]
    FakeKey.__setstate__ = _key_setstate  # type: ignore[method-assign,assignment]
    s3_multipart.install()
    FakeKey._etl_kit_blobs = True  # type: ignore[attr-defined]


def _rebuild_key_store(raw: dict[str, list[Any]]) -> Any:
    from moto.s3.utils import _VersionedKeyStore

    store = _VersionedKeyStore()
    for name, versions in raw.items():
        dict.__setitem__(store, name, versions)
    return store


def _reduce_key_store(store: Any) -> Any:
    # moto's key store pickles (and deep-copies) only the latest version of each key: keep them all
    return _rebuild_key_store, ({name: list(dict.__getitem__(store, name)) for name in list(dict.keys(store))},)


def reducers() -> dict[type, Callable[[Any], Any]]:
    """Pickle reducers for moto types whose default pickling loses state (used by the snapshots)."""
    from moto.s3.utils import _VersionedKeyStore

    return {_VersionedKeyStore: _reduce_key_store}



class restoring:
    """Context manager: unpickled S3 keys adopt their snapshot's body files instead of copying them."""

    def __enter__(self) -> None:
        _local.restoring = True

    def __exit__(self, *exc: Any) -> None:
        _local.restoring = False


class collecting_blobs:
    """Context manager: the names of the blob files the keys pickled inside it refer to (``.names``)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __enter__(self) -> collecting_blobs:
        _local.collect = self.names
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.collect = None

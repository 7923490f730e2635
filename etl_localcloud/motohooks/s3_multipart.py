"""Completing a multipart upload on disk: the parts are appended to a new blob file, never held in memory.

Touches: ``moto.s3.models.FakeMultipart.complete(self, body)`` (replaced by :func:`complete_multipart`),
``FakeMultipart.metadata`` / ``parts``, ``S3_UPLOAD_PART_MIN_SIZE``, ``MultipartChecksumBuilder``
(``checksum_algorithm``, ``checksum_type``, ``part_count``, ``addPart``, ``build``),
``S3Backend.complete_multipart_upload`` (wrapped: it must call ``multipart.complete(body)``) and
``moto.s3.exceptions.EntityTooSmall`` / ``InvalidPart`` / ``MalformedXML``.
"""

from __future__ import annotations

import inspect
from typing import Any

from etl_localcloud.motohooks.s3_blobfiles import _local, mark_dead, write_blob

__all__ = ["complete_multipart", "install", "contract"]


def contract() -> list[str]:
    """The internals this module touches that are missing or changed."""
    from moto.s3.models import FakeMultipart, MultipartChecksumBuilder, S3Backend

    problems = []
    if list(inspect.signature(FakeMultipart.complete).parameters) != ["self", "body"]:
        problems.append("FakeMultipart.complete signature changed")
    if "multipart.complete(body)" not in inspect.getsource(S3Backend.complete_multipart_upload):
        problems.append("S3Backend.complete_multipart_upload no longer calls multipart.complete(body)")
    for attr in ("checksum_algorithm", "checksum_type", "part_count", "addPart", "build"):
        if attr not in inspect.getsource(MultipartChecksumBuilder):
            problems.append(f"MultipartChecksumBuilder lacks {attr}")
    return problems


def install() -> None:
    """Replace ``FakeMultipart.complete``; a body ``put_object`` then refuses is marked dead, not leaked."""
    from moto.s3.models import FakeMultipart, S3Backend

    FakeMultipart.complete = complete_multipart  # type: ignore[method-assign,assignment]
    original = S3Backend.complete_multipart_upload

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            left = getattr(_local, "adopt", None)
            _local.adopt = None
            if left is not None:  # put_object refused the upload: its assembled body is garbage
                mark_dead(left[0])

    S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]


def complete_multipart(multipart: Any, body: Any) -> tuple[bytes, str, tuple[str, str, int] | None]:
    """moto's ``FakeMultipart.complete`` without holding the object in memory.

    The parts are appended to a new blob file chunk by chunk; the full-object checksum (if any) is
    computed incrementally. The blob is handed to the key ``put_object`` creates next (``_local.adopt``).
    """
    import codecs
    import hashlib

    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, MultipartChecksumBuilder

    algo = multipart.metadata.get("x-amz-checksum-algorithm")
    builder = MultipartChecksumBuilder(algo, multipart.metadata.get("x-amz-checksum-type"))
    full = _RunningChecksum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
    md5s = bytearray()
    parts = []
    last = None
    for pn, etag in body:
        part = multipart.parts.get(pn)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(codecs.decode(part.etag.replace('"', ""), "hex"))
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML

    def chunks() -> Any:
        for part in parts:
            if builder.checksum_type == "COMPOSITE":
                builder.addPart(part.value)  # one part at a time: bounded by the part size
            buf = part._value_buffer
            buf.seek(0)
            while True:
                block = buf.read(8 * 1024 * 1024)
                if not block:
                    break
                if full is not None:
                    full.update(block)
                yield block

    name, size = write_blob(chunks())
    if full is not None:
        checksum: tuple[str, str, int] | None = (builder.checksum_type, full.value(), 1)
    else:
        builder.part_count = len(parts)
        checksum = builder.build()
    _local.adopt = (name, size)
    etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return b"", etag, checksum


class _RunningChecksum:
    """The full-object checksums moto computes (``moto.s3.utils.compute_checksum``), fed in blocks."""

    def __init__(self, algorithm: str) -> None:
        import binascii
        import hashlib

        self.algorithm = algorithm
        self.crc = 0
        self.hash: Any = None
        self.crt: Any = None
        if algorithm == "SHA1":
            self.hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
            self.hash = hashlib.sha256(usedforsecurity=False)
        elif algorithm == "CRC64NVME":
            try:
                from awscrt import checksums

                self.crt = checksums.crc64nvme
            except ImportError:  # moto falls back to CRC32 too
                pass
        elif algorithm == "CRC32C":
            try:
                import crc32c

                self.crt = crc32c.crc32c
            except ImportError:
                pass
        self._crc32 = binascii.crc32

    def update(self, block: bytes) -> None:
        if self.hash is not None:
            self.hash.update(block)
        elif self.crt is not None:
            self.crc = self.crt(block, self.crc)
        else:
            self.crc = self._crc32(block, self.crc)

    def value(self) -> str:
        import base64

        if self.hash is not None:
            raw = self.hash.digest()
        else:
            raw = self.crc.to_bytes(8 if self.algorithm == "CRC64NVME" and self.crt is not None else 4, "big")
        return base64.b64encode(raw).decode()


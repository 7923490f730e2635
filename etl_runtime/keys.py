"""The deterministic, S3-safe keys job 1 writes for a source key: output, quarantine, rejected copy, report.

Stdlib only (Python 3.9-compatible): the kit computes the same keys to find a file's results.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Dict

__all__ = ["S3_MAX_KEY_BYTES", "source_id", "output_keys"]

S3_MAX_KEY_BYTES = 1024
_VERBATIM_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._=-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")
_HASHED = re.compile(r"-[0-9a-f]{16}$")
_HASH_LEN = 17  # "-" + 16 hex digits
# suffixes job 1 puts after the id (the longest decides how long an id may be)
_OUTPUT_SUFFIX, _QUARANTINE_SUFFIX = "/part-0000.parquet", ".quarantine.csv"
_REJECTED_SUFFIX, _REPORT_SUFFIX = ".rejected", ".report.json"


def source_id(key: str, input_prefix: str = "input/", max_len: int = 900) -> str:
    """The deterministic, S3-safe, injective id of a source key, used in every key job 1 writes.

    The key relative to ``input_prefix`` with its extension (``x.csv``, ``x.csv.gz`` and ``x.CSV``
    are three ids). It is used verbatim when every ``/``-separated segment is ``[a-z0-9._=-]``
    starting with a letter or digit (so no empty, ``.``/``..`` or hidden ``_``/``.`` segments that
    Glue's crawlers and Athena skip). Otherwise (uppercase, spaces, quotes, backslashes, unicode,
    dot segments, a key outside ``input_prefix``, longer than ``max_len``, or already ending like a
    hashed id) characters outside ``[A-Za-z0-9._=-]`` become ``_``, a segment starting with ``_`` or
    ``.`` gets an ``x`` in front, empty segments go, the text is cut to fit ``max_len`` and ``-`` plus
    16 hex digits of the full key's SHA-256 is appended.

    Injective: verbatim ids never end in ``-<16 hex>``, hashed ids differ by their hash. Also distinct
    ignoring case (verbatim ids have no uppercase letters), which keeps case twins such as ``x.csv``
    and ``x.CSV`` apart in case-insensitive tools too.
    """
    under = not input_prefix or key.startswith(input_prefix)
    rel = key[len(input_prefix):] if input_prefix and under else key
    if (under and len(rel) <= max_len and not _HASHED.search(rel)
            and all(_VERBATIM_SEGMENT.fullmatch(seg) for seg in rel.split("/"))):
        return rel
    segments = []
    for seg in rel.split("/"):
        # accents go (é -> e) so the id stays readable; other characters outside the safe set become _
        seg = "".join(ch for ch in unicodedata.normalize("NFKD", seg) if not unicodedata.combining(ch))
        seg = _UNSAFE.sub("_", seg)
        if seg:
            segments.append("x" + seg if seg[0] in "._" else seg)
    readable = "/".join(segments)[:max(max_len - _HASH_LEN, 1)].rstrip("/") or "object"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}-{digest}"


def output_keys(key: str, *, input_prefix: str = "input/", output_prefix: str = "output/",
                quarantine_prefix: str = "quarantine/", reports_prefix: str = "reports/") -> Dict[str, str]:
    """The deterministic output, quarantine, rejected-copy and report keys for a source key.

    Each is a function of the full source key (see :func:`source_id`), and stays within S3's
    1024-byte key limit whatever the source key's length.
    """
    gz = ".csv.gz" if key.lower().endswith(".gz") else ".csv"
    # the longest key derived from the id decides how long the id may be
    longest = max(len(output_prefix.encode("utf-8")) + len(_OUTPUT_SUFFIX),
                  len(quarantine_prefix.encode("utf-8")) + max(len(_QUARANTINE_SUFFIX), len(_REJECTED_SUFFIX) + 7),
                  len(reports_prefix.encode("utf-8")) + len(_REPORT_SUFFIX))
    sid = source_id(key, input_prefix, max_len=S3_MAX_KEY_BYTES - longest)
    return {
        "source_id": sid,
        "output_key": f"{output_prefix}{sid}{_OUTPUT_SUFFIX}",
        "quarantine_key": f"{quarantine_prefix}{sid}{_QUARANTINE_SUFFIX}",
        "rejected_copy_key": f"{quarantine_prefix}{sid}{_REJECTED_SUFFIX}{gz}",
        "report_key": f"{reports_prefix}{sid}{_REPORT_SUFFIX}",
    }


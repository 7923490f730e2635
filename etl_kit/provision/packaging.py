"""Reproducible artefacts: the Lambda zip, the package zip Glue jobs import, the Glue scripts.

Same source gives the same bytes (sorted entries, fixed timestamps and modes), so a second
deploy sees the same CodeSha256 / object hash and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import etl_runtime
from etl_kit.exceptions import ConfigError

__all__ = [
    "PACKAGE_ROOT",
    "SCRIPTS_DIR",
    "LAMBDA_SOURCE",
    "PIPELINE_ZIP_NAME",
    "reproducible_zip",
    "lambda_zip",
    "pipeline_zip",
    "glue_scripts",
    "sha256_b64",
]

# The runtime package is found where Python imports it from, so a wheel install works as a checkout does.
PACKAGE_ROOT = Path(etl_runtime.__file__).resolve().parent  # .../etl_runtime
SCRIPTS_DIR = PACKAGE_ROOT / "entrypoints"
LAMBDA_SOURCE = PACKAGE_ROOT / "lambda_handler.py"
PIPELINE_ZIP_NAME = "etl_runtime.zip"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def reproducible_zip(files: list[tuple[str, bytes]]) -> bytes:
    """Zip ``(arcname, content)`` pairs deterministically (sorted, fixed time, mode 0644)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            zf.writestr(info, data, compresslevel=9)
    return buf.getvalue()


def lambda_zip(source: Path | None = None) -> bytes:
    """The Lambda deployment package: the handler module alone, as ``lambda_handler.py``."""
    src = source or LAMBDA_SOURCE
    if not src.is_file():
        raise ConfigError(f"Lambda handler source {src} is missing; the kit's pipeline package is incomplete")
    return reproducible_zip([("lambda_handler.py", src.read_bytes())])


def pipeline_zip(root: Path | None = None) -> bytes:
    """``etl_runtime.zip``: the whole runtime package (``etl_runtime/**.py``), nothing else of the kit.

    Glue jobs get it through ``--extra-py-files`` so the entry points can ``import etl_runtime``.
    """
    pkg = root or PACKAGE_ROOT
    files = [
        (f"etl_runtime/{p.relative_to(pkg).as_posix()}", p.read_bytes())
        for p in sorted(pkg.rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    return reproducible_zip(files)


def glue_scripts(directory: Path | None = None) -> dict[str, bytes]:
    """The Glue job entry points (``etl_runtime/entrypoints/*.py``) by file name."""
    d = directory or SCRIPTS_DIR
    scripts = {p.name: p.read_bytes() for p in sorted(d.glob("*.py")) if p.name != "__init__.py"}
    if not scripts:
        raise ConfigError(f"no Glue entry points in {d}; the etl_runtime package is incomplete (reinstall etl-kit)")
    return scripts


def sha256_b64(data: bytes) -> str:
    """Base64 SHA-256, the form Lambda reports as ``CodeSha256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()

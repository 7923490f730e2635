"""Reproducible artefacts: the runtime package zip (shipped to Lambda and to Glue) and the Glue scripts.

One artefact, :func:`pipeline_zip`: the whole ``etl_runtime`` package. The Lambda runs it with the handler
:data:`LAMBDA_HANDLER`; the Glue jobs import it through ``--extra-py-files`` and run the entry points of
``etl_runtime/entrypoints/`` as their scripts. Same source gives the same bytes (sorted entries, fixed
timestamps and modes), so a second deploy sees the same CodeSha256 / object hash and changes nothing.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import zipfile
from pathlib import Path

import etl_runtime
from etl_kit.exceptions import ConfigError

__all__ = [
    "PACKAGE_ROOT",
    "PIPELINE_ZIP_NAME",
    "LAMBDA_HANDLER",
    "CSV_SCRIPT",
    "LOAD_SCRIPT",
    "ENTRY_POINTS",
    "check_entry_points",
    "reproducible_zip",
    "lambda_zip",
    "pipeline_zip",
    "glue_scripts",
    "sha256_b64",
]

# The runtime package is found where Python imports it from, so a wheel install works as a checkout does.
PACKAGE_ROOT = Path(etl_runtime.__file__).resolve().parent  # .../etl_runtime
PIPELINE_ZIP_NAME = "etl_runtime.zip"
LAMBDA_HANDLER = "etl_runtime.lambda_handler.handler"
CSV_SCRIPT = "csv_to_parquet.py"
LOAD_SCRIPT = "parquet_to_redshift.py"
# What provisioning points AWS at, relative to the package: file -> the top-level function AWS calls
# ("" for a Glue script, which runs as a whole).
ENTRY_POINTS = {
    "lambda_handler.py": LAMBDA_HANDLER.rsplit(".", 1)[1],
    f"entrypoints/{CSV_SCRIPT}": "",
    f"entrypoints/{LOAD_SCRIPT}": "",
}
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def check_entry_points(root: Path | None = None) -> Path:
    """Refuse a runtime package that lacks an entry point; return the package directory.

    Raises
    ------
    ConfigError
        An entry point file, or the Lambda handler function in it, is missing (names each and the fix).
    """
    pkg = root or PACKAGE_ROOT
    problems = []
    for rel, function in ENTRY_POINTS.items():
        path = pkg / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif function and function not in _top_level_functions(path):
            problems.append(f"{rel} defines no function {function}()")
    if problems:
        raise ConfigError(f"the runtime package {pkg} is incomplete: {'; '.join(problems)}. Reinstall etl-kit "
                          "(`pip install .`) or restore the files from git before provisioning.")
    return pkg


def _top_level_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


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


def pipeline_zip(root: Path | None = None) -> bytes:
    """``etl_runtime.zip``: the whole runtime package (``etl_runtime/**.py``), nothing else of the kit.

    Glue jobs get it through ``--extra-py-files`` so the entry points can ``import etl_runtime``; the
    Lambda runs it as its deployment package (:func:`lambda_zip`). Refuses an incomplete package
    (:func:`check_entry_points`).
    """
    pkg = check_entry_points(root)
    files = [
        (f"etl_runtime/{p.relative_to(pkg).as_posix()}", p.read_bytes())
        for p in sorted(pkg.rglob("*.py"))
        if "__pycache__" not in p.parts
    ]
    return reproducible_zip(files)


def lambda_zip(root: Path | None = None) -> bytes:
    """The Lambda deployment package: the same bytes as :func:`pipeline_zip` (handler :data:`LAMBDA_HANDLER`)."""
    return pipeline_zip(root)


def glue_scripts(root: Path | None = None) -> dict[str, bytes]:
    """The Glue job entry points (``etl_runtime/entrypoints/*.py``) by file name."""
    d = check_entry_points(root) / "entrypoints"
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.py")) if p.name != "__init__.py"}


def sha256_b64(data: bytes) -> str:
    """Base64 SHA-256, the form Lambda reports as ``CodeSha256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()

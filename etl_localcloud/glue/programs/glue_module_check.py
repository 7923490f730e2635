"""``python -m glue_module_check "pkg==1.0,other"``: print the entries this interpreter lacks.

Glue installs a job's ``--additional-python-modules`` from PyPI; the local cloud has no network,
so the job runner checks that each entry is already installed (at the pinned version for ``==``)
and refuses the run otherwise. Prints the missing entries joined by ``"; "`` (nothing when all are
there). Standard library only.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys

__all__ = ["missing", "main"]

_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)\s*(==|>=)?\s*([^\s]*)$")


def _parse(req: str) -> tuple[str, str | None, str]:
    m = _REQUIREMENT.match(req)
    if not m:
        return req, None, ""
    return m.group(1).split("[")[0], m.group(2), m.group(3)


def missing(spec: str) -> list[str]:
    """The entries of the comma-separated ``spec`` not installed (or installed at another ``==`` version)."""
    bad: list[str] = []
    for req in filter(None, (s.strip() for s in spec.split(","))):
        name, op, ver = _parse(req)
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            bad.append(req + " (not installed)")
            continue
        if op == "==" and ver and have != ver:
            bad.append(f"{req} (installed: {have})")
    return bad


def main(argv: list[str]) -> None:
    print("; ".join(missing(argv[1])))


if __name__ == "__main__":
    main(sys.argv)

"""The process of a Glue Python shell job: ``python -m glue_job_bootstrap LIMIT SCRIPT [ARG ...]``.

Caps the address space the job may use (``RLIMIT_DATA``, ``LIMIT`` bytes; 0 for none), ties the
job's life to the daemon's (Linux: the kernel kills the job when the daemon dies, so no job is
orphaned), then runs ``SCRIPT`` as ``__main__`` with ``sys.argv = [SCRIPT, ARG, ...]``, as Glue
runs it. Standard library only: the job's process imports nothing of the local cloud.

The local cloud points a job's AWS calls at itself with ``AWS_ENDPOINT_URL``, which botocore reads only
from 1.31; Glue's Python shell 3.9 ships botocore 1.25, so with an older botocore the bootstrap makes
``create_client`` default its ``endpoint_url`` to that variable (what a newer botocore does by itself).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import resource
import runpy
import signal
import sys
from typing import Any

__all__ = ["main"]

PR_SET_PDEATHSIG = 1


def _cap_memory(limit: int) -> None:
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux (or no glibc): the daemon's close() still kills its jobs
        return


def _endpoint_from_environment() -> None:
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return
    try:
        version = tuple(int(p) for p in importlib.metadata.version("botocore").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return
    if version >= (1, 31):
        return
    import botocore.session

    create = botocore.session.Session.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if len(args) < 5 and kwargs.get("endpoint_url") is None:  # endpoint_url is create_client's 5th
            kwargs["endpoint_url"] = url
        return create(self, service_name, *args, **kwargs)

    botocore.session.Session.create_client = create_client


def main(argv: list[str]) -> None:
    """Run the job script ``argv[2]`` with the arguments after it (``argv[1]`` is the memory cap)."""
    _cap_memory(int(argv[1]))
    _die_with_parent()
    _endpoint_from_environment()
    sys.argv = argv[2:]
    sys.path.insert(0, os.path.dirname(sys.argv[0]))  # the script's own folder, as `python script.py`
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)

"""Programs that run in a Glue job's own process, not in the daemon.

This folder is a path root: the job runner puts it on the job's ``PYTHONPATH`` and starts
``python -m glue_job_bootstrap``. So that a job's process imports nothing of the local cloud, the
modules here import only the standard library and each other by their top-level names, and run on
every Python the runtimes pin (3.9 for Glue Python shell: :mod:`etl_localcloud.runtimes`):

* :mod:`glue_job_bootstrap` -- caps the job's memory, ties its life to the daemon, runs the script;
* :mod:`awsglue` -- the part of Glue's ``awsglue`` library a Python shell script uses.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PATH_ROOT", "BOOTSTRAP_MODULE"]

PATH_ROOT = Path(__file__).resolve().parent
BOOTSTRAP_MODULE = "glue_job_bootstrap"

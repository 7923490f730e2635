"""Glue job arguments, parsed the same way inside Glue and outside it (Python 3.9-compatible)."""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Mapping, Optional, Sequence


def parse_job_args(names: Sequence[str], defaults: Mapping[str, str], argv: Optional[List[str]] = None,
                   description: str = "") -> Dict[str, str]:
    """The job's ``--name value`` arguments that are present, plus ``defaults`` for the rest.

    Inside Glue this is ``awsglue.utils.getResolvedOptions`` (asked only for the names present, since it
    fails on absent ones); elsewhere argparse. Glue's own extra arguments (``--JOB_ID``...) are ignored.
    """
    argv = list(sys.argv if argv is None else argv)
    present = [a for a in names if f"--{a}" in argv]
    try:  # inside Glue
        from awsglue.utils import getResolvedOptions

        args = dict(getResolvedOptions(argv, present))
    except ImportError:
        p = argparse.ArgumentParser(description=description)
        for a in names:
            p.add_argument(f"--{a}", default=None)
        ns, _unknown = p.parse_known_args(argv[1:])
        args = {k: v for k, v in vars(ns).items() if v is not None}
    for k, v in defaults.items():
        args.setdefault(k, v)
    return args

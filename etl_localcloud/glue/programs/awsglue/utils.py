"""``awsglue.utils.getResolvedOptions``, as Glue's Python shell provides it."""

from __future__ import annotations

import argparse

__all__ = ["GlueArgumentError", "getResolvedOptions"]

# Arguments Glue passes to every job run; accepted whether or not the script asks for them.
_GLUE_ARGUMENTS = ("JOB_ID", "JOB_RUN_ID", "JOB_NAME", "SECURITY_CONFIGURATION", "encryption-type",
                   "enable-glue-datacatalog", "RedshiftTempDir", "TempDir")
_ALWAYS_GIVEN = ("JOB_ID", "JOB_RUN_ID", "JOB_NAME")


class GlueArgumentError(Exception):
    """A job argument the script asks for is missing."""


def getResolvedOptions(args: list[str], options: list[str]) -> dict[str, str]:
    """Resolve ``--NAME value`` job arguments, as awsglue.utils does.

    Parameters
    ----------
    args
        ``sys.argv`` of the job (the script's path first).
    options
        The names (without ``--``) the script needs.

    Raises
    ------
    GlueArgumentError
        When one of ``options`` is not among the arguments.
    """
    parser = argparse.ArgumentParser(add_help=False)
    for name in _GLUE_ARGUMENTS:
        parser.add_argument("--" + name, required=False)
    for name in options:
        if name not in _ALWAYS_GIVEN:
            parser.add_argument("--" + name, required=True)
    known, _ = parser.parse_known_args(args[1:])
    out = {k: v for k, v in vars(known).items() if v is not None}
    missing = [o for o in options if o not in out]
    if missing:
        raise GlueArgumentError("the following arguments are required: " + ", ".join("--" + m for m in missing))
    return out

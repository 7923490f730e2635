"""Glue job ``csv-to-parquet-job`` (Python shell 3.9): validate one CSV object, write Parquet + quarantine.

The job is :func:`etl_runtime.job1.main` (arguments and exit codes are documented there); the
``etl_runtime`` package comes with ``--extra-py-files``.
"""

import sys

from etl_runtime.job1 import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())

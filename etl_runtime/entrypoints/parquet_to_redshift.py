"""Glue job ``redshift-loader-job`` (Python shell 3.9): load job 1's Parquet into Redshift (Data API).

A few lines around :func:`etl_runtime.job2.main` (arguments and run properties are described there);
the ``etl_runtime`` package is on the job's path (``--extra-py-files``).
"""

from __future__ import annotations

import sys

from etl_runtime.job2 import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())

"""The runtimes AWS runs the pipeline's code on, pinned: the one file that says which Python and which libraries.

The local cloud builds one virtual environment per runtime from these pins (:mod:`etl_localcloud.runtime_envs`)
and runs Glue Python shell jobs and Lambda functions on it, so that an API the real runtime lacks fails locally
too. Change a pin here and the next start builds a new environment (the cache is keyed by the pins).

Sources (read 2026-11-27)
-------------------------
* Glue Python shell, Python 3.9, ``library-set: analytics``: "Configuring job properties for Python shell jobs
  in AWS Glue", section "Supported libraries for Python shell jobs", column "Python 3.9",
  https://docs.aws.amazon.com/glue/latest/dg/add-job-python.html#python-shell-supported-library . The kit pins
  the libraries its code and its users' scripts reach for (the table's boto3, botocore, numpy, pandas, pyarrow,
  awswrangler), not the table's drivers (psycopg2, pyodbc, PyGreSQL...). botocore is 1.25.5, the release the
  table's boto3 1.22.5 and awscli 1.23.5 both require (pip refuses any other with that boto3).
* Lambda ``python3.12``: "Building Lambda functions with Python", section "Runtime-included SDK versions",
  https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html (linked from "Lambda runtimes",
  https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html). AWS notes the included SDK is updated
  with the runtime and may differ by region; the pin is the version that page lists.

The search tool used to write this file returned those pages' introductions but not their version tables, so
the numbers were transcribed from the tables as last read, then checked to install together with pip on the
runtime's Python (``--only-binary :all:``). Check them against the pages when AWS updates a runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuntimePins", "GLUE_PYTHONSHELL_39", "LAMBDA_RUNTIMES", "PINNED", "SOURCE_DATE"]

SOURCE_DATE = "2026-11-27"


@dataclass(frozen=True)
class RuntimePins:
    """One runtime: its name, the Python it needs (``major.minor``), the packages pip installs, and their source.

    ``packages`` are ``name==version`` requirement strings, installed from wheels only.
    """

    name: str
    python: str
    packages: tuple[str, ...]
    source: str

    def version_of(self, package: str) -> str:
        """The pinned version of ``package`` (a KeyError when it is not pinned)."""
        for req in self.packages:
            name, _, version = req.partition("==")
            if name.lower() == package.lower():
                return version
        raise KeyError(f"{package} is not pinned in runtime {self.name}")


GLUE_PYTHONSHELL_39 = RuntimePins(
    name="glue-pythonshell-3.9-analytics",
    python="3.9",
    packages=(
        "boto3==1.22.5",
        "botocore==1.25.5",
        "numpy==1.22.3",
        "pandas==1.4.2",
        "pyarrow==7.0.0",
        "awswrangler==2.15.1",
    ),
    source="https://docs.aws.amazon.com/glue/latest/dg/add-job-python.html#python-shell-supported-library",
)

# Lambda runtime identifier -> its pins (the kit declares python3.12: etl_kit/provision/lambda_.py RUNTIME).
LAMBDA_RUNTIMES: dict[str, RuntimePins] = {
    "python3.12": RuntimePins(
        name="lambda-python3.12",
        python="3.12",
        packages=("boto3==1.34.145", "botocore==1.34.145"),
        source="https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html#python-sdk-included",
    ),
}

PINNED: tuple[RuntimePins, ...] = (GLUE_PYTHONSHELL_39, *LAMBDA_RUNTIMES.values())

"""What to run: the small typed spec the local cloud is started from, and its state dir's layout."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CloudSpec", "free_port", "PID_FILE", "STATE_FILE", "ERROR_FILE", "LOG_FILE", "REPAIR_PATH"]

# The state dir's files. STATE_FILE is written once the cloud serves (endpoint, identity, warehouse; 0600)
# and removed when it stops: it is where a client learns where the cloud is (etl_localcloud.identity).
PID_FILE = "daemon.pid"
STATE_FILE = "daemon.json"
ERROR_FILE = "daemon.error"
LOG_FILE = "daemon.log"
REPAIR_PATH = "/_etl_kit/repair"


@dataclass(frozen=True)
class CloudSpec:
    """One local cloud: where it keeps its state and where it listens.

    Parameters
    ----------
    state_dir
        Absolute directory for the snapshot, the S3 bodies, PostgreSQL's data, logs and pid files.
    port
        TCP port of the AWS endpoint on ``host``.
    region
        The region the cloud's services answer for.
    host
        Address the endpoint listens on (loopback: the cloud has no authentication worth the name).
    iam_enforcement
        Whether requests signed with the pipeline's role sessions are authorised against IAM policies
        (:mod:`etl_localcloud.iam`); the user's own calls are never restricted.
    """

    state_dir: Path
    port: int
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    iam_enforcement: bool = True

    @property
    def endpoint(self) -> str:
        """The AWS endpoint URL every client of this cloud uses."""
        return f"http://{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])

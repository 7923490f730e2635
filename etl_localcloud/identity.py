"""Who the local cloud is: its account, its admin credentials, and where a running one says it is.

The daemon writes its :class:`CloudAddress` into ``<state_dir>/daemon.json`` once it serves; clients read it
with :func:`read_address` (stdlib only, so a client needs none of the local cloud's dependencies).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from etl_localcloud.spec import STATE_FILE

__all__ = ["ACCOUNT_ID", "ADMIN", "Credentials", "CloudAddress", "read_address", "pid_alive"]

# moto's default account: requests signed with any access key land in it
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class Credentials:
    """An access key pair the local cloud accepts."""

    access_key_id: str
    secret_access_key: str

    def boto3_kwargs(self) -> dict[str, str]:
        """As ``boto3.Session(**...)`` takes them."""
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}


# Fixed and fake: the cloud listens on loopback only and moto does not check signatures.
ADMIN = Credentials(access_key_id="testing", secret_access_key="testing")


@dataclass(frozen=True)
class CloudAddress:
    """Where a running local cloud serves and how to sign in to it (the identity part of ``daemon.json``)."""

    endpoint: str
    region: str
    account_id: str
    credentials: Credentials
    pid: int
    state_dir: str

    def to_json(self) -> dict[str, Any]:
        """The keys written into ``daemon.json``."""
        return asdict(self)

    def running(self) -> bool:
        """Whether the process that wrote this address still runs."""
        return pid_alive(self.pid)


def read_address(state_dir: Path) -> CloudAddress | None:
    """The address the cloud of ``state_dir`` wrote, or None when none is written (not started, or stopped)."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return CloudAddress(endpoint=data["endpoint"], region=data["region"], account_id=data["account_id"],
                            credentials=Credentials(**data["credentials"]), pid=int(data["pid"]),
                            state_dir=data["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:  # gone between the signal and the read
        return False
    except OSError:  # no /proc here: the signal said it exists
        return True

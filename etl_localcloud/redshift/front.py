"""The workgroup endpoint: a small front that speaks to Redshift drivers and relays to the embedded PostgreSQL.

redshift-connector (and awswrangler, which uses it) opens every connection the way Redshift
expects it: an ``SSLRequest`` first (its default ``ssl=True`` refuses a server that answers
``N``), then a startup message carrying Redshift-only parameters (``client_protocol_version``,
``driver_version``, ...) that PostgreSQL rejects as unknown settings. The front listens on the
workgroups' endpoint port, answers the ``SSLRequest`` with TLS (a certificate of the local
cloud's own CA, see :func:`ensure_tls`), drops those parameters, and from then on relays the
conversation, translating the Redshift SQL of Query and Parse messages as the Data API does
(``DISTSTYLE``/``SORTKEY`` dropped, Redshift's string escapes ...). psycopg and psql connect
through it as well (their ``sslmode=prefer`` takes the TLS).

Bad input never hangs a client: the startup phase has a deadline, a down warehouse is answered
with a PostgreSQL ``ErrorResponse`` naming the fix, and a failed login carries a hint saying where
the password lives.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClientStream", "FrontTls", "REDSHIFT_ONLY_PARAMETERS", "WarehouseFront", "ensure_tls", "error_response",
           "redshift_to_postgres", "rewrite_startup"]

log = logging.getLogger("etl_localcloud.redshift.front")

# Startup parameters redshift-connector sends that PostgreSQL answers with "unrecognized configuration parameter".
REDSHIFT_ONLY_PARAMETERS = frozenset({"client_protocol_version", "driver_version", "os_version",
                                      "driver_discovery_version", "plugin_name"})
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_PROTOCOL_3 = 196608
_AUTH_NEEDS_ANSWER = (3, 5, 10, 11)  # cleartext, md5, SASL, SASL continue (SASL final and OK need none)
_MAX_STARTUP = 10_000  # PostgreSQL's own limit on a startup packet
_LOGIN_HINT = ("The workgroup's admin password is in the namespace's managed secret (GetNamespace -> "
               "adminPasswordSecretArn, then secretsmanager get-secret-value); etl_kit.warehouse.connect(settings) "
               "reads it for you.")
_DOWN_HINT = "`etl-kit local up` restarts it; `etl-kit local status` shows what is down."


@dataclass(frozen=True)
class FrontTls:
    """The local cloud's CA and the endpoint's certificate (PEM files under ``<state_dir>/redshift/tls``)."""

    ca_cert: Path
    cert: Path
    key: Path
    trust_bundle: Path  # the system's CAs plus the local CA: what SSL_CERT_FILE may point at

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def ensure_tls(folder: Path) -> FrontTls | None:
    """Create (once) a CA and a certificate for 127.0.0.1/localhost signed by it; None without ``openssl``.

    The files persist with the state dir, so a trust set up once (``SSL_CERT_FILE``) survives restarts.
    """
    tls = FrontTls(ca_cert=folder / "ca.pem", cert=folder / "endpoint.pem", key=folder / "endpoint-key.pem",
                   trust_bundle=folder / "trust-bundle.pem")
    try:
        if not (tls.cert.exists() and tls.key.exists() and tls.ca_cert.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            ca_key, csr, ext = folder / "ca-key.pem", folder / "endpoint.csr", folder / "endpoint.ext"
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
                     str(tls.ca_cert), "-days", "3650", "-subj", "/CN=etl-kit local cloud CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tls.key), "-out", str(csr),
                     "-subj", "/CN=localhost")
            ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                           "extendedKeyUsage=serverAuth\n")
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(tls.ca_cert), "-CAkey", str(ca_key),
                     "-CAcreateserial", "-out", str(tls.cert), "-days", "3650", "-extfile", str(ext))
            for f in (csr, ext):
                f.unlink(missing_ok=True)
        _write_trust_bundle(tls)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("no TLS on the workgroup endpoint (openssl failed: %s); drivers need ssl=False", exc)
        return None
    return tls


def _write_trust_bundle(tls: FrontTls) -> None:
    paths = ssl.get_default_verify_paths()
    system = ""
    for cafile in (paths.openssl_cafile, paths.cafile):
        if cafile and Path(cafile).is_file():
            system = Path(cafile).read_text(errors="replace")
            break
    tls.trust_bundle.write_text(system.rstrip("\n") + "\n" + tls.ca_cert.read_text())


class _Refused(Exception):
    """The client's startup cannot go on; the message goes back as a FATAL ErrorResponse."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.hint = code, hint


def error_response(code: str, message: str, hint: str = "") -> bytes:
    """A PostgreSQL ``ErrorResponse`` (severity FATAL) with SQLSTATE ``code``."""
    fields = b"SFATAL\x00VFATAL\x00C" + code.encode() + b"\x00M" + message.encode() + b"\x00"
    if hint:
        fields += b"H" + hint.encode() + b"\x00"
    body = fields + b"\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the client closed the connection during startup")
        buf += chunk
    return buf


def _read_startup(sock: socket.socket) -> tuple[int, bytes]:
    """(code, rest of the packet) of one untyped startup-phase packet."""
    length = struct.unpack("!I", _recv_exact(sock, 4))[0]
    if not 8 <= length <= _MAX_STARTUP:
        raise _Refused("08P01", f"invalid startup packet length {length}")
    body = _recv_exact(sock, length - 4)
    return struct.unpack("!I", body[:4])[0], body[4:]


def redshift_to_postgres(sql: str) -> str:
    """The statement(s) PostgreSQL runs for Redshift SQL, as the Data API translates them.

    What has no one-statement equivalent (a COPY from S3, MERGE ... REMOVE DUPLICATES) or cannot be
    translated passes unchanged, so PostgreSQL's own error reaches the client. What Redshift refuses
    becomes a statement that fails with Redshift's error (:func:`.compat.raise_sql`), taking as many bind
    values as the refused one, so the driver reads the error from the server in its usual place.
    """
    from etl_localcloud.redshift.compat import raise_sql
    from etl_localcloud.redshift.sqltranslate import RefusedError, TranslationError, split_statements, translate

    try:
        out = []
        for stmt in split_statements(sql):
            done = translate(stmt)
            if len(done) != 1 or done[0].copy is not None:
                return sql
            if done[0].sql is not None:  # a no-op (VACUUM, ALTER ... DISTSTYLE) is dropped
                out.append(done[0].sql)
    except RefusedError as exc:
        return raise_sql(str(exc), exc.sqlstate, _bind_count(sql))
    except TranslationError:
        return sql
    return "; ".join(out)  # empty: PostgreSQL answers EmptyQueryResponse, as for a no-op


def _bind_count(sql: str) -> int:
    """The highest ``$n`` bind placeholder of ``sql`` (0 without any)."""
    from etl_localcloud.redshift.sqltranslate import TranslationError, tokenize

    try:
        toks = [t for t in tokenize(sql) if t.kind not in ("space", "comment")]
    except TranslationError:
        return 0
    return max((int(b.text) for a, b in itertools.pairwise(toks) if a.text == "$" and b.kind == "number"
                and b.text.isdigit()), default=0)


def _translated(sql: bytes) -> bytes:
    # client_encoding is UTF8 (both drivers set it); undecodable bytes pass through untouched
    return redshift_to_postgres(sql.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class ClientStream:
    """The client's messages after login: Redshift SQL in Query and Parse messages becomes PostgreSQL's."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> bytes:
        """Complete messages of ``data`` (plus what was buffered), rewritten; a partial one waits."""
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            length = struct.unpack("!I", self.buf[1:5])[0]
            if len(self.buf) < length + 1:
                break
            kind, body, self.buf = self.buf[:1], self.buf[5:length + 1], self.buf[length + 1:]
            if kind == b"Q":
                body = _translated(body[:-1]) + b"\x00"
            elif kind == b"P":
                name, rest = body.split(b"\x00", 1)
                query, tail = rest.split(b"\x00", 1)
                body = name + b"\x00" + _translated(query) + b"\x00" + tail
            out.append(kind + struct.pack("!I", len(body) + 4) + body)
        return b"".join(out)


def rewrite_startup(params: bytes) -> bytes:
    """The protocol-3 startup message for PostgreSQL: the client's parameters minus the Redshift-only ones."""
    parts = params.split(b"\x00")
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]
    kept = b"".join(k + b"\x00" + v + b"\x00" for k, v in pairs
                    if k.decode(errors="replace") not in REDSHIFT_ONLY_PARAMETERS)
    body = struct.pack("!I", _PROTOCOL_3) + kept + b"\x00"
    return struct.pack("!I", len(body) + 4) + body


class _Session:
    """One client connection: startup negotiation, then a byte relay to PostgreSQL."""

    def __init__(self, front: WarehouseFront, client: socket.socket) -> None:
        self.front = front
        self.client: socket.socket = client
        self.server: socket.socket | None = None

    def run(self) -> None:
        try:
            self.client.settimeout(self.front.startup_timeout)
            startup = self._negotiate()
            if startup is None:
                return
            self.server = self._open_backend()
            self.server.sendall(startup)
            self._relay_login()
            self.client.settimeout(None)
            self.server.settimeout(None)
            self._relay()
        except _Refused as exc:
            with contextlib.suppress(OSError):
                self.client.sendall(error_response(exc.code, str(exc), exc.hint))
        except (OSError, ConnectionError, ssl.SSLError) as exc:
            log.debug("front connection ended: %s", exc)
        finally:
            for s in (self.client, self.server):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _negotiate(self) -> bytes | None:
        """Answer SSL/GSS requests until the startup message; None for a cancel request (relayed and done)."""
        while True:
            code, rest = _read_startup(self.client)
            if code == _SSL_REQUEST:
                if self.front.tls is None or isinstance(self.client, ssl.SSLSocket):
                    self.client.sendall(b"N")
                    continue
                self.client.sendall(b"S")
                self.client = self.front.tls.wrap_socket(self.client, server_side=True)
            elif code == _GSSENC_REQUEST:
                self.client.sendall(b"N")
            elif code == _CANCEL_REQUEST:
                with contextlib.suppress(_Refused, OSError):
                    backend = self._open_backend()
                    with backend:
                        backend.sendall(struct.pack("!II", 16, _CANCEL_REQUEST) + rest)
                return None
            elif code == _PROTOCOL_3:
                return rewrite_startup(rest)
            else:
                raise _Refused("08P01", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                                        "the workgroup endpoint speaks protocol 3.0")

    def _open_backend(self) -> socket.socket:
        address = self.front.backend()
        if address is None:
            raise _Refused("57P03", "the local warehouse (embedded PostgreSQL) is not running", _DOWN_HINT)
        try:
            return socket.create_connection(address, timeout=self.front.startup_timeout)
        except OSError as exc:
            raise _Refused("57P03", f"the local warehouse (embedded PostgreSQL on port {address[1]}) does not "
                                    f"answer: {exc.strerror or exc}", _DOWN_HINT) from exc

    def _relay_login(self) -> None:
        """Relay the authentication exchange message by message until ReadyForQuery or an error.

        A failed login gets the hint where the password lives; everything else passes unchanged.
        """
        assert self.server is not None
        while True:
            kind = _recv_exact(self.server, 1)
            length = struct.unpack("!I", _recv_exact(self.server, 4))[0]
            body = _recv_exact(self.server, length - 4)
            if kind == b"E" and b"C28P01\x00" in body and b"\x00H" not in body:  # a wrong password
                body = body[:-1] + b"H" + _LOGIN_HINT.encode() + b"\x00\x00"
                length = len(body) + 4
            self.client.sendall(kind + struct.pack("!I", length) + body)
            if kind in (b"Z", b"E"):
                return
            if kind == b"R" and struct.unpack("!I", body[:4])[0] in _AUTH_NEEDS_ANSWER:
                self._forward_client_message()

    def _forward_client_message(self) -> None:
        """The client's answer to an authentication request (a password or SASL message)."""
        assert self.server is not None
        kind = _recv_exact(self.client, 1)
        length = struct.unpack("!I", _recv_exact(self.client, 4))[0]
        if length > 1_000_000:
            raise _Refused("08P01", "invalid authentication message length")
        self.server.sendall(kind + struct.pack("!I", length) + _recv_exact(self.client, length - 4))

    def _relay(self) -> None:
        assert self.server is not None
        peers: dict[socket.socket, socket.socket] = {self.client: self.server, self.server: self.client}
        client_stream = ClientStream()
        while True:
            # TLS may hold decrypted bytes select() cannot see
            ready: list[socket.socket] = [s for s in peers if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select(list(peers), [], [], 60.0)
                if self.front.stopping.is_set():
                    return
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                peers[src].sendall(client_stream.feed(data) if src is self.client else data)


class WarehouseFront:
    """Listens on the workgroup endpoint (127.0.0.1:``port``) and serves each client in a thread.

    Parameters
    ----------
    backend
        Where PostgreSQL listens right now (host, port), or None when it is down; asked per connection,
        so a restarted server on a new port is followed.
    tls
        The endpoint's certificate, or None to answer ``N`` to SSL requests.
    port
        The port to listen on (0: any free one); a taken port falls back to a free one.
    """

    def __init__(self, backend: Callable[[], tuple[str, int] | None], tls: FrontTls | None, port: int = 0,
                 host: str = "127.0.0.1", startup_timeout: float = 10.0) -> None:
        self.backend = backend
        self.tls_files = tls
        self.tls = tls.server_context() if tls else None
        self.host = host
        self.startup_timeout = startup_timeout
        self.stopping = threading.Event()
        self.sock = self._listen(port)
        self.port: int = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="redshift-front", daemon=True)

    def _listen(self, port: int) -> socket.socket:
        for candidate in dict.fromkeys((port, 0)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, candidate))
            except OSError:
                sock.close()
                continue
            sock.listen(64)
            sock.settimeout(0.5)
            return sock
        raise OSError(f"no port for the workgroup endpoint on {self.host}")

    def start(self) -> WarehouseFront:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_Session(self, client).run, name="redshift-front-conn", daemon=True).start()

    def close(self) -> None:
        """Stop accepting; open sessions end within a minute or when their peers close."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

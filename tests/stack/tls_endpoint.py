"""A certificate consumer stand-in: a TLS server on 127.0.0.1 whose certificate can be swapped, like an nginx reload.

`with TlsEndpoint(cert_pem, key_pem) as endpoint: ... endpoint.serve(new_cert_pem, new_key_pem)`. Each connection gets
a handshake (any SNI) and is closed; before the first `serve` a connection is closed without a handshake.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Bounds how long one silent client holds a handler thread, and how fast `stop` notices.
HANDSHAKE_TIMEOUT = 5.0
_ACCEPT_POLL = 0.1


class TlsEndpoint:
    """Serves one certificate chain on a free port of 127.0.0.1 from a daemon thread; stops on exit."""

    def __init__(self, cert_pem: str | None = None, key_pem: str | None = None) -> None:
        self._context: ssl.SSLContext | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_ACCEPT_POLL)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"tls-endpoint-{self.port}", daemon=True)
        if cert_pem is not None and key_pem is not None:
            self.serve(cert_pem, key_pem)
        self._thread.start()

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def serve(self, cert_pem: str, key_pem: str) -> None:
        """Serve this chain (leaf first) and key from the next connection on."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain reads files only; the key never outlives this call on disk.
        with tempfile.TemporaryDirectory(prefix="tls-endpoint-") as directory:
            chain, key = Path(directory, "chain.pem"), Path(directory, "key.pem")
            chain.write_text(cert_pem)
            key.write_text(key_pem)
            key.chmod(0o600)
            context.load_cert_chain(chain, key)
        self._context = context

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TlsEndpoint:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            # One thread per connection, so a client that never speaks does not hold up the next one.
            threading.Thread(target=self._handshake, args=(connection, self._context), daemon=True).start()

    @staticmethod
    def _handshake(connection: socket.socket, context: ssl.SSLContext | None) -> None:
        with connection:
            if context is None:
                return
            connection.settimeout(HANDSHAKE_TIMEOUT)
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except OSError:  # includes ssl.SSLError and timeouts: the client decides what that means
                pass


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed leaf for TlsEndpoint; `certificate` for assertions, the PEMs to serve."""

    certificate: x509.Certificate
    cert_pem: str
    key_pem: str

    @classmethod
    def create(cls, names: tuple[str, ...], *, lifetime: datetime.timedelta) -> SelfSigned:
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(certificate, certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem)

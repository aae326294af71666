"""ACM as the local stack serves it, in this process: StrictAcm (tests/stack/strict_acm.py) over moto's ACM, and
boto3 clients that reach it without a socket; plus certificates crafted with the key and usages a test needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.stack.strict_acm import StrictAcm

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient
    from mypy_boto3_sts import STSClient

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
# Key Usage as CAs set it on TLS server certificates (pebble's, Let's Encrypt's RSA ones until 2025).
TLS_KEY_USAGE = frozenset({"digital_signature", "key_encipherment"})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


@dataclass
class InProcessAcm:
    """StrictAcm around moto's ACM application, and a clock that decides its rate."""

    app: StrictAcm
    clock: FakeClock

    @classmethod
    def start(cls, imports_per_second: float = 1.0) -> InProcessAcm:
        """ACM's own rate by default; the clock moves only when a test moves it."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        clock = FakeClock()
        app = StrictAcm(
            DomainDispatcherApplication(create_backend_app),
            imports_per_second=imports_per_second,
            clock=clock,
            wall_clock=clock,  # the 365 days of the import quota pass when a test moves the clock too
        )
        return cls(app, clock)

    def client(
        self, region: str = "eu-west-1", credentials: Mapping[str, Any] | None = None, config: Config | None = None
    ) -> ACMClient:
        """With `credentials` (AssumeRole's), acting in the role's account; `config`: botocore's (the renewer's
        retries, say), else a refusal shows at once."""
        client: ACMClient = self._client("acm", region, credentials, config)
        return client

    def sts(self, region: str = "eu-west-1") -> STSClient:
        client: STSClient = self._client("sts", region, None, None)
        return client

    def _client(self, service: str, region: str, credentials: Mapping[str, Any] | None, config: Config | None) -> Any:
        keys = (
            {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            if credentials is None
            else {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        )
        client = boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=f"http://{service}.in-process.test",  # never connected to: before-send answers
            config=config or Config(retries={"mode": "standard", "total_max_attempts": 1}),
            **keys,
        )
        client.meta.events.register(f"before-send.{service}", self._send)
        return client

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        environ = EnvironBuilder(
            method=request.method, path=url.path, query_string=url.query, headers=headers, data=body
        ).get_environ()
        app_iter, status, answer_headers = run_wsgi_app(self.app, environ, buffered=True)
        raw = _Body(b"".join(app_iter))
        return AWSResponse(request.url, int(status.split()[0]), dict(answer_headers), raw)


KeyFactory = Callable[[], Any]
KEYS: dict[str, KeyFactory] = {
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa-3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
}


@dataclass(frozen=True)
class Crafted:
    certificate_pem: str
    private_key_pem: str

    @property
    def material(self) -> dict[str, bytes]:
        """ImportCertificate's Certificate and PrivateKey."""
        return {"Certificate": self.certificate_pem.encode(), "PrivateKey": self.private_key_pem.encode()}


def crafted_certificate(
    key_type: str = "ec-p256",
    *,
    key_usage: Iterable[str] | None = TLS_KEY_USAGE,
    extended_key_usage: Iterable[x509.ObjectIdentifier] | None = (SERVER_AUTH, CLIENT_AUTH),
    name: str = "www.example.test",
) -> Crafted:
    """A self-signed certificate valid now, with exactly these usages (None: no such extension)."""
    key = KEYS[key_type]()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    if key_usage is not None:
        bits = set(key_usage)
        flags = {
            flag: flag in bits
            for flag in (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
            )
        }
        builder = builder.add_extension(x509.KeyUsage(**flags, encipher_only=False, decipher_only=False), critical=True)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return Crafted(
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )

"""Fakes for unit tests: a CA that signs locally, with no ACME and no DNS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from acme_renewer.dns.challenge import challenge_record
from acme_renewer.errors import AcmeOrderError
from acme_renewer.inventory.ari import certificate_id
from acme_renewer.models import CertificateRequest, IssuedCertificate, TxtRecord
from acme_renewer.order.keys import build_csr, generate_key, issued_certificate, private_key_pem


@dataclass
class FakeOrder:
    request: CertificateRequest
    records: list[TxtRecord]
    answered: bool = False


class FakeCa:
    """The order steps of a CA that signs locally; `fail_for` names ids whose validation fails.

    It checks, as a CA would, that the challenge values are on `dns` when the challenges are answered.
    """

    def __init__(
        self,
        lifetime: timedelta = timedelta(days=90),
        fail_for: frozenset[str] = frozenset(),
        error: BaseException | None = None,
        dns: FakeDns | None = None,
        ari: bool = False,
        keeps_orders: bool = False,
    ) -> None:
        self.lifetime = lifetime
        # A CA that keeps what it issued: a finalized order's certificate is recovered with its key, as pebble's is.
        self.keeps_orders = keeps_orders
        self.issued: dict[str, IssuedCertificate] = {}
        self.ari = ari  # a CA offering renewalInfo: its certificates come with their ARI id
        self.fail_for = fail_for
        self.error = error
        self.dns = dns if dns is not None else FakeDns()
        self.die_after_publish: BaseException | None = None
        self.orders: list[str] = []
        self.replaces: dict[str, str | None] = {}  # id -> the replaces its newOrder got
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake Intermediate")])
        now = datetime.now(UTC)
        self._issuer = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def begin(self, request: CertificateRequest, replaces: str | None = None) -> FakeOrder:
        self.orders.append(request.id)
        self.replaces[request.id] = replaces
        records = [
            challenge_record(
                d,
                f"token-{request.id}",
                alias=request.challenge_alias,
                zone_id=request.hosted_zone_id,
                role=request.zone_role,
            )
            for d in request.domains
        ]
        return FakeOrder(request, records)

    def answer(self, opened: FakeOrder) -> None:
        """Like a CA: the values must be live when the challenges are answered."""
        if self.die_after_publish:
            self.dns.dead = True  # the process is gone: nothing of ours runs after this, cleanup included
            raise self.die_after_publish
        missing = [r for r in opened.records if r.value not in self.dns.lookup(r.name)]
        if missing:
            raise AcmeOrderError(f"fake CA: {missing[0].name} was not published when the challenge was answered")
        opened.answered = True

    def validate(self, opened: FakeOrder) -> None:
        """A `fail_for` id fails as a failed validation does; an order never answered cannot be valid."""
        if not opened.answered:
            raise AcmeOrderError("fake CA: the challenges were never answered")
        if opened.request.id in self.fail_for:
            raise self.error or AcmeOrderError(f"DNS-01 validation failed for {opened.request.domains[0]}: fake")

    def finish(self, opened: FakeOrder, checkpoint: Callable[[str, str], None] | None = None) -> IssuedCertificate:
        key = generate_key(opened.request.key_type)
        url = f"https://ca.test/order/{len(self.orders)}"
        if checkpoint is not None:
            checkpoint(url, private_key_pem(key))
        certificate = self.sign(opened.request, key)
        if self.keeps_orders:
            self.issued[url] = certificate
        return certificate

    def recover(self, request: CertificateRequest, order_url: str, key_pem: str) -> IssuedCertificate | None:
        """Unless `keeps_orders`, the CA keeps nothing: a pending order is never recovered (the integration tests
        use pebble's). With it, the order's certificate when `key_pem` is its key."""
        kept = self.issued.get(order_url)
        return kept if kept is not None and kept.private_key_pem == key_pem else None

    def sign(
        self, request: CertificateRequest, key: CertificateIssuerPrivateKeyTypes | None = None
    ) -> IssuedCertificate:
        key = key or generate_key(request.key_type)
        csr = x509.load_pem_x509_csr(build_csr(key, request.domains))
        now = datetime.now(UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self._issuer.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + self.lifetime)
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        fullchain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, self._issuer)).decode()
        issued = issued_certificate(fullchain, key, request.domains)
        return replace(issued, ari_id=certificate_id(issued.certificate_pem)) if self.ari else issued


class FakeDns:
    """A DNS provider in memory: name -> values. `dead` stands for a killed process: nothing more is done."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.cnames: dict[str, str] = {}  # challenge name -> the name it is a CNAME to
        self.dead = False
        self.publishes = 0

    def resolve(self, records: list[TxtRecord]) -> list[TxtRecord]:
        return [replace(r, target=self.cnames[r.name]) if r.name in self.cnames else r for r in records]

    def lookup(self, name: str) -> list[str]:
        """The values the CA sees on a name, following its CNAME as a resolver does."""
        return self.records.get(self.cnames.get(name, name), [])

    def publish(self, records: list[TxtRecord]) -> None:
        self.publishes += 1
        for record in records:
            self.records.setdefault(record.written_at, []).append(record.value)

    def remove(self, records: list[TxtRecord]) -> None:
        if self.dead:
            raise RuntimeError("the process is gone")
        for record in records:
            values = self.records.get(record.written_at, [])
            if record.value in values:
                values.remove(record.value)
            if not values:
                self.records.pop(record.written_at, None)

"""Choosing among the CA's chains by the issuer of their topmost certificate (`preferred_chain`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_renewer.order.orders import choose_chain

KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(subject: str, issuer: str) -> str:
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


LEAF = certificate("example.com", "Intermediate A")
DEFAULT = LEAF + certificate("Intermediate A", "Root X1")
# A longer alternate: the intermediate cross-signed by an older root. Only the topmost issuer counts.
CROSS = LEAF + certificate("Intermediate A", "Root X1") + certificate("Root X1", "Old Root")


@pytest.mark.parametrize(
    ("preferred", "chosen"),
    [("Root X1", DEFAULT), ("Old Root", CROSS), ("Intermediate A", DEFAULT), ("Unknown Root", DEFAULT)],
)
def test_the_first_chain_whose_top_issuer_matches_wins_else_the_default(preferred: str, chosen: str) -> None:
    assert choose_chain([DEFAULT, CROSS], preferred) == chosen


def test_an_unreadable_alternate_is_skipped() -> None:
    assert choose_chain([DEFAULT, "not a certificate", CROSS], "Old Root") == CROSS

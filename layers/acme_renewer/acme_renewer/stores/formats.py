"""Stores stage, formats: the certificate's secret document, PEM plus the formats the item's `formats` asks for.

The JSON keys are a contract with whatever reads the secret (`acme-renewer install`, a server's own script):
`pkcs12`, `pkcs12_legacy`, `pkcs12_password` and `bundle` beside the PEM keys. See README, "The certificate's
secret".
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PKCS12PrivateKeyTypes

from acme_renewer.models import IssuedCertificate

PKCS12 = "pkcs12"
PKCS12_LEGACY = "pkcs12-legacy"
BUNDLE = "bundle"
# Every value of the item's `formats`, in the order the README lists them.
FORMATS = (PKCS12, PKCS12_LEGACY, BUNDLE)
PASSWORD_KEY = "pkcs12_password"
# The document key of each format.
KEYS = {PKCS12: "pkcs12", PKCS12_LEGACY: "pkcs12_legacy", BUNDLE: "bundle"}
# PBKDF2 rounds of the modern PFX. The password is 32 random characters, so the rounds add little against guessing;
# they stay well above OpenSSL 3's default (2048) without making an import on a small appliance slow.
KDF_ROUNDS = 50_000
# The legacy PFX as Windows before Server 2019 (and old Java keytool) read it: 3DES, SHA-1, OpenSSL's 2048 rounds.
LEGACY_KDF_ROUNDS = 2048


def document(
    certificate: IssuedCertificate, formats: Sequence[str], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The secret's JSON: the PEM keys always, then one key per format asked for.

    Both PFX share one password; it is the one of `current` (the secret's AWSCURRENT document) when that has one, so
    that a server's configuration that names it keeps working across renewals. Never log the result."""
    body: dict[str, Any] = {
        "certificate": certificate.certificate_pem,
        "chain": certificate.chain_pem,
        "fullchain": certificate.fullchain_pem,
        "private_key": certificate.private_key_pem,
        "serial": certificate.serial,
        "not_after": certificate.not_after.isoformat(),
        "domains": list(certificate.domains),
    }
    if PKCS12 in formats or PKCS12_LEGACY in formats:
        password = reusable_password(current) or secrets.token_urlsafe(24)
        body[PASSWORD_KEY] = password
        # Loaded once for both: checking an RSA-4096 key as it loads takes about a quarter of a second.
        contents = pfx_contents(certificate)
        for name, legacy in ((PKCS12, False), (PKCS12_LEGACY, True)):
            if name in formats:
                body[KEYS[name]] = base64.b64encode(pfx(contents, password, legacy=legacy)).decode("ascii")
    if BUNDLE in formats:
        body[KEYS[BUNDLE]] = certificate.private_key_pem + certificate.fullchain_pem
    return body


def has_formats(current: Mapping[str, Any], formats: Sequence[str]) -> bool:
    """Whether a secret document holds exactly the formats asked for (and no others)."""
    return {name for name, key in KEYS.items() if key in current} == set(formats)


def reusable_password(current: Mapping[str, Any] | None) -> str | None:
    password = None if current is None else current.get(PASSWORD_KEY)
    return password if isinstance(password, str) and password else None


@dataclass(frozen=True)
class PfxContents:
    """What a PFX holds, parsed: the key, the leaf, the chain, and the friendly name (the subject)."""

    key: PKCS12PrivateKeyTypes
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    name: bytes | None


def pfx_contents(certificate: IssuedCertificate) -> PfxContents:
    key = serialization.load_pem_private_key(certificate.private_key_pem.encode(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise TypeError(f"{type(key).__name__}: the renewer issues RSA and EC keys only")
    chain = x509.load_pem_x509_certificates(certificate.chain_pem.encode()) if certificate.chain_pem.strip() else []
    return PfxContents(
        key=key,
        leaf=x509.load_pem_x509_certificate(certificate.certificate_pem.encode()),
        chain=tuple(chain),
        name=certificate.domains[0].encode() if certificate.domains else None,
    )


def pfx(contents: PfxContents, password: str, *, legacy: bool) -> bytes:
    """Key, leaf and chain as PKCS#12: PBES2 (PBKDF2-SHA256, AES-256-CBC) with an HMAC-SHA256 MAC; or, `legacy`,
    PBES1 SHA1-3DES with an HMAC-SHA1 MAC."""
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        builder = (
            builder.kdf_rounds(LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # what the old Windows this format is for reads
        )
    else:
        builder = (
            builder.kdf_rounds(KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
        )
    return pkcs12.serialize_key_and_certificates(
        contents.name, contents.key, contents.leaf, list(contents.chain) or None, builder.build(password.encode())
    )


def from_document(current: Mapping[str, Any]) -> IssuedCertificate | None:
    """The certificate and key of a secret document, to render it again in other formats; None when it holds no
    readable certificate (a placeholder, a document written by hand)."""
    try:
        leaf = x509.load_pem_x509_certificate(str(current["certificate"]).encode())
        key_pem, chain_pem = current["private_key"], current.get("chain", "")
        domains = current.get("domains", [])
        if not isinstance(key_pem, str) or not isinstance(chain_pem, str) or not isinstance(domains, list):
            return None
        return IssuedCertificate(
            certificate_pem=str(current["certificate"]),
            chain_pem=chain_pem,
            private_key_pem=key_pem,
            serial=format(leaf.serial_number, "x"),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            domains=tuple(str(d) for d in domains),
        )
    except (KeyError, ValueError, TypeError):
        return None

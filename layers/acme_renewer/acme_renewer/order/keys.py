"""Order stage, local half: a fresh private key and CSR per order, and reading back what the CA issued."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from acme_renewer.errors import AcmeOrderError
from acme_renewer.models import IssuedCertificate, KeyType

_CURVES = {KeyType.EC_P256: ec.SECP256R1, KeyType.EC_P384: ec.SECP384R1}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def generate_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def private_key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def build_csr(key: CertificateIssuerPrivateKeyTypes, domains: tuple[str, ...]) -> bytes:
    """CN and first SAN are the first domain: CAs that copy a name into the CN take the first SAN."""
    common_name = domains[0] if len(domains[0]) <= 64 else None  # CN is capped at 64 characters
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def split_fullchain(fullchain_pem: str) -> tuple[str, str]:
    """Return (leaf, intermediates) as PEM text."""
    certificates = x509.load_pem_x509_certificates(fullchain_pem.encode("ascii"))
    if not certificates:
        raise AcmeOrderError("the CA returned an empty certificate chain")
    pems = [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates]
    return pems[0], "".join(pems[1:])


def issued_certificate(
    fullchain_pem: str, key: CertificateIssuerPrivateKeyTypes, requested: tuple[str, ...]
) -> IssuedCertificate:
    """Check that what came back is what we asked for before anything is stored."""
    leaf_pem, chain_pem = split_fullchain(fullchain_pem)
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode("ascii"))
    if leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise AcmeOrderError("the issued certificate does not carry the key of our CSR")
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise AcmeOrderError("the issued certificate has no subjectAltName extension") from None
    names = tuple(sans.get_values_for_type(x509.DNSName))
    if set(names) != set(requested):
        raise AcmeOrderError(f"the issued certificate covers {sorted(names)}, not the requested {sorted(requested)}")
    return IssuedCertificate(
        certificate_pem=leaf_pem,
        chain_pem=chain_pem,
        private_key_pem=private_key_pem(key),
        serial=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        domains=requested,
    )

"""Stores stage, formats: the secret's document in every format an item can ask for, as the programs that read
them see it (cryptography's PKCS#12 loader, and `openssl pkcs12 -info` for the encryption each PFX uses)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from acme_renewer.models import CertificateRequest, IssuedCertificate, KeyType
from acme_renewer.stores.formats import FORMATS, KDF_ROUNDS, document, from_document, has_formats
from acme_renewer.stores.secrets import SecretStore
from tests.stack.in_process import InProcessStack
from tests.unit.fakes import FakeCa

REQUEST = CertificateRequest("web", ("web.example",), KeyType.EC_P256, (), "acme-renewer/certificates/web", None, True)


@pytest.fixture(scope="module")
def issued() -> IssuedCertificate:
    return FakeCa().sign(REQUEST)


def public_bytes(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("name", ["pkcs12", "pkcs12-legacy"])
def test_a_pfx_holds_the_key_the_leaf_and_the_chain_under_the_documents_password(
    issued: IssuedCertificate, name: str
) -> None:
    body = document(issued, (name,))
    key = "pkcs12" if name == "pkcs12" else "pkcs12_legacy"
    loaded = pkcs12.load_pkcs12(base64.b64decode(body[key]), body["pkcs12_password"].encode())
    leaf = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert loaded.cert is not None and public_bytes(loaded.cert.certificate) == public_bytes(leaf)
    assert [public_bytes(c.certificate) for c in loaded.additional_certs] == [
        public_bytes(c) for c in x509.load_pem_x509_certificates(issued.chain_pem.encode())
    ]
    original = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)
    assert loaded.key is not None and loaded.key.public_key() == original.public_key()  # type: ignore[comparison-overlap]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(base64.b64decode(body[key]), b"not the password")
    assert ({"pkcs12", "pkcs12_legacy"} - {key}) & set(body) == set()  # only the format asked for


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pkcs12", ["PBES2, PBKDF2, AES-256-CBC", f"Iteration {KDF_ROUNDS}", "PRF hmacWithSHA256", "MAC: sha256"]),
        ("pkcs12-legacy", ["pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"]),
    ],
)
def test_each_pfx_uses_the_encryption_its_readers_need(
    issued: IssuedCertificate, name: str, expected: list[str], tmp_path: Path
) -> None:
    """Modern: PBES2 with PBKDF2-SHA256 and AES-256-CBC, an HMAC-SHA256 MAC. Legacy, for Windows before Server 2019:
    SHA-1 and 3DES, an HMAC-SHA1 MAC. OpenSSL says which one a file uses."""
    body = document(issued, (name,))
    path = tmp_path / "certificate.pfx"
    path.write_bytes(base64.b64decode(body["pkcs12" if name == "pkcs12" else "pkcs12_legacy"]))
    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-in", str(path), "-noout", "-passin", f"pass:{body['pkcs12_password']}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    for text in expected:
        assert text in info.stderr + info.stdout


def test_both_pfx_share_one_password_which_a_renewal_keeps(issued: IssuedCertificate) -> None:
    first = document(issued, ("pkcs12", "pkcs12-legacy"))
    for key in ("pkcs12", "pkcs12_legacy"):
        pkcs12.load_pkcs12(base64.b64decode(first[key]), first["pkcs12_password"].encode())
    renewed = document(FakeCa().sign(REQUEST), ("pkcs12",), current=first)
    assert renewed["pkcs12_password"] == first["pkcs12_password"]
    assert len(first["pkcs12_password"]) >= 32
    assert document(issued, ("pkcs12",))["pkcs12_password"] != first["pkcs12_password"]  # none to keep: a new one
    assert document(issued, ("pkcs12",), current={"pkcs12_password": ""})["pkcs12_password"]


def test_the_bundle_is_the_key_then_the_full_chain(issued: IssuedCertificate) -> None:
    body = document(issued, ("bundle",))
    assert body["bundle"] == issued.private_key_pem + issued.certificate_pem + issued.chain_pem
    assert "pkcs12_password" not in body


def test_without_formats_the_document_is_the_pem_one(issued: IssuedCertificate) -> None:
    assert set(document(issued, ())) == {
        "certificate", "chain", "fullchain", "private_key", "serial", "not_after", "domains",
    }  # fmt: skip


def test_a_document_says_which_formats_it_holds_and_gives_its_certificate_back(issued: IssuedCertificate) -> None:
    body = document(issued, FORMATS)
    assert has_formats(body, FORMATS) and has_formats(body, ("bundle", "pkcs12-legacy", "pkcs12"))
    assert not has_formats(body, ("pkcs12",)) and not has_formats(document(issued, ()), ("bundle",))
    back = from_document(body)
    assert back is not None
    assert (back.certificate_pem, back.chain_pem, back.private_key_pem) == (
        issued.certificate_pem,
        issued.chain_pem,
        issued.private_key_pem,
    )
    assert (back.serial, back.not_after, back.domains) == (issued.serial, issued.not_after, issued.domains)
    assert from_document({"status": "no certificate yet: the first one is being issued"}) is None
    assert from_document({"certificate": "not a certificate", "private_key": "k"}) is None


def test_the_same_certificate_back_in_earlier_formats_becomes_current_again(strict_aws: InProcessStack) -> None:
    """PEM, then a PFX, then PEM again, all of one certificate: the third write must not reuse the first version's
    ClientRequestToken, which AWS would answer by doing nothing and leaving the PFX version AWSCURRENT
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html; the strict layer answers
    so, moto moved the labels)."""
    secrets = strict_aws.client("secretsmanager")
    store = SecretStore(secrets)
    certificate = FakeCa().sign(REQUEST)
    first = store.put(REQUEST, certificate)
    pfx_version = store.put(replace(REQUEST, formats=("pkcs12",)), certificate)
    again = store.put(REQUEST, certificate)

    assert len({first[1], pfx_version[1], again[1]}) == 3
    current = json.loads(secrets.get_secret_value(SecretId=REQUEST.secret_name)["SecretString"])
    assert "pkcs12" not in current and current["serial"] == certificate.serial
    assert store.put(REQUEST, certificate) == again  # nothing to write: the current version is that one

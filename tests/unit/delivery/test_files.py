"""Delivery on the host (delivery/files.py): the secret's files written atomically with the right modes and owner,
rewritten only when they change, the reload run only then, and every refusal saying what to do."""

from __future__ import annotations

import base64
import datetime
import json
import os
import pwd
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from acme_renewer.delivery import files
from acme_renewer.delivery.files import DeliveryError, Owner, deliver, parse_owner
from acme_renewer.stores.secrets import PLACEHOLDER


def self_signed(
    name: str, key: ec.EllipticCurvePrivateKey, issuer_key: Any = None, issuer: str = ""
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .sign(issuer_key or key, hashes.SHA256())
    )


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def secret_document(*, pfx: str | None = None) -> dict[str, Any]:
    """What the renewer stores (stores/secrets.py), with a PFX built the way the `formats` change builds it."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = self_signed("Test Intermediate", ca_key)
    leaf = self_signed("www.example.test", key, ca_key, "Test Intermediate")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    document: dict[str, Any] = {
        "certificate": pem(leaf),
        "chain": pem(ca),
        "fullchain": pem(leaf) + pem(ca),
        "private_key": key_pem,
        "serial": format(leaf.serial_number, "x"),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "domains": ["www.example.test"],
    }
    if pfx:
        password = base64.b64encode(os.urandom(12)).decode()
        encryption = serialization.BestAvailableEncryption(password.encode())
        archive = pkcs12.serialize_key_and_certificates(b"www", key, leaf, [ca], encryption)
        document |= {pfx: base64.b64encode(archive).decode(), "pkcs12_password": password}
    return document


def install(document: dict[str, Any], directory: Path, **options: Any) -> files.Delivery:
    return deliver(document, directory, certificate_id="www", secret="acme-renewer/certificates/www", **options)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_four_files_are_written_with_their_modes_into_a_new_directory(tmp_path: Path) -> None:
    document, directory = secret_document(), tmp_path / "tls" / "www"
    delivery = install(document, directory)
    assert mode(directory) == 0o755
    expected = {
        "cert.pem": (document["certificate"], 0o644),
        "chain.pem": (document["chain"], 0o644),
        "fullchain.pem": (document["fullchain"], 0o644),
        "privkey.pem": (document["private_key"], 0o600),
    }
    assert {path.name: (path.read_text(), mode(path)) for path in directory.iterdir()} == expected
    assert delivery.changed and delivery.exit_code == 0
    assert delivery.serial == document["serial"] and delivery.not_after == document["not_after"]
    shown = "\n".join(delivery.lines())
    assert document["serial"] in shown and shown.count("written") == 4
    assert "PRIVATE KEY" not in shown and "PRIVATE KEY" not in json.dumps(delivery.as_json())


def test_no_file_is_ever_readable_by_others_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with umask 0, each temporary file is created 0600 (O_EXCL) before any byte of the key goes in."""
    created: list[int] = []
    real_mkstemp = tempfile.mkstemp

    def watching(**kwargs: Any) -> tuple[int, str]:
        handle, name = real_mkstemp(**kwargs)
        created.append(mode(Path(name)))
        assert os.fstat(handle).st_size == 0
        return handle, name

    monkeypatch.setattr(files.tempfile, "mkstemp", watching)
    previous = os.umask(0)
    try:
        install(secret_document(), tmp_path)
    finally:
        os.umask(previous)
    assert created == [0o600] * 4
    assert mode(tmp_path / "cert.pem") == 0o644  # then opened up for the certificates only


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = secret_document()
    install(old, tmp_path)

    def broken(handle: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        install(secret_document(), tmp_path)
    assert (tmp_path / "privkey.pem").read_text() == old["private_key"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"]


def test_a_temporary_file_left_by_a_dead_run_is_removed_and_a_fresh_one_kept(tmp_path: Path) -> None:
    dead, busy = tmp_path / ".privkey.pem.x1y2z3.tmp", tmp_path / ".cert.pem.a1b2c3.tmp"
    for leftover in (dead, busy):
        leftover.write_text("-----BEGIN PRIVATE KEY-----")
    hour_ago = time.time() - files.LEFTOVER_SECONDS - 1
    os.utime(dead, (hour_ago, hour_ago))
    install(secret_document(), tmp_path)
    assert not dead.exists()
    assert busy.exists()  # perhaps another install's, being written right now


def test_only_the_files_that_changed_are_replaced(tmp_path: Path) -> None:
    document = secret_document()
    install(document, tmp_path)
    inodes = {path.name: path.stat().st_ino for path in tmp_path.iterdir()}
    again = install(document, tmp_path)
    assert not again.changed
    assert {path.name: path.stat().st_ino for path in tmp_path.iterdir()} == inodes
    # A new intermediate, same leaf and key: the chain files only.
    other = secret_document()
    changed = {**document, "chain": other["chain"], "fullchain": document["certificate"] + other["chain"]}
    result = {w.path.name: w.changed for w in install(changed, tmp_path).files}
    assert result == {"cert.pem": False, "chain.pem": True, "fullchain.pem": True, "privkey.pem": False}
    assert (tmp_path / "privkey.pem").stat().st_ino == inodes["privkey.pem"]


def test_a_key_opened_up_by_hand_is_closed_again(tmp_path: Path) -> None:
    document = secret_document()
    install(document, tmp_path)
    (tmp_path / "privkey.pem").chmod(0o644)
    delivery = install(document, tmp_path)
    assert [w.path.name for w in delivery.files if w.changed] == ["privkey.pem"]
    assert mode(tmp_path / "privkey.pem") == 0o600


def test_the_reload_runs_only_when_a_file_changed(tmp_path: Path) -> None:
    ran: list[str] = []

    def runner(command: str) -> int:
        ran.append(command)
        return 0

    document = secret_document()
    first = install(document, tmp_path, reload_command="systemctl reload nginx", runner=runner)
    second = install(document, tmp_path, reload_command="systemctl reload nginx", runner=runner)
    assert ran == ["systemctl reload nginx"]
    assert first.reload == files.Reload("systemctl reload nginx", True, 0)
    assert second.reload == files.Reload("systemctl reload nginx", False, None)
    assert "not run, nothing changed" in "\n".join(second.lines())
    assert second.as_json()["reload"] == {
        "command": "systemctl reload nginx",
        "ran": False,
        "exit_code": None,
        "retry": False,
    }


def test_a_failed_reload_exits_3_and_leaves_the_new_files(tmp_path: Path) -> None:
    document = secret_document()
    delivery = install(document, tmp_path, reload_command="exit 7")  # through the real shell
    assert delivery.reload == files.Reload("exit 7", True, 7)
    assert delivery.exit_code == files.EXIT_RELOAD_FAILED == 3
    assert (tmp_path / "fullchain.pem").read_text() == document["fullchain"]
    assert "FAILED with exit 7" in "\n".join(delivery.lines())


def test_a_failed_reload_is_run_again_by_the_next_install_until_it_succeeds(tmp_path: Path) -> None:
    """Else a reload that failed once (a typo elsewhere in nginx.conf, fixed later) would leave the server on the
    old certificate until the next renewal changes the files again."""
    codes = iter([1, 1, 0])
    ran: list[str] = []

    def runner(command: str) -> int:
        ran.append(command)
        return next(codes)

    document = secret_document()
    results = [install(document, tmp_path, reload_command="reload", runner=runner) for _ in range(4)]
    assert [(r.reload.ran, r.reload.exit_code, r.reload.retry) for r in results if r.reload] == [
        (True, 1, False),  # the files changed, the reload failed
        (True, 1, True),  # nothing changed, but the last reload had failed
        (True, 0, True),
        (False, None, False),  # done: nothing to do any more
    ]
    assert [r.exit_code for r in results] == [3, 3, 0, 0]
    assert not (tmp_path / files.RELOAD_PENDING).exists()
    assert "again: the last one had failed" in "\n".join(results[2].lines())


def test_the_reload_runs_through_the_shell(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    install(secret_document(), tmp_path / "tls", reload_command=f"true && touch '{marker}'")
    assert marker.exists()


def test_owner_by_numeric_id_or_name(tmp_path: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    assert parse_owner(f"{uid}:{gid}") == Owner(uid, gid)
    assert parse_owner(pwd.getpwuid(uid).pw_name) == Owner(uid, pwd.getpwuid(uid).pw_gid)
    assert parse_owner(f":{gid}") == Owner(uid, gid)
    delivery = install(secret_document(), tmp_path, owner=parse_owner(f"{uid}:{gid}"))
    assert {(w.path.stat().st_uid, w.path.stat().st_gid) for w in delivery.files} == {(uid, gid)}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_as_root_the_files_go_to_the_owner_given(tmp_path: Path) -> None:
    document = secret_document()
    install(document, tmp_path)
    delivery = install(document, tmp_path, owner=Owner(65534, 65534))  # an owner change is a change
    assert all(w.changed for w in delivery.files)
    assert {(w.path.stat().st_uid, w.path.stat().st_gid) for w in delivery.files} == {(65534, 65534)}
    assert mode(tmp_path / "privkey.pem") == 0o600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-such-user-here", "no user no-such-user-here on this host"),
        ("root:no-such-group-here", "no group no-such-group-here on this host"),
        ("4000000", r"give the group too \(UID:GID\)"),
    ],
)
def test_an_unknown_owner_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(DeliveryError, match=message) as raised:
        parse_owner(text)
    assert raised.value.exit_code == 2


def test_pfx_and_its_password_open_to_the_same_key(tmp_path: Path) -> None:
    document = secret_document(pfx="pkcs12")
    delivery = install(document, tmp_path, pfx=True)
    password = (tmp_path / "cert.pfx.password").read_bytes()
    assert password.decode() == document["pkcs12_password"]
    assert password.decode() not in "\n".join(delivery.lines()) + json.dumps(delivery.as_json())
    assert mode(tmp_path / "cert.pfx") == mode(tmp_path / "cert.pfx.password") == 0o600
    key, leaf, chain = pkcs12.load_key_and_certificates((tmp_path / "cert.pfx").read_bytes(), password)
    assert leaf is not None and key is not None and len(chain) == 1
    assert pem(leaf) == document["certificate"]
    stored = serialization.load_pem_private_key(document["private_key"].encode(), None)
    assert key.public_key().public_numbers() == stored.public_key().public_numbers()  # type: ignore[union-attr]


def test_the_legacy_pfx_is_used_when_it_is_the_only_one(tmp_path: Path) -> None:
    document = secret_document(pfx="pkcs12_legacy")
    install(document, tmp_path, pfx=True)
    assert (tmp_path / "cert.pfx").read_bytes() == base64.b64decode(document["pkcs12_legacy"])


def test_pfx_without_one_in_the_secret_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match=r'set formats: \["pkcs12"\] on the item') as raised:
        install(secret_document(), tmp_path, pfx=True)
    assert raised.value.exit_code == 1
    assert not tmp_path.joinpath("privkey.pem").exists()  # nothing half-written


def test_the_bundle_is_the_key_then_the_full_chain(tmp_path: Path) -> None:
    document = secret_document()
    install(document, tmp_path, bundle=True)
    bundle = (tmp_path / "bundle.pem").read_text()
    assert bundle == document["private_key"] + document["fullchain"]
    assert mode(tmp_path / "bundle.pem") == 0o600
    assert x509.load_pem_x509_certificates(bundle.encode())[0].serial_number == int(document["serial"], 16)


def test_a_secret_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match=r"not a certificate of acme-renewer \(no fullchain, private_key"):
        install({"certificate": "x", "chain": "y"}, tmp_path)
    with pytest.raises(DeliveryError, match="not a JSON object"):
        files.parse_document("[1, 2]", "s")


def test_the_placeholder_of_a_secret_whose_first_certificate_is_being_issued_says_so(tmp_path: Path) -> None:
    # What the renewer writes into a new secret's AWSCURRENT while the pending key sits in AWSPENDING.
    with pytest.raises(DeliveryError, match=r"^no certificate stored yet for www \(no certificate yet"):
        install(json.loads(json.dumps(PLACEHOLDER)), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
            "no certificate stored yet for www",
        ),
        ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.", "no secret s in this"),
        ("AccessDeniedException", "User: x is not authorized", "give this host's role secretsmanager:GetSecretValue"),
    ],
)
def test_what_a_refused_read_means_for_the_host(code: str, message: str, expected: str) -> None:
    assert expected in str(files.unreadable(code, message, "s", "www"))

"""Keys stay out of logs, exception messages (they become `last_error`), events and metrics.

The log check reads the sources, not a run: it covers every branch, including error paths no test reaches.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwk

from acme_renewer.models import IssuedCertificate
from acme_renewer.order.account import AcmeSession
from tests.stack.table import REPO_ROOT

# Names that hold key material: the certificate's private key, the ACME account key, an EAB HMAC key, the PFX
# password and the formats that carry the key (PKCS#12, the PEM bundle).
SECRET_WORDS = ("private_key", "account_key", "key_pem", "hmac", "password", "pkcs12", "pfx", "bundle")
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log", "append_keys"}
SOURCES = sorted([*(REPO_ROOT / "layers").rglob("*.py"), *(REPO_ROOT / "functions").rglob("*.py")])
# The report stage: what goes into EventBridge events and EMF metrics. It has no business with keys at all.
PACKAGE = REPO_ROOT / "layers" / "acme_renewer" / "acme_renewer"
REPORT_MODULES = sorted(path.name for path in (PACKAGE / "report").glob("*.py"))
KEY = "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"


def mentions_secret(node: ast.AST) -> bool:
    """Whether an expression names key material: a variable, attribute, function, subscript key or dict key
    mentioning SECRET_WORDS. The literal text of a message is not a value ("the secret holds no pkcs12 key")."""
    names: list[str] = []
    for part in ast.walk(node):
        if isinstance(part, ast.Name):
            names.append(part.id)
        elif isinstance(part, ast.Attribute):
            names.append(part.attr)
        elif isinstance(part, ast.Subscript):
            names.append(ast.unparse(part.slice))
        elif isinstance(part, ast.Dict):
            names += [ast.unparse(key) for key in part.keys if key is not None]
        elif isinstance(part, ast.keyword) and part.arg:
            names.append(part.arg)
    return any(word in name.lower() for name in names for word in SECRET_WORDS)


def is_log_call(call: ast.Call) -> bool:
    """`logger.info(...)`, `self.logger.warning(...)`, `logging.getLogger(x).exception(...)`, and `print(...)`."""
    if isinstance(call.func, ast.Name):
        return call.func.id == "print"
    if isinstance(call.func, ast.Attribute) and call.func.attr in LOG_METHODS:
        return "log" in ast.unparse(call.func.value).lower()
    return False


def leaks(source: str, filename: str = "<source>") -> list[str]:
    """Log calls and raised exceptions whose arguments name key material, as `file:line: code`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        arguments: list[ast.AST] = []
        if isinstance(node, ast.Call) and is_log_call(node):
            arguments = [*node.args, *(k.value for k in node.keywords)]
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            arguments = [*node.exc.args, *(k.value for k in node.exc.keywords)]
        if any(mentions_secret(argument) for argument in arguments):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:120]}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        'logger.info("issued", extra={"key": certificate.private_key_pem})',
        'logger.debug(f"account {account_key.to_json()}")',
        'self.logger.warning("eab", extra={"eab_hmac_key": settings.eab_hmac})',
        'logging.getLogger(__name__).exception("failed: %s", key_pem)',
        "print(private_key)",
        "print(f\"installed, password {document['pkcs12_password']}\")",
        'raise StoreError(f"cannot store {certificate.private_key_pem}")',
        'logger.info("rendered", extra={"password": body["pkcs12_password"]})',
        'raise StoreError(f"bad PFX {pfx(certificate, password, legacy=False)}")',
        'logger.debug("document", extra={"bundle": document["bundle"]})',
    ],
)
def test_the_scanner_finds_a_key_in_a_log_call_or_an_error(source: str) -> None:
    assert leaks(source)


@pytest.mark.parametrize(
    "source",
    [
        'logger.info("created ACME account key", extra={"secret_name": name})',
        'logger.info("certificate issued", extra={"serial": certificate.serial})',
        "secrets.put(request, certificate.private_key_pem)",  # handing the key to its store is the point
        'raise DeliveryError(f"the secret of {certificate_id} holds no pkcs12 key: set formats")',
        'logger.info("wrote the bundle and the PFX password file", extra={"path": str(path)})',
    ],
)
def test_the_scanner_lets_harmless_calls_through(source: str) -> None:
    assert leaks(source) == []


def test_the_sources_are_found() -> None:
    names = {path.name for path in SOURCES}
    assert {"secrets.py", "account.py", "renewal.py", "app.py"} <= names
    assert {"events.py", "outcomes.py", "fleet.py", "drift.py", "endpoints.py"} <= set(REPORT_MODULES)


def test_no_log_call_or_error_message_carries_key_material() -> None:
    found = [leak for path in SOURCES for leak in leaks(path.read_text(), str(path.relative_to(REPO_ROOT)))]
    assert found == []


@pytest.mark.parametrize("module", REPORT_MODULES)
def test_events_and_metrics_modules_never_touch_keys(module: str) -> None:
    path = PACKAGE / "report" / module
    names = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Name, ast.Attribute))]
    assert [ast.unparse(n) for n in names if mentions_secret(n)] == []


def issued() -> IssuedCertificate:
    return IssuedCertificate(
        certificate_pem="-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
        chain_pem="",
        private_key_pem=KEY,
        serial="3296dd400b876a8",
        not_before=datetime(2026, 11, 25, tzinfo=UTC),
        not_after=datetime(2027, 2, 23, tzinfo=UTC),
        domains=("example.com",),
    )


def test_an_issued_certificate_never_shows_its_key() -> None:
    certificate = issued()
    for shown in (repr(certificate), str(certificate), f"{certificate}", f"{certificate!r}", repr([certificate])):
        assert "TOP-SECRET" not in shown
        assert "PRIVATE KEY" not in shown
    assert "3296dd400b876a8" in repr(certificate)  # still useful in a log line


def test_an_acme_session_never_shows_the_account_key() -> None:
    key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    private_scalar = key.to_partial_json()["d"]
    session = AcmeSession(client=None, account_key=key, account_uri="https://ca.example/acct/1")  # type: ignore[arg-type]
    assert private_scalar not in repr(session)
    assert private_scalar not in str(key)

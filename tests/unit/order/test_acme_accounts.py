"""Which ACME account orders a certificate: the router over one AcmeOrders per (CA, EAB key), the EAB secret, and
one registration of each account per run."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import pytest
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwa, jwk

from acme_renewer.errors import AcmeOrderError
from acme_renewer.models import AcmeAccount, CertificateRequest, KeyType
from acme_renewer.order.account import (
    AccountSessions,
    AcmeClient,
    AcmeSession,
    EabCredentials,
    EabError,
    load_eab,
)
from acme_renewer.order.orders import AccountOrders, AcmeOrders
from acme_renewer.order.transport import RenewerNetwork

DEFAULT = AcmeAccount("https://ca.example/directory")
OTHER = AcmeAccount("https://other.example/directory", "acme-renewer/eab/other")


def request(account: AcmeAccount | None) -> CertificateRequest:
    return CertificateRequest(
        id="cert",
        domains=("example.com",),
        key_type=KeyType.EC_P256,
        acm_regions=(),
        secret_name="acme-renewer/certificates/cert",
        renew_before_days=None,
        enabled=True,
        account=account,
    )


class Opened:
    """Records which accounts had their sessions opened; an account in `refused` cannot open one."""

    def __init__(self, refused: set[AcmeAccount]) -> None:
        self.accounts: list[AcmeAccount] = []
        self.refused = refused

    def orders_for(self, account: AcmeAccount) -> AcmeOrders:
        self.accounts.append(account)

        def open_session() -> AcmeSession:
            if account in self.refused:
                raise EabError(f"refused {account.directory_url}")
            raise AssertionError("no CA in a unit test")

        return AcmeOrders(open_session, timeout_seconds=1)


def test_orders_are_routed_to_one_pool_per_account_created_when_first_needed() -> None:
    opened = Opened(refused={DEFAULT, OTHER})
    router = AccountOrders(opened.orders_for, DEFAULT)
    assert opened.accounts == []  # nothing is built before a certificate needs it

    for account in (None, DEFAULT, OTHER, OTHER):
        with pytest.raises(EabError) as refused:
            router.begin(request(account))
        expected = OTHER if account == OTHER else DEFAULT
        assert expected.directory_url in str(refused.value)

    # An item without an account orders through the function's default, the same pool as one naming it.
    assert opened.accounts == [DEFAULT, OTHER]


def test_an_account_that_cannot_open_fails_only_its_certificates() -> None:
    opened = Opened(refused={OTHER})
    router = AccountOrders(opened.orders_for, DEFAULT)
    with pytest.raises(EabError):
        router.begin(request(OTHER))
    with pytest.raises(AssertionError, match="no CA"):  # the default account still tries its own CA
        router.begin(request(DEFAULT))


def test_eab_credentials_come_from_the_secret(secrets: Any) -> None:
    secrets.create_secret(
        Name="acme-renewer/eab/zerossl",
        SecretString=json.dumps({"key_id": "k", "hmac_key": "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM"}),
    )
    credentials = load_eab(secrets, "acme-renewer/eab/zerossl")
    assert credentials == EabCredentials("k", "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM")
    assert "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM" not in repr(credentials)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "EAB secret 'acme-renewer/eab/x' does not exist; create it with a JSON SecretString"),
        ("not json", "must hold a JSON SecretString"),
        (json.dumps({"key_id": "k"}), "must hold"),
        (json.dumps({"key_id": "k", "hmac_key": "***"}), "must hold"),
        (json.dumps({"key_id": "", "hmac_key": "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM"}), "must hold"),
        (json.dumps(["k", "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM"]), "must hold"),
    ],
)
def test_an_unusable_eab_secret_says_what_it_must_hold(secrets: Any, content: str | None, message: str) -> None:
    if content is not None:
        secrets.create_secret(Name="acme-renewer/eab/x", SecretString=content)
    with pytest.raises(EabError, match=message) as refused:
        load_eab(secrets, "acme-renewer/eab/x")
    assert "aG1hYy1rZXktZm9yLXVuaXQtdGVzdHM" not in str(refused.value) and "***" not in str(refused.value)


# --- one registration per account per run --------------------------------------------------------------------


def registered_session() -> AcmeSession:
    """A session as connect() leaves it after newAccount, on a directory that is never fetched here."""
    key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    directory = messages.Directory({"newNonce": "https://ca.example/nonce", "newOrder": "https://ca.example/order"})
    net = RenewerNetwork(key, alg=jwa.ES256, user_agent="test", timeout=5)
    net.account = messages.RegistrationResource(uri="https://ca.example/acct/7", body=messages.Registration())
    return AcmeSession(AcmeClient(directory, net), key, "https://ca.example/acct/7", "https://ca.example/dir")


def test_sessions_opened_at_once_register_the_account_once_and_sign_with_its_url() -> None:
    registrations: list[AcmeSession] = []

    def register() -> AcmeSession:
        registrations.append(registered_session())
        return registrations[-1]

    sessions = AccountSessions(register, timeout_seconds=5)
    threads = 6
    start = threading.Barrier(threads, timeout=10)
    opened: list[AcmeSession] = []
    lock = threading.Lock()

    def open_one() -> None:
        start.wait()
        session = sessions()
        with lock:
            opened.append(session)

    pool = [threading.Thread(target=open_one) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(10)

    assert len(registrations) == 1
    [first] = registrations
    assert len(opened) == threads and first in opened
    assert len({id(session.client.net) for session in opened}) == threads  # a transport each: nonces, HTTP
    for session in opened:
        assert session.client.directory is first.client.directory  # read once
        assert (session.account_uri, session.account_key) == (first.account_uri, first.account_key)
        # The account URL is the JWS kid, so no session needs newAccount (RFC 8555 §6.2).
        signed = json.loads(session.client.net._wrap_in_jws(None, b"nonce", "https://ca.example/order"))
        protected = json.loads(base64.urlsafe_b64decode(signed["protected"] + "=="))
        assert protected["kid"] == "https://ca.example/acct/7" and "jwk" not in protected


def test_a_failed_registration_is_not_sent_again_in_the_run() -> None:
    attempts: list[int] = []

    def register() -> AcmeSession:
        attempts.append(1)
        raise AcmeOrderError("the CA failed to POST https://ca.example/new-acct with HTTP 500")

    orders = AcmeOrders(AccountSessions(register, timeout_seconds=5), timeout_seconds=1)
    failures: list[BaseException] = []
    start = threading.Barrier(4, timeout=10)

    def begin() -> None:
        start.wait()
        try:
            orders.begin(request(DEFAULT))
        except AcmeOrderError as failed:
            failures.append(failed)

    pool = [threading.Thread(target=begin) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(10)
    assert len(attempts) == 1
    assert len(failures) == 4 and all("HTTP 500" in str(failure) for failure in failures)

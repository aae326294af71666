"""Which ACME account orders a certificate: the router over one AcmeOrders per (CA, EAB key), and the EAB secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acme_renewer.models import AcmeAccount, CertificateRequest, KeyType
from acme_renewer.order.account import AcmeSession, EabCredentials, EabError, load_eab
from acme_renewer.order.orders import AccountOrders, AcmeOrders

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

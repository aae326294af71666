"""A CA per item, with External Account Binding: a second pebble that requires EAB runs beside the stack's own,
on the same DNS server and moto, and one run orders from both.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from acme_renewer.settings import Settings
from tests.integration.conftest import LIFETIME, Calls
from tests.integration.invariants import (
    assert_nothing_lost,
    challenge_records,
    make_due,
    read_item,
    secret_version,
)
from tests.integration.test_renewal import put_item, run, unique
from tests.stack import LocalStack
from tests.stack.pebble import Pebble, start_pebble

EAB_KEY_ID = "kid-renewer"
EAB_HMAC = base64.urlsafe_b64encode(b"h" * 32).decode().rstrip("=")


@pytest.fixture(scope="module")
def eab_pebble(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A CA of its own (its own root) that registers accounts only with an EAB key it knows."""
    pebble = start_pebble(
        tmp_path_factory.mktemp("eab-pebble"),
        tls=stack.tls,
        dns_address=stack.dns_address,
        certificate_validity_seconds=int(LIFETIME.total_seconds()),
        eab_keys={EAB_KEY_ID: EAB_HMAC, "kid-other": EAB_HMAC[::-1], "kid-never-bound": EAB_HMAC},
    )
    yield pebble
    pebble.stop()


def put_secret(stack: LocalStack, name: str, document: dict[str, str]) -> str:
    stack.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(document))
    return name


def add(stack: LocalStack, env: dict[str, str], prefix: str, **fields: Any) -> tuple[str, str]:
    zone = unique(prefix) + ".test"
    zone_id = stack.create_hosted_zone(zone)
    item_id = unique(prefix)
    put_item(stack, env, {"id": item_id, "domains": [zone, f"*.{zone}"], **fields})
    return item_id, zone_id


def issued_by(pebble: Pebble, stack: LocalStack, document: dict[str, Any]) -> bool:
    leaf = x509.load_pem_x509_certificate(document["certificate"].encode())
    roots = x509.load_pem_x509_certificates(pebble.roots_pem().encode())
    name = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)[
        0
    ]
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName(name))
    try:
        verifier.verify(leaf, x509.load_pem_x509_certificates(document["chain"].encode()))
    except Exception:
        return False
    return True


def test_one_run_orders_from_two_cas_with_one_dns_wait(
    stack: LocalStack, env: dict[str, str], eab_pebble: Pebble, calls: Calls
) -> None:
    eab_secret = put_secret(stack, f"acme-renewer/eab/{unique('pebble')}", {"key_id": EAB_KEY_ID, "hmac_key": EAB_HMAC})
    default_id, default_zone = add(stack, env, "default-ca")
    other_id, other_zone = add(stack, env, "eab-ca", acme_directory=eab_pebble.directory_url, eab_secret=eab_secret)

    result = run()

    assert result["renewed"] == 2, result
    # Both CAs' values went out together: one change to publish and one to remove, per zone.
    zones = [change["HostedZoneId"].rsplit("/", 1)[-1] for change in calls.route53_changes]
    assert sorted(zones) == sorted([default_zone, other_zone] * 2)
    _, stored = assert_nothing_lost(stack, env["TABLE_NAME"], default_id, [default_zone])
    assert stored is not None and issued_by(stack.pebble, stack, stored.current)
    other = read_item(stack, env["TABLE_NAME"], other_id)
    assert other["status"] == "ISSUED", other.get("last_error")
    assert challenge_records(stack, [other_zone]) == []
    document = secret_version(stack, other["secret_arn"], "AWSCURRENT")
    assert document is not None
    assert issued_by(eab_pebble, stack, document) and not issued_by(stack.pebble, stack, document)

    # The EAB account has its own key, named by directory and key id; the secret records the binding only.
    settings = Settings.from_env()
    account = secret_version(
        stack, settings.account_secret_name_for(eab_pebble.directory_url, EAB_KEY_ID), "AWSCURRENT"
    )
    assert account is not None and account["eab_key_id"] == EAB_KEY_ID
    assert EAB_HMAC not in json.dumps(account)
    default_account = secret_version(stack, settings.account_secret_name, "AWSCURRENT")
    assert default_account is not None and default_account["account_key"] != account["account_key"]

    # A renewal orders through the same account: no second key, no second registration.
    make_due(stack, env["TABLE_NAME"], other_id)
    again = run()
    assert again["renewed"] == 1, again
    account_again = secret_version(
        stack, settings.account_secret_name_for(eab_pebble.directory_url, EAB_KEY_ID), "AWSCURRENT"
    )
    assert account_again == account


@pytest.mark.parametrize(
    ("eab", "message"),
    [
        (None, "requires External Account Binding: name the secret holding its EAB credentials"),
        ("missing", "EAB secret 'acme-renewer/eab/missing-"),
        ({"key_id": EAB_KEY_ID}, "must hold a JSON SecretString"),
        ({"key_id": "kid-unknown", "hmac_key": EAB_HMAC}, "refused the account with EAB key id 'kid-unknown'"),
        # A key id whose account does not exist yet: once it does, the CA finds it by its key, binding or not.
        ({"key_id": "kid-never-bound", "hmac_key": EAB_HMAC[::-1]}, "refused the account with EAB key id 'kid-never"),
    ],
    ids=["no-eab", "no-secret", "no-hmac", "unknown-kid", "wrong-hmac"],
)
def test_an_eab_problem_fails_only_that_cas_certificates(
    stack: LocalStack, env: dict[str, str], eab_pebble: Pebble, eab: Any, message: str
) -> None:
    fields: dict[str, Any] = {"acme_directory": eab_pebble.directory_url}
    if eab == "missing":
        fields["eab_secret"] = f"acme-renewer/eab/{unique('missing')}"
    elif eab is not None:
        fields["eab_secret"] = put_secret(stack, f"acme-renewer/eab/{unique('bad')}", eab)
    failing_id, failing_zone = add(stack, env, "eab-bad", **fields)
    fine_id, fine_zone = add(stack, env, "fine")

    result = run()

    assert result["renewed"] == 1 and result["failed"] == 1, result
    failing, _ = assert_nothing_lost(stack, env["TABLE_NAME"], failing_id, [failing_zone])
    assert failing["status"] == "FAILED"
    assert message in failing["last_error"], failing["last_error"]
    if isinstance(eab, dict) and "hmac_key" in eab:
        assert eab["hmac_key"] not in failing["last_error"]
    fine, _ = assert_nothing_lost(stack, env["TABLE_NAME"], fine_id, [fine_zone])
    assert fine["status"] == "ISSUED"


def test_the_functions_directory_may_be_an_alias(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """An alias in ACME_DIRECTORY_URL is resolved before anything is contacted (here: nothing is due)."""
    monkeypatch.setenv("ACME_DIRECTORY_URL", "letsencrypt-staging")
    assert Settings.from_env(os.environ).acme_directory_url.startswith("https://acme-staging-v02.")
    assert run()["renewed"] == 0


def test_the_eab_secret_of_the_function_binds_its_directory(
    stack: LocalStack, env: dict[str, str], eab_pebble: Pebble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACME_DIRECTORY_URL + ACME_EAB_SECRET: items without fields of their own order through that binding."""
    secret = put_secret(stack, f"acme-renewer/eab/{unique('fn')}", {"key_id": "kid-other", "hmac_key": EAB_HMAC[::-1]})
    monkeypatch.setenv("ACME_DIRECTORY_URL", eab_pebble.directory_url)
    monkeypatch.setenv("ACME_EAB_SECRET", secret)
    item_id, zone_id = add(stack, env, "fn-eab")

    result = run()

    assert result["renewed"] == 1, result
    item = read_item(stack, env["TABLE_NAME"], item_id)
    document = secret_version(stack, item["secret_arn"], "AWSCURRENT")
    assert document is not None and issued_by(eab_pebble, stack, document)
    assert challenge_records(stack, [zone_id]) == []
    account = secret_version(
        stack, Settings.from_env().account_secret_name_for(eab_pebble.directory_url, "kid-other"), "AWSCURRENT"
    )
    assert account is not None and account["eab_key_id"] == "kid-other"

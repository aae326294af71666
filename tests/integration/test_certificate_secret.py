"""The certificate's secret on the local stack: one secret per certificate, the pending order's key as its AWSPENDING
version (and the legacy `.pending` secret of older versions, recovered from and then deleted), and the formats."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from acme_renewer.models import CertificateRequest
from acme_renewer.report.outcomes import Result
from acme_renewer.runtime import build_renewer
from acme_renewer.settings import Settings
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore
from tests.integration.conftest import Calls
from tests.integration.invariants import assert_nothing_lost, make_due, pending_versions, secret_version
from tests.integration.test_renewal import check_certificate, get_item, put_item, run, spki, unique
from tests.stack import LocalStack


def new_item(stack: LocalStack, env: dict[str, str], prefix: str, **fields: Any) -> tuple[str, str, str]:
    """A request in a hosted zone of its own: (id, its name, the zone id)."""
    item_id = unique(prefix)
    zone = f"{item_id}.test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": item_id, "domains": [zone], **fields})
    return item_id, zone, zone_id


def secrets_of(stack: LocalStack, item_id: str) -> list[str]:
    """Every secret tagged with the item's id, and every secret whose name starts with its secret's name."""
    client = stack.client("secretsmanager")
    name = Settings.from_env().default_secret_name(item_id)
    found: set[str] = set()
    for filters in (
        [{"Key": "tag-key", "Values": ["acme-renewer:id"]}, {"Key": "tag-value", "Values": [item_id]}],
        [{"Key": "name", "Values": [name]}],
    ):
        for page in client.get_paginator("list_secrets").paginate(Filters=filters, IncludePlannedDeletion=True):
            found.update(secret["Name"] for secret in page["SecretList"])
    return sorted(found)


def crash_after_finalize(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next run dies right after the CA issued: nothing of ours runs once the certificate is to be stored."""

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the function was killed")

    original = SecretStore.put
    monkeypatch.setattr(SecretStore, "put", crash)
    with pytest.raises(SystemExit):
        build_renewer(Settings.from_env()).run()
    monkeypatch.setattr(SecretStore, "put", original)


def expire_lease(stack: LocalStack, env: dict[str, str], item_id: str) -> None:
    put_item(stack, env, {**get_item(stack, env, item_id), "lease_until": "2000-01-01T00:00:00Z"})


def test_a_renewal_leaves_one_secret_whose_current_key_is_its_certificates_and_nothing_pending(
    stack: LocalStack, env: dict[str, str]
) -> None:
    item_id, zone, zone_id = new_item(stack, env, "onesecret")
    assert run()["renewed"] == 1
    first = get_item(stack, env, item_id)
    make_due(stack, env["TABLE_NAME"], item_id)
    assert run()["renewed"] == 1

    name = Settings.from_env().default_secret_name(item_id)
    assert secrets_of(stack, item_id) == [name]  # no `.pending` beside it
    item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])
    check_certificate(stack, item, [zone])
    assert stored is not None and pending_versions(stack, name) == []
    labels = stack.client("secretsmanager").describe_secret(SecretId=name)["VersionIdsToStages"]
    assert sorted(label for stages in labels.values() for label in stages) == ["AWSCURRENT", "AWSPREVIOUS"]


def test_a_crash_after_finalize_is_recovered_from_the_awspending_version_without_a_second_order(
    stack: LocalStack, env: dict[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    item_id, zone, zone_id = new_item(stack, env, "pendingkey")
    name = Settings.from_env().default_secret_name(item_id)

    crash_after_finalize(monkeypatch)

    stuck = get_item(stack, env, item_id)
    pending = secret_version(stack, name, "AWSPENDING")
    assert pending is not None and pending["order_url"] == stuck["pending_order"]["url"]
    current = secret_version(stack, name, "AWSCURRENT")
    assert current is not None and "private_key" not in current  # the placeholder: no key before a certificate
    assert len(calls.new_orders) == 1

    expire_lease(stack, env, item_id)
    outcomes = build_renewer(Settings.from_env()).run().outcomes

    assert [o.result for o in outcomes] == [Result.RENEWED]
    assert len(calls.new_orders) == 1  # the certificate the CA issued to the dead run
    item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    secret = check_certificate(stack, item, [zone])
    assert stored is not None and secret["private_key"] == pending["private_key"]
    assert pending_versions(stack, name) == [] and secrets_of(stack, item_id) == [name]


def test_an_order_saved_in_a_legacy_pending_secret_is_recovered_and_that_secret_deleted(
    stack: LocalStack, env: dict[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade over a run of the version before, which died after finalize with its key in `<name>.pending`."""
    item_id, zone, zone_id = new_item(stack, env, "legacy")
    assert run()["renewed"] == 1
    first = get_item(stack, env, item_id)
    make_due(stack, env["TABLE_NAME"], item_id)
    name = Settings.from_env().default_secret_name(item_id)
    client = stack.client("secretsmanager")

    def save_as_before(store: PendingOrderStore, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        body = {"order_url": order_url, "private_key": key_pem, "domains": list(request.domains)}
        client.create_secret(Name=f"{request.secret_name}.pending", SecretString=json.dumps(body))

    monkeypatch.setattr(PendingOrderStore, "save", save_as_before)
    crash_after_finalize(monkeypatch)
    assert pending_versions(stack, name) == [] and secrets_of(stack, item_id) == sorted([name, f"{name}.pending"])
    orders = len(calls.new_orders)

    expire_lease(stack, env, item_id)
    outcomes = build_renewer(Settings.from_env()).run().outcomes

    assert [o.result for o in outcomes] == [Result.RENEWED]
    assert len(calls.new_orders) == orders  # recovered from the legacy secret
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])
    check_certificate(stack, item, [zone])
    legacy = client.describe_secret(SecretId=f"{name}.pending")
    assert "DeletedDate" in legacy  # deleted, within its recovery window
    assert "DeletedDate" not in client.describe_secret(SecretId=name)


def test_the_legacy_pending_secret_is_asked_for_once_per_certificate(stack: LocalStack, env: dict[str, str]) -> None:
    """The first renewal by this version finds no legacy `.pending` secret (or deletes it) and notes so on the
    status; later renewals send no DeleteSecret, which would answer ResourceNotFoundException each time."""
    item_id, _, zone_id = new_item(stack, env, "once")
    stack.reset_aws_calls()
    assert run()["renewed"] == 1
    assert stack.aws_calls()["secretsmanager"].get("DeleteSecret", 0) == 1
    assert get_item(stack, env, item_id)["legacy_pending_gone"] is True

    make_due(stack, env["TABLE_NAME"], item_id)
    stack.reset_aws_calls()
    assert run()["renewed"] == 1
    assert stack.aws_calls()["secretsmanager"].get("DeleteSecret", 0) == 0
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])


def test_the_formats_hold_the_certificate_and_a_change_of_them_orders_nothing(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    item_id, zone, zone_id = new_item(stack, env, "formats", formats=["pkcs12", "pkcs12-legacy", "bundle"])
    assert run()["renewed"] == 1
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    secret = check_certificate(stack, item, [zone])
    leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
    for key in ("pkcs12", "pkcs12_legacy"):
        pfx = pkcs12.load_pkcs12(base64.b64decode(secret[key]), secret["pkcs12_password"].encode())
        assert pfx.cert is not None and pfx.cert.certificate == leaf
        assert pfx.key is not None and spki(pfx.key.public_key()) == spki(leaf.public_key())
        assert [c.certificate for c in pfx.additional_certs] == x509.load_pem_x509_certificates(
            secret["chain"].encode()
        )
    assert secret["bundle"] == secret["private_key"] + secret["fullchain"]
    serialization.load_pem_private_key(secret["bundle"].encode(), None)  # the bundle starts with the key
    acm = stack.client("acm")
    imported_at = acm.describe_certificate(CertificateArn=item["acm_arns"][stack.region])["Certificate"]["ImportedAt"]
    orders = len(calls.new_orders)

    put_item(stack, env, {"id": item_id, "domains": [zone], "formats": ["pkcs12"]})
    assert run()["renewed"] == 1

    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=secret["serial"])
    rendered = check_certificate(stack, item, [zone])
    assert len(calls.new_orders) == orders
    assert (rendered["serial"], rendered["private_key"]) == (secret["serial"], secret["private_key"])
    assert rendered["pkcs12_password"] == secret["pkcs12_password"]
    assert "pkcs12_legacy" not in rendered and "bundle" not in rendered
    described = acm.describe_certificate(CertificateArn=item["acm_arns"][stack.region])["Certificate"]
    assert described["ImportedAt"] == imported_at  # ACM already holds this certificate


def test_secret_regions_replicate_the_secret_and_a_removed_region_is_taken_out(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    item_id, zone, zone_id = new_item(stack, env, "replica", secret_regions=["us-west-2", "eu-central-1"])
    assert run()["renewed"] == 1
    name = Settings.from_env().default_secret_name(item_id)
    client = stack.client("secretsmanager")

    def replicas() -> dict[str, str]:
        statuses = client.describe_secret(SecretId=name).get("ReplicationStatus", [])
        return {status["Region"]: status["Status"] for status in statuses}

    assert replicas() == {"us-west-2": "InSync", "eu-central-1": "InSync"}
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    assert "warnings" not in item
    orders = len(calls.new_orders)

    put_item(stack, env, {"id": item_id, "domains": [zone], "secret_regions": ["eu-central-1"]})
    assert run()["renewed"] == 1

    assert replicas() == {"eu-central-1": "InSync"}
    assert len(calls.new_orders) == orders
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])

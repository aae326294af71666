"""End to end on the local stack: the scheduled handler orders from pebble, which really validates the
TXT records our code wrote to Route53 (through our DNS server), and the results land in ACM and Secrets Manager.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from acme_renewer.settings import Settings
from tests.integration.conftest import LIFETIME, Calls
from tests.integration.invariants import make_due, read_item, wrong
from tests.stack import LocalStack
from tests.stack.handler import emitted_metrics, invoke
from tests.stack.table import write_item


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put_item(stack: LocalStack, env: dict[str, str], item: dict[str, Any]) -> None:
    """PutItem of the request, as an operator writes it; renewer fields in `item` (a test seeding a state) go on
    the certificate's status item, replacing it."""
    write_item(stack.client("dynamodb"), env["TABLE_NAME"], item)


def get_item(stack: LocalStack, env: dict[str, str], item_id: str) -> dict[str, Any]:
    """The certificate as the renewer sees it: its request merged with its status."""
    return read_item(stack, env["TABLE_NAME"], item_id)


def run() -> dict[str, Any]:
    result: dict[str, Any] = invoke("renewal", "schedule_full.json")
    return result


def challenge_records(stack: LocalStack, zone_id: str) -> list[str]:
    record_sets = stack.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [r["Name"] for r in record_sets if r["Name"].startswith("_acme-challenge")]


def spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def check_certificate(stack: LocalStack, item: dict[str, Any], domains: list[str]) -> dict[str, Any]:
    """Check what a user would: the chain verifies to pebble's root, the names, the key, ACM and the item agree."""
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=item["secret_arn"])["SecretString"])
    leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
    intermediates = x509.load_pem_x509_certificates(secret["chain"].encode())
    roots = x509.load_pem_x509_certificates(stack.pebble.roots_pem().encode())
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName(domains[0].removeprefix("*.")))
    verifier.verify(leaf, intermediates)  # raises if the chain does not lead to pebble's root

    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sorted(sans) == sorted(domains)
    key = serialization.load_pem_private_key(secret["private_key"].encode(), None)
    assert spki(key.public_key()) == spki(leaf.public_key())
    assert secret["private_key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert secret["fullchain"] == secret["certificate"] + secret["chain"]

    assert item["status"] == "ISSUED"
    assert item["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # pebble's notAfter is notBefore + validity - 1 s
    assert abs(leaf.not_valid_after_utc - leaf.not_valid_before_utc - LIFETIME) <= timedelta(seconds=1)
    acm = stack.client("acm").get_certificate(CertificateArn=item["acm_arns"][stack.region])
    assert x509.load_pem_x509_certificate(acm["Certificate"].encode()) == leaf
    return secret


def test_apex_and_wildcard_in_one_certificate(stack: LocalStack, env: dict[str, str], calls: Calls) -> None:
    zone = unique("apex") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    domains = [zone, f"*.{zone}"]
    put_item(stack, env, {"id": "apex", "domains": domains})

    result = run()

    item = get_item(stack, env, "apex")
    assert result["renewed"] == 1, item.get("last_error")
    check_certificate(stack, item, domains)
    # Both values went to one record set in one change, and nothing is left behind.
    published = calls.route53_changes[0]["ChangeBatch"]["Changes"]
    assert [c["ResourceRecordSet"]["Name"] for c in published] == [f"_acme-challenge.{zone}"]
    assert len(published[0]["ResourceRecordSet"]["ResourceRecords"]) == 2
    assert challenge_records(stack, zone_id) == []


def test_a_name_in_a_nested_zone_is_validated_in_that_zone(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    parent = unique("nest") + ".test"
    parent_id = stack.create_hosted_zone(parent)
    child_id = stack.create_hosted_zone(f"sub.{parent}")
    domains = [f"www.sub.{parent}"]
    put_item(stack, env, {"id": "nested", "domains": domains})

    run()

    check_certificate(stack, get_item(stack, env, "nested"), domains)
    assert {c["HostedZoneId"] for c in calls.route53_changes} == {child_id}
    assert challenge_records(stack, parent_id) == challenge_records(stack, child_id) == []


def test_renewal_keeps_the_acm_arn_and_writes_a_new_secret_version_with_a_new_key(
    stack: LocalStack, env: dict[str, str]
) -> None:
    zone = unique("renew") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "renew", "domains": [zone]})
    run()
    first = get_item(stack, env, "renew")
    first_secret = check_certificate(stack, first, [zone])
    account = stack.client("secretsmanager").get_secret_value(SecretId=Settings.from_env().account_secret_name)
    make_due(stack, env["TABLE_NAME"], "renew")

    run()

    second = get_item(stack, env, "renew")
    second_secret = check_certificate(stack, second, [zone])
    assert second["acm_arns"] == first["acm_arns"]
    assert second["serial"] != first["serial"]
    assert second["secret_version_id"] != first["secret_version_id"]
    assert second_secret["private_key"] != first_secret["private_key"]
    previous = stack.client("secretsmanager").get_secret_value(
        SecretId=second["secret_arn"], VersionStage="AWSPREVIOUS"
    )
    assert json.loads(previous["SecretString"])["serial"] == first["serial"]
    # One ACME account, created once and reused.
    again = stack.client("secretsmanager").get_secret_value(SecretId=Settings.from_env().account_secret_name)
    assert again["VersionId"] == account["VersionId"]


def test_a_failed_validation_leaves_no_txt_record_and_says_why(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = unique("fail") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "wrong-value", "domains": [zone, f"*.{zone}"]})
    # Fault: publish a value that is not the key authorization, so pebble's lookup really fails.
    original = challenges.DNS01.validation
    monkeypatch.setattr(challenges.DNS01, "validation", lambda self, key: wrong(original(self, key)))

    result = run()

    item = get_item(stack, env, "wrong-value")
    assert result["failed"] == 1
    assert item["status"] == "FAILED"
    assert "DNS-01 validation failed" in item["last_error"]
    assert zone in item["last_error"]
    assert "not_after" not in item
    assert challenge_records(stack, zone_id) == []


def test_a_bad_item_fails_clearly_while_a_good_one_is_issued(stack: LocalStack, env: dict[str, str]) -> None:
    zone = unique("mixed") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "bad", "domains": [f"www.{zone}", "*.*.example.test"], "key_type": "dsa"})
    put_item(stack, env, {"id": "no-zone", "domains": ["www.nowhere.invalid"]})
    put_item(stack, env, {"id": "good", "domains": [f"www.{zone}"], "key_type": "rsa-2048"})

    result = run()

    assert (result["renewed"], result["failed"]) == (1, 2)
    bad = get_item(stack, env, "bad")
    assert bad["status"] == "FAILED"
    assert "'*.*.example.test'" in bad["last_error"]
    assert "key_type 'dsa'" in bad["last_error"]
    no_zone = get_item(stack, env, "no-zone")
    assert "no public Route53 hosted zone contains '_acme-challenge.www.nowhere.invalid'" in no_zone["last_error"]
    check_certificate(stack, get_item(stack, env, "good"), [f"www.{zone}"])


def test_a_second_run_with_nothing_due_orders_nothing_and_changes_nothing(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zone = unique("idle") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "idle", "domains": [zone]})
    run()
    assert len(calls.new_orders) == 1
    changes = len(calls.route53_changes)
    before = get_item(stack, env, "idle")

    result = run()

    assert result["not_due"] == 1
    assert len(calls.new_orders) == 1
    assert len(calls.route53_changes) == changes
    assert get_item(stack, env, "idle") == before


def test_the_run_emits_the_metrics_alarms_watch(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone = unique("emf") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "ok", "domains": [zone]})
    put_item(stack, env, {"id": "broken", "domains": ["not a domain"]})
    capsys.readouterr()

    run()

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["CertificatesRenewed"] == [1]
    assert metrics["RenewalFailures"] == [1]
    item = get_item(stack, env, "ok")
    days_left = (datetime.fromisoformat(item["not_after"].replace("Z", "+00:00")) - datetime.now(UTC)) / timedelta(
        days=1
    )
    [min_days] = metrics["MinDaysUntilExpiry"]
    assert min_days == pytest.approx(days_left, abs=0.01)

"""What must hold after any run, faulty or not: nothing the user relies on is lost or contradicts the rest.

- the secret's AWSCURRENT holds a certificate and the key that matches it, chaining to pebble's root;
  AWSPREVIOUS keeps the one before when asked for;
- every ACM ARN on the item exists and holds a currently valid certificate, and it is the item's only ACM
  certificate in that region, but for the ARNs superseded on purpose (a re-import ACM refuses: `superseded_arns`);
- no `_acme-challenge` TXT record is left in the zones;
- the item tells the truth: ISSUED with the certificate that ACM and the secret hold, or FAILED with
  last_error, failure_count and a future next_attempt_at, and the certificate still in force in ACM.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from acme_renewer.inventory.table import CertificateTable, status_id
from tests.stack import DUMMY_CREDENTIAL, LocalStack

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Stored:
    """The certificates as a user finds them: the secret's versions and ACM's certificate per region."""

    current: dict[str, Any]
    previous: dict[str, Any] | None
    acm: dict[str, x509.Certificate]

    @property
    def current_leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.current["certificate"].encode())


def read_item(stack: LocalStack, table: str, item_id: str) -> dict[str, Any]:
    """The certificate's request merged with its status item, as the renewer reads it."""
    item = CertificateTable(stack.client("dynamodb"), table).get(item_id)
    assert item is not None, f"no request item {item_id!r} in {table}"
    return item


def secret_version(stack: LocalStack, secret_id: str, stage: str) -> dict[str, Any] | None:
    client = stack.client("secretsmanager")
    try:
        response = client.get_secret_value(SecretId=secret_id, VersionStage=stage)
    except client.exceptions.ResourceNotFoundException:
        return None
    document: dict[str, Any] = json.loads(response["SecretString"])
    return document


def pending_versions(stack: LocalStack, secret_id: str) -> list[str]:
    """The versions of the secret labelled AWSPENDING: the key of an order not stored yet."""
    stages = stack.client("secretsmanager").describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    return [version for version, labels in stages.items() if "AWSPENDING" in labels]


def acm_client(stack: LocalStack, region: str) -> ACMClient:
    """ACM in `region` (moto keeps one ACM per region, like AWS); stack.client is bound to the stack's region."""
    return boto3.client(
        "acm",
        endpoint_url=stack.moto_endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIAL,
        aws_secret_access_key=DUMMY_CREDENTIAL,
    )


def acm_certificates_for(stack: LocalStack, subject: str, region: str) -> list[str]:
    """The ARNs of every ACM certificate in `region` whose subject is `subject` (give each test its own names:
    ACM is shared by all the tests of a session; moto drops tags on a re-import, so they cannot tell). At most
    one per item and region, unless one was superseded on purpose."""
    client = acm_client(stack, region)
    pages = client.get_paginator("list_certificates").paginate(
        Includes={"keyTypes": ["RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1"]}
    )
    return [s["CertificateArn"] for page in pages for s in page["CertificateSummaryList"] if s["DomainName"] == subject]


def challenge_records(stack: LocalStack, zone_ids: Iterable[str]) -> list[str]:
    route53 = stack.client("route53")
    return [
        record_set["Name"]
        for zone_id in zone_ids
        for record_set in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if record_set["Name"].startswith("_acme-challenge")
    ]


def assert_valid_pair(stack: LocalStack, document: dict[str, Any]) -> x509.Certificate:
    """The secret document's key matches its certificate, which chains to pebble's root and is valid now."""
    leaf = x509.load_pem_x509_certificate(document["certificate"].encode())
    key = serialization.load_pem_private_key(document["private_key"].encode(), None)
    assert _spki(key.public_key()) == _spki(leaf.public_key()), "the secret's key does not match its certificate"
    assert document["fullchain"] == document["certificate"] + document["chain"]
    assert int(document["serial"], 16) == leaf.serial_number
    assert_valid(stack, leaf, x509.load_pem_x509_certificates(document["chain"].encode()))
    return leaf


def assert_valid(stack: LocalStack, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> None:
    roots = x509.load_pem_x509_certificates(stack.pebble.roots_pem().encode())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    first = names.get_values_for_type(x509.DNSName)[0].removeprefix("*.")
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName(first))
    verifier.verify(leaf, intermediates)  # raises unless it chains to pebble's root and is valid now


def assert_nothing_lost(
    stack: LocalStack,
    table: str,
    item_id: str,
    zone_ids: Iterable[str],
    *,
    previous_serial: str | None = None,
    superseded_earlier: Iterable[str] = (),
) -> tuple[dict[str, Any], Stored | None]:
    """Check every invariant for one item; returns the item and what is stored (None if nothing ever was).

    `previous_serial`: the certificate that AWSPREVIOUS must hold (the last good one before this run).
    `superseded_earlier`: ARNs the item superseded and has since forgotten (nothing used them any more); ACM
    keeps them.
    """
    assert challenge_records(stack, zone_ids) == [], "challenge TXT records were left behind"
    item = read_item(stack, table, item_id)
    _assert_status_is_explained(item)
    if "secret_arn" not in item:
        assert item["status"] == "FAILED" and "not_after" not in item, "an item without a secret claims a certificate"
        return item, None

    current = secret_version(stack, item["secret_arn"], "AWSCURRENT")
    assert current is not None, "the secret has no AWSCURRENT"
    current_leaf = assert_valid_pair(stack, current)
    previous = secret_version(stack, item["secret_arn"], "AWSPREVIOUS")
    if previous_serial is not None:
        assert previous is not None and previous["serial"] == previous_serial, "AWSPREVIOUS lost the last good one"
        assert_valid_pair(stack, previous)

    acm: dict[str, x509.Certificate] = {}
    for region, arn in item.get("acm_arns", {}).items():
        response = acm_client(stack, region).get_certificate(CertificateArn=arn)  # raises if the ARN is gone
        # moto appends a CA to CertificateChain: compare the leaf only.
        acm[region] = x509.load_pem_x509_certificate(response["Certificate"].encode())
        chain = x509.load_pem_x509_certificates(current["chain"].encode())
        assert_valid(stack, acm[region], chain)
        superseded = {entry["arn"] for entry in item.get("superseded_arns", []) if entry["region"] == region}
        extra = item_certificates(stack, region, item) - {arn} - superseded - set(superseded_earlier)
        assert not extra, f"ACM in {region} holds more certificates of the item than its ARN: {sorted(extra)}"

    in_force = next(iter(acm.values()), current_leaf)
    assert item["not_after"] == in_force.not_valid_after_utc.strftime(TIME_FORMAT), (
        "the item's not_after is not the certificate in force"
    )
    if item["status"] == "ISSUED":
        assert item["serial"] == current["serial"], "the item does not name the secret's current certificate"
        assert not pending_versions(stack, item["secret_arn"]), "a stored certificate left its order's key AWSPENDING"
        assert all(leaf == current_leaf for leaf in acm.values()), "ACM and the secret disagree on an ISSUED item"
    return item, Stored(current, previous, acm)


# ListCertificates returns RSA-2048 and RSA-1024 certificates only, unless asked for the others.
ALL_KEY_TYPES: Any = ["RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]


def item_certificates(stack: LocalStack, region: str, item: dict[str, Any]) -> set[str]:
    """ARNs of the ACM certificates in `region` that the renewer imported for this item (tagged with its id)."""
    client = acm_client(stack, region)
    subject = (item.get("issued_domains") or item["domains"])[0]
    found = set()
    for page in client.get_paginator("list_certificates").paginate(Includes={"keyTypes": ALL_KEY_TYPES}):
        for summary in page["CertificateSummaryList"]:
            if summary.get("DomainName") != subject:
                continue
            tags = client.list_tags_for_certificate(CertificateArn=summary["CertificateArn"]).get("Tags", [])
            if {"Key": "acme-renewer:id", "Value": item["id"]} in tags:
                found.add(summary["CertificateArn"])
    return found


def _assert_status_is_explained(item: dict[str, Any]) -> None:
    if item.get("status") == "ISSUED":
        assert "last_error" not in item and not item.get("failure_count")
        return
    assert item.get("status") == "FAILED", f"unexpected status {item.get('status')!r}"
    assert item.get("last_error"), "a FAILED item without last_error"
    assert item.get("failure_count", 0) >= 1
    next_attempt = datetime.strptime(item["next_attempt_at"], TIME_FORMAT).replace(tzinfo=UTC)
    assert next_attempt > datetime.now(UTC), "a FAILED item without a future next_attempt_at"


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def make_due(stack: LocalStack, table: str, item_id: str) -> None:
    """Due at the next run without touching the certificate's dates: the item no longer records the request its
    certificate was issued for, as after an edit (a renew_before_days as long as the lifetime is refused).
    Due in the `due` index too, as `acme-renewer add --replace` leaves an edited item."""
    stack.client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": status_id(item_id)}},
        UpdateExpression="SET issued_fingerprint = :outdated, due_at = :now",
        ExpressionAttributeValues={
            ":outdated": {"S": "outdated"},
            ":now": {"S": datetime.now(UTC).strftime(TIME_FORMAT)},
        },
    )


def wrong(value: str) -> str:
    """A challenge value the CA does not expect: its first character changed (replacing it by "x" kept one value in
    64 as it was, and that test then issued)."""
    return ("y" if value[0] == "x" else "x") + value[1:]

"""The pipeline with a fake CA over in-memory AWS (moto's mock, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto import mock_aws

from acme_renewer.inventory import CertificateTable
from acme_renewer.renewal import Renewer
from acme_renewer.report import Result
from acme_renewer.runtime import memoize
from acme_renewer.settings import Settings
from acme_renewer.stores import AcmStore, SecretStore
from tests.stack.table import create_table
from tests.unit.fakes import FakeCa

REGION = "eu-west-1"
SETTINGS = Settings(table_name="certificates", region=REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)
        yield


def renewer(ca: FakeCa) -> Renewer:
    return Renewer(
        settings=SETTINGS,
        table=CertificateTable(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name),
        issue=ca,
        secrets=SecretStore(boto3.client("secretsmanager", region_name=REGION)),
        acm=AcmStore(lambda region: boto3.client("acm", region_name=region)),
    )


def put(item: dict[str, Any]) -> None:
    boto3.resource("dynamodb", region_name=REGION).Table(SETTINGS.table_name).put_item(Item=item)


def get(item_id: str) -> dict[str, Any]:
    return (
        boto3.resource("dynamodb", region_name=REGION).Table(SETTINGS.table_name).get_item(Key={"id": item_id})["Item"]
    )


def test_a_new_item_is_issued_and_stored(aws: None) -> None:
    put({"id": "web", "domains": ["example.com", "*.example.com"]})
    report = renewer(FakeCa()).run()

    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    item = get("web")
    assert item["status"] == "ISSUED"
    assert "last_error" not in item
    secret = json.loads(
        boto3.client("secretsmanager", region_name=REGION).get_secret_value(
            SecretId=SETTINGS.default_secret_name("web")
        )["SecretString"]
    )
    leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
    key = serialization.load_pem_private_key(secret["private_key"].encode(), None)
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert secret["fullchain"] == secret["certificate"] + secret["chain"]
    assert item["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert set(item["acm_arns"]) == {REGION}
    assert item["secret_arn"].startswith("arn:aws:secretsmanager:")


def test_one_failure_does_not_stop_the_others(aws: None) -> None:
    put({"id": "bad-input", "domains": ["not a name"]})
    put({"id": "bad-order", "domains": ["fails.example.com"]})
    put({"id": "good", "domains": ["good.example.com"]})
    ca = FakeCa(fail_for=frozenset({"bad-order"}))
    report = renewer(ca).run()

    results = {o.id: o.result for o in report.outcomes}
    assert results == {"bad-input": Result.FAILED, "bad-order": Result.FAILED, "good": Result.RENEWED}
    assert "bad-input" not in ca.orders  # rejected before any order
    assert "'not a name'" in get("bad-input")["last_error"]
    assert "validation failed" in get("bad-order")["last_error"]
    assert get("good")["status"] == "ISSUED"
    assert report.count(Result.FAILED) == 2


def test_nothing_due_orders_nothing_and_keeps_the_item(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    renewer(ca).run()
    before = get("web")
    report = renewer(ca).run()
    assert ca.orders == ["web"]
    assert [o.result for o in report.outcomes] == [Result.NOT_DUE]
    assert get("web") == before


def test_renewal_reimports_into_the_same_arn_with_a_new_key(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"], "renew_before_days": 365})  # always inside the window
    ca = FakeCa()
    renewer(ca).run()
    first = get("web")
    renewer(ca).run()
    second = get("web")
    assert second["acm_arns"] == first["acm_arns"]
    assert second["serial"] != first["serial"]
    secrets = boto3.client("secretsmanager", region_name=REGION)
    previous = json.loads(
        secrets.get_secret_value(SecretId=first["secret_arn"], VersionStage="AWSPREVIOUS")["SecretString"]
    )
    current = json.loads(secrets.get_secret_value(SecretId=first["secret_arn"])["SecretString"])
    assert previous["serial"] == first["serial"]
    assert current["serial"] == second["serial"]
    assert previous["private_key"] != current["private_key"]


def test_disabled_items_are_skipped_and_reported(aws: None) -> None:
    put({"id": "off", "domains": ["example.com"], "enabled": False})
    ca = FakeCa()
    report = renewer(ca).run()
    assert [o.result for o in report.outcomes] == [Result.DISABLED]
    assert ca.orders == []


def test_min_days_until_expiry_covers_enabled_certificates(aws: None) -> None:
    put({"id": "short", "domains": ["a.example.com"]})
    renewer(FakeCa(lifetime=timedelta(days=6))).run()
    put({"id": "long", "domains": ["b.example.com"]})
    report = renewer(FakeCa(lifetime=timedelta(days=90))).run()
    assert report.min_days_until_expiry is not None
    assert 5.9 < report.min_days_until_expiry <= 6


def test_empty_acm_regions_skips_acm(aws: None) -> None:
    put({"id": "secret-only", "domains": ["example.com"], "acm_regions": []})
    renewer(FakeCa()).run()
    assert get("secret-only")["acm_arns"] == {}
    assert boto3.client("acm", region_name=REGION).list_certificates()["CertificateSummaryList"] == []


def test_a_deleted_acm_certificate_is_imported_anew(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"], "renew_before_days": 365})
    ca = FakeCa()
    renewer(ca).run()
    old_arn = get("web")["acm_arns"][REGION]
    boto3.client("acm", region_name=REGION).delete_certificate(CertificateArn=old_arn)
    renewer(ca).run()
    assert get("web")["status"] == "ISSUED"
    assert get("web")["acm_arns"][REGION] != old_arn


def test_the_ca_is_opened_once_even_when_it_fails() -> None:
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        raise ConnectionError("CA unreachable")

    session = memoize(factory)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            session()
    assert calls == [1]


def test_renewed_at_is_now(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    before = datetime.now(UTC) - timedelta(seconds=1)
    renewer(FakeCa()).run()
    renewed = datetime.fromisoformat(get("web")["last_renewed_at"].replace("Z", "+00:00"))
    assert before <= renewed <= datetime.now(UTC)

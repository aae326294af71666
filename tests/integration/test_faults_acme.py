"""Faults on the CA side during a renewal: pebble rejecting nonces or sleeping before validations, and a proxy in
front of pebble answering 5xx or 429 + Retry-After. Each test asserts that nothing was lost
(tests/integration/invariants.py), that no renewal ordered twice, and that no private key reached the logs or
the metrics.

Runs go through the scheduled handler, so that the service's logs and EMF land on the captured stdout.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acme_renewer import runtime
from acme_renewer.settings import Settings
from tests.integration.conftest import LIFETIME
from tests.integration.invariants import Stored, assert_nothing_lost, make_due, read_item, secret_version
from tests.integration.test_renewal import put_item, run, unique
from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy, Rule
from tests.stack.table import create_table

LONG_AGO = "2000-01-01T00:00:00Z"
NEW_ORDER = "/order-plz"  # pebble 2.4's paths; the proxy keeps them as they are
PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)\n-----END", re.DOTALL)


@dataclass
class Ca:
    """One test's view of a stack: its own table, and the proxy in front of pebble that the renewer talks to."""

    stack: LocalStack
    table: str
    proxy: AcmeProxy
    zones: dict[str, str] = field(default_factory=dict)  # item id -> hosted zone id
    with_formats: set[str] = field(default_factory=set)  # ids of the items with `formats`: they hold a PFX password

    def add_item(self, prefix: str, *, wildcard: bool = False, **fields: Any) -> str:
        zone = unique(prefix) + ".test"
        item_id = unique(prefix)
        self.zones[item_id] = self.stack.create_hosted_zone(zone)
        domains = [zone, f"*.{zone}"] if wildcard else [zone]
        put_item(self.stack, {"TABLE_NAME": self.table}, {"id": item_id, "domains": domains, **fields})
        if "formats" in fields:
            self.with_formats.add(item_id)
        return item_id

    def item(self, item_id: str) -> dict[str, Any]:
        return read_item(self.stack, self.table, item_id)

    def check(self, item_id: str, previous_serial: str | None = None) -> tuple[dict[str, Any], Stored | None]:
        return assert_nothing_lost(
            self.stack, self.table, item_id, [self.zones[item_id]], previous_serial=previous_serial
        )

    def issued(self, item_id: str, previous_serial: str | None = None) -> tuple[dict[str, Any], Stored]:
        item, stored = self.check(item_id, previous_serial)
        assert item["status"] == "ISSUED", item.get("last_error")
        assert stored is not None
        return item, stored

    def orders_created(self) -> int:
        """newOrder requests that pebble answered 201: an order exists (rejected or injected answers are not)."""
        return sum(e.method == "POST" and e.path == NEW_ORDER and e.status == 201 for e in self.proxy.requests)

    def retry_now(self, item_id: str) -> None:
        """Move the item's backoff into the past, as if its next_attempt_at had come."""
        put_item(self.stack, {"TABLE_NAME": self.table}, {**self.item(item_id), "next_attempt_at": LONG_AGO})

    def private_keys(self) -> list[str]:
        """Every secret the runs stored: certificate keys (all versions, pending orders included), the PFX
        passwords and files of the items with `formats`, and the account's key."""
        client = self.stack.client("secretsmanager")
        names = [Settings.from_env().default_secret_name(item_id) for item_id in self.zones]
        documents = []
        for name in names:
            try:
                versions = client.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
            except client.exceptions.ResourceNotFoundException:
                continue
            for version in versions:
                documents.append(client.get_secret_value(SecretId=name, VersionId=version["VersionId"]))
        keys = [body for d in documents for body in PEM_KEY.findall(d["SecretString"].replace("\\n", "\n"))]
        bodies = [json.loads(d["SecretString"]) for d in documents]
        keys += [b[name] for b in bodies for name in ("pkcs12_password", "pkcs12", "pkcs12_legacy") if name in b]
        account = secret_version(self.stack, Settings.from_env().account_secret_name, "AWSCURRENT")
        assert account is not None
        return [*keys, account["account_key"]["d"]]

    def assert_no_private_key_in(self, output: str) -> None:
        assert '"_aws"' in output, "no EMF captured: the check below would prove nothing"
        assert "PRIVATE KEY-----" not in output
        keys = self.private_keys()
        assert len(keys) > len(self.zones)
        for item_id in self.with_formats:
            current = secret_version(self.stack, Settings.from_env().default_secret_name(item_id), "AWSCURRENT")
            assert current is not None and "pkcs12_password" in current, "no PFX password to look for"
        for key in keys:
            for chunk in [key.replace("\n", ""), *key.splitlines()]:
                assert chunk not in output, "a private key was logged"


@contextmanager
def ca_for(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ca]:
    """os.environ pointed at `stack` with a fresh table, and at a proxy in front of its pebble."""
    table = f"certificates-{uuid.uuid4().hex[:8]}"
    create_table(stack.client("dynamodb"), table)
    for name, value in {**stack.env, "TABLE_NAME": table}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls) as proxy:
        monkeypatch.setenv("ACME_DIRECTORY_URL", proxy.directory_url)
        runtime.client.cache_clear()
        try:
            yield Ca(stack, table, proxy)
        finally:
            runtime.client.cache_clear()


@pytest.fixture
def ca(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ca]:
    with ca_for(stack, monkeypatch) as opened:
        yield opened


@pytest.fixture(scope="module")
def nonce_rejecting_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.start(
        tmp_path_factory.mktemp("nonce-reject"),
        pebble_env={"PEBBLE_WFE_NONCEREJECT": "20"},
        certificate_validity_seconds=int(LIFETIME.total_seconds()),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def slow_validation_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # pebble sleeps a random 0 to PEBBLE_VA_SLEEPTIME seconds before each validation.
    with LocalStack.start(
        tmp_path_factory.mktemp("va-sleep"),
        pebble_env={"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "3"},
        certificate_validity_seconds=int(LIFETIME.total_seconds()),
    ) as running:
        yield running


def formats(number: int) -> dict[str, Any]:
    """Every format on the second item: its PFX password and files are secret too."""
    return {"formats": ["pkcs12", "pkcs12-legacy", "bundle"]} if number == 1 else {}


def first_issuance(ca: Ca, prefix: str) -> tuple[str, dict[str, Any], Stored]:
    """An item issued once without faults, and due again at the next run."""
    item_id = ca.add_item(prefix)
    result = run()
    assert result["renewed"] == 1, result
    item, stored = ca.issued(item_id)
    make_due(ca.stack, ca.table, item_id)
    return item_id, item, stored


def acm_leaf(ca: Ca, item: dict[str, Any]) -> bytes:
    arn = item["acm_arns"][ca.stack.region]
    certificate: str = ca.stack.client("acm").get_certificate(CertificateArn=arn)["Certificate"]
    return certificate.encode()


# --- pebble's own chaos ------------------------------------------------------------------------


def test_renewals_survive_a_ca_that_rejects_a_fifth_of_the_nonces(
    nonce_rejecting_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with ca_for(nonce_rejecting_stack, monkeypatch) as ca:
        ids = [ca.add_item("nonce", wildcard=number == 0, **formats(number)) for number in range(5)]
        capsys.readouterr()

        result = run()

        assert result["renewed"] == len(ids), result
        for item_id in ids:
            ca.issued(item_id)
        assert ca.orders_created() == len(ids)
        rejected = sum(e.method == "POST" and e.status == 400 for e in ca.proxy.requests)
        assert rejected > 0, "pebble rejected no nonce: the fault was not injected"
        ca.assert_no_private_key_in(capsys.readouterr().out)


def test_renewals_wait_out_random_validation_delays(
    slow_validation_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with ca_for(slow_validation_stack, monkeypatch) as ca:
        monkeypatch.setenv("ORDER_TIMEOUT_SECONDS", "60")  # well above pebble's longest sleep
        ids = [ca.add_item("slow", wildcard=number == 0, **formats(number)) for number in range(3)]
        capsys.readouterr()

        result = run()

        assert result["renewed"] == len(ids), result
        for item_id in ids:
            ca.issued(item_id)
        assert ca.orders_created() == len(ids)
        ca.assert_no_private_key_in(capsys.readouterr().out)


def test_validation_polls_the_order_not_each_authorization(ca: Ca) -> None:
    """An apex and wildcard order has two authorizations: they are fetched once each with the order (acme's
    new_order), and validation then asks about the order alone, one request per poll whatever the names."""
    item_id = ca.add_item("polls", wildcard=True)
    authorizations = ca.proxy.count("POST", path_prefix="/authZ/")
    order_polls = ca.proxy.count("POST", path_prefix="/my-order/")

    assert run()["renewed"] == 1

    assert ca.proxy.count("POST", path_prefix="/authZ/") - authorizations == 2  # new_order's, none to validate
    assert ca.proxy.count("POST", path_prefix="/my-order/") - order_polls >= 2  # validation, then finalization
    ca.issued(item_id)


# --- 5xx from the proxy ------------------------------------------------------------------------


def test_transient_errors_on_reads_are_retried_and_the_renewal_succeeds(
    ca: Ca, capsys: pytest.CaptureFixture[str]
) -> None:
    item_id, first, _ = first_issuance(ca, "transient")
    rules = [
        ca.proxy.add_rule(Rule(method="GET", path=ca.proxy.directory_path, status=503)),
        ca.proxy.add_rule(Rule(method="HEAD", path_prefix="/nonce-plz", status=503)),
        ca.proxy.add_rule(Rule(method="POST", path_prefix="/authZ/", status=500)),
        ca.proxy.add_rule(Rule(method="POST", path_prefix="/my-order/", status=503, headers={"Retry-After": "1"})),
        ca.proxy.add_rule(Rule(method="POST", path_prefix="/certZ/", status=502, body=b"<html>bad gateway</html>")),
    ]
    capsys.readouterr()

    result = run()

    assert result["renewed"] == 1, result
    assert [rule.hits for rule in rules] == [1] * len(rules)
    second, _ = ca.issued(item_id, previous_serial=first["serial"])
    assert second["serial"] != first["serial"]
    assert second["acm_arns"] == first["acm_arns"]
    assert ca.orders_created() == 2  # one per renewal
    ca.assert_no_private_key_in(capsys.readouterr().out)


@pytest.mark.parametrize(
    "rule",
    [Rule(method="POST", path=NEW_ORDER), Rule(method="POST", path_prefix="/finalize-order/")],
    ids=["newOrder", "finalize"],
)
def test_a_5xx_on_a_request_that_may_have_taken_effect_fails_cleanly_and_the_next_run_renews(
    ca: Ca, capsys: pytest.CaptureFixture[str], rule: Rule
) -> None:
    item_id, first, before = first_issuance(ca, "unsafe")
    sent = ca.proxy.count(rule.method, rule.path, path_prefix=rule.path_prefix)
    ca.proxy.add_rule(rule)
    capsys.readouterr()

    result = run()

    assert result["failed"] == 1, result
    assert ca.proxy.count(rule.method, rule.path, path_prefix=rule.path_prefix) == sent + 1  # not sent again
    failed, after = ca.check(item_id)
    assert failed["failure_count"] == 1
    assert "HTTP 503" in failed["last_error"], failed["last_error"]
    # The certificate in force is untouched.
    assert (failed["serial"], failed["not_after"]) == (first["serial"], first["not_after"])
    assert after is not None and after.current == before.current and after.acm == before.acm

    ca.retry_now(item_id)
    orders = ca.orders_created()
    result = run()

    assert result["renewed"] == 1, result
    assert ca.orders_created() == orders + 1
    ca.issued(item_id, previous_serial=first["serial"])
    ca.assert_no_private_key_in(capsys.readouterr().out)


# --- 429 with Retry-After ----------------------------------------------------------------------


def test_a_rate_limited_renewal_keeps_the_certificate_in_force(ca: Ca, capsys: pytest.CaptureFixture[str]) -> None:
    item_id, first, _ = first_issuance(ca, "limited")
    secret_version_id = ca.stack.client("secretsmanager").get_secret_value(SecretId=first["secret_arn"])["VersionId"]
    leaf = acm_leaf(ca, first)
    ca.proxy.add_rule(Rule(method="POST", path=NEW_ORDER, status=429, headers={"Retry-After": "7200"}))
    capsys.readouterr()

    started = datetime.now(UTC)
    result = run()

    assert result["failed"] == 1, result
    item, _ = ca.check(item_id)
    assert item["status"] == "FAILED" and "7200" in item["last_error"]
    assert (item["serial"], item["not_after"], item["acm_arns"]) == (
        first["serial"],
        first["not_after"],
        first["acm_arns"],
    )
    current = ca.stack.client("secretsmanager").get_secret_value(SecretId=first["secret_arn"])
    assert current["VersionId"] == secret_version_id
    assert acm_leaf(ca, item) == leaf
    next_attempt = datetime.strptime(item["next_attempt_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert next_attempt >= started.replace(microsecond=0) + timedelta(seconds=7200)
    assert ca.orders_created() == 1
    ca.assert_no_private_key_in(capsys.readouterr().out)

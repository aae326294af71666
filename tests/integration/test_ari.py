"""ARI (RFC 9773) end to end. pebble 2.4 has no renewalInfo, so the test proxy adds it to pebble's directory and
answers it; everything else (orders, DNS-01 validation, issuance) is pebble's.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from acme_renewer.inventory.table import iso, parse_time
from acme_renewer.report.outcomes import Result
from acme_renewer.runtime import build_renewer
from acme_renewer.settings import Settings
from tests.integration.invariants import assert_nothing_lost, read_item
from tests.integration.test_renewal import put_item, unique
from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy, ProxiedRequest, Rule

RENEWAL_INFO_PATH = "/renewal-info/"


@dataclass
class RenewalInfoServer:
    """What the proxy's renewalInfo answers: one window for every certificate, and the ids it was asked for."""

    start: datetime
    end: datetime
    explanation_url: str | None = None
    retry_after_seconds: int = 3600
    asked: list[str] = field(default_factory=list)
    new_orders: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, request: ProxiedRequest) -> Rule | None:
        if request.method == "GET" and request.path.startswith(RENEWAL_INFO_PATH):
            with self._lock:
                self.asked.append(request.path.removeprefix(RENEWAL_INFO_PATH))
            body: dict[str, Any] = {"suggestedWindow": {"start": iso(self.start), "end": iso(self.end)}}
            if self.explanation_url:
                body["explanationURL"] = self.explanation_url
            return Rule(status=200, headers={"Retry-After": str(self.retry_after_seconds)}, body=body)
        if request.method == "POST" and request.path == "/order-plz":
            with self._lock:
                self.new_orders.append(request.jws_payload())
        return None


@pytest.fixture
def ari(stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[RenewalInfoServer]:
    now = datetime.now(UTC)
    server = RenewalInfoServer(start=now + timedelta(days=50), end=now + timedelta(days=52))
    with AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls) as proxy:
        base = proxy.directory_url.rsplit("/", 1)[0]
        proxy.directory_hook = lambda directory: {**directory, "renewalInfo": base + RENEWAL_INFO_PATH.rstrip("/")}
        proxy.request_hook = server.hook
        monkeypatch.setenv("ACME_DIRECTORY_URL", proxy.directory_url)
        yield server


def ari_id(certificate_pem: str) -> str:
    """RFC 9773 §4.1, written out here rather than taken from the code under test."""
    leaf = x509.load_pem_x509_certificate(certificate_pem.encode())
    key_id = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert key_id is not None
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(key_id)}.{b64(serial)}"


def issue(stack: LocalStack, env: dict[str, str], prefix: str) -> tuple[str, str, dict[str, Any]]:
    zone = unique(prefix) + ".test"
    zone_id = stack.create_hosted_zone(zone)
    item_id = unique(prefix)
    put_item(stack, env, {"id": item_id, "domains": [zone, f"*.{zone}"]})
    report = build_renewer(Settings.from_env()).run()
    assert [o.result for o in report.outcomes] == [Result.RENEWED], report.outcomes
    item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    assert stored is not None
    return item_id, zone_id, item


def test_a_certificate_from_a_ca_with_ari_is_polled_and_renewed_inside_the_window(
    stack: LocalStack, env: dict[str, str], ari: RenewalInfoServer
) -> None:
    item_id, zone_id, item = issue(stack, env, "ari-window")
    leaf_pem = stack.client("acm").get_certificate(CertificateArn=item["acm_arns"][stack.region])["Certificate"]
    assert item["ari"] == {"cert_id": ari_id(leaf_pem)}
    assert ari.asked == []  # issued in this run: nothing to ask yet
    assert [order.get("replaces") for order in ari.new_orders] == [None]  # a first issuance replaces nothing

    # The next run asks; the window is 50 days away: nothing to do but remember it and when to ask again.
    ari.explanation_url = "https://ca.test/docs/ari"
    asked_at = datetime.now(UTC)
    report = build_renewer(Settings.from_env()).run()
    assert [o.result for o in report.outcomes] == [Result.NOT_DUE]
    assert ari.asked == [ari_id(leaf_pem)]
    window = read_item(stack, env["TABLE_NAME"], item_id)["ari"]
    assert (window["window_start"], window["window_end"]) == (iso(ari.start), iso(ari.end))
    assert window["explanation_url"] == "https://ca.test/docs/ari"
    renew_at, next_check = parse_time(window["renew_at"]), parse_time(window["next_check_at"])
    assert renew_at is not None and ari.start <= renew_at <= ari.end
    assert next_check is not None and abs(next_check - (asked_at + timedelta(hours=1))) < timedelta(seconds=30)

    # Within Retry-After the CA is not asked again.
    build_renewer(Settings.from_env()).run()
    assert len(ari.asked) == 1

    # Past Retry-After the window has moved into the past (a revocation, say): renewed at once, with `replaces`.
    ari.start, ari.end = asked_at - timedelta(days=2), asked_at - timedelta(days=1)
    ari.explanation_url = "https://ca.test/incident/42"
    renewer = build_renewer(Settings.from_env())
    renewer.clock = lambda: next_check + timedelta(seconds=1)
    report = renewer.run()

    assert [o.result for o in report.outcomes] == [Result.RENEWED], report.outcomes
    assert "https://ca.test/incident/42" in report.outcomes[0].reason
    assert ari.asked == [ari_id(leaf_pem)] * 2
    renewed, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=item["serial"])
    assert renewed["serial"] != item["serial"]
    new_leaf = stack.client("acm").get_certificate(CertificateArn=renewed["acm_arns"][stack.region])["Certificate"]
    assert renewed["ari"] == {"cert_id": ari_id(new_leaf)}
    # The renewal's newOrder named the certificate it replaces, and pebble (which ignores the field) issued it.
    assert [order.get("replaces") for order in ari.new_orders] == [None, ari_id(leaf_pem)]


def test_an_unanswered_poll_keeps_the_local_window(
    stack: LocalStack, env: dict[str, str], ari: RenewalInfoServer
) -> None:
    item_id, _, _ = issue(stack, env, "ari-down")
    ari.retry_after_seconds = 0
    ari.start, ari.end = ari.end, ari.start  # not a window: the CA's answer is unusable

    report = build_renewer(Settings.from_env()).run()

    assert [o.result for o in report.outcomes] == [Result.NOT_DUE]
    assert "last third" in report.outcomes[0].reason
    state = read_item(stack, env["TABLE_NAME"], item_id)["ari"]
    assert "window_start" not in state
    next_check = parse_time(state["next_check_at"])
    assert next_check is not None and timedelta(minutes=59) < next_check - datetime.now(UTC) <= timedelta(hours=1)

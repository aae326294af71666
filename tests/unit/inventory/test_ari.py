"""ACME Renewal Information (RFC 9773): the certificate's id, the window's random moment, and how it moves the
renewal decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_renewer.inventory.ari import (
    DEFAULT_RETRY_AFTER,
    RETRY_AFTER_ERROR,
    SuggestedWindow,
    certificate_id,
    check_due,
    failed_check,
    refreshed,
)
from acme_renewer.inventory.policy import window_decision
from acme_renewer.inventory.table import ari_from_item, ari_to_item
from acme_renewer.models import AriState, CertificateRequest, CertificateState, KeyType

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = SuggestedWindow(
    start=NOW + timedelta(days=10),
    end=NOW + timedelta(days=12),
    explanation_url="https://ca.example/why",
    retry_after=timedelta(hours=3),
)


def test_the_certificate_id_is_rfc_9773s_example() -> None:
    """RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4 and serial
    00:87:65:43:21 give aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    assert certificate_id(pem) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_the_renewal_moment_is_random_inside_the_window_and_kept_while_it_stays() -> None:
    state = AriState("id")
    early = refreshed(state, WINDOW, NOW, rng=lambda: 0.0)
    late = refreshed(state, WINDOW, NOW, rng=lambda: 0.999)
    assert early.renew_at == WINDOW.start
    assert late.renew_at is not None and WINDOW.start < late.renew_at < WINDOW.end
    assert early.next_check_at == NOW + WINDOW.retry_after
    assert (early.window_start, early.window_end, early.explanation_url) == (
        WINDOW.start,
        WINDOW.end,
        WINDOW.explanation_url,
    )
    # Polled again with the same window: the moment does not move, whatever the dice say now.
    assert refreshed(late, WINDOW, NOW + timedelta(hours=3), rng=lambda: 0.0).renew_at == late.renew_at
    # A new window: a new moment inside it.
    moved = SuggestedWindow(NOW + timedelta(days=1), NOW + timedelta(days=2), None, timedelta(hours=6))
    assert refreshed(late, moved, NOW, rng=lambda: 0.5).renew_at == NOW + timedelta(days=1, hours=12)


def test_a_window_in_the_past_means_now() -> None:
    past = SuggestedWindow(
        NOW - timedelta(days=2), NOW - timedelta(days=1), "https://ca.example/revoked", WINDOW.retry_after
    )
    assert refreshed(AriState("id"), past, NOW, rng=lambda: 0.0).renew_at == NOW


def test_without_renewal_info_or_after_a_failed_poll() -> None:
    known = refreshed(AriState("id"), WINDOW, NOW, rng=lambda: 0.5)
    gone = refreshed(known, None, NOW)
    assert (gone.window_start, gone.renew_at, gone.next_check_at) == (None, None, NOW + DEFAULT_RETRY_AFTER)
    failed = failed_check(known, NOW)
    assert failed.renew_at == known.renew_at and failed.next_check_at == NOW + RETRY_AFTER_ERROR


def test_a_poll_is_due_once_retry_after_has_passed() -> None:
    assert not check_due(None, NOW)
    assert check_due(AriState("id"), NOW)  # never asked
    polled = refreshed(AriState("id"), WINDOW, NOW)
    assert not check_due(polled, NOW + WINDOW.retry_after - timedelta(seconds=1))
    assert check_due(polled, NOW + WINDOW.retry_after)


def test_the_item_map_round_trips() -> None:
    state = refreshed(AriState("id"), WINDOW, NOW, rng=lambda: 0.25)
    assert ari_from_item(ari_to_item(state)) == state
    assert ari_to_item(AriState("id")) == {"cert_id": "id"}
    assert ari_from_item({"window_start": "x"}) is None


def request(renew_before_days: int | None = None) -> CertificateRequest:
    return CertificateRequest("c", ("example.com",), KeyType.EC_P256, (), "acme-renewer/c", renew_before_days, True)


def issued(ari: AriState | None, lifetime_days: int = 90, age_days: int = 20) -> CertificateState:
    not_before = NOW - timedelta(days=age_days)
    return CertificateState(not_before=not_before, not_after=not_before + timedelta(days=lifetime_days), ari=ari)


def test_an_earlier_suggested_window_makes_the_certificate_due_then() -> None:
    state = refreshed(AriState("id"), WINDOW, NOW, rng=lambda: 0.5)
    assert state.renew_at is not None
    before = window_decision(request(), issued(state), state.renew_at - timedelta(seconds=1))
    assert not before.due and before.next_due == NOW + WINDOW.retry_after  # the next poll comes first
    at = window_decision(request(), issued(state), state.renew_at)
    assert at.due
    assert "the CA's suggested window (ARI)" in at.reason and "https://ca.example/why" in at.reason


def test_a_later_suggested_window_does_not_delay_the_local_one() -> None:
    far = SuggestedWindow(NOW + timedelta(days=80), NOW + timedelta(days=85), None, timedelta(days=50))
    state = refreshed(AriState("id"), far, NOW, rng=lambda: 0.0)
    decision = window_decision(request(), issued(state), NOW)
    assert not decision.due
    local = NOW - timedelta(days=20) + timedelta(days=60)  # two thirds of 90 days
    assert decision.next_due == local and "last third" in decision.reason


def test_a_revoked_certificate_is_renewed_at_once() -> None:
    past = SuggestedWindow(
        NOW - timedelta(days=2), NOW - timedelta(days=1), "https://ca.example/incident", WINDOW.retry_after
    )
    decision = window_decision(request(), issued(refreshed(AriState("id"), past, NOW)), NOW)
    assert decision.due and "renew at once" in decision.reason and "incident" in decision.reason

"""When a certificate is due."""

from datetime import UTC, datetime, timedelta

from acme_renewer.inventory import renewal_decision, state_from_item
from acme_renewer.models import CertificateRequest, CertificateState, KeyType

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def request(renew_before_days: int | None = None, domains: tuple[str, ...] = ("example.com",)) -> CertificateRequest:
    return CertificateRequest(
        id="example",
        domains=domains,
        key_type=KeyType.EC_P256,
        acm_regions=(),
        secret_name="acme-renewer/certificates/example",
        renew_before_days=renew_before_days,
        enabled=True,
    )


def issued(
    lifetime_days: float, remaining_days: float, domains: tuple[str, ...] = ("example.com",)
) -> CertificateState:
    not_after = NOW + timedelta(days=remaining_days)
    return CertificateState(
        not_before=not_after - timedelta(days=lifetime_days), not_after=not_after, issued_domains=domains
    )


def test_never_issued_is_due() -> None:
    assert renewal_decision(request(), CertificateState(), NOW).due


def test_default_window_is_the_last_third_of_the_lifetime() -> None:
    assert not renewal_decision(request(), issued(90, 30.5), NOW).due
    assert renewal_decision(request(), issued(90, 29.5), NOW).due
    # The rule scales with the lifetime: a 6-day certificate is due with 2 days left.
    assert not renewal_decision(request(), issued(6, 2.1), NOW).due
    assert renewal_decision(request(), issued(6, 1.9), NOW).due


def test_renew_before_days_replaces_the_default() -> None:
    assert renewal_decision(request(renew_before_days=45), issued(90, 44), NOW).due
    assert not renewal_decision(request(renew_before_days=10), issued(90, 11), NOW).due


def test_changed_names_are_due_at_once() -> None:
    state = issued(90, 80, domains=("example.com",))
    decision = renewal_decision(request(domains=("example.com", "www.example.com")), state, NOW)
    assert decision.due
    assert "domains changed" in decision.reason


def test_expired_certificate_is_due() -> None:
    assert renewal_decision(request(), issued(90, -1), NOW).due


def test_state_is_read_back_from_the_item_format_we_write() -> None:
    state = state_from_item(
        {
            "not_before": "2026-10-01T00:00:00Z",
            "not_after": "2026-12-30T00:00:00Z",
            "issued_domains": ["example.com"],
            "acm_arns": {"eu-west-1": "arn:aws:acm:eu-west-1:1:certificate/x"},
        }
    )
    assert state.not_after == datetime(2026, 12, 30, tzinfo=UTC)
    assert state.acm_arns == {"eu-west-1": "arn:aws:acm:eu-west-1:1:certificate/x"}


def test_unreadable_expiry_counts_as_never_issued() -> None:
    assert state_from_item({"not_after": "soon"}).not_after is None

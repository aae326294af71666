"""When a certificate is due, and how failures back off."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from acme_renewer.inventory.policy import ISSUANCE_FIELDS, REQUEST_FIELDS, FailurePolicy, fingerprint, renewal_decision
from acme_renewer.inventory.table import state_from_item
from acme_renewer.models import CertificateRequest, CertificateState, KeyType

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DIRECTORY = "https://ca.example/directory"
ITEM = {"id": "example", "domains": ["example.com"]}
POLICY = FailurePolicy()


def request(renew_before_days: int | None = None) -> CertificateRequest:
    return CertificateRequest(
        id="example",
        domains=("example.com",),
        key_type=KeyType.EC_P256,
        acm_regions=(),
        secret_name="acme-renewer/certificates/example",
        renew_before_days=renew_before_days,
        enabled=True,
    )


def issued(lifetime_days: float, remaining_days: float, **state: object) -> CertificateState:
    not_after = NOW + timedelta(days=remaining_days)
    return CertificateState(
        not_before=not_after - timedelta(days=lifetime_days),
        not_after=not_after,
        issued_fingerprint=fingerprint(ITEM, ISSUANCE_FIELDS, DIRECTORY),
        **state,  # type: ignore[arg-type]
    )


def decide(state: CertificateState, item: dict[str, object] = ITEM, renew_before_days: int | None = None):  # type: ignore[no-untyped-def]
    return renewal_decision(
        request(renew_before_days),
        state,
        NOW,
        request_fingerprint=fingerprint(item, REQUEST_FIELDS, DIRECTORY),
        issuance_fingerprint=fingerprint(item, ISSUANCE_FIELDS, DIRECTORY),
        policy=POLICY,
    )


def test_never_issued_is_due() -> None:
    assert decide(CertificateState()).due


def test_default_window_is_the_last_third_of_the_lifetime() -> None:
    assert not decide(issued(90, 30.5)).due
    assert decide(issued(90, 29.5)).due


def test_short_lived_certificates_renew_in_the_last_half() -> None:
    assert not decide(issued(6, 3.1)).due
    assert decide(issued(6, 2.9)).due
    # 10 days and more is not short-lived: the third applies.
    assert not decide(issued(12, 4.1)).due
    assert decide(issued(12, 3.9)).due


def test_renew_before_days_replaces_the_default() -> None:
    assert decide(issued(90, 44), renew_before_days=45).due
    assert not decide(issued(90, 11), renew_before_days=10).due


def test_a_changed_request_is_due_at_once() -> None:
    changed = {**ITEM, "domains": ["example.com", "www.example.com"]}
    decision = decide(issued(90, 80), item=changed)
    assert decision.due
    assert "request changed" in decision.reason
    assert decide(issued(90, 80), item={**ITEM, "key_type": "rsa-2048"}).due


def test_fields_that_do_not_change_the_certificate_do_not_reissue() -> None:
    assert not decide(issued(90, 80), item={**ITEM, "renew_before_days": 10}).due
    assert not decide(issued(90, 80), item={**ITEM, "enabled": True}).due


def test_a_new_directory_reissues() -> None:
    state = issued(90, 80)
    assert fingerprint(ITEM, ISSUANCE_FIELDS, "https://other.example/dir") != state.issued_fingerprint


def test_backoff_doubles_from_one_hour_to_a_day() -> None:
    hours = [POLICY.delay(n, rng=lambda: 0.5) / timedelta(hours=1) for n in range(1, 9)]
    assert hours == [1, 2, 4, 8, 16, 24, 24, 24]


@pytest.mark.parametrize("rng", [0.0, 0.999])
def test_jitter_stays_within_ten_percent(rng: float) -> None:
    delay = POLICY.delay(3, rng=lambda: rng)
    assert timedelta(hours=4 * 0.9) <= delay <= timedelta(hours=4 * 1.1)
    assert delay != timedelta(hours=4)


def test_retry_after_wins_when_longer() -> None:
    assert POLICY.next_attempt(1, NOW, retry_after=7200, rng=lambda: 0.5) == NOW + timedelta(hours=2)
    assert POLICY.next_attempt(1, NOW, retry_after=60, rng=lambda: 0.5) == NOW + timedelta(hours=1)


def failed(count: int, next_attempt_in: timedelta, item: dict[str, object] = ITEM) -> CertificateState:
    return issued(
        90,
        10,
        failure_count=count,
        attempt_fingerprint=fingerprint(item, REQUEST_FIELDS, DIRECTORY),
        next_attempt_at=NOW + next_attempt_in,
    )


def test_a_failed_certificate_waits_for_its_next_attempt() -> None:
    waiting = decide(failed(2, timedelta(minutes=30)))
    assert (waiting.due, waiting.held) == (False, "backoff")
    assert decide(failed(2, -timedelta(minutes=1))).due


def test_too_many_failures_pause_until_the_item_changes() -> None:
    paused = decide(failed(POLICY.max_consecutive_failures, -timedelta(days=1)))
    assert (paused.due, paused.held) == (False, "paused")
    assert "acme-renewer renew example" in paused.reason
    edited = {**ITEM, "renew_before_days": 20}
    assert decide(failed(POLICY.max_consecutive_failures, -timedelta(days=1)), item=edited).due


def test_an_edit_lifts_the_backoff_at_once() -> None:
    edited = {**ITEM, "domains": ["example.com", "www.example.com"]}
    assert decide(failed(3, timedelta(hours=3)), item=edited).due


def test_state_is_read_back_from_the_item_format_we_write() -> None:
    state = state_from_item(
        {
            "not_before": "2026-10-01T00:00:00Z",
            "not_after": "2026-12-30T00:00:00Z",
            "acm_arns": {"eu-west-1": "arn:aws:acm:eu-west-1:1:certificate/x"},
            "failure_count": 3,
            "next_attempt_at": "2026-11-25T13:00:00Z",
        }
    )
    assert state.not_after == datetime(2026, 12, 30, tzinfo=UTC)
    assert state.acm_arns == {"eu-west-1": "arn:aws:acm:eu-west-1:1:certificate/x"}
    assert (state.failure_count, state.next_attempt_at) == (3, datetime(2026, 11, 25, 13, tzinfo=UTC))


def test_unreadable_expiry_counts_as_never_issued() -> None:
    assert state_from_item({"not_after": "soon"}).not_after is None


# Digests of two items as the renewer computed them before `preferred_chain` existed: an upgrade must not
# change them, or every certificate of the fleet would be re-issued at once.
OLD_ITEM = {"id": "www", "domains": ["example.com", "*.example.com"], "key_type": "rsa-2048", "status": "ISSUED"}
BARE_ITEM = {"id": "bare", "domains": ["example.org"]}


@pytest.mark.parametrize(
    ("item", "request_digest", "issuance_digest"),
    [
        (
            OLD_ITEM | {"renew_before_days": Decimal(20)},
            "b4d4914af668738d5488026bd04bb339",
            "f6d99a03a373e20c1a31937e133144b3",
        ),
        (BARE_ITEM, "90219d55117c6928556d00b860084aa9", "8741a3b4f4e850ac7cf63de7efdefd7c"),
    ],
)
def test_items_without_the_new_fields_keep_their_fingerprints(
    item: dict[str, object], request_digest: str, issuance_digest: str
) -> None:
    directory = "https://acme.example/dir"
    assert fingerprint(item, REQUEST_FIELDS, directory) == request_digest
    assert fingerprint(item, ISSUANCE_FIELDS, directory) == issuance_digest
    assert fingerprint(item | {"preferred_chain": None}, ISSUANCE_FIELDS, directory) == issuance_digest
    assert fingerprint(item | {"formats": None}, REQUEST_FIELDS, directory) == request_digest


def test_formats_are_a_change_of_the_request_and_not_of_the_certificate() -> None:
    """A new format resets the failures and wakes the stream function, and orders nothing: it is rendered from the
    certificate in force (README, "formats")."""
    with_formats = ITEM | {"formats": ["pkcs12"]}
    assert fingerprint(with_formats, REQUEST_FIELDS, DIRECTORY) != fingerprint(ITEM, REQUEST_FIELDS, DIRECTORY)
    assert fingerprint(with_formats, ISSUANCE_FIELDS, DIRECTORY) == fingerprint(ITEM, ISSUANCE_FIELDS, DIRECTORY)


def test_a_preferred_chain_set_or_changed_means_a_new_certificate() -> None:
    digests = {
        fingerprint(ITEM | chain, ISSUANCE_FIELDS, DIRECTORY)
        for chain in ({}, {"preferred_chain": "ISRG Root X1"}, {"preferred_chain": "ISRG Root X2"})
    }
    assert len(digests) == 3

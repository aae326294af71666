"""newOrder's extensions (#6): the item's ACME profile, and ARI's `replaces` with its one retry without it.

A scripted client stands in for the CA: it records what each newOrder carried and answers from a script.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acme_renewer.errors import ItemValidationError
from acme_renewer.models import CertificateState
from acme_renewer.policy import HASHED_WHEN_SET, ISSUANCE_FIELDS, REQUEST_FIELDS, fingerprint, window_decision
from acme_renewer.settings import Settings
from acme_renewer.validation import PROFILE_MAX_NAMES, parse_item

SETTINGS = Settings(table_name="certificates", region="eu-west-1")
DIRECTORY_URL = "https://ca.test/directory"
PROFILES = {"classic": "90 days", "shortlived": "6 days", "tlsserver": "no CN"}
ARI_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
PREFIX = "urn:ietf:params:acme:error:"


def item(**fields: object) -> dict[str, object]:
    return {"id": "example", "domains": ["example.com"], **fields}


def names(count: int) -> list[str]:
    return [f"n{i}.example.com" for i in range(count)]


# --- the item ------------------------------------------------------------------------------------


def test_profile_and_fallback_are_read_as_written_and_absent_by_default() -> None:
    bare = parse_item(item(), SETTINGS)
    assert (bare.profile, bare.profile_fallback) == (None, False)
    request = parse_item(item(profile="tlsserver", profile_fallback=True), SETTINGS)
    assert (request.profile, request.profile_fallback, request.warnings) == ("tlsserver", True, ())
    assert parse_item(item(profile="my-ca.profile_2"), SETTINGS).profile == "my-ca.profile_2"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"profile": ""}, "profile '' must be the name of a profile the CA offers, 1-64 letters"),
        ({"profile": "short lived"}, "profile 'short lived' must be the name"),
        ({"profile": "p" * 65}, "must be the name of a profile the CA offers"),
        ({"profile": ["tlsserver"]}, "profile a list (1 elements) must be the name"),
        ({"profile": "tlsserver", "profile_fallback": "yes"}, "profile_fallback must be true or false (a BOOL)"),
    ],
)
def test_a_bad_profile_is_refused_with_what_to_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(**fields), SETTINGS)
    assert message in str(raised.value)


def test_a_known_profile_limit_refuses_an_item_with_too_many_names() -> None:
    limit = PROFILE_MAX_NAMES["tlsserver"]
    assert limit == 25
    assert len(parse_item(item(domains=names(limit), profile="tlsserver"), SETTINGS).domains) == limit
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(domains=names(limit + 1), profile="tlsserver"), SETTINGS)
    assert (
        "profile 'tlsserver' allows at most 25 names per certificate and domains has 26; split the names over"
        " several items, or use a profile that allows more" in str(raised.value)
    )
    # A profile of unknown limits (another CA's) is left to the CA; no profile, to the 100 names of any item.
    assert len(parse_item(item(domains=names(100), profile="custom"), SETTINGS).domains) == 100
    assert len(parse_item(item(domains=names(100)), SETTINGS).domains) == 100


def test_a_fallback_without_a_profile_is_a_warning() -> None:
    request = parse_item(item(profile_fallback=True), SETTINGS)
    assert request.warnings == ("profile_fallback has no effect without profile",)
    assert request.profile_fallback is False


# --- planning ------------------------------------------------------------------------------------


def test_the_new_fields_are_request_fields_hashed_only_when_set() -> None:
    assert {"profile", "profile_fallback"} <= set(REQUEST_FIELDS) & HASHED_WHEN_SET
    bare = item()
    for fields in (REQUEST_FIELDS, ISSUANCE_FIELDS):
        assert fingerprint(bare | {"profile": None, "profile_fallback": None}, fields, DIRECTORY_URL) == fingerprint(
            bare, fields, DIRECTORY_URL
        )


def test_a_profile_set_or_changed_reissues_and_the_fallback_does_not() -> None:
    issuance = {
        fingerprint(item(**profile), ISSUANCE_FIELDS, DIRECTORY_URL)
        for profile in ({}, {"profile": "tlsserver"}, {"profile": "shortlived"})
    }
    assert len(issuance) == 3
    with_profile = item(profile="tlsserver")
    with_fallback = with_profile | {"profile_fallback": True}
    assert fingerprint(with_fallback, ISSUANCE_FIELDS, DIRECTORY_URL) == fingerprint(
        with_profile, ISSUANCE_FIELDS, DIRECTORY_URL
    )
    # Still a request change: the failure count of the old request starts again.
    assert fingerprint(with_fallback, REQUEST_FIELDS, DIRECTORY_URL) != fingerprint(
        with_profile, REQUEST_FIELDS, DIRECTORY_URL
    )


def test_a_shortlived_certificate_renews_in_its_last_half() -> None:
    """Let's Encrypt's shortlived profile issues for 160 hours: under 10 days, so the 1/2 rule applies."""
    request = parse_item(item(profile="shortlived"), SETTINGS)
    not_before = datetime(2026, 1, 1, tzinfo=UTC)
    not_after = not_before + timedelta(hours=160)
    state = CertificateState(not_before=not_before, not_after=not_after)
    assert not window_decision(request, state, not_before + timedelta(hours=79)).due
    decision = window_decision(request, state, not_before + timedelta(hours=81))
    assert decision.due and "last half" in decision.reason

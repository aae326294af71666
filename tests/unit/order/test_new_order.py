"""newOrder's extensions (#6): the item's ACME profile, and ARI's `replaces` with its one retry without it.

A scripted client stands in for the CA: it records what each newOrder carried and answers from a script.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwk

from acme_renewer.errors import AcmeOrderError, ItemValidationError
from acme_renewer.inventory.policy import HASHED_WHEN_SET, ISSUANCE_FIELDS, REQUEST_FIELDS, fingerprint, window_decision
from acme_renewer.inventory.validation import PROFILE_MAX_NAMES, parse_item
from acme_renewer.models import CertificateRequest, CertificateState
from acme_renewer.order.account import AcmeSession, NewOrder
from acme_renewer.order.orders import begin, replaces_refused
from acme_renewer.settings import Settings
from tests.unit.order.test_acme_transport import ScriptedCa, network

SETTINGS = Settings(table_name="certificates", region="eu-west-1")
DIRECTORY_URL = "https://ca.test/directory"
PROFILES = {"classic": "90 days", "shortlived": "6 days", "tlsserver": "no CN"}
ARI_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
PREFIX = "urn:ietf:params:acme:error:"


@pytest.fixture
def sleeps() -> list[float]:
    return []


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


# --- newOrder: which profile, and replaces -----------------------------------------------------------


class ScriptedClient:
    """The part of AcmeClient that begin uses; each newOrder pops the next answer (an exception to raise)."""

    def __init__(self, directory: dict[str, Any], answers: list[Exception | None] | None = None) -> None:
        self.directory = messages.Directory.from_json({"newOrder": "https://ca.test/new-order", **directory})
        self.answers = list(answers or [])
        self.sent: list[dict[str, str | None]] = []

    def new_order(
        self, csr_pem: bytes, profile: str | None = None, replaces: str | None = None
    ) -> messages.OrderResource:
        self.sent.append({"profile": profile, "replaces": replaces})
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return messages.OrderResource(body=messages.Order(), uri="https://ca.test/order/1", authorizations=[])


def session(client: ScriptedClient) -> AcmeSession:
    key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    acct = "https://ca.test/acct/1"
    return AcmeSession(client=client, account_key=key, account_uri=acct, directory_url=DIRECTORY_URL)  # type: ignore[arg-type]


def request(**fields: object) -> CertificateRequest:
    return parse_item(item(**fields), SETTINGS)


def problem(kind: str, detail: str) -> messages.Error:
    refusal = messages.Error.from_json({"type": PREFIX + kind, "detail": detail})
    assert isinstance(refusal, messages.Error)
    return refusal


@pytest.mark.parametrize(
    ("meta", "fields", "sent"),
    [
        ({"profiles": PROFILES}, {"profile": "tlsserver"}, "tlsserver"),
        ({"profiles": PROFILES}, {}, None),
        ({}, {}, None),
        ({"profiles": PROFILES}, {"profile": "tlsserver", "profile_fallback": True}, "tlsserver"),
    ],
)
def test_an_offered_profile_is_ordered(meta: dict[str, Any], fields: dict[str, object], sent: str | None) -> None:
    client = ScriptedClient({"meta": meta})
    begin(session(client), request(**fields))
    assert client.sent == [{"profile": sent, "replaces": None}]


@pytest.mark.parametrize(
    ("meta", "offers"),
    [
        ({}, "it offers no profiles"),
        ({"profiles": {"shortlived": "", "classic": ""}}, "it offers: classic, shortlived"),
    ],
)
def test_a_profile_not_offered_fails_before_any_new_order(meta: dict[str, Any], offers: str) -> None:
    client = ScriptedClient({"meta": meta})
    with pytest.raises(AcmeOrderError) as raised:
        begin(session(client), request(profile="tlsserver"))
    assert str(raised.value) == (
        f"the CA at {DIRECTORY_URL} does not offer profile 'tlsserver' ({offers}); set profile_fallback true to"
        " order its default, or change profile"
    )
    assert client.sent == []


def test_a_profile_not_offered_with_the_fallback_orders_the_default(caplog: pytest.LogCaptureFixture) -> None:
    client = ScriptedClient({"meta": {"profiles": {"classic": ""}}})
    with caplog.at_level(logging.WARNING):
        begin(session(client), request(profile="tlsserver", profile_fallback=True))
    assert client.sent == [{"profile": None, "replaces": None}]
    warning = next(r for r in caplog.records if "does not offer the profile" in r.getMessage())
    assert warning.__dict__["offered"] == ["classic"]


ARI = {"renewalInfo": "https://ca.test/renewal-info"}


def test_replaces_is_sent_only_to_a_ca_with_ari() -> None:
    with_ari, without = ScriptedClient(ARI), ScriptedClient({})
    begin(session(with_ari), request(), replaces=ARI_ID)
    begin(session(without), request(), replaces=ARI_ID)
    assert with_ari.sent == [{"profile": None, "replaces": ARI_ID}]
    assert without.sent == [{"profile": None, "replaces": None}]


@pytest.mark.parametrize(
    "refusal",
    [
        problem("alreadyReplaced", "this certificate was already replaced"),
        problem("unauthorized", "requester account did not request the certificate being replaced by this order"),
        problem("malformed", "while parsing ARI CertID an error occurred"),
    ],
    ids=["alreadyReplaced", "unauthorized-account", "malformed-id"],
)
def test_a_refused_replaces_is_dropped_once(refusal: messages.Error, caplog: pytest.LogCaptureFixture) -> None:
    client = ScriptedClient({**ARI, "meta": {"profiles": PROFILES}}, [refusal])
    with caplog.at_level(logging.WARNING):
        opened = begin(session(client), request(profile="tlsserver"), replaces=ARI_ID)
    assert opened.resource.uri == "https://ca.test/order/1"
    assert client.sent == [{"profile": "tlsserver", "replaces": ARI_ID}, {"profile": "tlsserver", "replaces": None}]
    warning = next(r for r in caplog.records if "refused replaces" in r.getMessage())
    assert refusal.detail is not None and refusal.detail in warning.__dict__["error"]


def test_the_retry_without_replaces_happens_once_only() -> None:
    client = ScriptedClient(ARI, [problem("alreadyReplaced", "replaced"), problem("alreadyReplaced", "still")])
    with pytest.raises(AcmeOrderError, match=r"the CA refused the request \(newOrder\).*still"):
        begin(session(client), request(), replaces=ARI_ID)
    assert [sent["replaces"] for sent in client.sent] == [ARI_ID, None]


@pytest.mark.parametrize(
    "refusal",
    [
        problem("rateLimited", "too many new orders (replacement orders are exempt)"),
        problem("badNonce", "replaces stale nonce"),
        problem("unauthorized", "account is deactivated"),
        problem("malformed", "identifiers missing"),
        problem("rejectedIdentifier", "replaced names are forbidden"),
    ],
    ids=["rateLimited", "badNonce", "unauthorized-other", "malformed-other", "rejectedIdentifier"],
)
def test_other_refusals_are_not_retried(refusal: messages.Error) -> None:
    assert not replaces_refused(refusal)
    client = ScriptedClient(ARI, [refusal])
    with pytest.raises(AcmeOrderError):
        begin(session(client), request(), replaces=ARI_ID)
    assert len(client.sent) == 1


def test_a_refusal_without_replaces_is_not_retried() -> None:
    client = ScriptedClient(ARI, [problem("alreadyReplaced", "replaced")])
    with pytest.raises(AcmeOrderError):
        begin(session(client), request())
    assert len(client.sent) == 1


# --- on the wire -------------------------------------------------------------------------------------


def test_new_order_carries_replaces_only_when_given() -> None:
    identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="example.com")]
    plain = NewOrder(identifiers=identifiers, profile=None, replaces=None).to_json()
    assert json.loads(json.dumps(plain)) == json.loads(messages.NewOrder(identifiers=identifiers).json_dumps())
    full = json.loads(NewOrder(identifiers=identifiers, profile="tlsserver", replaces=ARI_ID).json_dumps())
    assert (full["profile"], full["replaces"]) == ("tlsserver", ARI_ID)


def test_a_409_problem_is_the_cas_refusal_and_a_409_with_location_stays_a_conflict(sleeps: list[float]) -> None:
    """RFC 9773 §5 sends alreadyReplaced as 409; acme would turn it into a bare ConflictError."""
    from acme import errors

    already = {"type": PREFIX + "alreadyReplaced", "detail": "already replaced by order 7"}
    ca = ScriptedCa(post=[(409, already, {}), (409, already, {"Location": "https://ca.test/acct/1"})])
    net = network(ca, sleeps)
    order = NewOrder(identifiers=(), replaces=ARI_ID)
    with pytest.raises(messages.Error) as raised:
        net.post("https://ca.test/new-order", order, new_nonce_url="https://ca.test/new-nonce")
    assert (raised.value.typ, raised.value.detail) == (PREFIX + "alreadyReplaced", "already replaced by order 7")
    assert replaces_refused(raised.value)
    with pytest.raises(errors.ConflictError):
        net.post("https://ca.test/new-order", order, new_nonce_url="https://ca.test/new-nonce")
    assert ca.count("POST") == 2


def test_a_409_without_a_problem_stays_a_conflict(sleeps: list[float]) -> None:
    from acme import errors

    ca = ScriptedCa(post=[(409, None, {})])
    with pytest.raises(errors.ConflictError):
        network(ca, sleeps).post("https://ca.test/x", NewOrder(identifiers=()), new_nonce_url="https://ca.test/n")

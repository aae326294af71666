"""Preflight rules without a network: CAA (RFC 8659), delegation and the _acme-challenge CNAME over a fake DNS."""

from __future__ import annotations

from typing import Any

import pytest

from acme_renewer.dns.preflight import (
    CaaRecord,
    CaIdentities,
    Level,
    Lookup,
    Preflight,
    RelevantCaa,
    Status,
    caa_finding,
    caa_search_names,
    challenge_finding,
    choose_identities,
    cname_chain,
    delegation_finding,
    parse_caa,
    parse_issue_value,
    parse_resolver_address,
    relevant_caa,
)
from acme_renewer.dns.route53 import HostedZone
from acme_renewer.errors import ConfigurationError

LETSENCRYPT = CaIdentities(("letsencrypt.org",), "test")
UNKNOWN = CaIdentities((), "unknown: the directory lists none")


class FakeDns:
    """Answers from a dict {(name, type): Lookup}; anything else is NXDOMAIN. Records what was asked."""

    def __init__(self, answers: dict[tuple[str, str], Lookup] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[tuple[str, str]] = []

    def lookup(self, name: str, rdtype: str) -> Lookup:
        self.asked.append((name, rdtype))
        return self.answers.get((name, rdtype), Lookup(Status.NXDOMAIN))


def caa(*values: str) -> Lookup:
    return Lookup(Status.FOUND, values)


def verdict(name: str, *values: str, identities: CaIdentities = LETSENCRYPT) -> tuple[Level, str]:
    found = caa_finding(name, RelevantCaa("example.com", tuple(parse_caa(v) for v in values)), identities)
    return found.level, found.detail


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('0 issue "letsencrypt.org"', CaaRecord(0, "issue", "letsencrypt.org")),
        ('128 ISSUEWILD ";"', CaaRecord(128, "issuewild", ";")),
        ('0 iodef "mailto:a\\"b@example.com"', CaaRecord(0, "iodef", 'mailto:a"b@example.com')),
        ('0 issue "ca\\046example"', CaaRecord(0, "issue", "ca.example")),  # dnspython's \DDD is decimal
        ('0 issue ""', CaaRecord(0, "issue", "")),
    ],
)
def test_caa_presentation_form_is_parsed(text: str, expected: CaaRecord) -> None:
    assert parse_caa(text) == expected


def test_issue_value_has_an_issuer_and_parameters() -> None:
    parsed = parse_issue_value(" LetsEncrypt.org. ; validationmethods=dns-01 ;accounturi=https://ca/acct/1")
    assert parsed.issuer == "letsencrypt.org"
    assert parsed.parameters == {"validationmethods": "dns-01", "accounturi": "https://ca/acct/1"}
    assert parse_issue_value(";").issuer is None


def test_the_search_climbs_to_the_tld_and_starts_at_a_wildcards_base() -> None:
    assert caa_search_names("www.Example.com.") == ["www.example.com", "example.com", "com"]
    assert caa_search_names("*.example.com") == ["example.com", "com"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
        ("localhost:5353", ("127.0.0.1", 5353)),
    ],
)
def test_resolver_address(text: str, expected: tuple[str, int]) -> None:
    if text.startswith("localhost"):
        assert parse_resolver_address(text)[1] == expected[1]
    else:
        assert parse_resolver_address(text) == expected


def test_resolver_address_with_a_bad_port_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="port 70000 is out of range"):
        parse_resolver_address("127.0.0.1:70000")


# --- the relevant CAA RRset ----------------------------------------------------------------------


def test_the_first_caa_rrset_up_the_tree_is_the_relevant_one() -> None:
    dns = FakeDns(
        {
            ("example.com", "CAA"): caa('0 issue "letsencrypt.org"'),
            ("com", "CAA"): caa('0 issue "never-asked.example"'),
        }
    )
    relevant = relevant_caa("a.b.example.com", dns)
    assert relevant.owner == "example.com"
    assert relevant.records == (CaaRecord(0, "issue", "letsencrypt.org"),)
    assert [name for name, _ in dns.asked] == ["a.b.example.com", "b.example.com", "example.com"]


def test_no_caa_anywhere_is_an_empty_relevant_set() -> None:
    dns = FakeDns({("example.com", "CAA"): Lookup(Status.NO_DATA)})
    relevant = relevant_caa("www.example.com", dns)
    assert (relevant.owner, relevant.error) == (None, None)
    assert relevant.searched == ("www.example.com", "example.com", "com")


def test_refused_above_the_answered_names_counts_as_no_caa() -> None:
    """An authoritative server as the resolver (the local stack's) refuses the TLD; that is not a failure."""
    dns = FakeDns({("com", "CAA"): Lookup(Status.REFUSED, error="refused")})
    assert relevant_caa("example.com", dns).error is None


@pytest.mark.parametrize("status", [Status.REFUSED, Status.ERROR])
def test_a_lookup_that_fails_before_any_answer_leaves_caa_unknown(status: Status) -> None:
    dns = FakeDns({("example.com", "CAA"): Lookup(status, error="no answer in time")})
    relevant = relevant_caa("example.com", dns)
    assert relevant.error == "no answer in time"
    assert caa_finding("example.com", relevant, LETSENCRYPT).level is Level.WARN


def test_a_timeout_halfway_up_leaves_caa_unknown() -> None:
    dns = FakeDns({("example.com", "CAA"): Lookup(Status.ERROR, error="timeout")})
    finding = caa_finding("www.example.com", relevant_caa("www.example.com", dns), LETSENCRYPT)
    assert finding.level is Level.WARN
    assert "timeout" in finding.detail


# --- may this CA issue? --------------------------------------------------------------------------


def test_no_caa_lets_any_ca_issue() -> None:
    finding = caa_finding("example.com", RelevantCaa(None, searched=("example.com", "com")), UNKNOWN)
    assert finding.level is Level.OK
    assert "no CAA record at example.com, com" in finding.detail


@pytest.mark.parametrize(
    ("name", "values", "level", "words"),
    [
        ("example.com", ['0 issue "letsencrypt.org"'], Level.OK, "allows letsencrypt.org"),
        ("example.com", ['0 ISSUE "LetsEncrypt.ORG"'], Level.OK, "allows letsencrypt.org"),
        ("example.com", ['0 issue "other-ca.example"'], Level.FAIL, "allows only other-ca.example"),
        ("example.com", ['0 issue "other-ca.example"', '0 issue "letsencrypt.org"'], Level.OK, "allows"),
        ("example.com", ['0 issue ";"'], Level.FAIL, "forbids every CA"),
        ("example.com", ['0 iodef "mailto:security@example.com"'], Level.OK, "no issue property"),
        # issuewild only concerns wildcard names ...
        ("example.com", ['0 issuewild "other-ca.example"'], Level.OK, "no issue property"),
        ("*.example.com", ['0 issuewild ";"', '0 issue "letsencrypt.org"'], Level.FAIL, "forbids every CA"),
        ("example.com", ['0 issuewild ";"', '0 issue "letsencrypt.org"'], Level.OK, "(issue)"),
        # ... and without issuewild a wildcard falls back to issue.
        ("*.example.com", ['0 issue "letsencrypt.org"'], Level.OK, "(issue)"),
        ("*.example.com", ['0 issue "other-ca.example"'], Level.FAIL, "allows only other-ca.example"),
        ("example.com", ['128 tbs "unknown"', '0 issue "letsencrypt.org"'], Level.FAIL, "critical property"),
        ("example.com", ['128 issue "letsencrypt.org"'], Level.OK, "allows letsencrypt.org"),
        # RFC 8657 parameters.
        ("example.com", ['0 issue "letsencrypt.org; validationmethods=http-01"'], Level.FAIL, "not with dns-01"),
        ("example.com", ['0 issue "letsencrypt.org; validationmethods=http-01,dns-01"'], Level.OK, "allows"),
        ("example.com", ['0 issue "letsencrypt.org; accounturi=https://ca/acct/1"'], Level.WARN, "account"),
    ],
)
def test_caa_verdicts(name: str, values: list[str], level: Level, words: str) -> None:
    found_level, detail = verdict(name, *values)
    assert found_level is level, detail
    assert words in detail


def test_restrictive_caa_with_unknown_identities_is_a_warning_that_says_why() -> None:
    level, detail = verdict("example.com", '0 issue "other-ca.example"', identities=UNKNOWN)
    assert level is Level.WARN
    assert "allows only other-ca.example" in detail
    assert "unknown: the directory lists none" in detail


def test_a_caa_that_forbids_every_ca_fails_even_with_unknown_identities() -> None:
    assert verdict("example.com", '0 issue ";"', identities=UNKNOWN)[0] is Level.FAIL


def test_the_directorys_identities_win_over_the_configured_ones() -> None:
    chosen = choose_identities(["LetsEncrypt.org"], None, ["other.example"])
    assert chosen.domains == ("letsencrypt.org",)
    assert "directory" in chosen.source
    assert choose_identities(None, None, ["", " pebble.letsencrypt.org"]).domains == ("pebble.letsencrypt.org",)
    assert choose_identities([], None, ["x.example"]).domains == ("x.example",)


def test_unknown_identities_say_why() -> None:
    unknown = choose_identities(None, "ConnectionError: refused", [""])
    assert unknown.domains == ()
    assert "could not be read: ConnectionError: refused" in unknown.source
    assert "--ca-identity" in unknown.source


# --- delegation ----------------------------------------------------------------------------------

ROUTE53_NS = ["ns-1.awsdns-01.com", "ns-2.awsdns-02.net"]


@pytest.mark.parametrize(
    ("seen", "level", "words"),
    [
        (Lookup(Status.FOUND, ("NS-2.awsdns-02.net.", "ns-1.awsdns-01.com.")), Level.OK, "is delegated to the hosted"),
        (Lookup(Status.FOUND, ("ns1.old-provider.example.",)), Level.FAIL, "not to this hosted zone"),
        (Lookup(Status.FOUND, ("ns-1.awsdns-01.com.", "ns1.old.example.")), Level.WARN, "partly other"),
        (Lookup(Status.NXDOMAIN), Level.FAIL, "does not exist in public DNS"),
        (Lookup(Status.NO_DATA), Level.FAIL, "not a delegated zone"),
        (Lookup(Status.ERROR, error="no answer in time"), Level.WARN, "could not check"),
    ],
)
def test_delegation(seen: Lookup, level: Level, words: str) -> None:
    finding = delegation_finding("example.com", ROUTE53_NS, seen)
    assert finding.level is level, finding.detail
    assert words in finding.detail


# --- the challenge name --------------------------------------------------------------------------

ZONE = HostedZone("Z1", "example.com")
RECORD = "_acme-challenge.www.example.com"


def test_no_cname_is_ok() -> None:
    chain, failed = cname_chain(RECORD, FakeDns())
    finding = challenge_finding(RECORD, ZONE, chain, failed)
    assert finding.level is Level.OK
    assert "hosted zone example.com" in finding.detail


def test_a_cname_is_reported_with_every_hop() -> None:
    dns = FakeDns(
        {
            (RECORD, "CNAME"): Lookup(Status.FOUND, ("_acme-challenge.www.validation.example.net.",)),
            ("_acme-challenge.www.validation.example.net", "CNAME"): Lookup(Status.FOUND, ("final.example.org.",)),
        }
    )
    chain, failed = cname_chain(RECORD, dns)
    assert chain == ["_acme-challenge.www.validation.example.net", "final.example.org"]
    finding = challenge_finding(RECORD, ZONE, chain, failed)
    assert finding.level is Level.FAIL
    assert "is a CNAME to _acme-challenge.www.validation.example.net -> final.example.org" in finding.detail


def test_a_cname_to_a_challenge_name_in_a_zone_of_the_account_is_ok() -> None:
    target = "_acme-challenge.www.validation.example.net"
    chain, failed = cname_chain(RECORD, FakeDns({(RECORD, "CNAME"): Lookup(Status.FOUND, (target + ".",))}))
    finding = challenge_finding(RECORD, ZONE, chain, failed, HostedZone("Z2", "validation.example.net"))
    assert finding.level is Level.OK
    assert f"is a CNAME to {target}: the TXT goes there, in hosted zone validation.example.net" in finding.detail
    assert challenge_finding(RECORD, ZONE, chain, failed).level is Level.FAIL  # no zone of ours holds the target


def test_a_cname_loop_ends() -> None:
    dns = FakeDns(
        {
            (RECORD, "CNAME"): Lookup(Status.FOUND, ("a.example.net.",)),
            ("a.example.net", "CNAME"): Lookup(Status.FOUND, ("a.example.net.",)),
        }
    )
    assert cname_chain(RECORD, dns) == (["a.example.net"], None)


def test_an_unanswered_cname_lookup_is_a_warning() -> None:
    dns = FakeDns({(RECORD, "CNAME"): Lookup(Status.ERROR, error="SERVFAIL")})
    finding = challenge_finding(RECORD, ZONE, *cname_chain(RECORD, dns))
    assert (finding.level, "SERVFAIL" in finding.detail) == (Level.WARN, True)


# --- the checks together, over moto's in-memory Route53 -----------------------------------------


def test_preflight_of_a_delegated_zone(route53: Any) -> None:
    zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="1")["HostedZone"]["Id"]
    name_servers = route53.get_hosted_zone(Id=zone_id)["DelegationSet"]["NameServers"]
    dns = FakeDns({("example.com", "NS"): Lookup(Status.FOUND, tuple(ns + "." for ns in name_servers))})
    preflight = Preflight(route53, dns, LETSENCRYPT)

    findings = {f.check: f for f in preflight.check("*.example.com") + preflight.check("example.com")}

    assert [f.level for f in findings.values()] == [Level.OK] * 4
    assert findings["zone"].detail == f"Route53 hosted zone example.com ({zone_id.rsplit('/', 1)[-1]})"
    assert dns.asked.count(("example.com", "NS")) == 1  # apex and wildcard share the zone's delegation check


def test_preflight_without_a_hosted_zone_fails_and_skips_the_delegation(route53: Any) -> None:
    findings = Preflight(route53, FakeDns(), UNKNOWN).check("www.nowhere.example")
    assert [(f.check, f.level) for f in findings] == [
        ("zone", Level.FAIL),
        ("CAA", Level.OK),
        ("challenge", Level.OK),
    ]
    assert "no public Route53 hosted zone contains '_acme-challenge.www.nowhere.example'" in findings[0].detail

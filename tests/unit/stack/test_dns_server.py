"""The local DNS server's answer logic, from Route53-shaped record sets, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from tests.stack.dns_server import Answer, Route53Resolver, ServedRoute53, Zones, answer, find_zone, txt_strings

SOA_VALUE = "ns-2048.awsdns-64.com. hostmaster.example.com. 1 7200 900 1209600 86400"


def record_set(name: str, rtype: str, *values: str, ttl: int = 60) -> dict[str, Any]:
    return {"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}


def zone(name: str, *record_sets: dict[str, Any]) -> list[dict[str, Any]]:
    return [record_set(name, "SOA", SOA_VALUE, ttl=900), record_set(name, "NS", "ns-2048.awsdns-64.com"), *record_sets]


ZONES: Zones = {
    "example.test.": zone(
        "example.test.",
        record_set("_acme-challenge.example.test.", "TXT", '"first"', '"two" "chunks"'),
        record_set("www.example.test.", "A", "192.0.2.1"),
        record_set("www.example.test.", "AAAA", "2001:db8::1"),
        record_set("example.test.", "CAA", '0 issue "letsencrypt.org"'),
        record_set("_acme-challenge.deep.below.example.test.", "TXT", '"x"'),
        record_set("_acme-challenge.x.example.test.", "CNAME", "_acme-challenge.delegated.test."),
        record_set("_acme-challenge.a.sub.example.test.", "TXT", '"from parent zone"'),
        record_set("hop1.example.test.", "CNAME", "hop2.example.test"),
        record_set("hop2.example.test.", "CNAME", "_acme-challenge.delegated.test."),
        record_set("loop1.example.test.", "CNAME", "loop2.example.test."),
        record_set("loop2.example.test.", "CNAME", "loop1.example.test."),
        record_set("away.example.test.", "CNAME", "somewhere.else.org."),
        record_set("dangling.example.test.", "CNAME", "missing.delegated.test."),
    ),
    "sub.example.test.": zone(
        "sub.example.test.",
        record_set("_acme-challenge.a.sub.example.test.", "TXT", '"from sub zone"'),
    ),
    "delegated.test.": zone(
        "delegated.test.",
        record_set("_acme-challenge.delegated.test.", "TXT", '"delegated"'),
    ),
}


def txt(result: Answer) -> list[str]:
    return result.values("TXT")


def test_txt_record_set_with_two_values_gives_two_records_one_with_two_strings() -> None:
    result = answer(ZONES, "_acme-challenge.example.test", "TXT")
    assert result.rcode == RCODE.NOERROR
    assert [rr.rdata.data for rr in result.answer] == [[b"first"], [b"two", b"chunks"]]


def test_names_match_case_insensitively_with_or_without_trailing_dot() -> None:
    result = answer(ZONES, "_ACME-Challenge.Example.TEST.", "txt")
    assert [rr.rdata.data for rr in result.answer] == [[b"first"], [b"two", b"chunks"]]


@pytest.mark.parametrize(
    ("rtype", "expected"),
    [
        ("A", ["192.0.2.1"]),
        ("AAAA", ["2001:db8::1"]),
    ],
)
def test_address_records(rtype: str, expected: list[str]) -> None:
    assert answer(ZONES, "www.example.test", rtype).values(rtype) == expected


def test_caa_ns_and_soa_at_the_apex() -> None:
    assert answer(ZONES, "example.test", "CAA").values("CAA") == ['0 issue "letsencrypt.org"']
    assert answer(ZONES, "example.test", "NS").values("NS") == ["ns-2048.awsdns-64.com."]
    assert answer(ZONES, "example.test", "SOA").values("SOA") == [SOA_VALUE]


def test_moto_soa_value_wrapped_in_a_dict_repr_is_unwrapped() -> None:
    zones = {"quirk.test.": [record_set("quirk.test.", "SOA", repr({"Value": SOA_VALUE}))]}
    assert answer(zones, "quirk.test", "SOA").values("SOA") == [SOA_VALUE]


def test_longest_zone_wins() -> None:
    assert txt(answer(ZONES, "_acme-challenge.a.sub.example.test", "TXT")) == ['"from sub zone"']


def test_zone_match_is_label_wise() -> None:
    assert find_zone(["b.test.", "test."], "ab.test.") == "test."
    assert find_zone(["b.test."], "ab.test.") is None
    assert find_zone(["Example.Test"], "EXAMPLE.test.") == "example.test."


def test_cname_is_returned_and_followed_into_another_zone() -> None:
    result = answer(ZONES, "_acme-challenge.x.example.test", "TXT")
    assert result.rcode == RCODE.NOERROR
    assert [QTYPE[rr.rtype] for rr in result.answer] == ["CNAME", "TXT"]
    assert result.values("CNAME") == ["_acme-challenge.delegated.test."]
    assert txt(result) == ['"delegated"']


def test_cname_chain_is_followed() -> None:
    result = answer(ZONES, "hop1.example.test", "TXT")
    assert [QTYPE[rr.rtype] for rr in result.answer] == ["CNAME", "CNAME", "TXT"]


def test_asking_for_the_cname_itself_does_not_follow_it() -> None:
    result = answer(ZONES, "_acme-challenge.x.example.test", "CNAME")
    assert [QTYPE[rr.rtype] for rr in result.answer] == ["CNAME"]


def test_cname_loop_stops() -> None:
    result = answer(ZONES, "loop1.example.test", "TXT")
    assert result.rcode == RCODE.NOERROR
    assert result.values("CNAME") == ["loop2.example.test.", "loop1.example.test."]


def test_cname_chain_longer_than_the_hop_limit_stops() -> None:
    chain = [record_set(f"h{i}.long.test.", "CNAME", f"h{i + 1}.long.test.") for i in range(20)]
    result = answer({"long.test.": chain}, "h0.long.test", "TXT")
    assert len(result.answer) == 9  # the name asked plus 8 hops


def test_cname_out_of_our_zones_gives_just_the_cname() -> None:
    result = answer(ZONES, "away.example.test", "TXT")
    assert (result.rcode, result.values("CNAME")) == (RCODE.NOERROR, ["somewhere.else.org."])


def test_cname_to_a_missing_name_is_nxdomain_with_the_cname() -> None:
    result = answer(ZONES, "dangling.example.test", "TXT")
    assert (result.rcode, result.values("CNAME")) == (RCODE.NXDOMAIN, ["missing.delegated.test."])


def test_existing_name_without_that_type_is_nodata_with_soa() -> None:
    result = answer(ZONES, "www.example.test", "TXT")
    assert (result.rcode, result.answer) == (RCODE.NOERROR, ())
    assert [QTYPE[rr.rtype] for rr in result.authority] == ["SOA"]


def test_empty_non_terminal_is_nodata_not_nxdomain() -> None:
    result = answer(ZONES, "below.example.test", "TXT")
    assert (result.rcode, result.answer) == (RCODE.NOERROR, ())


def test_missing_name_is_nxdomain_with_soa() -> None:
    result = answer(ZONES, "_acme-challenge.nothing.example.test", "TXT")
    assert result.rcode == RCODE.NXDOMAIN
    assert [QTYPE[rr.rtype] for rr in result.authority] == ["SOA"]


def test_name_outside_every_zone_is_refused() -> None:
    assert answer(ZONES, "example.org", "TXT").rcode == RCODE.REFUSED


@pytest.mark.parametrize(
    ("value", "strings"),
    [
        ('"abc"', [b"abc"]),
        ('"a" "b"', [b"a", b"b"]),
        ('"with space" unquoted', [b"with space", b"unquoted"]),
        (r'"say \"hi\" \\ ok"', [b'say "hi" \\ ok']),
        (r'"star \052"', [b"star *"]),  # Route53 writes octal codes
        ('""', [b""]),
    ],
)
def test_txt_strings(value: str, strings: list[bytes]) -> None:
    assert txt_strings(value) == strings


@pytest.mark.parametrize("value", ['"unterminated', '"' + "x" * 256 + '"'])
def test_txt_strings_rejects_what_route53_would(value: str) -> None:
    with pytest.raises(ValueError):
        txt_strings(value)


class StaticZones:
    def __init__(self, zones: Zones) -> None:
        self._zones = zones

    def zones(self) -> Zones:
        return self._zones


class FailingZones:
    def zones(self) -> Zones:
        raise ConnectionError("moto is down")


def resolve(resolver: Route53Resolver, qname: str, qtype: str) -> Any:
    return resolver.resolve(DNSRecord.question(qname, qtype), handler=None)


def test_resolver_builds_an_authoritative_reply() -> None:
    reply = resolve(Route53Resolver(StaticZones(ZONES)), "_acme-challenge.example.test", "TXT")
    assert (reply.header.rcode, reply.header.aa, len(reply.rr)) == (RCODE.NOERROR, 1, 2)
    refused = resolve(Route53Resolver(StaticZones(ZONES)), "example.org", "TXT")
    assert (refused.header.rcode, refused.header.aa) == (RCODE.REFUSED, 0)


def test_resolver_answers_servfail_when_moto_cannot_be_read() -> None:
    reply = resolve(Route53Resolver(FailingZones()), "_acme-challenge.example.test", "TXT")
    assert reply.header.rcode == RCODE.SERVFAIL


def test_resolver_fault_hook_overrides_the_answer() -> None:
    resolver = Route53Resolver(
        StaticZones(ZONES), fault=lambda qname, qtype: RCODE.SERVFAIL if qname.startswith("_acme") else None
    )
    assert resolve(resolver, "_acme-challenge.example.test", "TXT").header.rcode == RCODE.SERVFAIL
    assert resolve(resolver, "www.example.test", "A").header.rcode == RCODE.NOERROR


class FakeServedZones:
    """moto's private served view, with a log of which zones' record sets were read."""

    def __init__(self, zones: list[dict[str, str]], record_sets: dict[str, list[dict[str, Any]]]) -> None:
        self.zones = zones
        self.record_sets = record_sets
        self.read: list[str] = []

    def served_zones(self) -> list[dict[str, str]]:
        return self.zones

    def served_record_sets(self, zone_id: str) -> list[dict[str, Any]]:
        self.read.append(zone_id)
        return self.record_sets[zone_id]


def test_served_route53_reads_only_the_zones_a_query_touches_and_the_first_of_two_namesakes() -> None:
    served = FakeServedZones(
        [
            {"Name": "Example.TEST.", "Id": "Z1"},
            {"Name": "example.test.", "Id": "Z2"},  # same name again: the first one wins, as with moto's listing
            {"Name": "other.test.", "Id": "Z3"},
        ],
        {"Z1": zone("example.test.", record_set("www.example.test.", "A", "192.0.2.7")), "Z2": [], "Z3": []},
    )
    reply = resolve(Route53Resolver(ServedRoute53(served)), "www.example.test", "A")
    assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.7"]
    assert served.read == ["Z1"]


WILD: Zones = {
    "wild.test.": zone(
        "wild.test.",
        record_set("\\052.wild.test.", "CNAME", "lb.elsewhere.org."),  # Route53 lists `*` as \052
        record_set("www.wild.test.", "A", "192.0.2.7"),
        record_set("_acme-challenge.own.wild.test.", "TXT", '"own"'),
    )
}


def test_a_name_that_does_not_exist_is_answered_from_the_wildcard_at_its_closest_encloser() -> None:
    result = answer(WILD, "_acme-challenge.api.wild.test", "TXT")  # api.wild.test does not exist: *.wild.test
    assert result.rcode == RCODE.NOERROR and result.values("CNAME") == ["lb.elsewhere.org."]
    assert [str(rr.rname) for rr in result.answer] == ["_acme-challenge.api.wild.test."]  # the name is the owner
    # A name of its own wins over the wildcard, and www.wild.test exists, so *.wild.test does not cover names below.
    assert txt(answer(WILD, "_acme-challenge.own.wild.test", "TXT")) == ['"own"']
    assert answer(WILD, "_acme-challenge.www.wild.test", "TXT").rcode == RCODE.NXDOMAIN

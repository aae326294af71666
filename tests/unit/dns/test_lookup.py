"""Which challenge names hold nothing, asked of the zones' name servers: the fake servers here answer from a dict."""

from __future__ import annotations

import pytest

from acme_renewer.dns.lookup import WILDCARD_PROBE_LABEL, FixedZoneNameservers, NameAnswer, NameLookup, ZoneNameservers
from acme_renewer.dns.propagation import Nameserver
from acme_renewer.dns.route53 import HostedZone
from acme_renewer.errors import DnsPropagationError

ONE = HostedZone("Z1", "one.test")
TWO = HostedZone("Z2", "two.test")
NS1 = Nameserver("ns1", "192.0.2.1")
NS2 = Nameserver("ns2", "192.0.2.2")


EMPTY, OTHER = NameAnswer(empty=True), NameAnswer()


class Servers:
    """ask_name as servers would answer it: `answers[(server, name)]`, True for nothing there, False for something
    else, a string for a CNAME's target; a missing key as no reply."""

    def __init__(self, answers: dict[tuple[Nameserver, str], bool | str]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    def __call__(self, server: Nameserver, name: str, timeout: float) -> NameAnswer | None:
        self.asked.append((server.host, name))
        answer = self.answers.get((server, name))
        if answer is None:
            return None
        if isinstance(answer, str):
            return NameAnswer(cname=answer)
        return EMPTY if answer else OTHER


def test_only_names_a_server_says_hold_nothing_are_empty() -> None:
    names = {"_acme-challenge.a.one.test": True, "_acme-challenge.b.one.test": False, "_acme-challenge.two.test": True}
    servers = Servers({(NS1, name): empty for name, empty in names.items()})
    lookup = NameLookup(lambda zone: [NS1], ask=servers)
    pairs = [(ONE if ".one." in name else TWO, name) for name in names]
    assert lookup.empty(pairs) == {("Z1", "_acme-challenge.a.one.test"), ("Z2", "_acme-challenge.two.test")}


def test_a_server_that_does_not_reply_is_passed_over_for_the_zones_next() -> None:
    name, other = "_acme-challenge.a.one.test", "_acme-challenge.b.one.test"
    servers = Servers({(NS2, name): True, (NS2, other): True})
    lookup = NameLookup(lambda zone: [NS1, NS2], ask=servers)
    assert lookup.empty([(ONE, name), (ONE, other)]) == {("Z1", name), ("Z1", other)}
    assert servers.asked == [("ns1", name), ("ns2", name), ("ns2", other)]  # ns1 is not asked again


def test_when_no_server_answers_dns_is_not_asked_again_in_the_run() -> None:
    servers = Servers({})
    lookup = NameLookup(lambda zone: [NS1, NS2], ask=servers)
    assert lookup.empty([(ONE, "_acme-challenge.one.test"), (TWO, "_acme-challenge.two.test")]) == set()
    asked = len(servers.asked)
    assert lookup.empty([(ONE, "_acme-challenge.x.one.test")]) == set()
    assert len(servers.asked) == asked


def test_a_zone_whose_servers_cannot_be_found_is_left_to_route53() -> None:
    def servers_of(zone: HostedZone) -> list[Nameserver]:
        if zone is ONE:
            raise DnsPropagationError("cannot find the name servers of one.test")
        return [NS1]

    servers = Servers({(NS1, "_acme-challenge.two.test"): True})
    lookup = NameLookup(servers_of, ask=servers)
    pairs = [(ONE, "_acme-challenge.one.test"), (TWO, "_acme-challenge.two.test")]
    assert lookup.empty(pairs) == {("Z2", "_acme-challenge.two.test")}
    assert lookup.empty([(ONE, "_acme-challenge.one.test"), (TWO, "_acme-challenge.two.test")])  # still asked


class Resolver:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def nameserver_hosts(self, zone_name: str) -> list[str]:
        self.asked.append(zone_name)
        if zone_name == "lame.test":
            raise DnsPropagationError("no NS for lame.test")
        return ["ns-1.awsdns-01.org.", "NS-2.awsdns-02.com."]

    def addresses(self, host: str) -> list[str]:
        self.asked.append(host)
        if host == "ns-1.awsdns-01.org":
            raise DnsPropagationError("cannot resolve ns-1.awsdns-01.org")
        return ["192.0.2.53"]


def test_a_zones_servers_are_its_public_ns_resolved_once_per_zone() -> None:
    resolver = Resolver()
    servers_of = ZoneNameservers(resolver)  # type: ignore[arg-type]
    assert servers_of(ONE) == (Nameserver("ns-2.awsdns-02.com", "192.0.2.53"),)  # the unresolvable host left out
    assert servers_of(ONE) == servers_of(ONE)
    assert resolver.asked == ["one.test", "ns-1.awsdns-01.org", "ns-2.awsdns-02.com"]
    with pytest.raises(DnsPropagationError, match=r"no NS for lame\.test"):
        servers_of(HostedZone("Z3", "lame.test"))


def test_fixed_servers_serve_every_zone() -> None:
    servers_of = FixedZoneNameservers([("127.0.0.1", 5353)])
    assert servers_of(ONE) == servers_of(TWO) == (Nameserver("127.0.0.1", "127.0.0.1", 5353),)


def test_an_explicit_cname_is_told_and_a_wildcards_is_not() -> None:
    explicit, target = "_acme-challenge.a.one.test", "_acme-challenge.a.validation.test"
    under_wildcard = "_acme-challenge.www.two.test"
    servers = Servers(
        {
            (NS1, explicit): target,
            (NS1, f"{WILDCARD_PROBE_LABEL}.a.one.test"): True,  # nothing beside it: the CNAME is the name's own
            (NS1, under_wildcard): "lb.two.test",
            (NS1, f"{WILDCARD_PROBE_LABEL}.www.two.test"): "lb.two.test",  # *.two.test CNAME lb.two.test
        }
    )
    lookup = NameLookup(lambda zone: [NS1], ask=servers)
    told = lookup.look([(ONE, explicit), (TWO, under_wildcard)])
    assert told == {("Z1", explicit): NameAnswer(cname=target)}


def test_the_wildcard_probe_is_asked_once_per_parent() -> None:
    names = [f"_acme-challenge.{label}.one.test" for label in ("a", "b")]
    servers = Servers({(NS1, name): "_acme-challenge.x.validation.test" for name in names})
    servers.answers[NS1, f"{WILDCARD_PROBE_LABEL}.a.one.test"] = True
    servers.answers[NS1, f"{WILDCARD_PROBE_LABEL}.b.one.test"] = True
    lookup = NameLookup(lambda zone: [NS1], ask=servers)
    assert len(lookup.look([(ONE, name) for name in names * 2])) == 2
    assert sum(WILDCARD_PROBE_LABEL in name for _, name in servers.asked) == 2

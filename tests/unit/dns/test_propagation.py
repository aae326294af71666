"""The authoritative propagation check over fake nameservers and a fake clock: rounds, backoff, the timeout message,
nameserver discovery from moto's Route53, and the PROPAGATION_CHECK_* settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from acme_renewer.dns.propagation import (
    FixedNameservers,
    Nameserver,
    PropagationCheck,
    Route53Nameservers,
    TxtAnswer,
    build_propagation_check,
)
from acme_renewer.errors import ConfigurationError, DnsPropagationError
from acme_renewer.settings import PropagationMode, PropagationSettings, parse_server, parse_servers

NS_A = Nameserver("ns-a.example.net", "192.0.2.1")
NS_B = Nameserver("ns-b.example.net", "192.0.2.2")
APEX = "_acme-challenge.example.test"
WWW = "_acme-challenge.www.example.test"


class FakeDns:
    """What each server serves, changed by the test between rounds; counts the queries of each round."""

    def __init__(self, served: dict[Nameserver, dict[str, set[str]]]) -> None:
        self.served = served
        self.silent: set[Nameserver] = set()
        self.asked: list[tuple[Nameserver, str]] = []
        self._lock = threading.Lock()

    def serve(self, server: Nameserver, name: str, *values: str) -> None:
        self.served.setdefault(server, {})[name] = set(values)

    def query(self, server: Nameserver, name: str, timeout: float) -> TxtAnswer:
        with self._lock:
            self.asked.append((server, name))
        if server in self.silent:
            return TxtAnswer(problem=f"no reply in {timeout:g} s", answered=False)
        values = self.served.get(server, {}).get(name)
        return TxtAnswer(frozenset(values)) if values is not None else TxtAnswer(problem="NXDOMAIN")


class FakeTime:
    """A clock that moves only when slept; `on_sleep` lets a test change the DNS between rounds."""

    def __init__(self, dns: FakeDns) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.queries_per_round: list[int] = []
        self.dns = dns
        self.on_sleep: dict[int, Callable[[], None]] = {}  # sleep number (1-based) -> what changes after it

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.queries_per_round.append(len(self.dns.asked) - sum(self.queries_per_round))
        self.sleeps.append(seconds)
        self.now += seconds
        if (hook := self.on_sleep.get(len(self.sleeps))) is not None:
            hook()


def check_for(dns: FakeDns, time: FakeTime, *, timeout: float = 120.0) -> PropagationCheck:
    return PropagationCheck(
        nameservers_for_zone=lambda zone_id: [NS_A, NS_B],
        timeout_seconds=timeout,
        sleep=time.sleep,
        clock=time.clock,
        query=dns.query,
    )


def both_serving(values: dict[str, set[str]]) -> FakeDns:
    return FakeDns({NS_A: {k: set(v) for k, v in values.items()}, NS_B: {k: set(v) for k, v in values.items()}})


def test_all_visible_at_once_costs_one_query_per_server_and_name() -> None:
    dns = both_serving({APEX: {"apex", "wild", "someone-elses"}, WWW: {"www"}})
    time = FakeTime(dns)

    waited = check_for(dns, time).wait_visible("Z1", {APEX: ["apex", "wild"], WWW: ["www"]})

    assert waited == 0.0
    assert time.sleeps == []
    assert sorted(dns.asked, key=str) == sorted([(NS_A, APEX), (NS_A, WWW), (NS_B, APEX), (NS_B, WWW)], key=str)


def test_a_lagging_server_is_polled_alone_until_it_catches_up() -> None:
    dns = both_serving({APEX: {"apex"}, WWW: {"www"}})
    dns.served[NS_B].pop(WWW)
    time = FakeTime(dns)
    time.on_sleep[2] = lambda: dns.serve(NS_B, WWW, "www")

    waited = check_for(dns, time).wait_visible("Z1", {APEX: ["apex"], WWW: ["www"]})

    # Round 1: 2 servers x 2 names; then only (ns-b, www) until it shows up in round 3.
    assert time.queries_per_round == [4, 1]
    assert dns.asked[-1] == (NS_B, WWW)
    assert len(dns.asked) == 6
    assert time.sleeps == [0.5, 1.0]
    assert waited == 1.5


def test_values_seen_once_stay_seen() -> None:
    """Apex and wildcard need two values on one name; a server showing each in a different round has served both."""
    dns = both_serving({APEX: {"apex"}})
    time = FakeTime(dns)

    def rotate() -> None:
        for server in (NS_A, NS_B):
            dns.serve(server, APEX, "wild")

    time.on_sleep[1] = rotate

    waited = check_for(dns, time).wait_visible("Z1", {APEX: ["apex", "wild"]})

    assert waited == 0.5
    assert time.queries_per_round == [2]
    assert len(dns.asked) == 4


def test_names_are_compared_lowercase_without_the_trailing_dot() -> None:
    dns = both_serving({APEX: {"apex"}})
    time = FakeTime(dns)

    check_for(dns, time).wait_visible("Z1", {"_ACME-Challenge.Example.TEST.": ["apex"]})

    assert {name for _, name in dns.asked} == {APEX}


def test_timeout_names_the_lagging_server_and_name_only() -> None:
    dns = both_serving({APEX: {"apex"}, WWW: {"www"}})
    dns.served[NS_B].pop(WWW)
    dns.serve(NS_A, APEX, "stale")
    time = FakeTime(dns)

    with pytest.raises(DnsPropagationError) as raised:
        check_for(dns, time, timeout=10).wait_visible("Z1", {APEX: ["apex"], WWW: ["www"]})

    message = str(raised.value)
    assert "hosted zone Z1 after 10 s" in message
    assert "ns-b.example.net (192.0.2.2:53): _acme-challenge.www.example.test [1 of 1 values missing: NXDOMAIN]" in (
        message
    )
    assert "ns-a.example.net (192.0.2.1:53): _acme-challenge.example.test [1 of 1 values missing: not among" in (
        message
    )
    assert message.count("_acme-challenge") == 2
    assert sum(time.sleeps) == 10


def test_backoff_doubles_to_a_cap_and_the_last_round_runs_at_the_deadline() -> None:
    dns = FakeDns({})
    time = FakeTime(dns)

    with pytest.raises(DnsPropagationError):
        check_for(dns, time, timeout=30).wait_visible("Z1", {APEX: ["apex"]})

    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 2.5]
    assert len(dns.asked) == 2 * (len(time.sleeps) + 1)


def test_a_silent_server_is_asked_one_name_per_round() -> None:
    names = {f"_acme-challenge.n{i}.example.test": {f"v{i}"} for i in range(20)}
    dns = both_serving(names)
    dns.silent.add(NS_B)
    time = FakeTime(dns)

    with pytest.raises(DnsPropagationError) as raised:
        check_for(dns, time, timeout=1).wait_visible("Z1", {k: list(v) for k, v in names.items()})

    # Round 1: 20 names on ns-a and one on ns-b, which did not reply; rounds 2 and 3: ns-b once each.
    assert time.queries_per_round == [21, 1]
    assert len(dns.asked) == 23
    message = str(raised.value)
    assert "ns-a" not in message
    assert "no reply in 2 s" in message
    assert "not asked: the server did not reply" in message
    assert "and 15 more" in message  # 20 names, 5 shown


def test_nothing_expected_asks_nobody() -> None:
    def no_discovery(zone_id: str) -> list[Nameserver]:
        raise AssertionError("discovery should not run")

    check = PropagationCheck(nameservers_for_zone=no_discovery, query=FakeDns({}).query)
    assert check.wait_visible("Z1", {}) == 0.0


def test_a_zone_without_nameservers_is_an_error() -> None:
    check = PropagationCheck(nameservers_for_zone=lambda zone_id: [], query=FakeDns({}).query)
    with pytest.raises(DnsPropagationError, match="no authoritative nameservers known for hosted zone Z1"):
        check.wait_visible("Z1", {APEX: ["apex"]})


# --- discovery -----------------------------------------------------------------------------------


class FakeResolver:
    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.table = addresses
        self.asked: list[str] = []

    def addresses(self, host: str) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise DnsPropagationError(f"cannot resolve nameserver {host}")
        return self.table[host]


def test_discovery_resolves_the_delegation_set_once_per_zone(route53: Any) -> None:
    zone_id = route53.create_hosted_zone(Name="example.test", CallerReference="1")["HostedZone"]["Id"]
    hosts = route53.get_hosted_zone(Id=zone_id)["DelegationSet"]["NameServers"]
    resolver = FakeResolver({host: [f"192.0.2.{i}"] for i, host in enumerate(hosts, start=1)})
    discover = Route53Nameservers(route53, resolver=resolver)

    servers = discover(zone_id)
    again = discover(zone_id.removeprefix("/hostedzone/"))

    assert servers == tuple(Nameserver(host, f"192.0.2.{i}") for i, host in enumerate(hosts, start=1))
    assert again == servers
    assert resolver.asked == hosts


def test_a_private_zone_has_no_nameservers_to_check(route53: Any) -> None:
    zone_id = route53.create_hosted_zone(
        Name="internal.test",
        CallerReference="2",
        VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-1"},
        HostedZoneConfig={"PrivateZone": True, "Comment": ""},
    )["HostedZone"]["Id"]

    with pytest.raises(DnsPropagationError, match="has no delegation set"):
        Route53Nameservers(route53, resolver=FakeResolver({}))(zone_id)


def test_an_unresolvable_nameserver_is_an_error(route53: Any) -> None:
    zone_id = route53.create_hosted_zone(Name="example.test", CallerReference="3")["HostedZone"]["Id"]

    with pytest.raises(DnsPropagationError, match=r"cannot resolve nameserver ns-2048\.awsdns-64\.com"):
        Route53Nameservers(route53, resolver=FakeResolver({}))(zone_id)


def test_fixed_nameservers_serve_every_zone() -> None:
    fixed = FixedNameservers([("127.0.0.1", 5353), ("::1", 53)])
    assert fixed("Z1") == fixed("Z2") == (Nameserver("127.0.0.1", "127.0.0.1", 5353), Nameserver("::1", "::1"))
    assert [str(server) for server in fixed("Z1")] == ["127.0.0.1:5353", "[::1]:53"]


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        (" 127.0.0.1:5353 ", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("[2001:DB8::1]", ("2001:db8::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_parse_server(text: str, parsed: tuple[str, int]) -> None:
    assert parse_server(text) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ns1.example.com", "'ns1.example.com' in 'ns1.example.com' is not an IP address"),
        ("ns1.example.com:53", "is not an IP address"),
        ("127.0.0.1:", "port '' in '127.0.0.1:' must be a number from 1 to 65535"),
        ("127.0.0.1:65536", "must be a number from 1 to 65535"),
        ("127.0.0.1:0", "must be a number from 1 to 65535"),
        ("127.0.0.1:dns", "must be a number from 1 to 65535"),
        ("[::1]:x", "must be a number from 1 to 65535"),
        ("[127.0.0.1]:53", "puts an IPv4 address in brackets"),
        ("[::1", "is not an IP address with an optional port"),
        ("2001:db8::1:53:x", "is not an IP address with an optional port"),
    ],
)
def test_parse_server_rejects(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^PROPAGATION_CHECK_RESOLVER: ") as raised:
        parse_server(text, variable="PROPAGATION_CHECK_RESOLVER")
    assert problem in str(raised.value)


def test_parse_servers_ignores_empty_entries_and_repeats() -> None:
    assert parse_servers("127.0.0.1:5353, ,[::1],127.0.0.1:5353,") == (("127.0.0.1", 5353), ("::1", 53))
    assert parse_servers("") == ()


def test_settings_default_to_off() -> None:
    assert PropagationSettings.from_env({}) == PropagationSettings(PropagationMode.OFF, None, ())


def test_settings_from_env() -> None:
    settings = PropagationSettings.from_env(
        {
            "PROPAGATION_CHECK": " Authoritative ",
            "PROPAGATION_CHECK_RESOLVER": "10.0.0.2",
            "PROPAGATION_CHECK_NAMESERVERS": "127.0.0.1:5353,[::1]:5353",
        }
    )
    assert settings == PropagationSettings(
        PropagationMode.AUTHORITATIVE, ("10.0.0.2", 53), (("127.0.0.1", 5353), ("::1", 5353))
    )


def test_settings_reject_an_unknown_mode_and_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PROPAGATION_CHECK must be 'off' or 'authoritative', got 'on'"):
        PropagationSettings.from_env({"PROPAGATION_CHECK": "on"})
    with pytest.raises(ConfigurationError, match=r"^PROPAGATION_CHECK_NAMESERVERS: 'ns1\.example' in"):
        PropagationSettings.from_env({"PROPAGATION_CHECK_NAMESERVERS": "127.0.0.1,ns1.example"})


def test_build_gives_nothing_when_off_and_a_check_when_authoritative(route53: Any) -> None:
    assert build_propagation_check(PropagationSettings(), route53) is None
    fixed = PropagationSettings(PropagationMode.AUTHORITATIVE, nameservers=(("127.0.0.1", 5353),))
    assert isinstance(build_propagation_check(fixed, route53), PropagationCheck)
    discovered = PropagationSettings(PropagationMode.AUTHORITATIVE, resolver=("127.0.0.1", 5353))
    assert isinstance(build_propagation_check(discovered, route53), PropagationCheck)

"""The authoritative propagation check against the local stack: values written to moto's Route53 are seen on our DNS
server, a name never written times out with the server and name in the error, and NS host names resolve through it."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dns.query
import pytest

from acme_renewer.dns.challenge import merge_values
from acme_renewer.dns.propagation import (
    FixedNameservers,
    Nameserver,
    PropagationCheck,
    PropagationMode,
    PropagationSettings,
    Route53Nameservers,
    StubResolver,
    build_propagation_check,
    format_server,
)
from acme_renewer.dns.route53 import Route53Dns
from acme_renewer.errors import DnsPropagationError
from acme_renewer.models import TxtRecord
from tests.stack import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture
def zone(stack: LocalStack) -> tuple[str, str]:
    """(zone id, zone name) of a fresh public zone, so that tests share no names."""
    name = f"propagation-{uuid.uuid4().hex[:8]}.test"
    return stack.create_hosted_zone(name), name


def check_against(stack: LocalStack, timeout: float) -> PropagationCheck:
    """The check as the function builds it with PROPAGATION_CHECK_NAMESERVERS set to our DNS server."""
    settings = PropagationSettings(PropagationMode.AUTHORITATIVE, nameservers=(stack.dns_address,))
    check = build_propagation_check(settings, stack.client("route53"), timeout_seconds=timeout)
    assert check is not None
    return check


def test_values_published_through_route53_are_seen(stack: LocalStack, zone: tuple[str, str]) -> None:
    zone_id, zone_name = zone
    records = [
        TxtRecord(f"_acme-challenge.{zone_name}", "apex-" + "a" * 38),
        TxtRecord(f"_acme-challenge.{zone_name}", "wild-" + "b" * 38),
        *(TxtRecord(f"_acme-challenge.host{i}.{zone_name}", f"value-{i}") for i in range(30)),
    ]
    Route53Dns(stack.client("route53")).publish(records)

    waited = check_against(stack, timeout=10).wait_visible(zone_id, merge_values(records))

    assert waited < 5


def test_a_name_never_written_times_out_naming_server_and_name(stack: LocalStack, zone: tuple[str, str]) -> None:
    zone_id, zone_name = zone
    written = TxtRecord(f"_acme-challenge.{zone_name}", "written")
    other_value = TxtRecord(f"_acme-challenge.other.{zone_name}", "someone-elses")
    Route53Dns(stack.client("route53")).publish([written, other_value])
    never = f"_acme-challenge.never.{zone_name}"
    began = time.monotonic()

    with pytest.raises(DnsPropagationError) as raised:
        check_against(stack, timeout=1).wait_visible(
            zone_id, {written.name: [written.value], never: ["missing"], other_value.name: ["ours"]}
        )

    assert time.monotonic() - began < 5
    message = str(raised.value)
    assert f"{format_server(*stack.dns_address)}: " in message
    assert f"{never} [1 of 1 values missing: NXDOMAIN]" in message
    assert f"{other_value.name} [1 of 1 values missing: not among its values]" in message
    assert f"{written.name} " not in message


def test_a_large_answer_is_read_over_tcp(
    stack: LocalStack, zone: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 values of ACME size do not fit a 1232-byte UDP reply: the server truncates and the query retries on TCP."""
    zone_id, zone_name = zone
    name = f"_acme-challenge.many.{zone_name}"
    records = [TxtRecord(name, f"{i:02d}" + "x" * 41) for i in range(60)]
    Route53Dns(stack.client("route53")).publish(records)
    used_tcp: list[bool] = []
    original = dns.query.udp_with_fallback

    def spy(*args: Any, **kwargs: Any) -> Any:
        response, tcp = original(*args, **kwargs)
        used_tcp.append(tcp)
        return response, tcp

    monkeypatch.setattr(dns.query, "udp_with_fallback", spy)

    check_against(stack, timeout=5).wait_visible(zone_id, merge_values(records))

    assert used_tcp == [True]


def test_servfail_is_reported(stack: LocalStack, zone: tuple[str, str]) -> None:
    zone_id, zone_name = zone
    record = TxtRecord(f"_acme-challenge.{zone_name}", "value")
    Route53Dns(stack.client("route53")).publish([record])
    stack.set_dns_servfail([zone_name])
    try:
        with pytest.raises(DnsPropagationError, match=r"values missing: SERVFAIL\]"):
            check_against(stack, timeout=0).wait_visible(zone_id, merge_values([record]))
    finally:
        stack.set_dns_servfail([])


@pytest.fixture
def black_hole() -> Iterator[tuple[str, int]]:
    """A UDP socket that takes queries and never replies, like a nameserver behind a dropped route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield "127.0.0.1", sink.getsockname()[1]


# Long enough for the stack's own DNS server to answer ten names on a loaded 2-CPU machine (it must not time out),
# short enough that ten timeouts in a row stand far apart from one.
QUERY_TIMEOUT = 1.0


def test_a_silent_server_costs_one_query_timeout_per_round(
    stack: LocalStack, zone: tuple[str, str], black_hole: tuple[str, int]
) -> None:
    zone_id, zone_name = zone
    records = [TxtRecord(f"_acme-challenge.n{i}.{zone_name}", "v") for i in range(10)]
    Route53Dns(stack.client("route53")).publish(records)
    check = PropagationCheck(
        nameservers_for_zone=FixedNameservers([stack.dns_address, black_hole]),
        timeout_seconds=0,
        query_timeout_seconds=QUERY_TIMEOUT,
    )
    began = time.monotonic()

    with pytest.raises(DnsPropagationError) as raised:
        check.wait_visible(zone_id, merge_values(records))

    # One timeout, not one per name: ten in a row would take 10 * QUERY_TIMEOUT.
    assert time.monotonic() - began < 3 * QUERY_TIMEOUT
    message = str(raised.value)
    assert f"{format_server(*black_hole)}: " in message
    assert f"no reply in {QUERY_TIMEOUT:g} s" in message
    assert format_server(*stack.dns_address) not in message


@pytest.fixture
def nameserver_hosts(stack: LocalStack, zone: tuple[str, str]) -> Iterator[list[str]]:
    """The zone's NS host names (moto's fake ones), each made to resolve to 127.0.0.1 by a zone of that name."""
    route53 = stack.client("route53")
    hosts = [host.rstrip(".") for host in route53.get_hosted_zone(Id=zone[0])["DelegationSet"]["NameServers"]]
    created: list[tuple[str, Any]] = []
    for host in hosts:
        zone_id = stack.create_hosted_zone(host)
        record_set: Any = {"Name": host, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "127.0.0.1"}]}
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
        )
        created.append((zone_id, record_set))
    yield hosts
    # These zone names hold no one else's names, but the moto server is shared by the whole session.
    for zone_id, record_set in created:
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record_set}]}
        )
        route53.delete_hosted_zone(Id=zone_id)


def test_discovery_resolves_the_delegation_set_through_the_configured_resolver(
    stack: LocalStack, zone: tuple[str, str], nameserver_hosts: list[str]
) -> None:
    zone_id, _ = zone
    discover = Route53Nameservers(stack.client("route53"), resolver=StubResolver(stack.dns_address))

    assert discover(zone_id) == tuple(Nameserver(host, "127.0.0.1") for host in nameserver_hosts)

"""DNS challenge stage, before the first write: which challenge names hold nothing at all, asked of the zones' own
name servers over DNS rather than of Route53's API.

A name that holds no record set needs no Route53 read before its value is written: the write is a CREATE, which
Route53 refuses if the name holds anything after all. Asking the zone's authoritative servers costs no Route53
request (Route53 allows 10 a second per account, shared with every write and GetChange poll), so a batch of
certificates in zones of their own spends one read fewer per certificate. Only the answer "nothing here" is taken:

- NXDOMAIN, or NOERROR without a TXT or a CNAME, authoritative (AA): the name holds neither. A wildcard of another
  type answers like this too, and CREATE is right there: the name's own record set then takes precedence.
- Anything else (a TXT, a CNAME, which may be a wildcard's, a referral, a timeout) is asked of Route53, as before.

DNS can be a minute behind Route53 (a change not yet INSYNC). That is safe, only slower: a stale "nothing here"
leads to a CREATE that Route53 refuses (InvalidChangeBatch), after which the adapter reads the name and writes
again (route53.Route53Dns._apply); a CNAME added less than a minute ago makes that write fail with Route53's own
message, and the next run, which sees the CNAME, writes at its target.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.dns.propagation import EDNS_PAYLOAD, Nameserver, StubResolver
from acme_renewer.errors import DnsPropagationError

if TYPE_CHECKING:
    from acme_renewer.dns.route53 import HostedZone

logger = Logger(service=SERVICE, child=True)

QUERY_TIMEOUT_SECONDS = 1.0
# Zones are asked in parallel: a batch of 100 certificates in zones of their own is 100 zones.
MAX_PARALLEL_ZONES = 16


def holds_nothing(server: Nameserver, name: str, timeout: float) -> bool | None:
    """True when the server says, authoritatively, that `name` holds neither a TXT nor a CNAME; False for any other
    answer (a record, a referral, an error: Route53 is asked instead); None when it does not reply."""
    qname = dns.name.from_text(name)
    # flags=0: no RD bit; what this server holds, not what it might find elsewhere.
    request = dns.message.make_query(qname, dns.rdatatype.TXT, flags=0, use_edns=0, payload=EDNS_PAYLOAD)
    try:
        response, _ = dns.query.udp_with_fallback(request, server.address, timeout=timeout, port=server.port)
    except (OSError, dns.exception.DNSException):
        return None
    if not response.flags & dns.flags.AA or response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return False
    return not any(
        rrset.name == qname and rrset.rdtype in (dns.rdatatype.TXT, dns.rdatatype.CNAME) for rrset in response.answer
    )


# (server, name, timeout) -> holds_nothing's answer; `holds_nothing` is the real one.
Ask = Callable[[Nameserver, str, float], "bool | None"]
# The authoritative servers of a zone: `ZoneNameservers` (public DNS) or the stack's fixed servers.
ServersOf = Callable[["HostedZone"], Sequence[Nameserver]]


class ZoneNameservers:
    """A zone's name servers as public DNS delegates it (NS at the zone's name, then their addresses), through a stub
    resolver; once per zone and host per adapter. Route53's GetHostedZone would say the same for a request each."""

    def __init__(self, resolver: StubResolver) -> None:
        self._resolver = resolver
        self._cache: dict[str, tuple[Nameserver, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, zone: HostedZone) -> tuple[Nameserver, ...]:
        with self._lock:
            cached = self._cache.get(zone.name)
        if cached is None:
            cached = self._discover(zone.name)
            with self._lock:
                self._cache[zone.name] = cached
        return cached

    def _discover(self, zone_name: str) -> tuple[Nameserver, ...]:
        hosts = self._resolver.nameserver_hosts(zone_name)
        servers: list[Nameserver] = []
        for host in hosts:
            host = host.rstrip(".").lower()
            try:
                servers += [Nameserver(host, address) for address in self._resolver.addresses(host)]
            except DnsPropagationError:
                continue
        return tuple(servers)


class FixedZoneNameservers:
    """The same servers for every zone (PROPAGATION_CHECK_NAMESERVERS: the local stack's DNS server)."""

    def __init__(self, servers: Sequence[tuple[str, int]]) -> None:
        self._servers = tuple(Nameserver(address, address, port) for address, port in servers)

    def __call__(self, zone: HostedZone) -> tuple[Nameserver, ...]:
        return self._servers


class EmptyNameLookup:
    """Which (zone, name) pairs hold nothing, by asking one authoritative server of each zone (the next when one does
    not answer). Once no server of a zone could be reached or found, DNS is not asked again for the adapter's life:
    a function without a way out to DNS (a VPC without it) pays one timeout, not one per zone."""

    def __init__(
        self,
        servers_of: ServersOf,
        *,
        timeout_seconds: float = QUERY_TIMEOUT_SECONDS,
        ask: Ask = holds_nothing,
    ) -> None:
        self._servers_of = servers_of
        self._timeout = timeout_seconds
        self._ask = ask
        self._unreachable = False

    def empty(self, pairs: Iterable[tuple[HostedZone, str]]) -> set[tuple[str, str]]:
        """The (zone id, name) pairs the zone's servers say hold neither a TXT nor a CNAME."""
        by_zone: dict[HostedZone, list[str]] = {}
        for zone, name in pairs:
            by_zone.setdefault(zone, []).append(name)
        if self._unreachable or not by_zone:
            return set()
        with ThreadPoolExecutor(max_workers=min(len(by_zone), MAX_PARALLEL_ZONES), thread_name_prefix="dns") as pool:
            answers = list(pool.map(lambda item: self._zone(*item), by_zone.items()))
        found = {(zone.id, name) for zone, names in zip(by_zone, answers, strict=True) for name in names or ()}
        if all(names is None for names in answers):
            self._unreachable = True
            logger.warning(
                "no name server answered; challenge names are read from Route53 for the rest of the run",
                extra={"zones": len(by_zone)},
            )
        logger.debug("challenge names that hold nothing", extra={"asked": sum(map(len, by_zone.values()))})
        return found

    def _zone(self, zone: HostedZone, names: list[str]) -> list[str] | None:
        """The names of one zone that hold nothing; None when no server of the zone answered at all."""
        try:
            servers = list(self._servers_of(zone))
        except (DnsPropagationError, dns.exception.DNSException):
            return None
        empty: list[str] = []
        answered = False
        for name in names:
            for server in list(servers):
                answer = self._ask(server, name, self._timeout)
                if answer is not None:
                    answered = True
                    if answer:
                        empty.append(name)
                    break
                servers.remove(server)  # no reply: the next names ask the zone's other servers
            if not servers:
                break
        return empty if answered else None


def build_lookup(nameservers: Sequence[tuple[str, int]], resolver: tuple[str, int] | None) -> EmptyNameLookup:
    """The lookup for the settings: fixed servers for every zone, else the zones' own through a stub resolver."""
    servers_of: ServersOf
    if nameservers:
        servers_of = FixedZoneNameservers(nameservers)
    else:
        servers_of = ZoneNameservers(StubResolver(resolver, timeout=QUERY_TIMEOUT_SECONDS * 2))
    return EmptyNameLookup(servers_of)

"""DNS challenge stage, before the first write: what the challenge names hold, asked of the zones' own name servers
over DNS rather than of Route53's API.

Where a challenge value goes (is `_acme-challenge.<name>` a CNAME?) and whether the name holds a TXT already would
otherwise cost a Route53 read per name (ListResourceRecordSets; Route53 allows 10 requests a second per account,
shared with every write and GetChange poll). The zone's authoritative servers answer the same question for free, as
the CA will see it. Two answers are taken:

- nothing there (an authoritative NXDOMAIN, or NOERROR without a TXT or a CNAME): the value is written with a CREATE,
  which Route53 refuses if the name holds anything after all. A wildcard of another type answers like this too, and
  CREATE is right there: the name's own record set then takes precedence.
- an explicit CNAME: followed to its target without a read. A CNAME that a wildcard record synthesized would be
  wrong to follow (writing at the name itself overrides the wildcard), so a name beside it that no record set can
  be at (WILDCARD_PROBE_LABEL) is asked too, once per parent: when that gets a CNAME as well, Route53 is read.

Anything else (a TXT, a referral, a timeout) sends the name to Route53, as without the lookup. DNS can be a minute
behind Route53 (a change not yet INSYNC); the conditional CREATE makes a stale "nothing there" safe (refused, read,
written again: route53.Route53Dns._apply), and a CNAME added less than a minute ago makes that write fail with
Route53's own message, while a CNAME followed from DNS is the one the CA sees too. The next run sees the change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NameAnswer:
    """What a zone's name server says of one challenge name, when it says something usable."""

    empty: bool = False  # neither a TXT nor a CNAME: written with a CREATE, never read from Route53
    cname: str | None = None  # an explicit CNAME's target (lowercase, no trailing dot): followed without a read


# A name no record set can be at (RFC 8552: underscore labels are for protocols) asked beside a CNAME answer: when it
# gets a CNAME too, the answer came from a wildcard record, and the name's own record set is Route53's to tell.
WILDCARD_PROBE_LABEL = "_acme-renewer-probe"


def ask_name(server: Nameserver, name: str, timeout: float) -> NameAnswer | None:
    """The server's authoritative answer about `name`'s TXT: NameAnswer(empty=True) when it holds neither a TXT nor
    a CNAME, NameAnswer(cname=target) for a CNAME, NameAnswer() for anything else (a TXT, a referral, an error:
    Route53 is asked instead); None when the server does not reply."""
    qname = dns.name.from_text(name)
    # flags=0: no RD bit; what this server holds, not what it might find elsewhere.
    request = dns.message.make_query(qname, dns.rdatatype.TXT, flags=0, use_edns=0, payload=EDNS_PAYLOAD)
    try:
        response, _ = dns.query.udp_with_fallback(request, server.address, timeout=timeout, port=server.port)
    except (OSError, dns.exception.DNSException):
        return None
    if not response.flags & dns.flags.AA or response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return NameAnswer()
    for rrset in response.answer:
        if rrset.name == qname and rrset.rdtype == dns.rdatatype.CNAME:
            return NameAnswer(cname=rrset[0].target.to_text().rstrip(".").lower())
    if any(rrset.name == qname and rrset.rdtype == dns.rdatatype.TXT for rrset in response.answer):
        return NameAnswer()
    return NameAnswer(empty=True)


def holds_nothing(server: Nameserver, name: str, timeout: float) -> bool | None:
    """Whether the server says `name` holds neither a TXT nor a CNAME; None when it does not reply."""
    answer = ask_name(server, name, timeout)
    return None if answer is None else answer.empty


# (server, name, timeout) -> ask_name's answer; `ask_name` is the real one.
Ask = Callable[[Nameserver, str, float], "NameAnswer | None"]
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


class NameLookup:
    """What the zones' name servers say of challenge names, asking one authoritative server of each zone (the next
    when one does not reply). Once no server of any zone asked could be reached or found, DNS is not asked again for
    the adapter's life: a function without a way out to DNS (a VPC without it) pays one timeout, not one per zone."""

    def __init__(
        self,
        servers_of: ServersOf,
        *,
        timeout_seconds: float = QUERY_TIMEOUT_SECONDS,
        ask: Ask = ask_name,
    ) -> None:
        self._servers_of = servers_of
        self._timeout = timeout_seconds
        self._ask = ask
        self._unreachable = False

    def look(self, pairs: Iterable[tuple[HostedZone, str]]) -> dict[tuple[str, str], NameAnswer]:
        """(zone id, name) -> the usable answer, for the names that hold nothing or are an explicit CNAME; the
        others (no reply, a TXT, a wildcard's CNAME, ...) are left out, for Route53 to tell."""
        by_zone: dict[HostedZone, list[str]] = {}
        for zone, name in pairs:
            by_zone.setdefault(zone, []).append(name)
        if self._unreachable or not by_zone:
            return {}
        with ThreadPoolExecutor(max_workers=min(len(by_zone), MAX_PARALLEL_ZONES), thread_name_prefix="dns") as pool:
            answers = list(pool.map(lambda item: self._zone(*item), by_zone.items()))
        if all(found is None for found in answers):
            self._unreachable = True
            logger.warning(
                "no name server answered; challenge names are read from Route53 for the rest of the run",
                extra={"zones": len(by_zone)},
            )
        return {
            (zone.id, name): answer
            for zone, found in zip(by_zone, answers, strict=True)
            for name, answer in (found or {}).items()
        }

    def empty(self, pairs: Iterable[tuple[HostedZone, str]]) -> set[tuple[str, str]]:
        """The (zone id, name) pairs that hold neither a TXT nor a CNAME."""
        return {key for key, answer in self.look(pairs).items() if answer.empty}

    def _zone(self, zone: HostedZone, names: list[str]) -> dict[str, NameAnswer] | None:
        """The usable answers about one zone's names; None when no server of the zone replied at all."""
        try:
            servers = list(self._servers_of(zone))
        except (DnsPropagationError, dns.exception.DNSException):
            return None
        found: dict[str, NameAnswer] = {}
        wildcard: dict[str, bool] = {}  # parent name -> whether a wildcard CNAME answers below it
        answered = False
        for name in names:
            answer = self._first_reply(servers, name)
            if answer is None:
                if not servers:
                    break
                continue
            answered = True
            if answer.cname is not None:
                parent = name.split(".", 1)[1] if "." in name else name
                if parent not in wildcard:
                    probe = self._first_reply(servers, f"{WILDCARD_PROBE_LABEL}.{parent}")
                    wildcard[parent] = probe is None or probe.cname is not None
                if wildcard[parent]:
                    continue  # the CNAME may be a wildcard's: Route53 tells what the name itself holds
            if answer.empty or answer.cname is not None:
                found[name] = answer
        return found if answered else None

    def _first_reply(self, servers: list[Nameserver], name: str) -> NameAnswer | None:
        """The first server's answer that replies; a server that does not is dropped for the zone's other names."""
        for server in list(servers):
            answer = self._ask(server, name, self._timeout)
            if answer is not None:
                return answer
            servers.remove(server)
        return None


def build_lookup(nameservers: Sequence[tuple[str, int]], resolver: tuple[str, int] | None) -> NameLookup:
    """The lookup for the settings: fixed servers for every zone, else the zones' own through a stub resolver."""
    servers_of: ServersOf
    if nameservers:
        servers_of = FixedZoneNameservers(nameservers)
    else:
        servers_of = ZoneNameservers(StubResolver(resolver, timeout=QUERY_TIMEOUT_SECONDS * 2))
    return NameLookup(servers_of)

"""DNS challenge stage, after Route53 reports INSYNC: wait until every authoritative server serves the values.

The CA validates from several vantage points, each of which may reach a different nameserver of the zone
(RFC 8555 §8.4 leaves it to the CA which one it asks), so INSYNC alone does not prove what the CA will see.
Optional; see `PropagationSettings` for the environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.errors import ConfigurationError, DnsPropagationError
from acme_renewer.settings import PropagationMode, PropagationSettings

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

logger = Logger(service=SERVICE, child=True)

DEFAULT_TIMEOUT_SECONDS = 120.0
QUERY_TIMEOUT_SECONDS = 2.0
RESOLVER_TIMEOUT_SECONDS = 5.0
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 5.0
# Servers are polled in parallel, each by one thread asking its names in turn; more is never needed for
# Route53 (four nameservers per zone), the cap only guards against a long override list.
MAX_PARALLEL_SERVERS = 16
# The error message lists this many lagging names per server, then a count: a batch can hold hundreds.
NAMES_SHOWN_PER_SERVER = 5
# RFC 6891 §6.2.5 and the DNS flag day 2020: a payload size that avoids IP fragmentation.
EDNS_PAYLOAD = 1232


@dataclass(frozen=True)
class Nameserver:
    host: str  # the NS host name, or the address itself for a configured server
    address: str  # IPv4 or IPv6 literal
    port: int = 53

    def __str__(self) -> str:
        where = format_server(self.address, self.port)
        return where if self.host == self.address else f"{self.host} ({where})"


@dataclass(frozen=True)
class TxtAnswer:
    """One server's reply about one name: the TXT values it serves, or why it serves none."""

    values: frozenset[str] = frozenset()
    problem: str | None = None  # "NXDOMAIN", "REFUSED", "timed out", ...; None for an authoritative NOERROR
    answered: bool = True  # False: no usable reply at all; the server's other names wait for the next round


# (server, name without trailing dot, timeout in seconds) -> answer. `query_txt` is the real one.
Query = Callable[[Nameserver, str, float], TxtAnswer]


def query_txt(server: Nameserver, name: str, timeout: float) -> TxtAnswer:
    """Ask one server directly for the TXT of one name, non-recursively, over UDP with TCP when truncated."""
    qname = dns.name.from_text(name)
    # flags=0: no RD bit; we want what this server holds, not what it might find elsewhere.
    request = dns.message.make_query(qname, dns.rdatatype.TXT, flags=0, use_edns=0, payload=EDNS_PAYLOAD)
    try:
        response, _ = dns.query.udp_with_fallback(request, server.address, timeout=timeout, port=server.port)
    except dns.exception.Timeout:
        return TxtAnswer(problem=f"no reply in {timeout:g} s", answered=False)
    except (OSError, dns.exception.DNSException) as exc:
        return TxtAnswer(problem=f"no usable reply ({type(exc).__name__}: {exc})", answered=False)
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        return TxtAnswer(problem=dns.rcode.to_text(rcode))
    if not response.flags & dns.flags.AA:
        # A referral or a lame server: whatever it says is not what the zone serves.
        return TxtAnswer(problem="reply not authoritative")
    values = frozenset(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT and rrset.name == qname
        for rdata in rrset
    )
    return TxtAnswer(values)


class PropagationCheck:
    """Polls every authoritative server of a zone until each serves the expected TXT values.

    One query per (server, name) still missing values per round; values seen once stay seen. Rounds are
    0.5 s apart, doubling to 5 s. Servers are asked in parallel; a server that does not reply is not asked
    about its other names until the next round, so a dead server costs one query timeout per round.
    """

    def __init__(
        self,
        *,
        nameservers_for_zone: Callable[[str], Sequence[Nameserver]],
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        query_timeout_seconds: float = QUERY_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        query: Query = query_txt,
    ) -> None:
        self._nameservers_for_zone = nameservers_for_zone
        self._timeout = timeout_seconds
        self._query_timeout = query_timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._query = query

    def wait_visible(self, zone_id: str, expected: Mapping[str, Sequence[str]]) -> float:
        """Poll every authoritative server of the zone until each name (lowercase, no trailing dot) serves at least
        the expected TXT values; returns seconds waited. Raises DnsPropagationError naming the servers and names
        still missing when the timeout passes.

        A last round runs at the deadline, and a round in flight is finished, so the wait can exceed the
        timeout by up to one round (at most the query timeout per name on a server that answers slowly).
        """
        wanted = {name.rstrip(".").lower(): frozenset(values) for name, values in expected.items() if values}
        if not wanted:
            return 0.0
        began = self._clock()
        deadline = began + self._timeout
        servers = tuple(dict.fromkeys(self._nameservers_for_zone(zone_id)))
        if not servers:
            raise DnsPropagationError(f"no authoritative nameservers known for hosted zone {zone_id}")
        missing = {server: {name: set(values) for name, values in wanted.items()} for server in servers}
        notes: dict[tuple[Nameserver, str], str] = {}
        delay = FIRST_DELAY_SECONDS
        rounds = queries = 0
        with ThreadPoolExecutor(max_workers=min(len(servers), MAX_PARALLEL_SERVERS)) as pool:
            while True:
                rounds += 1
                queries += self._round(pool, missing, notes)
                if not missing:
                    waited = self._clock() - began
                    logger.info(
                        "TXT values visible on every authoritative server",
                        extra={
                            "zone_id": zone_id,
                            "servers": len(servers),
                            "names": len(wanted),
                            "rounds": rounds,
                            "queries": queries,
                            "waited_seconds": round(waited, 3),
                        },
                    )
                    return waited
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise DnsPropagationError(self._describe(zone_id, missing, notes, wanted))
                logger.info(
                    "authoritative servers still missing TXT values",
                    extra={
                        "zone_id": zone_id,
                        "round": rounds,
                        "pending": sum(len(names) for names in missing.values()),
                        "lagging_servers": sorted(str(server) for server in missing),
                        "next_poll_seconds": min(delay, remaining),
                    },
                )
                self._sleep(min(delay, remaining))
                delay = min(delay * 2, MAX_DELAY_SECONDS)

    def _round(
        self,
        pool: ThreadPoolExecutor,
        missing: dict[Nameserver, dict[str, set[str]]],
        notes: dict[tuple[Nameserver, str], str],
    ) -> int:
        """Ask every server about each of its names still missing values; returns the number of queries sent."""
        batch = [(server, list(names)) for server, names in missing.items()]
        replies = pool.map(lambda job: self._ask_server(*job), batch)
        queries = 0
        for (server, _), answers in zip(batch, replies, strict=True):
            queries += len(answers)
            self._take(missing, notes, server, answers)
        return queries

    def _ask_server(self, server: Nameserver, names: list[str]) -> list[tuple[str, TxtAnswer]]:
        """Runs in a worker thread, one per server; touches no shared state."""
        answers: list[tuple[str, TxtAnswer]] = []
        for name in names:
            answer = self._query(server, name, self._query_timeout)
            answers.append((name, answer))
            if not answer.answered:
                break
        return answers

    @staticmethod
    def _take(
        missing: dict[Nameserver, dict[str, set[str]]],
        notes: dict[tuple[Nameserver, str], str],
        server: Nameserver,
        answers: list[tuple[str, TxtAnswer]],
    ) -> None:
        names = missing[server]
        for name, answer in answers:
            names[name] -= answer.values
            if names[name]:
                notes[server, name] = answer.problem or (
                    "no TXT record" if not answer.values else "not among its values"
                )
            else:
                del names[name]
                notes.pop((server, name), None)
        if not names:
            del missing[server]

    def _describe(
        self,
        zone_id: str,
        missing: dict[Nameserver, dict[str, set[str]]],
        notes: dict[tuple[Nameserver, str], str],
        wanted: Mapping[str, frozenset[str]],
    ) -> str:
        parts = []
        for server in sorted(missing, key=str):
            names = sorted(missing[server])
            shown = [
                f"{name} [{len(missing[server][name])} of {len(wanted[name])} values missing: "
                f"{notes.get((server, name), 'not asked: the server did not reply')}]"
                for name in names[:NAMES_SHOWN_PER_SERVER]
            ]
            more = f" and {len(names) - NAMES_SHOWN_PER_SERVER} more" if len(names) > NAMES_SHOWN_PER_SERVER else ""
            parts.append(f"{server}: {', '.join(shown)}{more}")
        return (
            f"TXT values not served by every authoritative nameserver of hosted zone {zone_id} "
            f"after {self._timeout:g} s: " + "; ".join(parts)
        )


# --- which servers to ask ------------------------------------------------------------------------


class HostResolver(Protocol):
    def addresses(self, host: str) -> list[str]:
        """The IPv4 addresses of a host name; raise DnsPropagationError when there are none."""
        ...


class StubResolver:
    """dnspython stub resolver for NS host names: the system's, or one server at `address` (the local stack's)."""

    def __init__(self, address: tuple[str, int] | None = None, *, timeout: float = RESOLVER_TIMEOUT_SECONDS) -> None:
        try:
            self._resolver = dns.resolver.Resolver(configure=address is None)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ConfigurationError(
                f"no system DNS resolver ({exc}); set PROPAGATION_CHECK_RESOLVER to an address[:port]"
            ) from None
        if address is not None:
            self._resolver.nameservers = [address[0]]
            self._resolver.port = address[1]
        self._resolver.lifetime = timeout
        self.description = format_server(*address) if address else "the system resolver"

    def addresses(self, host: str) -> list[str]:
        # IPv4 only: Lambda functions outside a dual-stack VPC have no IPv6 egress.
        try:
            answer = self._resolver.resolve(host, "A", search=False)
        except dns.exception.DNSException as exc:
            raise DnsPropagationError(f"cannot resolve nameserver {host} through {self.description}: {exc}") from None
        return [rdata.to_text() for rdata in answer]

    def nameserver_hosts(self, zone_name: str) -> list[str]:
        """The NS host names public DNS delegates the zone to; raise DnsPropagationError when there are none."""
        try:
            answer = self._resolver.resolve(zone_name, "NS", search=False)
        except dns.exception.DNSException as exc:
            raise DnsPropagationError(
                f"cannot find the name servers of {zone_name} through {self.description}: {exc}"
            ) from None
        return [rdata.to_text() for rdata in answer]


class Route53Nameservers:
    """The zone's nameservers from its Route53 delegation set, resolved to addresses once per zone per adapter."""

    def __init__(self, client: Route53Client, *, resolver: HostResolver | None = None) -> None:
        self._client = client
        self._resolver = resolver if resolver is not None else StubResolver()
        self._cache: dict[str, tuple[Nameserver, ...]] = {}

    def __call__(self, zone_id: str) -> tuple[Nameserver, ...]:
        zone_id = zone_id.removeprefix("/hostedzone/")
        if zone_id not in self._cache:
            self._cache[zone_id] = self._discover(zone_id)
        return self._cache[zone_id]

    def _discover(self, zone_id: str) -> tuple[Nameserver, ...]:
        response = self._client.get_hosted_zone(Id=zone_id)
        hosts = response.get("DelegationSet", {}).get("NameServers", [])
        if not hosts:
            raise DnsPropagationError(
                f"hosted zone {zone_id} has no delegation set (a private zone?); no nameservers to check"
            )
        servers = tuple(
            Nameserver(host.rstrip(".").lower(), address)
            for host in hosts
            for address in self._resolver.addresses(host.rstrip(".").lower())
        )
        logger.debug("authoritative nameservers", extra={"zone_id": zone_id, "nameservers": [str(s) for s in servers]})
        return servers


class FixedNameservers:
    """The same servers for every zone: PROPAGATION_CHECK_NAMESERVERS, e.g. the local stack's DNS server."""

    def __init__(self, servers: Sequence[tuple[str, int]]) -> None:
        self._servers = tuple(Nameserver(address, address, port) for address, port in servers)

    def __call__(self, zone_id: str) -> tuple[Nameserver, ...]:
        return self._servers


# --- configuration -------------------------------------------------------------------------------


def build_propagation_check(
    settings: PropagationSettings, route53: Route53Client, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> PropagationCheck | None:
    """The check the settings ask for, or None when it is off."""
    if settings.mode is PropagationMode.OFF:
        return None
    nameservers: Callable[[str], Sequence[Nameserver]]
    if settings.nameservers:
        nameservers = FixedNameservers(settings.nameservers)
    else:
        nameservers = Route53Nameservers(route53, resolver=StubResolver(settings.resolver))
    return PropagationCheck(nameservers_for_zone=nameservers, timeout_seconds=timeout_seconds)


def format_server(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

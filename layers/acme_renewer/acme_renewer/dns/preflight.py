"""Preflight, beside the pipeline: would the CA see our DNS-01 records and be allowed to issue? Nothing is ordered.

Per name: the Route53 hosted zone the TXT would go into, that zone's delegation in public DNS, CAA
(RFC 8659) and a CNAME on `_acme-challenge.<name>`. The DNS rules are pure functions over `Lookup`
results; `Resolver` is the one place that speaks DNS.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import dns.exception
import dns.resolver
from acme import client as acme_client

from acme_renewer.dns.challenge import CHALLENGE_LABEL, challenge_record_name
from acme_renewer.dns.route53 import HostedZone, Route53Dns
from acme_renewer.errors import ConfigurationError, HostedZoneNotFoundError
from acme_renewer.order.transport import USER_AGENT

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

DNS_TIMEOUT_SECONDS = 5.0
MAX_CNAME_HOPS = 8
# RFC 8659 §4.2-4.3 and RFC 8657 define these; any other tag with the critical flag forbids issuance (§4.1).
KNOWN_CAA_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "contactemail", "contactphone"})
CRITICAL_FLAG = 128


class Level(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    check: str  # zone, NS, CAA or challenge
    level: Level
    detail: str


# --- DNS lookups ---------------------------------------------------------------------------------


class Status(enum.Enum):
    FOUND = "found"
    NO_DATA = "no data"  # the name exists, without records of this type
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"  # what an authoritative server answers for names outside its zones
    ERROR = "error"  # timeout, SERVFAIL, unreachable


@dataclass(frozen=True)
class Lookup:
    status: Status
    values: tuple[str, ...] = ()  # rdata in presentation form: 'ns-1.example.', '0 issue "ca.example"'
    error: str = ""


class DnsLookup(Protocol):
    def lookup(self, name: str, rdtype: str) -> Lookup: ...


class Resolver:
    """dnspython stub resolver: the system's, or one server at `address`; each (name, type) is asked once."""

    def __init__(self, address: tuple[str, int] | None = None, *, timeout: float = DNS_TIMEOUT_SECONDS) -> None:
        try:
            self._resolver = dns.resolver.Resolver(configure=address is None)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ConfigurationError(f"no system DNS resolver ({exc}); pass --resolver HOST:PORT") from None
        if address is not None:
            self._resolver.nameservers = [address[0]]
            self._resolver.port = address[1]
        self._resolver.lifetime = timeout
        self._cache: dict[tuple[str, str], Lookup] = {}
        self.description = (
            f"{address[0]}:{address[1]}"
            if address
            else "system resolver (" + ", ".join(str(ns) for ns in self._resolver.nameservers) + ")"
        )

    def lookup(self, name: str, rdtype: str) -> Lookup:
        key = (name.rstrip(".").lower() + ".", rdtype)
        if key not in self._cache:
            self._cache[key] = self._ask(*key)
        return self._cache[key]

    def _ask(self, name: str, rdtype: str) -> Lookup:
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(Status.NXDOMAIN)
        except dns.resolver.NoNameservers as exc:
            errors = exc.kwargs.get("errors") or []
            if errors and all(error[3] == "REFUSED" for error in errors):
                return Lookup(Status.REFUSED, error=f"{self.description} refused {name} {rdtype}")
            return Lookup(Status.ERROR, error=str(exc))
        except dns.exception.Timeout:
            return Lookup(Status.ERROR, error=f"{name} {rdtype}: no answer from {self.description} in time")
        except dns.exception.DNSException as exc:
            return Lookup(Status.ERROR, error=f"{name} {rdtype}: {exc}")
        if answer.rrset is None:
            return Lookup(Status.NO_DATA)
        return Lookup(Status.FOUND, tuple(rdata.to_text() for rdata in answer.rrset))


def parse_resolver_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `HOST` (port 53) or `[v6]:PORT`; a host name is resolved once, here."""
    text = text.strip()
    match = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<v6port>\d+))?|(?P<host>[^:]+)(?::(?P<port>\d+))?", text)
    if match is None:
        try:
            return str(ipaddress.IPv6Address(text)), 53
        except ValueError:
            raise ConfigurationError(f"resolver {text!r} must be HOST:PORT, HOST or [IPv6]:PORT") from None
    host = match["v6"] or match["host"]
    port = int(match["v6port"] or match["port"] or 53)
    if not 0 < port < 65536:
        raise ConfigurationError(f"resolver {text!r}: port {port} is out of range")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP)[0][4][0]), port
    except OSError as exc:
        raise ConfigurationError(f"resolver {text!r}: cannot resolve {host!r} ({exc})") from None


def _name(value: str) -> str:
    return value.strip().rstrip(".").lower()


# --- CAA (RFC 8659) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaaRecord:
    flags: int
    tag: str  # lowercase: tags are case-insensitive (RFC 8659 §4.1)
    value: str

    @property
    def critical(self) -> bool:
        return bool(self.flags & CRITICAL_FLAG)

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


def parse_caa(text: str) -> CaaRecord:
    """One CAA rdata in presentation form, `0 issue "letsencrypt.org; validationmethods=dns-01"`."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or not parts[0].isdigit():
        raise ValueError(f"not a CAA record: {text!r}")
    raw = parts[2] if len(parts) == 3 else ""
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        raw = raw[1:-1]
    # dnspython writes `\"`, `\\` and `\DDD` (decimal) inside the quotes.
    value = re.sub(r"\\(\d{3}|.)", lambda m: chr(int(m[1])) if m[1].isdigit() else m[1], raw)
    return CaaRecord(int(parts[0]), parts[1].lower(), value)


@dataclass(frozen=True)
class IssueProperty:
    """The value of an issue or issuewild property (RFC 8659 §4.2): an issuer domain and its parameters."""

    issuer: str | None  # None: no CA at all (`;` alone)
    parameters: dict[str, str] = field(default_factory=dict)


def parse_issue_value(value: str) -> IssueProperty:
    issuer, *parameters = (part.strip() for part in value.split(";"))
    params: dict[str, str] = {}
    for parameter in parameters:
        key, _, val = parameter.partition("=")
        if key:
            params[key.strip().lower()] = val.strip()
    return IssueProperty(issuer.rstrip(".").lower() or None, params)


@dataclass(frozen=True)
class RelevantCaa:
    """The first CAA RRset found climbing from the name towards the root (RFC 8659 §3)."""

    owner: str | None  # where it was found; None when no name up to the TLD has CAA
    records: tuple[CaaRecord, ...] = ()
    searched: tuple[str, ...] = ()
    error: str | None = None  # the climb could not be finished


def caa_search_names(name: str) -> list[str]:
    """`www.example.com` -> www.example.com, example.com, com; a wildcard `*.X` is looked up from X."""
    labels = _name(name).removeprefix("*.").split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def relevant_caa(name: str, dns_lookup: DnsLookup) -> RelevantCaa:
    searched: list[str] = []
    answered = False
    for candidate in caa_search_names(name):
        result = dns_lookup.lookup(candidate, "CAA")
        searched.append(candidate)
        if result.status is Status.FOUND:
            try:
                records = tuple(parse_caa(value) for value in result.values)
            except ValueError as exc:
                return RelevantCaa(candidate, searched=tuple(searched), error=str(exc))
            return RelevantCaa(candidate, records, tuple(searched))
        if result.status is Status.REFUSED and answered:
            # An authoritative server (the local stack's, or a Route53 name server given as --resolver)
            # refuses names above its zones; that says nothing about CAA there. Only when nothing at all
            # was answered is the resolver itself the problem.
            continue
        if result.status in (Status.REFUSED, Status.ERROR):
            return RelevantCaa(None, searched=tuple(searched), error=result.error or result.status.value)
        answered = True
    return RelevantCaa(None, searched=tuple(searched))


@dataclass(frozen=True)
class CaIdentities:
    """The issuer domain names the CA recognises in CAA (ACME directory `meta.caaIdentities`, RFC 8555 §7.1.1)."""

    domains: tuple[str, ...]
    source: str  # where they came from, or why they are unknown


def choose_identities(
    from_directory: Sequence[str] | None, directory_error: str | None, configured: Iterable[str]
) -> CaIdentities:
    """The directory's own list when it has one, else the operator's (--ca-identity / ACME_CAA_IDENTITIES)."""
    if from_directory:
        return CaIdentities(tuple(_name(d) for d in from_directory), "from the ACME directory")
    configured = tuple(_name(d) for d in configured if d.strip())
    if configured:
        return CaIdentities(configured, "from --ca-identity / ACME_CAA_IDENTITIES")
    why = f"the directory could not be read: {directory_error}" if directory_error else "the directory lists none"
    return CaIdentities((), f"unknown: {why}; set --ca-identity or ACME_CAA_IDENTITIES")


def directory_caa_identities(directory_url: str, timeout_seconds: int) -> tuple[str, ...]:
    """Read the ACME directory through the acme library's transport (it honours REQUESTS_CA_BUNDLE)."""
    network = acme_client.ClientNetwork(user_agent=USER_AGENT, timeout=timeout_seconds)
    directory = acme_client.ClientV2.get_directory(directory_url, network)
    return tuple(directory.meta.caa_identities or ())


def caa_finding(name: str, relevant: RelevantCaa, identities: CaIdentities) -> Finding:
    """RFC 8659 §4: may a CA with these identities issue for `name`, given the relevant RRset?"""
    if relevant.error is not None:
        return Finding(
            "CAA",
            Level.WARN,
            f"could not look up CAA ({relevant.error}); the CA refuses to issue when its own lookup fails",
        )
    if relevant.owner is None:
        return Finding("CAA", Level.OK, f"no CAA record at {', '.join(relevant.searched)}: any CA may issue")
    owner = relevant.owner
    critical = [r for r in relevant.records if r.critical and r.tag not in KNOWN_CAA_TAGS]
    if critical:
        return Finding(
            "CAA",
            Level.FAIL,
            f"CAA at {owner} has the critical property {critical[0]}, which CAs do not know: no CA may issue",
        )
    wildcard = _name(name).startswith("*.")
    tag = "issuewild" if wildcard and any(r.tag == "issuewild" for r in relevant.records) else "issue"
    properties = [r for r in relevant.records if r.tag == tag]
    if not properties:
        return Finding("CAA", Level.OK, f"CAA at {owner} has no {tag} property: any CA may issue")
    shown = ", ".join(str(r) for r in properties)
    parsed = [parse_issue_value(r.value) for r in properties]
    issuers = sorted({p.issuer for p in parsed if p.issuer})
    if not issuers:
        return Finding("CAA", Level.FAIL, f"CAA at {owner} forbids every CA ({shown})")
    if not identities.domains:
        return Finding(
            "CAA",
            Level.WARN,
            f"CAA at {owner} allows only {', '.join(issuers)} ({tag}); the CA's identities are {identities.source}",
        )
    ours = [p for p in parsed if p.issuer in identities.domains]
    if not ours:
        return Finding(
            "CAA",
            Level.FAIL,
            f"CAA at {owner} allows only {', '.join(issuers)} ({shown}); "
            f'this CA is {", ".join(identities.domains)}: add {tag} "{identities.domains[0]}"',
        )
    # RFC 8657: validationmethods and accounturi narrow what an issuer may do.
    usable = [p for p in ours if _allows_dns01(p)]
    if not usable:
        return Finding(
            "CAA", Level.FAIL, f"CAA at {owner} allows {identities.domains[0]} but not with dns-01 ({shown})"
        )
    if all("accounturi" in p.parameters for p in usable):
        accounts = ", ".join(sorted({p.parameters["accounturi"] for p in usable}))
        return Finding(
            "CAA",
            Level.WARN,
            f"CAA at {owner} allows {identities.domains[0]} only for the ACME account {accounts}; "
            "make sure that is this renewer's account",
        )
    return Finding("CAA", Level.OK, f"CAA at {owner} allows {usable[0].issuer} ({tag})")


def _allows_dns01(issue: IssueProperty) -> bool:
    methods = issue.parameters.get("validationmethods")
    return methods is None or "dns-01" in {m.strip().lower() for m in methods.split(",")}


# --- delegation ----------------------------------------------------------------------------------


def delegation_finding(zone: str, route53_name_servers: Sequence[str], seen: Lookup) -> Finding:
    """Does public DNS name the hosted zone's own name servers for the zone apex?

    When it names others, the zone is not delegated to this hosted zone (or to another one with the same
    name), so the CA would never see the TXT records we write.
    """
    expected = sorted({_name(ns) for ns in route53_name_servers})
    if seen.status in (Status.ERROR, Status.REFUSED):
        return Finding("NS", Level.WARN, f"could not check the delegation of {zone}: {seen.error or seen.status.value}")
    if not expected:
        return Finding("NS", Level.WARN, f"Route53 reports no name servers for {zone}; cannot check the delegation")
    if seen.status is Status.NXDOMAIN:
        return Finding("NS", Level.FAIL, f"{zone} does not exist in public DNS: delegate it to {', '.join(expected)}")
    actual = sorted({_name(ns) for ns in seen.values})
    if not actual:
        return Finding(
            "NS", Level.FAIL, f"{zone} is not a delegated zone in public DNS: delegate it to {', '.join(expected)}"
        )
    if actual == expected:
        return Finding("NS", Level.OK, f"{zone} is delegated to the hosted zone's {len(actual)} name servers")
    if set(actual) & set(expected):
        return Finding(
            "NS",
            Level.WARN,
            f"{zone} is delegated to {', '.join(actual)}, partly other than the hosted zone's {', '.join(expected)}",
        )
    return Finding(
        "NS",
        Level.FAIL,
        f"{zone} is delegated to {', '.join(actual)}, not to this hosted zone ({', '.join(expected)}): "
        "the CA will not see the TXT records",
    )


# --- the challenge name --------------------------------------------------------------------------


def cname_chain(record_name: str, dns_lookup: DnsLookup) -> tuple[list[str], Lookup | None]:
    """The CNAME targets from `record_name`, hop by hop; plus the failed lookup when the first one failed."""
    chain: list[str] = []
    current = _name(record_name)
    for _ in range(MAX_CNAME_HOPS):
        result = dns_lookup.lookup(current, "CNAME")
        if result.status in (Status.ERROR, Status.REFUSED) and not chain:
            return chain, result
        if result.status is not Status.FOUND or not result.values:
            break
        current = _name(result.values[0])
        if current in chain:
            break  # a loop: report what was seen
        chain.append(current)
    return chain, None


def challenge_finding(
    record_name: str,
    zone: HostedZone | None,
    chain: list[str],
    failed: Lookup | None,
    target_zone: HostedZone | None = None,
) -> Finding:
    """Where the TXT goes: at the name, or at the end of its CNAME chain (`target_zone` holds that end)."""
    if failed is not None:
        return Finding("challenge", Level.WARN, f"could not check {record_name}: {failed.error or failed.status.value}")
    if not chain:
        where = f", in hosted zone {zone.name}" if zone else ""
        return Finding("challenge", Level.OK, f"{record_name} is not a CNAME: the TXT goes there{where}")
    hops = " -> ".join(chain)
    if not chain[-1].startswith(CHALLENGE_LABEL + "."):
        # The function's IAM policy lets it write only _acme-challenge.* names (template.yaml).
        return Finding(
            "challenge",
            Level.FAIL,
            f"{record_name} is a CNAME to {hops}; the renewer may write only TXT records named {CHALLENGE_LABEL}.*: "
            f"point the CNAME at {CHALLENGE_LABEL}.<a name in a hosted zone of this account>",
        )
    if target_zone is None:
        return Finding(
            "challenge",
            Level.FAIL,
            f"{record_name} is a CNAME to {hops}, and no public hosted zone of this account holds {chain[-1]}",
        )
    return Finding(
        "challenge",
        Level.OK,
        f"{record_name} is a CNAME to {hops}: the TXT goes there, in hosted zone {target_zone.name}",
    )


# --- the whole check -----------------------------------------------------------------------------


class Preflight:
    """Runs the four checks for names; Route53 and DNS answers are cached across names."""

    def __init__(
        self,
        route53: Route53Client,
        dns_lookup: DnsLookup,
        identities: CaIdentities,
        *,
        zones: Route53Dns | None = None,
    ) -> None:
        self._route53 = route53
        self._dns = dns_lookup
        self.identities = identities
        self._zones = zones or Route53Dns(route53)
        self._delegations: dict[str, Finding] = {}

    def check(self, name: str) -> list[Finding]:
        record_name = challenge_record_name(name)
        zone, findings = self._zone_checks(record_name)
        findings.append(caa_finding(name, relevant_caa(name, self._dns), self.identities))
        chain, failed = cname_chain(record_name, self._dns)
        target_zone = None
        if chain:
            with contextlib.suppress(HostedZoneNotFoundError):  # no zone holds the target: the finding says so
                target_zone = self._zones.zone_for(chain[-1])
        findings.append(challenge_finding(record_name, zone, chain, failed, target_zone))
        return findings

    def zone_checks(self, name: str) -> list[Finding]:
        """The zone and NS checks only (what `add` runs): Route53 and the delegation, no CAA or CNAME lookups."""
        return self._zone_checks(challenge_record_name(name))[1]

    def _zone_checks(self, record_name: str) -> tuple[HostedZone | None, list[Finding]]:
        try:
            zone = self._zones.zone_for(record_name)
        except HostedZoneNotFoundError as missing:
            return None, [Finding("zone", Level.FAIL, str(missing))]
        return zone, [Finding("zone", Level.OK, f"Route53 hosted zone {zone.name} ({zone.id})"), self._delegation(zone)]

    def _delegation(self, zone: HostedZone) -> Finding:
        if zone.id not in self._delegations:
            delegation = self._route53.get_hosted_zone(Id=zone.id).get("DelegationSet", {})
            self._delegations[zone.id] = delegation_finding(
                zone.name, delegation.get("NameServers", []), self._dns.lookup(zone.name, "NS")
            )
        return self._delegations[zone.id]

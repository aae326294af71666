"""Authoritative DNS server (dnslib) answering from the Route53 record sets held in moto.

pebble's DNS-01 validation asks this server, so it sees what Route53's name servers would serve: a TXT record
UPSERTed into moto, once its change is in sync (the stack's moto may emulate a propagation delay).
Run as `python -m tests.stack.dns_server --port P --endpoint-url http://127.0.0.1:MOTO`.
"""

from __future__ import annotations

import argparse
import ast
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from dnslib import (  # type: ignore[import-untyped]
    AAAA,
    CAA,
    CNAME,
    EDNS0,
    NS,
    OPCODE,
    QTYPE,
    RCODE,
    RR,
    SOA,
    TXT,
    A,
    DNSRecord,
)
from dnslib.server import DNSHandler, DNSLogger, DNSServer  # type: ignore[import-untyped]

from tests.stack.moto_server import MotoControl
from tests.stack.route53_emulation import MAX_CHARACTER_STRING_BYTES, RecordSet, character_strings, normalize

# Zone name (lowercase, with trailing dot) -> its record sets.
Zones = Mapping[str, Sequence[RecordSet]]

MAX_CNAME_HOPS = 8
MAX_UDP_PAYLOAD = 4096
UDP_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """What the server says about one question: an RCODE plus answer and authority records."""

    rcode: int
    answer: tuple[Any, ...] = ()  # dnslib RR
    authority: tuple[Any, ...] = ()  # dnslib RR

    def values(self, rtype: str) -> list[str]:
        """The answer's rdata of one type in presentation form (for tests and logs)."""
        return [str(rr.rdata) for rr in self.answer if QTYPE[rr.rtype] == rtype]


def find_zone(zone_names: Iterable[str], qname: str) -> str | None:
    """The longest zone name that `qname` is equal to or below, label-wise (`b.test.` does not hold `ab.test.`)."""
    qname = normalize(qname)
    best: str | None = None
    for zone in zone_names:
        zone = normalize(zone)
        if (qname == zone or qname.endswith("." + zone)) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def answer(zones: Zones, qname: str, qtype: str) -> Answer:
    """Answer `qname`/`qtype` from `zones` as an authoritative server that also follows CNAMEs between its zones.

    REFUSED when no zone holds the name, NXDOMAIN when the zone has no record set at or below it,
    NOERROR with an empty answer (SOA in authority) when the name exists without records of that type.
    """
    qtype = qtype.upper()
    name = normalize(qname)
    chain: list[Any] = []
    seen: set[str] = set()
    for _ in range(MAX_CNAME_HOPS + 1):
        zone = find_zone(zones.keys(), name)
        if zone is None:
            # A CNAME leaving our zones: a resolver would continue elsewhere, we can only hand back the chain.
            return Answer(RCODE.NOERROR, tuple(chain)) if chain else Answer(RCODE.REFUSED)
        record_sets = zones[zone]
        at_name = [rs for rs in record_sets if _owner(rs) == name]
        if not at_name and not any(_owner(rs).endswith("." + name) for rs in record_sets):
            # RFC 4592: a name that does not exist is answered from the wildcard at its closest encloser, as
            # Route53 does for `*.` record sets, with the name as the owner.
            at_name = [{**rs, "Name": name} for rs in _wildcard_sets(record_sets, name, zone)]
            if not at_name:
                return Answer(RCODE.NXDOMAIN, tuple(chain), _soa(record_sets))
        cname = next((rs for rs in at_name if rs["Type"] == "CNAME"), None)
        if cname is None or qtype in ("CNAME", "ANY"):
            found = [rr for rs in at_name if qtype in (rs["Type"], "ANY") for rr in to_rrs(rs)]
            return Answer(RCODE.NOERROR, tuple(chain + found), () if found else _soa(record_sets))
        chain.extend(to_rrs(cname))
        seen.add(name)
        name = normalize(cname["ResourceRecords"][0]["Value"])
        if name in seen:
            break  # CNAME loop: stop with the chain so far, as an authoritative server does
    return Answer(RCODE.NOERROR, tuple(chain))


def _owner(record_set: RecordSet) -> str:
    """The record set's name; Route53 lists a wildcard's `*` as `\\052`."""
    return normalize(str(record_set["Name"]).replace("\\052", "*"))


def _wildcard_sets(record_sets: Sequence[RecordSet], name: str, zone: str) -> list[RecordSet]:
    """The record sets of `*.<closest encloser>` for a name that does not exist: the encloser is its nearest
    ancestor that holds a record set or has a name below it (the zone's apex at the least)."""
    labels = name.split(".")
    for start in range(1, len(labels)):
        ancestor = ".".join(labels[start:])
        if not ancestor.endswith(zone) or len(ancestor) < len(zone):
            break
        if any(_owner(rs) == ancestor or _owner(rs).endswith("." + ancestor) for rs in record_sets):
            return [rs for rs in record_sets if _owner(rs) == "*." + ancestor]
    return []


def to_rrs(record_set: RecordSet) -> list[Any]:
    """dnslib RRs for each value of a Route53 record set (alias record sets have none)."""
    name = normalize(record_set["Name"])
    rtype = str(record_set["Type"]).upper()
    ttl = int(record_set.get("TTL", 300))
    return [_rr(name, rtype, ttl, str(value["Value"])) for value in record_set.get("ResourceRecords", [])]


def txt_strings(value: str) -> list[bytes]:
    """Split one Route53 TXT value (`"a" "b"`, maybe unquoted) into its character-strings; refuses a string that
    Route53 would (longer than 255 bytes: see strict_route53.py)."""
    strings = character_strings(value)
    if any(len(string) > MAX_CHARACTER_STRING_BYTES for string in strings):
        raise ValueError(f"TXT string longer than 255 bytes in {value!r}; split it into quoted chunks")
    return strings


def _rr(name: str, rtype: str, ttl: int, value: str) -> Any:
    if rtype == "TXT":
        return RR(name, QTYPE.TXT, ttl=ttl, rdata=TXT(txt_strings(value)))
    if rtype == "A":
        return RR(name, QTYPE.A, ttl=ttl, rdata=A(value.strip()))
    if rtype == "AAAA":
        return RR(name, QTYPE.AAAA, ttl=ttl, rdata=AAAA(value.strip()))
    if rtype == "CNAME":
        return RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(normalize(value)))
    if rtype == "NS":
        return RR(name, QTYPE.NS, ttl=ttl, rdata=NS(normalize(value)))
    if rtype == "SOA":
        mname, rname, *times = _unwrap_moto_soa(value).split()
        return RR(name, QTYPE.SOA, ttl=ttl, rdata=SOA(mname, rname, tuple(int(t) for t in times)))
    if rtype == "CAA":
        flags, tag, rest = value.split(None, 2)
        return RR(name, QTYPE.CAA, ttl=ttl, rdata=CAA(int(flags), tag, b"".join(txt_strings(rest)).decode()))
    # MX, SRV, ...: Route53 values are in zone-file presentation form, which dnslib parses.
    return RR.fromZone(f"{name} {ttl} IN {rtype} {value}")[0]


def _unwrap_moto_soa(value: str) -> str:
    """moto 5.2 stores a new zone's SOA value as the repr of a dict: "{'Value': 'ns-2048.awsdns-64.com. ...'}"."""
    if value.lstrip().startswith("{"):
        unwrapped = ast.literal_eval(value)
        if isinstance(unwrapped, dict) and isinstance(unwrapped.get("Value"), str):
            return str(unwrapped["Value"])
    return value


def _soa(record_sets: Sequence[RecordSet]) -> tuple[Any, ...]:
    return tuple(rr for rs in record_sets if rs["Type"] == "SOA" for rr in to_rrs(rs))


class RecordSource(Protocol):
    """Where the zones come from, read afresh for every query."""

    def zones(self) -> Zones: ...


class ServedZones(Protocol):
    """What Route53's name servers serve, as the stack's moto tells it (MotoControl)."""

    def served_zones(self) -> list[dict[str, str]]: ...

    def served_record_sets(self, zone_id: str) -> list[dict[str, Any]]: ...


class ServedRoute53(RecordSource):
    """Reads what the stack's moto says Route53's name servers serve: its record sets, with changes that are
    still propagating shown as they were before them. Record sets are read only for the zones a query touches.

    These reads go over moto's private paths, so they are not counted as Route53 API calls.
    """

    def __init__(self, control: ServedZones) -> None:
        self._control = control

    def zones(self) -> Zones:
        zone_ids: dict[str, str] = {}
        for zone in self._control.served_zones():
            # moto allows two zones with one name (AWS does too, public and private); the first one wins.
            zone_ids.setdefault(normalize(zone["Name"]), zone["Id"])
        return _LazyZones(zone_ids, self._control.served_record_sets)


@dataclass
class _LazyZones(Mapping[str, Sequence[RecordSet]]):
    """Zone name -> record sets, listing each zone at most once, on first use, within one query."""

    zone_ids: dict[str, str]
    load: Callable[[str], Sequence[RecordSet]]
    _loaded: dict[str, Sequence[RecordSet]] = field(default_factory=dict)

    def __getitem__(self, zone: str) -> Sequence[RecordSet]:
        if zone not in self._loaded:
            self._loaded[zone] = self.load(self.zone_ids[zone])
        return self._loaded[zone]

    def __iter__(self) -> Iterator[str]:
        return iter(self.zone_ids)

    def __len__(self) -> int:
        return len(self.zone_ids)


# Hook for fault injection: given (qname, qtype), return an RCODE (e.g. RCODE.SERVFAIL) to send instead of the answer.
FaultRule = Callable[[str, str], int | None]

# In-band control of the running server, so that a test needs no other socket or file: a query for
# `<name>.servfail.control.invalid.` adds <name>, one for the suffix alone clears the set. `.invalid` is
# reserved (RFC 2606), so no zone can hold these names.
SERVFAIL_CONTROL = "servfail.control.invalid."


class ServfailNames:
    """Fault rule: SERVFAIL for chosen names and every name below them, like a broken delegation.

    The set is changed at runtime by control queries (see `set_servfail`), which it answers NOERROR.
    """

    def __init__(self) -> None:
        self._names: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def __call__(self, qname: str, qtype: str) -> int | None:
        qname = normalize(qname)
        with self._lock:
            if qname == SERVFAIL_CONTROL:
                self._names = frozenset()
                return int(RCODE.NOERROR)
            if qname.endswith("." + SERVFAIL_CONTROL):
                self._names |= {qname.removesuffix(SERVFAIL_CONTROL)}
                return int(RCODE.NOERROR)
            names = self._names
        if any(qname == name or qname.endswith("." + name) for name in names):
            return int(RCODE.SERVFAIL)
        return None


def set_servfail(address: tuple[str, int], names: Iterable[str]) -> None:
    """Make the server at `address` answer SERVFAIL for `names` and below; no names restores normal answers."""
    for qname in [SERVFAIL_CONTROL, *(normalize(name) + SERVFAIL_CONTROL for name in names)]:
        reply = DNSRecord.parse(DNSRecord.question(qname, "TXT").send(*address, tcp=True, timeout=2))
        if reply.header.rcode != RCODE.NOERROR:
            raise RuntimeError(f"DNS server at {address} refused control query {qname}: {RCODE[reply.header.rcode]}")


class Versioned(Protocol):
    """A source that tells when its served view changes (moto_server.StackApp.served_version)."""

    def served_version(self) -> tuple[int, float, float]: ...


class Route53Resolver:
    """dnslib resolver: answers from a fresh read of the record source; with `versions` (the source in this
    process), an answer is kept while the served view cannot have changed: pebble asks each name three times at
    once (its concurrent validations), and under load every answer computed once less kept it within its 2 s."""

    def __init__(self, source: RecordSource, fault: FaultRule | None = None, versions: Versioned | None = None) -> None:
        self.source = source
        self.fault = fault
        self._versions = versions
        self._cache: dict[tuple[str, str], tuple[int, float, Answer]] = {}
        self._cache_lock = threading.Lock()

    def _answer(self, qname: str, qtype: str) -> Answer:
        if self._versions is None:
            return answer(self.source.zones(), qname, qtype)
        generation, now, until = self._versions.served_version()
        key = (qname.lower(), qtype)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] == generation and now < cached[1]:
            return cached[2]
        result = answer(self.source.zones(), qname, qtype)
        with self._cache_lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = (generation, until, result)
        return result

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply(ra=0, aa=1)
        qname, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        if request.header.opcode != OPCODE.QUERY:
            reply.header.rcode = RCODE.NOTIMP
            return reply
        forced = self.fault(qname, qtype) if self.fault else None
        if forced is not None:
            reply.header.rcode = forced
            return reply
        try:
            result = self._answer(qname, qtype)
        except Exception:  # any failure to read moto or to parse a value: SERVFAIL, traceback in the log
            traceback.print_exc()
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        reply.header.rcode = result.rcode
        reply.header.aa = int(result.rcode != RCODE.REFUSED)
        for rr in result.answer:
            reply.add_answer(rr)
        for rr in result.authority:
            reply.add_auth(rr)
        return reply


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler, but UDP truncation keeps the question (Go's resolver drops replies without one)
    and honours the client's EDNS0 payload size."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        self.server.logger.log_request(self, request)
        reply = self.server.resolver.resolve(request, self)
        edns_size = next((rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if edns_size is not None:
            reply.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD))
        self.server.logger.log_reply(self, reply)
        packed: bytes = reply.pack()
        limit = min(max(512, edns_size or 512), MAX_UDP_PAYLOAD)
        if self.protocol == "udp" and len(packed) > limit:
            truncated = request.reply(ra=0, aa=1)
            truncated.header.tc = 1
            truncated.header.rcode = reply.header.rcode
            self.server.logger.log_truncated(self, truncated)
            packed = truncated.pack()
        return packed


def start_servers(source: ServedZones, port: int, *, address: str = "127.0.0.1", quiet: bool = False) -> list[Any]:
    """Serve UDP and TCP on `address:port` from `source`, each on a daemon thread of this process; answers are
    kept while the source says its view has not changed, when it can say so (Versioned)."""
    versions = source if hasattr(source, "served_version") else None
    resolver = Route53Resolver(ServedRoute53(source), fault=ServfailNames(), versions=versions)  # type: ignore[arg-type]
    logger = DNSLogger("truncated,error" if quiet else "request,reply,truncated,error", prefix=False)
    servers = [
        DNSServer(resolver, port=port, address=address, tcp=tcp, logger=logger, handler=_Handler)
        for tcp in (False, True)
    ]
    # pebble validating a batch sends hundreds of questions at once; Linux's default UDP receive buffer (208 KiB,
    # about 200 queued datagrams) overflowed under a loaded moto and dropped them (RcvbufErrors in
    # /proc/net/snmp), which pebble reported as "i/o timeout". The kernel caps the request at net.core.rmem_max.
    servers[0].server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
    for server in servers:
        server.start_thread()
    # Never stopped: shutdown() waits out serve_forever's 0.5 s poll, and the daemon threads end with the process.
    return servers


def serve(port: int, endpoint_url: str, *, address: str = "127.0.0.1", quiet: bool = False) -> None:
    """Serve UDP and TCP on `address:port` until SIGTERM or SIGINT, reading moto over HTTP. The local stack runs
    the server inside moto's process instead (moto_server.serve with a DNS port), where a question costs no
    request to moto: pebble validating a batch asks hundreds at once."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    start_servers(MotoControl(endpoint_url), port, address=address, quiet=quiet)
    print(f"dns server on {address}:{port} (udp+tcp), zones from {endpoint_url}", flush=True)
    stopped.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--endpoint-url", required=True, help="the stack's moto (tests.stack.moto_server), e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--quiet", action="store_true", help="log errors only, not every query")
    args = parser.parse_args(argv)
    serve(args.port, args.endpoint_url, address=args.address, quiet=args.quiet)


if __name__ == "__main__":
    main()

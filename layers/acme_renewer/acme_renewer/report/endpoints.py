"""Report stage, consumers: check by TLS handshake that each `host:port` of an item serves the current certificate.

We compare expiry, not trust: the handshake skips verification, so endpoints behind private CAs can be checked too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

MAX_ENDPOINTS = 20
# Timestamps written as ISO strings and certificates' second-resolution validity may differ by a rounding step.
EXPIRY_SLACK = timedelta(seconds=1)
DEFAULT_TIMEOUT = 5.0
# Unreachable endpoints cost a timeout each; checking them side by side keeps a run within the Lambda timeout.
_MAX_PARALLEL_CHECKS = 8
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_EXAMPLE = "'example.com:443'"


@dataclass(frozen=True)
class Endpoint:
    """A TLS endpoint; `host` is a lowercase name, an IPv4 address or a compressed IPv6 address (no brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServedCertificate:
    """The leaf certificate an endpoint presented."""

    not_after: datetime  # aware, UTC
    serial: str  # lowercase hex, as format(serial_number, "x")
    names: tuple[str, ...]  # DNS names of the subjectAltName

    @classmethod
    def from_der(cls, der: bytes) -> ServedCertificate:
        certificate = x509.load_der_x509_certificate(der)
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            names: tuple[str, ...] = ()
        else:
            names = tuple(san.get_values_for_type(x509.DNSName))
        return cls(
            not_after=certificate.not_valid_after_utc,
            serial=format(certificate.serial_number, "x"),
            names=names,
        )


class EndpointError(Exception):
    """The endpoint did not let us read its certificate: refused, timed out, TLS failure. Says which and why."""

    def __init__(self, endpoint: Endpoint, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"{endpoint}: {reason}")


@dataclass(frozen=True)
class EndpointCheck:
    """One endpoint compared with the certificate in force. `served` is None exactly when `error` is set."""

    endpoint: Endpoint
    stale: bool
    served: ServedCertificate | None
    error: str | None  # why the endpoint could not be read, without the endpoint itself
    expected_not_after: datetime | None = None

    def describe(self) -> str:
        if self.served is None:
            return f"{self.endpoint} could not be checked, counted as stale: {self.error}"
        served = f"{self.endpoint} serves serial {self.served.serial} expiring {_time(self.served.not_after)}"
        if not self.stale:
            return f"{served}, up to date"
        expected = f" (expires {_time(self.expected_not_after)})" if self.expected_not_after else ""
        return f"{served}, older than the current certificate{expected}"


def parse_endpoint(raw: str) -> Endpoint:
    """Read `host:port` (`[v6]:port` for IPv6); raise ValueError with what to write instead."""
    if not raw:
        raise ValueError(f"endpoint '' is empty; write it as 'host:port', e.g. {_EXAMPLE}")
    if any(c.isspace() for c in raw):
        raise ValueError(f"endpoint {raw!r} contains whitespace; write it as 'host:port' without spaces")
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        bare = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if not _has_port(bare):
            bare += ":443"
        raise ValueError(f"endpoint {raw!r} has a scheme; drop '{scheme}://' and write {bare!r}")
    if any(c in raw for c in "/?#"):
        raise ValueError(f"endpoint {raw!r} has a path; an endpoint is only 'host:port', e.g. {_EXAMPLE}")

    if raw.startswith("["):
        inside, closed, after = raw[1:].partition("]")
        if not closed:
            raise ValueError(f"endpoint {raw!r} opens '[' without a closing ']'; write IPv6 as '[::1]:443'")
        if not after:
            raise ValueError(f"endpoint {raw!r} has no port; write '{raw}:443'")
        if not after.startswith(":"):
            raise ValueError(f"endpoint {raw!r} needs ':port' right after ']', e.g. '[{inside}]:443'")
        host, port_text = _ipv6(raw, inside), after[1:]
    elif "[" in raw or "]" in raw:
        raise ValueError(
            f"endpoint {raw!r} has unbalanced brackets; brackets enclose a whole IPv6 address: '[::1]:443'"
        )
    elif raw.count(":") > 1:
        raise ValueError(f"endpoint {raw!r} looks like an IPv6 address without brackets; {_ipv6_hint(raw)}")
    else:
        host, colon, port_text = raw.rpartition(":")
        if not colon:
            raise ValueError(f"endpoint {raw!r} has no port; write '{raw}:443' (or the port it listens on)")
        if not host:
            raise ValueError(f"endpoint {raw!r} has no host; write it as 'host:port', e.g. {_EXAMPLE}")
        host = _host(raw, host)
    return Endpoint(host, _port(raw, port_text))


def parse_endpoints(raw: object) -> tuple[tuple[Endpoint, ...], list[str]]:
    """An item's `endpoints` attribute: the endpoints that parse (first occurrence kept) and every problem found."""
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        return (), [f"endpoints must be a list of 'host:port' strings, e.g. [{_EXAMPLE}], got {raw!r}"]
    problems: list[str] = []
    if len(raw) > MAX_ENDPOINTS:
        problems.append(f"endpoints has {len(raw)} entries; at most {MAX_ENDPOINTS} are checked per certificate")
    endpoints: list[Endpoint] = []
    for entry in raw:
        if not isinstance(entry, str):
            problems.append(f"endpoint {entry!r} must be a string 'host:port', e.g. {_EXAMPLE}")
            continue
        try:
            endpoint = parse_endpoint(entry)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if endpoint in endpoints:
            problems.append(f"endpoint {entry!r} is listed more than once (as {str(endpoint)!r})")
        else:
            endpoints.append(endpoint)
    return tuple(endpoints[:MAX_ENDPOINTS]), problems


def server_name_for(name: str) -> str:
    """The SNI to send for a certificate name: a wildcard's base ("*.example.com" -> "example.com")."""
    name = name.rstrip(".")
    return name[2:] if name.startswith("*.") else name


def fetch_served_certificate(
    endpoint: Endpoint, server_name: str, timeout: float = DEFAULT_TIMEOUT
) -> ServedCertificate:
    """Handshake with SNI `server_name` and return the leaf presented. Connect and handshake each get `timeout` s.

    Name resolution uses the system resolver and its own timeouts. Nothing is sent after the handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # We compare expiry, not trust; with CERT_NONE getpeercert(binary_form=True) still returns the leaf.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = server_name_for(server_name)
    try:
        connection = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except socket.gaierror as exc:
        raise EndpointError(endpoint, f"cannot resolve {endpoint.host!r} ({exc.strerror})") from exc
    except ConnectionRefusedError as exc:
        raise EndpointError(endpoint, f"connection refused (nothing listens on port {endpoint.port})") from exc
    except TimeoutError as exc:
        raise EndpointError(endpoint, f"no TCP connection within {timeout:g} s") from exc
    except OSError as exc:
        raise EndpointError(endpoint, f"cannot connect ({exc.strerror or exc})") from exc
    with connection:
        # Since Python 3.5 the socket timeout bounds the whole handshake, not each read.
        connection.settimeout(timeout)
        try:
            with context.wrap_socket(connection, server_hostname=sni) as tls:
                der = tls.getpeercert(binary_form=True)
        except TimeoutError as exc:
            raise EndpointError(endpoint, f"TLS handshake did not complete within {timeout:g} s") from exc
        except (ssl.SSLEOFError, ConnectionResetError) as exc:
            raise EndpointError(
                endpoint,
                f"the server closed the connection during the TLS handshake (SNI {sni!r});"
                " does it have a certificate for that name?",
            ) from exc
        except ssl.SSLError as exc:
            raise EndpointError(endpoint, f"TLS handshake failed ({exc.reason or exc})") from exc
        except OSError as exc:
            raise EndpointError(endpoint, f"TLS handshake failed ({exc.strerror or exc})") from exc
    if not der:
        raise EndpointError(endpoint, "the server presented no certificate")
    try:
        return ServedCertificate.from_der(der)
    except ValueError as exc:
        raise EndpointError(endpoint, f"the presented certificate cannot be parsed ({exc})") from exc


def check_endpoints(
    endpoints: Sequence[Endpoint],
    server_name: str,
    expected_not_after: datetime,
    fetch: Callable[[Endpoint, str], ServedCertificate] = fetch_served_certificate,
) -> list[EndpointCheck]:
    """One check per endpoint, in order. Stale: it serves an earlier expiry than `expected_not_after`, or no answer.

    `fetch` must raise EndpointError for an endpoint it cannot read; anything else is a bug and propagates.
    """
    if expected_not_after.tzinfo is None:
        raise ValueError("expected_not_after must be timezone-aware")
    sni = server_name_for(server_name)

    def check(endpoint: Endpoint) -> EndpointCheck:
        try:
            served = fetch(endpoint, sni)
        except EndpointError as exc:
            return EndpointCheck(
                endpoint, stale=True, served=None, error=exc.reason, expected_not_after=expected_not_after
            )
        stale = served.not_after < expected_not_after - EXPIRY_SLACK
        return EndpointCheck(endpoint, stale=stale, served=served, error=None, expected_not_after=expected_not_after)

    if len(endpoints) <= 1:
        return [check(endpoint) for endpoint in endpoints]
    with ThreadPoolExecutor(max_workers=min(len(endpoints), _MAX_PARALLEL_CHECKS)) as pool:
        return list(pool.map(check, endpoints))


def _has_port(host_port: str) -> bool:
    return "]:" in host_port if host_port.startswith("[") else host_port.count(":") == 1


def _ipv6(raw: str, inside: str) -> str:
    try:
        return ipaddress.IPv6Address(inside).compressed
    except ValueError:
        raise ValueError(
            f"endpoint {raw!r} has brackets around {inside!r}, which is not an IPv6 address;"
            f" brackets are for IPv6 only ('[::1]:443'), write a name or IPv4 address without them"
        ) from None


def _ipv6_hint(raw: str) -> str:
    address, _, port = raw.rpartition(":")
    # Read the last group as the port first: people write "::1:443" meaning port 443, though it is a valid address too.
    for candidate, candidate_port in ((address, port), (raw, "443")):
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        if candidate_port.isdigit():
            return f"write '[{candidate}]:{candidate_port}'"
    return "write IPv6 as '[::1]:443'"


def _host(raw: str, host: str) -> str:
    name = host.lower().rstrip(".")
    if name.startswith("*."):
        raise ValueError(
            f"endpoint {raw!r} is a wildcard; name a host that can be connected to, e.g. {raw.replace('*', 'www', 1)!r}"
        )
    if not name.isascii():
        raise ValueError(f"endpoint {raw!r} has a non-ASCII host; write its punycode form ('xn--...')")
    if re.fullmatch(r"[0-9.]+", name):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise ValueError(f"endpoint {raw!r} has {host!r}, which is not a valid IPv4 address") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"endpoint {raw!r} has host {host!r}, which is not a valid host name"
            " (letters, digits, inner hyphens; labels of 1-63 characters separated by dots)"
        )
    return name


def _port(raw: str, text: str) -> int:
    if not text:
        raise ValueError(f"endpoint {raw!r} has no port after ':'; write e.g. '{raw}443'")
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"endpoint {raw!r} has port {text!r}, which is not a number; a port is 1-65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"endpoint {raw!r} has port {port}; a port is 1-65535")
    return port


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")

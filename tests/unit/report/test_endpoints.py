"""Endpoints: `host:port` is read strictly with fixes in the messages, and staleness is decided from expiry alone."""

from datetime import UTC, datetime, timedelta

import pytest

from acme_renewer.report.endpoints import (
    MAX_ENDPOINTS,
    Endpoint,
    EndpointError,
    ServedCertificate,
    check_endpoints,
    parse_endpoint,
    parse_endpoints,
)

EXPECTED = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "endpoint", "text"),
    [
        ("example.com:443", Endpoint("example.com", 443), "example.com:443"),
        ("Internal-LB.Example.COM.:8443", Endpoint("internal-lb.example.com", 8443), "internal-lb.example.com:8443"),
        ("localhost:1", Endpoint("localhost", 1), "localhost:1"),
        ("_svc.example.com:65535", Endpoint("_svc.example.com", 65535), "_svc.example.com:65535"),
        ("10.0.0.7:443", Endpoint("10.0.0.7", 443), "10.0.0.7:443"),
        ("[::1]:443", Endpoint("::1", 443), "[::1]:443"),
        ("[2001:DB8:0:0::1]:8443", Endpoint("2001:db8::1", 8443), "[2001:db8::1]:8443"),
    ],
)
def test_good_endpoints_parse_and_print_back(raw: str, endpoint: Endpoint, text: str) -> None:
    assert parse_endpoint(raw) == endpoint
    assert str(endpoint) == text
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("", "is empty"),
        ("example.com", "has no port; write 'example.com:443'"),
        ("example.com:", "no port after ':'; write e.g. 'example.com:443'"),
        ("example.com:0", "port 0; a port is 1-65535"),
        ("example.com:65536", "port 65536; a port is 1-65535"),
        ("example.com:https", "'https', which is not a number"),
        ("example.com:-1", "not a number"),
        (":443", "has no host"),
        (" example.com:443", "contains whitespace"),
        ("example.com :443", "contains whitespace"),
        ("https://example.com", "drop 'https://' and write 'example.com:443'"),
        ("https://example.com:8443/health", "drop 'https://' and write 'example.com:8443'"),
        ("https://[::1]/", "write '[::1]:443'"),
        ("example.com:443/health", "has a path"),
        ("::1:443", "without brackets; write '[::1]:443'"),
        ("2001:db8::1", "without brackets; write '[2001:db8::1]:443'"),
        ("[::1:443", "without a closing ']'"),
        ("[::1]443", "':port' right after ']'"),
        ("[::1]", "has no port; write '[::1]:443'"),
        ("::1]:443", "unbalanced brackets"),
        ("[example.com]:443", "not an IPv6 address; brackets are for IPv6 only"),
        ("[]:443", "not an IPv6 address"),
        ("*.example.com:443", "is a wildcard; name a host that can be connected to, e.g. 'www.example.com:443'"),
        ("ex ample.com:443", "whitespace"),
        ("ex!ample.com:443", "not a valid host name"),
        ("-example.com:443", "not a valid host name"),
        ("example..com:443", "not a valid host name"),
        ("bücher.example:443", "punycode"),
        ("999.1.1.1:443", "not a valid IPv4 address"),
    ],
)
def test_bad_endpoints_are_rejected_with_a_fix(raw: str, hint: str) -> None:
    with pytest.raises(ValueError, match="endpoint") as caught:
        parse_endpoint(raw)
    assert hint in str(caught.value)
    assert repr(raw) in str(caught.value)


def test_an_item_lists_endpoints_as_distinct_strings() -> None:
    assert parse_endpoints([]) == ((), [])
    endpoints, problems = parse_endpoints(["a.example.com:443", "[::1]:8443"])
    assert endpoints == (Endpoint("a.example.com", 443), Endpoint("::1", 8443))
    assert problems == []


@pytest.mark.parametrize("raw", ["a.example.com:443", None, {"host": "a.example.com"}, 443])
def test_endpoints_must_be_a_list(raw: object) -> None:
    endpoints, [problem] = parse_endpoints(raw)
    assert endpoints == ()
    assert problem.startswith("endpoints must be a list of 'host:port' strings")


def test_every_bad_entry_is_reported_and_the_good_ones_kept() -> None:
    endpoints, problems = parse_endpoints(["a.example.com:443", 443, "b.example.com", "A.example.com.:443"])
    assert endpoints == (Endpoint("a.example.com", 443),)
    assert problems == [
        "endpoint 443 must be a string 'host:port', e.g. 'example.com:443'",
        "endpoint 'b.example.com' has no port; write 'b.example.com:443' (or the port it listens on)",
        "endpoint 'A.example.com.:443' is listed more than once (as 'a.example.com:443')",
    ]


def test_at_most_twenty_endpoints() -> None:
    raw = [f"host{i}.example.com:443" for i in range(MAX_ENDPOINTS + 1)]
    endpoints, [problem] = parse_endpoints(raw)
    assert len(endpoints) == MAX_ENDPOINTS
    assert problem == f"endpoints has {MAX_ENDPOINTS + 1} entries; at most {MAX_ENDPOINTS} are checked per certificate"
    assert parse_endpoints(raw[:MAX_ENDPOINTS])[1] == []


class FakeFetch:
    """Endpoints by address: a served certificate, or an EndpointError reason. Records the SNI asked for."""

    def __init__(self, served: dict[str, ServedCertificate | str]) -> None:
        self.served = served
        self.calls: list[tuple[Endpoint, str]] = []

    def __call__(self, endpoint: Endpoint, server_name: str) -> ServedCertificate:
        self.calls.append((endpoint, server_name))
        answer = self.served[str(endpoint)]
        if isinstance(answer, str):
            raise EndpointError(endpoint, answer)
        return answer


def served(not_after: datetime, serial: str = "abc123") -> ServedCertificate:
    return ServedCertificate(not_after=not_after, serial=serial, names=("example.com",))


def test_fresh_stale_and_unreachable_endpoints() -> None:
    fetch = FakeFetch(
        {
            "same.example.com:443": served(EXPECTED, "1"),
            "newer.example.com:443": served(EXPECTED + timedelta(days=30), "2"),
            "rounded.example.com:443": served(EXPECTED - timedelta(milliseconds=999), "3"),
            "old.example.com:443": served(EXPECTED - timedelta(seconds=2), "4"),
            "down.example.com:443": "connection refused",
        }
    )
    endpoints = [parse_endpoint(address) for address in fetch.served]

    checks = check_endpoints(endpoints, "example.com", EXPECTED, fetch=fetch)

    assert [c.endpoint for c in checks] == endpoints  # in the order given
    assert {str(c.endpoint): c.stale for c in checks} == {
        "same.example.com:443": False,
        "newer.example.com:443": False,
        "rounded.example.com:443": False,
        "old.example.com:443": True,
        "down.example.com:443": True,
    }
    by_address = {str(c.endpoint): c for c in checks}
    old, down, fresh = (
        by_address["old.example.com:443"],
        by_address["down.example.com:443"],
        by_address["same.example.com:443"],
    )
    assert old.served is not None and old.served.serial == "4" and old.error is None
    assert down.served is None and down.error == "connection refused"
    assert old.describe() == (
        "old.example.com:443 serves serial 4 expiring 2030-06-01T11:59:58+00:00, older than the current certificate"
        " (expires 2030-06-01T12:00:00+00:00)"
    )
    assert down.describe() == "down.example.com:443 could not be checked, counted as stale: connection refused"
    assert fresh.describe() == "same.example.com:443 serves serial 1 expiring 2030-06-01T12:00:00+00:00, up to date"


def test_a_wildcard_certificate_is_asked_for_by_its_base_name() -> None:
    fetch = FakeFetch({"lb.internal:443": served(EXPECTED)})
    [check] = check_endpoints([Endpoint("lb.internal", 443)], "*.example.com", EXPECTED, fetch=fetch)
    assert not check.stale
    assert fetch.calls == [(Endpoint("lb.internal", 443), "example.com")]


def test_the_subject_is_sent_as_is() -> None:
    fetch = FakeFetch({"lb.internal:443": served(EXPECTED)})
    check_endpoints([Endpoint("lb.internal", 443)], "www.example.com", EXPECTED, fetch=fetch)
    assert fetch.calls == [(Endpoint("lb.internal", 443), "www.example.com")]


def test_no_endpoints_no_checks() -> None:
    assert check_endpoints([], "example.com", EXPECTED, fetch=FakeFetch({})) == []


def test_a_naive_expiry_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_endpoints([Endpoint("a.example.com", 443)], "example.com", datetime(2030, 1, 1), fetch=FakeFetch({}))

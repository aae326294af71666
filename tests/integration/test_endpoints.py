"""Endpoints over real sockets: a TLS server that swaps certificates like an nginx reload, a closed port, a mute one."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from acme_renewer.report.endpoints import (
    Endpoint,
    EndpointError,
    check_endpoints,
    fetch_served_certificate,
    parse_endpoint,
)
from tests.stack.tls_endpoint import SelfSigned, TlsEndpoint

NAMES = ("example.test", "*.example.test")


@pytest.fixture(scope="module")
def old() -> SelfSigned:
    return SelfSigned.create(NAMES, lifetime=timedelta(days=10))


@pytest.fixture(scope="module")
def new() -> SelfSigned:
    return SelfSigned.create(NAMES, lifetime=timedelta(days=90))


@pytest.fixture
def closed_port() -> Endpoint:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return Endpoint("127.0.0.1", port)


@pytest.fixture
def mute_endpoint() -> Iterator[Endpoint]:
    """Accepts TCP (the kernel completes it from the backlog) and never says a word of TLS."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield Endpoint("127.0.0.1", listener.getsockname()[1])


def test_the_served_leaf_is_read(old: SelfSigned) -> None:
    with TlsEndpoint(old.cert_pem, old.key_pem) as server:
        served = fetch_served_certificate(parse_endpoint(server.address), "*.example.test")

    assert served.serial == format(old.certificate.serial_number, "x")
    assert served.not_after == old.certificate.not_valid_after_utc
    assert served.not_after.utcoffset() == timedelta(0)
    assert served.names == NAMES


def test_an_endpoint_is_stale_until_it_serves_the_new_certificate(old: SelfSigned, new: SelfSigned) -> None:
    expected = new.certificate.not_valid_after_utc
    with TlsEndpoint() as server:
        endpoint = parse_endpoint(server.address)
        server.serve(old.cert_pem, old.key_pem)

        [before] = check_endpoints([endpoint], "example.test", expected)
        assert before.stale and before.error is None
        assert before.served is not None and before.served.serial == format(old.certificate.serial_number, "x")
        assert "older than the current certificate" in before.describe()

        server.serve(new.cert_pem, new.key_pem)  # the consumer reloads

        [after] = check_endpoints([endpoint], "example.test", expected)
        assert not after.stale
        assert after.served is not None and after.served.serial == format(new.certificate.serial_number, "x")


def test_an_endpoint_without_a_certificate_yet_fails_the_handshake() -> None:
    with TlsEndpoint() as server, pytest.raises(EndpointError, match="during the TLS handshake"):
        fetch_served_certificate(parse_endpoint(server.address), "example.test")


def test_a_closed_port_is_refused_and_counts_as_stale(closed_port: Endpoint, new: SelfSigned) -> None:
    with pytest.raises(EndpointError, match="connection refused") as caught:
        fetch_served_certificate(closed_port, "example.test")
    assert str(closed_port) in str(caught.value)

    [check] = check_endpoints([closed_port], "example.test", new.certificate.not_valid_after_utc)
    assert check.stale and check.served is None
    assert check.error is not None and "connection refused" in check.error


def test_a_server_that_never_answers_times_out(mute_endpoint: Endpoint) -> None:
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"TLS handshake did not complete within 0\.5 s"):
        fetch_served_certificate(mute_endpoint, "example.test", timeout=0.5)
    assert time.monotonic() - started < 3


def test_endpoints_are_checked_side_by_side(
    old: SelfSigned, new: SelfSigned, closed_port: Endpoint, mute_endpoint: Endpoint
) -> None:
    expected = new.certificate.not_valid_after_utc
    with TlsEndpoint(old.cert_pem, old.key_pem) as stale_server, TlsEndpoint(new.cert_pem, new.key_pem) as fresh:
        endpoints = [parse_endpoint(fresh.address), closed_port, mute_endpoint, parse_endpoint(stale_server.address)]
        checks = check_endpoints(
            endpoints, "example.test", expected, fetch=lambda e, name: fetch_served_certificate(e, name, timeout=0.5)
        )

    assert [c.endpoint for c in checks] == endpoints
    assert [c.stale for c in checks] == [False, True, True, True]
    assert [c.error is None for c in checks] == [True, False, False, True]

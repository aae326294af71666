"""The ACME transport: bounded retries of what is safe to send again, and the CA's Retry-After, which the acme
library would drop. A scripted CA stands in for the network (no sockets)."""

import base64
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwa, jwk

from acme_renewer.errors import CaRetryLaterError
from acme_renewer.order.transport import (
    BAD_NONCE_RETRIES,
    MAX_RETRY_AFTER_SECONDS,
    TRANSIENT_RETRIES,
    CaUnavailableError,
    RenewerNetwork,
    retry_after_seconds,
)

CA = "https://ca.test"
NONCE_URL = f"{CA}/new-nonce"
BAD_NONCE = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale"}
SERVER_INTERNAL = {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "oops"}


def response(status: int, problem: dict[str, str] | None, headers: dict[str, str]) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update({"Content-Type": "application/problem+json", **headers})
    answer._content = json.dumps(problem).encode() if problem is not None else b"busy"
    return answer


class ScriptedCa:
    """Stands in for the network session: answers each request with the next scripted answer for its method.

    An answer is (status, problem document or None, headers) or an exception to raise. Every answer carries a
    fresh Replay-Nonce, as a CA's do; POSTs without a script are answered 200 with `{}`.
    """

    def __init__(self, **scripts: list[Any]) -> None:
        self.scripts = {method.upper(): list(answers) for method, answers in scripts.items()}
        self.sent: list[tuple[str, str, str | None]] = []  # method, url, the JWS nonce of a POST
        self._nonces = (base64.urlsafe_b64encode(f"nonce-{n}".encode()).decode().rstrip("=") for n in itertools.count())

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        nonce = None
        if method == "POST":
            protected = json.loads(kwargs["data"])["protected"]
            nonce = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))["nonce"]
        self.sent.append((method, url, nonce))
        script = self.scripts.get(method, [])
        answer = script.pop(0) if script else (200, None, {})
        if isinstance(answer, Exception):
            raise answer
        status, problem, headers = answer
        headers = {"Replay-Nonce": next(self._nonces), **headers}
        if status < 400:
            ok = response(status, None, {**headers, "Content-Type": "application/json"})
            ok._content = b"{}"
            return ok
        return response(status, problem, headers)

    def close(self) -> None:
        pass

    def count(self, method: str) -> int:
        return sum(sent[0] == method for sent in self.sent)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def network(ca: ScriptedCa, sleeps: list[float]) -> RenewerNetwork:
    net = RenewerNetwork(
        jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
        alg=jwa.ES256,
        user_agent="test",
        timeout=5,
        sleep=sleeps.append,
    )
    net.session = ca  # type: ignore[assignment]
    return net


def post(net: RenewerNetwork, path: str, payload: bool) -> requests.Response:
    """A POST with a payload (newOrder, finalize...) or a POST-as-GET (payload None)."""
    obj = messages.NewOrder(identifiers=()) if payload else None
    return net.post(f"{CA}{path}", obj, new_nonce_url=NONCE_URL)


def bad_nonces(n: int) -> list[Any]:
    return [(400, BAD_NONCE, {})] * n


# --- badNonce ----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [True, False], ids=["newOrder", "POST-as-GET"])
def test_bad_nonces_are_retried_up_to_the_bound_with_a_fresh_nonce_each_time(
    payload: bool, sleeps: list[float]
) -> None:
    ca = ScriptedCa(post=bad_nonces(BAD_NONCE_RETRIES))
    net = network(ca, sleeps)

    assert post(net, "/new-order", payload).status_code == 200

    nonces = [nonce for method, _, nonce in ca.sent if method == "POST"]
    assert len(nonces) == BAD_NONCE_RETRIES + 1
    assert len(set(nonces)) == len(nonces)
    # The refusals' own nonces are used (RFC 8555 section 6.5): one newNonce request in all, and no waiting.
    assert ca.count("HEAD") == 1
    assert sleeps == []


def test_bad_nonces_beyond_the_bound_fail(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=bad_nonces(BAD_NONCE_RETRIES + 1))

    with pytest.raises(messages.Error) as raised:
        post(network(ca, sleeps), "/new-order", payload=True)

    assert raised.value.code == "badNonce"
    assert ca.count("POST") == BAD_NONCE_RETRIES + 1


# --- 5xx, 429 and connection errors --------------------------------------------------------------


def test_a_read_that_fails_with_5xx_is_retried_with_backoff(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[(500, SERVER_INTERNAL, {}), (503, None, {"Content-Type": "text/html"})])

    assert post(network(ca, sleeps), "/authz/1", payload=False).status_code == 200

    assert ca.count("POST") == 3
    assert sleeps == [0.5, 1.0]


def test_a_read_waits_for_a_short_retry_after(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[(503, SERVER_INTERNAL, {"Retry-After": "3"})])

    assert post(network(ca, sleeps), "/order/1", payload=False).status_code == 200

    assert sleeps == [3.0]


def test_a_long_retry_after_is_left_to_the_failure_policy(sleeps: list[float]) -> None:
    long_wait = str(int(MAX_RETRY_AFTER_SECONDS) + 1)
    ca = ScriptedCa(post=[(503, SERVER_INTERNAL, {"Retry-After": long_wait})])

    with pytest.raises(CaRetryLaterError) as raised:
        post(network(ca, sleeps), "/order/1", payload=False)

    assert raised.value.retry_after == int(long_wait)
    assert (ca.count("POST"), sleeps) == (1, [])


def test_a_read_that_keeps_failing_gives_up_after_the_bound(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[(503, SERVER_INTERNAL, {})] * (TRANSIENT_RETRIES + 1))

    with pytest.raises(CaUnavailableError) as raised:
        post(network(ca, sleeps), "/cert/1", payload=False)

    assert raised.value.status == 503
    assert ca.count("POST") == TRANSIENT_RETRIES + 1
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("answer", [(503, SERVER_INTERNAL, {}), requests.ConnectionError("reset")])
def test_a_request_that_may_have_taken_effect_is_not_sent_again(answer: Any, sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[answer])

    with pytest.raises((CaUnavailableError, requests.ConnectionError)):
        post(network(ca, sleeps), "/new-order", payload=True)

    assert (ca.count("POST"), sleeps) == (1, [])


def test_a_5xx_on_new_order_says_where_and_what(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[(503, SERVER_INTERNAL, {})])

    with pytest.raises(CaUnavailableError) as raised:
        post(network(ca, sleeps), "/new-order", payload=True)

    message = str(raised.value)
    assert "HTTP 503" in message and "oops" in message


def test_new_nonce_and_the_directory_are_retried(sleeps: list[float]) -> None:
    ca = ScriptedCa(
        head=[(503, None, {}), requests.ConnectionError("refused")],
        get=[(500, None, {}), (429, None, {"Retry-After": "1"})],
    )
    net = network(ca, sleeps)

    assert net.get(f"{CA}/directory").status_code == 200
    assert post(net, "/order/1", payload=False).status_code == 200

    assert (ca.count("GET"), ca.count("HEAD"), ca.count("POST")) == (3, 3, 1)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]


def test_a_connection_error_on_a_read_is_retried(sleeps: list[float]) -> None:
    ca = ScriptedCa(post=[requests.ConnectionError("reset")])

    assert post(network(ca, sleeps), "/order/1", payload=False).status_code == 200

    assert ca.count("POST") == 2


# --- Retry-After -------------------------------------------------------------------------------


def test_rate_limit_with_retry_after_becomes_a_retry_later_error() -> None:
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates"}
    with pytest.raises(CaRetryLaterError) as raised:
        RenewerNetwork._check_response(response(429, problem, {"Retry-After": "3600"}))
    assert raised.value.retry_after == 3600
    assert "too many certificates" in str(raised.value)


def test_an_overloaded_ca_without_a_problem_document_too() -> None:
    with pytest.raises(CaRetryLaterError) as raised:
        RenewerNetwork._check_response(response(503, None, {"Retry-After": "120", "Content-Type": "text/plain"}))
    assert raised.value.retry_after == 120


def test_without_retry_after_the_acme_error_is_unchanged() -> None:
    problem = {"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": "no"}
    with pytest.raises(messages.Error):
        RenewerNetwork._check_response(response(400, problem, {}))


def test_bad_nonce_stays_an_acme_error_for_post_to_retry() -> None:
    with pytest.raises(messages.Error):
        RenewerNetwork._check_response(response(400, BAD_NONCE, {"Retry-After": "1"}))


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Wed, 25 Nov 2026 13:00:00 GMT", now) == 3600
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None

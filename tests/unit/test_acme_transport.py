"""The ACME transport keeps the CA's Retry-After, which the acme library would drop."""

import json
from datetime import UTC, datetime

import pytest
import requests
from acme import messages

from acme_renewer.acme_account import RenewerNetwork, retry_after_seconds
from acme_renewer.errors import CaRetryLaterError


def response(status: int, problem: dict[str, str] | None, headers: dict[str, str]) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update({"Content-Type": "application/problem+json", **headers})
    answer._content = json.dumps(problem).encode() if problem is not None else b"busy"
    return answer


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


def test_bad_nonce_stays_for_acme_to_retry() -> None:
    problem = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale"}
    with pytest.raises(messages.Error):
        RenewerNetwork._check_response(response(400, problem, {"Retry-After": "1"}))


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Wed, 25 Nov 2026 13:00:00 GMT", now) == 3600
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None

"""Order stage, transport: everything that speaks HTTP to the CA, with bounded, named retries (badNonce, 5xx, 429).

account.py opens the client on it; orders.py only drives the protocol.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from acme import client, errors, messages
from aws_lambda_powertools import Logger
from josepy import errors as jose_errors
from josepy import jwa, jwk
from josepy.interfaces import JSONDeSerializable

from acme_renewer import SERVICE, __version__
from acme_renewer.errors import AcmeOrderError, CaRetryLaterError

logger = Logger(service=SERVICE, child=True)
USER_AGENT = f"acme-renewer/{__version__}"

# Transport retries (see RenewerNetwork). acme itself retries badNonce once only, and pebble's or a busy CA's
# nonce rejections come in runs longer than that.
BAD_NONCE_RETRIES = 5
TRANSIENT_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.5  # doubles on each retry: at most 0.5 + 1 + 2 s of waiting per request
MAX_RETRY_AFTER_SECONDS = 10.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class CaUnavailableError(AcmeOrderError):
    """The CA answered 5xx without Retry-After: it failed, and whether a POST took effect is unknown."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class RenewerNetwork(client.ClientNetwork):
    """The acme library's transport, with bounded retries, keeping the CA's Retry-After when it refuses a request.

    Retry rules:
    - badNonce (RFC 8555 §6.5) is retried on every POST, BAD_NONCE_RETRIES times at most: the CA refused the
      request before acting on it, so not even newOrder or finalize can take effect twice.
    - 429, 5xx and connection errors are retried, TRANSIENT_RETRIES times at most with backoff, and never sooner
      than the CA's Retry-After, only on requests that change nothing: GET (directory), HEAD (newNonce) and
      POST-as-GET (§6.3). A 5xx on newAccount, newOrder, a challenge answer or finalize may have taken effect,
      so it fails the certificate, and the item's backoff starts again with a new order.
    - A Retry-After longer than MAX_RETRY_AFTER_SECONDS is not waited for here: it becomes CaRetryLaterError and
      the failure policy honours it (§6.6; acme drops the headers with the response, so it is kept here).
    """

    def __init__(
        self,
        key: jwk.JWK,
        *,
        alg: jwa.JWASignature,
        user_agent: str,
        timeout: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(key, alg=alg, user_agent=user_agent, timeout=timeout)
        self._sleep = sleep

    @classmethod
    def _check_response(cls, response: requests.Response, content_type: str | None = None) -> requests.Response:
        try:
            try:
                return super()._check_response(response, content_type=content_type)
            except errors.ConflictError as conflict:
                # acme turns every 409 into ConflictError and drops the body. A 409 with a problem document and no
                # Location is a refusal to read like any other: alreadyReplaced is sent as 409 (RFC 9773 §5).
                problem = _problem_document(response)
                if problem is None or "Location" in response.headers:
                    raise
                raise problem from conflict
        except (messages.Error, errors.ClientError) as refused:
            # post() retries badNonce, and connect() needs the ConflictError of a known account: both unchanged.
            if getattr(refused, "code", None) == "badNonce" or isinstance(refused, errors.ConflictError):
                raise
            detail = str(refused) if isinstance(refused, messages.Error) else f"HTTP {response.status_code}"
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise CaRetryLaterError(f"the CA refused the request: {detail}", retry_after) from refused
            if response.status_code >= 500:
                request = f" to {response.request.method} {response.url}" if response.request is not None else ""
                message = f"the CA failed{request} with HTTP {response.status_code}: {detail}"
                raise CaUnavailableError(message, response.status_code) from refused
            raise

    def post(
        self,
        url: str,
        obj: JSONDeSerializable | None,
        content_type: str = client.ClientNetwork.JOSE_CONTENT_TYPE,
        **kwargs: Any,
    ) -> requests.Response:
        """A signed POST; every attempt signs again with a fresh nonce (the CA accepts each nonce once)."""
        reads_only = obj is None  # POST-as-GET, RFC 8555 §6.3
        bad_nonces = failures = 0
        while True:
            try:
                return self._post_once(url, obj, content_type=content_type, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or bad_nonces >= BAD_NONCE_RETRIES:
                    raise
                bad_nonces += 1
                logger.info("the CA rejected the nonce; signing again", extra={"url": url, "retry": bad_nonces})
            except (CaUnavailableError, CaRetryLaterError, requests.ConnectionError) as error:
                retry_after = error.retry_after if isinstance(error, CaRetryLaterError) else None
                if not reads_only or not self._pause_before_retry(failures, retry_after, f"POST-as-GET {url}", error):
                    raise
                failures += 1

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        """GET and HEAD are retried here; a POST cannot be sent again as it is (its nonce is spent), see post()."""
        if method not in ("GET", "HEAD"):
            response = super()._send_request(method, url, *args, **kwargs)
            self._keep_nonce_of_refusal(response)
            return response
        failures = 0
        while True:
            try:
                response = super()._send_request(method, url, *args, **kwargs)
            except requests.ConnectionError as error:
                if not self._pause_before_retry(failures, None, f"{method} {url}", error):
                    raise
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if not self._pause_before_retry(failures, retry_after, f"{method} {url}", response.status_code):
                    return response
            failures += 1

    def _pause_before_retry(self, failures: int, retry_after: float | None, request: str, reason: object) -> bool:
        """Sleep before the next attempt of a request that changes nothing; False: give up and let it fail."""
        if failures >= TRANSIENT_RETRIES or (retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS):
            return False
        delay = max(RETRY_BACKOFF_SECONDS * 2**failures, retry_after or 0.0)
        logger.warning(
            "the CA did not answer a read; retrying",
            extra={"request": request, "reason": str(reason), "retry": failures + 1, "delay_seconds": delay},
        )
        self._sleep(delay)
        return True

    def _keep_nonce_of_refusal(self, response: requests.Response) -> None:
        """A refusal carries a fresh nonce too (RFC 8555 §6.5); keeping it saves a newNonce round trip."""
        if response.ok or self.REPLAY_NONCE_HEADER not in response.headers:
            return
        with contextlib.suppress(errors.BadNonce):
            self._add_nonce(response)


def anonymous_network(timeout_seconds: int) -> RenewerNetwork:
    """A transport for the requests that need no account (the directory, renewalInfo): it cannot sign."""
    # acme types the key as required, but only POST uses it (and refuses without one).
    return RenewerNetwork(None, alg=jwa.ES256, user_agent=USER_AGENT, timeout=timeout_seconds)  # type: ignore[arg-type]


def _problem_document(response: requests.Response) -> messages.Error | None:
    """The RFC 7807 problem a response carries, or None when its body is not one."""
    try:
        body = response.json()
        return messages.Error.from_json(body) if isinstance(body, dict) and "type" in body else None
    except (ValueError, jose_errors.DeserializationError):
        return None


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())

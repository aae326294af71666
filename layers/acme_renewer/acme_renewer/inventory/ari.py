"""Inventory, planning: ACME Renewal Information (RFC 9773), the renewal window the CA suggests for a certificate.

Only certificates whose CA advertised `renewalInfo` when it issued them are checked (their item's `ari` map holds
the certificate's ARI id), each at most once per Retry-After. A run with nothing to check contacts no CA.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from acme import client, messages
from acme.client import _renewal_info_path_component
from aws_lambda_powertools import Logger
from cryptography import x509

from acme_renewer import SERVICE
from acme_renewer.models import AriState
from acme_renewer.order.transport import retry_after_seconds

logger = Logger(service=SERVICE, child=True)

# RFC 9773 §4.3: without Retry-After, poll again in about six hours (the draft acme implements says the same).
DEFAULT_RETRY_AFTER = timedelta(hours=6)
# A CA asking for sooner is heard, but one poll a minute per certificate is the floor.
MIN_RETRY_AFTER = timedelta(minutes=1)
# After a failed poll (CA down, 404, a malformed answer): try again in an hour, and meanwhile keep the local window.
RETRY_AFTER_ERROR = timedelta(hours=1)


def certificate_id(certificate_pem: str) -> str:
    """The certificate's ARI id (RFC 9773 §4.1): base64url(AKI keyIdentifier) "." base64url(serial DER).

    acme builds the same id for its ClientV2.renewal_time; its helper is reused rather than rewritten.
    """
    return _renewal_info_path_component(x509.load_pem_x509_certificate(certificate_pem.encode()))


def has_renewal_info(directory: messages.Directory) -> bool:
    try:
        directory["renewalInfo"]
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class SuggestedWindow:
    start: datetime
    end: datetime
    explanation_url: str | None
    retry_after: timedelta


class RenewalInfoError(Exception):
    """The CA's renewal information could not be read; the certificate keeps its local renewal window."""


class RenewalInfoClient:
    """Unauthenticated GETs of renewalInfo (RFC 9773 §4.1) through the ACME transport, with its retries and
    timeouts. Each CA's directory is read once per run, on the first certificate to check. Thread-safe."""

    def __init__(self, network: Callable[[], client.ClientNetwork]) -> None:
        self._network = network
        self._urls: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def suggested_window(self, directory_url: str, cert_id: str) -> SuggestedWindow | None:
        """The CA's window for the certificate; None when the CA (no longer) offers renewalInfo."""
        net = self._net()
        try:
            base = self._renewal_info_url(directory_url, net)
            if base is None:
                return None
            response = net.get(f"{base.rstrip('/')}/{cert_id}", content_type=client.ClientNetwork.JSON_CONTENT_TYPE)
            body = response.json()
            window = messages.RenewalInfo.from_json(body).suggested_window
            start, end = window.start, window.end
        except Exception as failed:  # any failure only means: no suggestion this time
            raise RenewalInfoError(f"{type(failed).__name__}: {failed}") from failed
        if start is None or end is None or end < start:
            raise RenewalInfoError(f"the CA's suggested window is not a window: start {start}, end {end}")
        explanation = body.get("explanationURL")
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        retry_after = DEFAULT_RETRY_AFTER if seconds is None else max(MIN_RETRY_AFTER, timedelta(seconds=seconds))
        return SuggestedWindow(start, end, explanation if isinstance(explanation, str) else None, retry_after)

    def _renewal_info_url(self, directory_url: str, net: client.ClientNetwork) -> str | None:
        with self._lock:
            if directory_url in self._urls:
                return self._urls[directory_url]
        directory = client.ClientV2.get_directory(directory_url, net)
        url = directory["renewalInfo"] if has_renewal_info(directory) else None
        with self._lock:
            self._urls[directory_url] = url
        return url

    def _net(self) -> client.ClientNetwork:
        """One transport per thread: acme's ClientNetwork keeps a requests session, which is not thread-safe."""
        net: client.ClientNetwork | None = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = self._network()
        return net


def refreshed(
    state: AriState,
    window: SuggestedWindow | None,
    now: datetime,
    rng: Callable[[], float] = random.random,
) -> AriState:
    """The item's ARI state after a poll that returned `window` (None: the CA offers no ARI any more).

    The renewal moment is a uniformly random time inside the window (RFC 9773 §4.2), so that a fleet renewed
    together does not come back together; it is kept while the window stays the same, so that each poll does
    not move it. A window already past (a revocation, say) makes the certificate due at once.
    """
    if window is None:
        return AriState(state.cert_id, checked_at=now, next_check_at=now + DEFAULT_RETRY_AFTER)
    # The item keeps times to the second: compare what it can hold, or a fractional window would always look new.
    window = replace(window, start=window.start.replace(microsecond=0), end=window.end.replace(microsecond=0))
    unchanged = (window.start, window.end) == (state.window_start, state.window_end)
    if unchanged and state.renew_at is not None:
        renew_at = state.renew_at
    elif window.end <= now:
        renew_at = now
    else:
        renew_at = window.start + (window.end - window.start) * rng()
    return AriState(
        cert_id=state.cert_id,
        window_start=window.start,
        window_end=window.end,
        explanation_url=window.explanation_url,
        renew_at=renew_at,
        checked_at=now,
        next_check_at=now + window.retry_after,
    )


def failed_check(state: AriState, now: datetime) -> AriState:
    """After a failed poll: the last known window stays, the next poll comes sooner than a regular one."""
    return replace(state, checked_at=now, next_check_at=now + RETRY_AFTER_ERROR)


def check_due(state: AriState | None, now: datetime) -> bool:
    return state is not None and (state.next_check_at is None or now >= state.next_check_at)

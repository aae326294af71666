"""Inventory, planning: is a certificate due, and when to try again after a failure."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from acme_renewer.models import AriState, CertificateRequest, CertificateState

# Fields whose change means a different certificate (or a different place to store it): re-issue at once.
ISSUANCE_FIELDS = ("domains", "key_type", "acm_regions", "secret_name", "preferred_chain", "profile", "acm_accounts")
# Every field the user writes; a change to any of them resets the failure count and backoff.
REQUEST_FIELDS = (
    "id", "domains", "key_type", "acm_regions", "secret_name", "renew_before_days", "enabled", "endpoints",
    "preferred_chain", "hosted_zone_id", "challenge_alias", "acme_directory", "eab_secret", "profile",
    "profile_fallback", "zone_role_arn", "zone_external_id", "acm_accounts", "formats",
    "secret_regions",
)  # fmt: skip
# Fields added after items were in use are hashed only when set: hashing their absence (null) would change the
# digest of every existing item, and an upgrade would re-issue the whole fleet. The older fields stay hashed as
# they always were, null included, for the same reason.
HASHED_WHEN_SET = frozenset(
    {
        "preferred_chain", "hosted_zone_id", "challenge_alias", "acme_directory", "eab_secret", "profile",
        "profile_fallback", "zone_role_arn", "zone_external_id", "acm_accounts", "formats",
        "secret_regions",
    }
)  # fmt: skip
# Under this lifetime, renew in the last half (renewal_time): Let's Encrypt's shortlived profile (160 h) is.
SHORT_LIVED = timedelta(days=10)


def fingerprint(item: Mapping[str, Any], fields: tuple[str, ...], directory_url: str) -> str:
    """A stable digest of the raw item fields (so it also works for items that fail validation).

    `directory_url` is the directory the item orders from, resolved (validation.account_directory): a certificate
    moves to another CA when that changes, whether by the item's acme_directory or by the function's default.
    The item's own acme_directory is not hashed, so `letsencrypt` and its URL are one request."""
    document = {
        name: item.get(name)
        for name in fields
        if name != "acme_directory" and (name not in HASHED_WHEN_SET or item.get(name) is not None)
    } | {"acme_directory": directory_url}
    canonical = json.dumps(document, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Decision:
    due: bool
    reason: str
    # Why a not-due certificate is held back: None (not due yet), "backoff" or "paused".
    held: str | None = None
    # When a not-due certificate is next due (its `due_at`); None: not before the item changes (paused).
    next_due: datetime | None = None
    # Due only because the secret's formats or regions changed: it is written again from its current certificate.
    rerender: bool = False


@dataclass(frozen=True)
class FailurePolicy:
    """Exponential backoff with jitter after consecutive failures, then a pause until the item changes.

    With the defaults (1 h doubling to 24 h, 8 attempts) a hopeless certificate stops after about
    three days and eight failed validations, far from Let's Encrypt's account pause.
    """

    base: timedelta = timedelta(hours=1)
    cap: timedelta = timedelta(hours=24)
    max_consecutive_failures: int = 8
    jitter: float = 0.1

    def delay(self, failure_count: int, rng: Callable[[], float] = random.random) -> timedelta:
        """1 h, 2 h, 4 h ... capped, each within +-10 % so that many failed items do not retry in step."""
        exponent = min(max(failure_count - 1, 0), 30)
        delay: timedelta = min(self.base * (2**exponent), self.cap)
        return delay * (1 + self.jitter * (2 * rng() - 1))

    def next_attempt(
        self, failure_count: int, now: datetime, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> datetime:
        delay = self.delay(failure_count, rng)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))  # the CA's Retry-After wins when longer
        return now + delay


def held_back(
    state: CertificateState, request_fingerprint: str, now: datetime, policy: FailurePolicy, item_id: str
) -> Decision | None:
    """After failures of this same request: paused past the limit, else backing off until next_attempt_at."""
    if not state.failure_count or state.attempt_fingerprint != request_fingerprint:
        return None
    if state.failure_count >= policy.max_consecutive_failures:
        return Decision(
            False,
            f"paused after {state.failure_count} consecutive failures; change the item or run "
            f"`acme-renewer renew {item_id}` to try again",
            held="paused",
            next_due=None,
        )
    if state.next_attempt_at is not None and now < state.next_attempt_at:
        return Decision(
            False,
            f"backing off after {state.failure_count} failure(s) until {state.next_attempt_at:%Y-%m-%dT%H:%M:%SZ}",
            held="backoff",
            next_due=state.next_attempt_at,
        )
    return None


def renewal_decision(
    request: CertificateRequest,
    state: CertificateState,
    now: datetime,
    *,
    request_fingerprint: str,
    issuance_fingerprint: str,
    policy: FailurePolicy,
) -> Decision:
    """Due when never issued, when the request changed, or inside the renewal window; held back after failures."""
    if (held := held_back(state, request_fingerprint, now, policy, request.id)) is not None:
        return held
    if state.not_after is None:
        return Decision(True, "never issued")
    if state.issued_fingerprint != issuance_fingerprint:
        return Decision(True, "the request changed since the last issuance")
    return window_decision(request, state, now)


def window_decision(request: CertificateRequest, state: CertificateState, now: datetime) -> Decision:
    """Renew in the last third of the lifetime, or the last half for certificates living under 10 days
    (a 6-day certificate then has 3 days of retries left); `renew_before_days` replaces both. When the CA
    suggests a window (ARI), the random moment chosen in it counts too: whichever comes first."""
    if state.not_after is None:
        return Decision(True, "never issued")
    if request.renew_before_days is None and state.not_before is None:
        return Decision(True, "item has not_after but no not_before; renewing to learn the lifetime")
    renew_at, rule = renewal_time(request, state.not_before or state.not_after, state.not_after)
    ari = state.ari
    if ari is not None and ari.renew_at is not None and ari.renew_at < renew_at:
        renew_at, rule = ari.renew_at, _ari_rule(ari)
    days = f"{(state.not_after - now).total_seconds() / 86400:.1f}"
    if now >= renew_at:
        return Decision(True, f"{days} days left, inside the window ({rule})")
    # The item comes back for the CA's next answer too: a revocation moves the window to the past.
    next_due = renew_at if ari is None or ari.next_check_at is None else min(renew_at, ari.next_check_at)
    return Decision(False, f"{days} days left, outside the window ({rule})", next_due=next_due)


def _ari_rule(ari: AriState) -> str:
    start, end = ari.window_start, ari.window_end
    if start is None or end is None:
        return "the CA's suggested window (ARI)"
    passed = ari.checked_at is not None and end <= ari.checked_at
    rule = (
        f"the CA's suggested window (ARI) ended {end:%Y-%m-%dT%H:%MZ}: renew at once"
        if passed
        else f"the CA's suggested window (ARI) {start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ}"
    )
    return rule + (f", see {ari.explanation_url}" if ari.explanation_url else "")


def renewal_time(request: CertificateRequest, not_before: datetime, not_after: datetime) -> tuple[datetime, str]:
    """When a certificate with this lifetime enters its renewal window, and the rule that says so."""
    if request.renew_before_days is not None:
        return not_after - timedelta(days=request.renew_before_days), f"renew_before_days={request.renew_before_days}"
    lifetime = not_after - not_before
    if lifetime < SHORT_LIVED:
        return not_after - lifetime / 2, "last half of a short lifetime"
    return not_after - lifetime / 3, "last third of the lifetime"


def request_changed(old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any] | None) -> bool:
    """Whether a table change asks for something new: an item inserted, or a request field edited.

    The stream trigger's filter already drops the renewer's own writes; this second check keeps a write
    that touched only state fields (by anyone) from ordering anything.
    """
    if new_image is None:
        return False  # deleted: nothing to issue, and nothing of the certificate is deleted
    if old_image is None:
        return True
    return any(old_image.get(name) != new_image.get(name) for name in REQUEST_FIELDS)

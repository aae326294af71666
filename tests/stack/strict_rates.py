"""Strict layer, request rates: Route53 and Secrets Manager throttle an account's requests past their rate; moto never
does. moto's server is one process that every client of every process talks to, so a bucket here is account-wide,
as AWS's are: the processes of one account share it, whoever sends what.

- Route53: every API request of an account draws on one bucket, 50 requests of burst refilled at 10 per second;
  past it, HTTP 400 with the code `Throttling` and the message `Rate exceeded`
  (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html). The per-operation
  buckets of that page are as large or larger for the operations the renewer calls, and its change-throughput
  budget is not emulated.
- Secrets Manager: the "combined rate of PutSecretValue, RemoveRegionsFromReplication, ReplicateSecretToRegion,
  StopReplicationToReplica, UpdateSecret, and UpdateSecretVersionStage API requests", 50 per second per account and
  region (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html), answered with
  ThrottlingException, `Rate exceeded`, as AWS's JSON services throttle. AWS does not publish that bucket's burst:
  one second's worth.

The account is the one moto decides: the X-Moto-Account-Id header, else the access key's (a role's credentials from
AssumeRole act in the role's account). Private path (RatesControl): `/_stack/strict/rates` GET, PUT
`{"budget": "route53", "per_second": R or null (off), "burst": B}` (the budget's buckets are full again), DELETE
(zero the throttle counts).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from tests.stack.aws_calls import AwsCall
from tests.stack.processes import StackError
from tests.stack.route53_emulation import ROUTE53_XMLNS
from tests.stack.strict import Moto, Refusal

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

RATES_PATH = "/_stack/strict/rates"
ROUTE53 = "route53"
SECRETS_WRITES = "secretsmanager-writes"
RATE_EXCEEDED = "Rate exceeded"
_SECRETS_WRITE_OPERATIONS = frozenset(
    {
        "PutSecretValue",
        "RemoveRegionsFromReplication",
        "ReplicateSecretToRegions",
        "StopReplicationToReplica",
        "UpdateSecret",
        "UpdateSecretVersionStage",
    }
)
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Rate:
    """A token bucket's refill rate (the sustained requests per second) and capacity (the burst)."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and self.burst >= 1):
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self.per_second}, {self.burst}")


# AWS's, as the pages above give them.
AWS_RATES: Mapping[str, Rate | None] = {ROUTE53: Rate(10.0, 50.0), SECRETS_WRITES: Rate(50.0, 50.0)}
OFF: Mapping[str, Rate | None] = dict.fromkeys(AWS_RATES)


class TokenBucket:
    """Refilled at `rate` per second, holding at most `capacity` requests; a request takes one, or is refused."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0 - 1e-9:  # a client paced exactly at the rate is not refused for a rounding error
            return False
        self.tokens -= 1.0
        return True


def account_of(environ: WSGIEnvironment) -> str:
    """The account whose quota a request counts against, as moto decides which account's backend answers it."""
    if account := environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return str(account)
    scope = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if scope is None:
        return ""
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(scope[1]))


def region_of(environ: WSGIEnvironment) -> str:
    scope = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return scope[2] if scope else ""


def budget_of(call: AwsCall) -> str | None:
    """The budget a call draws on; None: not one this layer emulates."""
    if call.service == "route53":
        return ROUTE53
    if call.service == "secretsmanager" and call.operation in _SECRETS_WRITE_OPERATIONS:
        return SECRETS_WRITES
    return None


class RequestRates:
    """A rule of the strict layer (call it as one) with its buckets per budget and account (and region, but for
    Route53, which is global), and the private path that sets the rates; thread-safe."""

    def __init__(
        self, rates: Mapping[str, Rate | None] = AWS_RATES, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rates = dict(rates)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self.throttled: Counter[str] = Counter()

    def __call__(self, call: AwsCall, environ: WSGIEnvironment, body: bytes, moto: Moto) -> Refusal | None:
        budget = budget_of(call)
        if budget is None:
            return None
        key = (budget, account_of(environ), "" if budget == ROUTE53 else region_of(environ))
        with self._lock:
            rate = self._rates.get(budget)
            if rate is None:
                return None
            now = self._clock()
            if self._buckets.setdefault(key, TokenBucket(rate.per_second, rate.burst, now)).take(now):
                return None
            self.throttled[budget] += 1
        if budget == ROUTE53:
            return Refusal.xml("Throttling", RATE_EXCEEDED, ROUTE53_XMLNS)
        return Refusal.json("ThrottlingException", RATE_EXCEEDED)

    def set_rate(self, budget: str, rate: Rate | None) -> None:
        """The budget's rate from now on (None: not throttled); its buckets are full again."""
        if budget not in AWS_RATES:
            raise ValueError(f"budget must be one of {', '.join(AWS_RATES)}, got {budget!r}")
        with self._lock:
            self._rates[budget] = rate
            self._buckets = {key: bucket for key, bucket in self._buckets.items() if key[0] != budget}

    def control(self, method: str, path: str, body: bytes) -> Any | None:
        """Answer the private path (a JSON value), or None when the path is not this layer's; ValueError for a body
        that is not what the path expects."""
        if path != RATES_PATH:
            return None
        if method == "PUT":
            try:
                request = json.loads(body)
                per_second = request.get("per_second")
                rate = None if per_second is None else Rate(float(per_second), float(request.get("burst") or 1.0))
                budget = str(request["budget"])
            except (KeyError, TypeError, AttributeError) as error:
                raise ValueError(
                    f'expected {{"budget": "{ROUTE53}", "per_second": <number or null>, "burst": <number>}}: {error!r}'
                ) from error
            self.set_rate(budget, rate)
        elif method == "DELETE":
            with self._lock:
                self.throttled.clear()
        elif method != "GET":
            raise ValueError(f"{RATES_PATH} takes GET, PUT or DELETE, not {method}")
        with self._lock:
            rates = {name: None if r is None else {"per_second": r.per_second, "burst": r.burst}
                     for name, r in self._rates.items()}  # fmt: skip
            return {"rates": rates, "throttled": dict(self.throttled)}


class RatesControl:
    """Client of RequestRates' private path, usable from any process (LocalStack.rates)."""

    def __init__(self, endpoint_url: str, *, timeout: float = 5.0) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout

    def rate(self, budget: str) -> Rate | None:
        found = self._request("GET")["rates"][budget]
        return None if found is None else Rate(float(found["per_second"]), float(found["burst"]))

    def set_rate(self, budget: str, rate: Rate | None) -> None:
        """The budget's rate per account (and region) from now on, for every process; None: not throttled."""
        body = {"budget": budget, "per_second": None if rate is None else rate.per_second}
        self._request("PUT", body if rate is None else {**body, "burst": rate.burst})

    def throttled(self) -> dict[str, int]:
        """Requests answered with a throttling error since start or `reset_throttled`, by budget."""
        counts: dict[str, int] = self._request("GET")["throttled"]
        return counts

    def reset_throttled(self) -> None:
        self._request("DELETE")

    def _request(self, method: str, body: Any = None) -> Any:
        response = requests.request(method, self.endpoint_url + RATES_PATH, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise StackError(f"{self.endpoint_url}: {method} {RATES_PATH} gave {response.status_code}: {response.text}")
        return response.json()

"""Client-side pacing of AWS calls to a service's documented request rate, shared by the stages that call AWS.

A limiter sits on a boto3 client's before-send event, so retries are paced too. The rate is one process's share of
an account-wide budget: the budget divided by the processes sharing it now (`Shares`: at most WORKER_CONCURRENCY,
fewer while fewer batches are in flight), so that together they stay within it; botocore's adaptive retry mode
(runtime.CLIENT_CONFIG) slows down further when the service still throttles, for instance because something else in
the account calls it too.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE

logger = Logger(service=SERVICE, child=True)


# How often a process asks again how many processes share the budgets (one GetQueueAttributes each time).
SHARES_REFRESH_SECONDS = 10.0


class Shares:
    """Into how many shares the account's budgets are cut now: `most` (WORKER_CONCURRENCY, the event source mapping's
    MaximumConcurrency), or fewer when fewer batches are in flight on the queue, each being one busy worker.

    Static shares of 1/K waste what idle workers do not use: at the end of a mass renewal, or with fewer batches
    than workers, the last busy worker would import at 1/K of ACM's rate with the rest of the budget unused. The
    count is SQS's ApproximateNumberOfMessagesNotVisible, read at most every SHARES_REFRESH_SECONDS; it can only
    lower the count below `most`, never raise it above, and a count that cannot be read gives `most` back.
    """

    def __init__(
        self,
        most: int,
        in_flight: Callable[[], int] | None = None,
        *,
        refresh_seconds: float = SHARES_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._most = max(1, most)
        self._in_flight = in_flight if self._most > 1 else None
        self._refresh = refresh_seconds
        self._clock = clock
        self._current = self._most
        self._next_refresh = 0.0
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self) -> int:
        if self._in_flight is None:
            return self._most
        with self._lock:
            now = self._clock()
            if now < self._next_refresh:
                return self._current
            self._next_refresh = now + self._refresh  # the other threads keep the last count meanwhile
        try:
            counted = self._in_flight()
        except Exception as failed:  # no count: the safe share, the smallest
            if not self._warned:
                self._warned = True
                logger.warning(
                    "cannot count the batches in flight; pacing to 1/WORKER_CONCURRENCY", extra={"error": str(failed)}
                )
            counted = self._most
        current = min(self._most, max(1, counted))
        with self._lock:
            self._current = current
        return current


class RateLimiter:
    """At most `per_second` calls per second from this process, divided by `shares()` (the processes sharing the
    budget now), spaced evenly; thread-safe."""

    def __init__(
        self,
        per_second: float,
        *,
        shares: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._per_second = per_second
        self._shares = shares
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        self._pace(self._shares())  # outside the lock: it may ask SQS

    def _pace(self, shares: int) -> None:
        interval = shares / self._per_second
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + interval
        if slot > now:
            self._sleep(slot - now)

    def __call__(self, **_: Any) -> None:
        self.wait()

    def attach(self, client: Any, *operations: str) -> None:
        """Pace every request of the client, or only those of the operations named (`ImportCertificate`), which then
        share this one limiter; a client already paced (for an operation) keeps its first limiter there."""
        service = client.meta.service_model.service_id.hyphenize()
        for event in [f"before-send.{service}.{operation}" for operation in operations] or [f"before-send.{service}"]:
            client.meta.events.register(event, self, unique_id=f"acme-renewer-pace-{event}")


# botocore's retry modes number each attempt of a call in this header ("ttl=...; attempt=2; max=10").
_ATTEMPT = re.compile(r"attempt=(\d+)")


class SlottedRateLimiter(RateLimiter):
    """For a budget with little burst, ACM's ImportCertificate (1 a second): the processes sharing it take turns in
    slots of the wall clock instead of each keeping an even pace of its own.

    The wall clock (which Lambda keeps in step by NTP) is cut into slots of 1/`per_second` s. With `shares()` = K
    processes, this one sends in every K-th slot, at its middle, in a slot number (mod K) it picked at random. Two
    processes that picked the same one collide, the service throttles one of them, and the call's retry (botocore
    numbers attempts: `amz-sdk-request`) makes this process pick another at random, so the processes settle on
    slots of their own within a few rounds, as in slotted ALOHA with reservations. Evenly paced, uncoordinated
    processes at 1/K each kept colliding instead: 5 workers at 0.2 imports a second against a bucket of 1 a second
    with a burst of 2 were throttled on 40 % of their imports, and some ran out of retries.
    """

    def __init__(
        self,
        per_second: float,
        *,
        shares: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        choose: Callable[[int], int] = random.randrange,
    ) -> None:
        super().__init__(per_second, shares=shares, clock=clock, sleep=sleep)
        self._choose = choose
        self._slot: int | None = None  # this process's slot number, mod the shares; None: pick one
        self._left: int | None = None  # the slot it left after a throttled attempt: not picked again at once
        self._last = -1  # the last slot this process sent in

    @property
    def slot(self) -> int | None:
        return self._slot

    @property
    def last_sent_at(self) -> float:
        """The wall-clock time of the slot this process last sent in (its middle)."""
        return (self._last + 0.5) / self._per_second

    def wait(self) -> None:
        shares = self._shares()  # outside the lock: it may ask SQS
        if shares == 1:
            self._pace(1)  # alone: nobody to take turns with, and the first call goes at once
            return
        with self._lock:
            now = self._clock()
            if self._slot is None or self._slot >= shares:
                left = self._left if self._left is not None and self._left < shares else None
                if left is None:
                    self._slot = self._choose(shares)
                else:  # one of the other slots: the one it left is taken by someone else
                    self._slot = (left + 1 + self._choose(shares - 1)) % shares
            number = max(math.floor(now * self._per_second), self._last + 1)
            number += (self._slot - number) % shares
            if (number + 0.5) / self._per_second < now:
                number += shares  # past the middle of this one: the next of ours
            self._last = number
            at = (number + 0.5) / self._per_second
        if at > now:
            self._sleep(at - now)

    def reslot(self) -> None:
        """Pick another slot at the next call: the last one was taken by another process too."""
        with self._lock:
            self._left, self._slot = self._slot, None

    def __call__(self, request: Any = None, **_: Any) -> None:
        headers = getattr(request, "headers", None) or {}
        attempt = _ATTEMPT.search(_text(headers.get("amz-sdk-request", b"")))
        if attempt is not None and int(attempt.group(1)) > 1:
            self.reslot()  # a retry: the attempt before was refused, most likely throttled in a shared slot
        self.wait()


def _text(value: str | bytes) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value

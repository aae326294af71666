"""Client-side pacing of AWS calls to a service's documented request rate, shared by the stages that call AWS.

A limiter sits on a boto3 client's before-send event, so retries are paced too. The rate is one process's share of
an account-wide budget: the budget divided by the processes sharing it now (`Shares`: at most WORKER_CONCURRENCY,
fewer while fewer batches are in flight), so that together they stay within it; botocore's adaptive retry mode
(runtime.CLIENT_CONFIG) slows down further when the service still throttles, for instance because something else in
the account calls it too.
"""

from __future__ import annotations

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
        interval = self._shares() / self._per_second  # outside the lock: it may ask SQS
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

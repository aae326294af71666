"""Client-side pacing of AWS calls to a service's documented request rate, shared by the stages that call AWS.

A limiter sits on a boto3 client's before-send event, so retries are paced too. The rate is one process's share of
an account-wide budget (settings.Settings.*_share_per_second: the budget divided by the processes that may run at
once), so that together they stay within it; botocore's adaptive retry mode (runtime.CLIENT_CONFIG) slows down
further when the service still throttles, for instance because something else in the account calls it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class RateLimiter:
    """At most `per_second` calls per second from this process, spaced evenly; thread-safe."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
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

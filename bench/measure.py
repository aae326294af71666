"""What one timed run cost: wall time and peak memory of its process, and the calls the stack saw meanwhile.

Both tools are measured the same way: a fresh child process whose wall time is taken from outside and whose peak
RSS comes from the kernel (wait4), and server-side counters (moto via the stack, pebble via the ACME proxy) read
just before and just after it, with nothing else talking to the stack in between.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy

# Longer than any grid point should take; a hung child is killed rather than blocking the whole run.
CHILD_TIMEOUT_SECONDS = 3600.0


class BenchRunError(RuntimeError):
    """A setup the figures cannot stand on: a tool failed to issue the certificates it is then timed renewing."""


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    wall_seconds: float
    peak_rss_mb: float
    log_path: Path


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    timeout: float = CHILD_TIMEOUT_SECONDS,
) -> ChildRun:
    """Run `argv` to the end with its output in `log_path`.

    os.wait4 gives this child's own ru_maxrss (RUSAGE_CHILDREN would be the maximum over every child so far,
    other runs and the other tool included).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait for it again
    # Linux reports ru_maxrss in KiB.
    return ChildRun(process.returncode, wall, usage.ru_maxrss / 1024, log_path)


@dataclass(frozen=True)
class Counts:
    """Calls one run made, as the servers saw them (moto's counters, the ACME proxy's log)."""

    route53: dict[str, int]  # operation -> calls
    dynamodb_items_read: int
    acme_requests: int
    acme_by_path: dict[str, int] = field(default_factory=dict)  # "POST /authZ/" -> requests

    def route53_op(self, operation: str) -> int:
        return self.route53.get(operation, 0)

    def route53_other(self, *known: str) -> int:
        return sum(n for op, n in self.route53.items() if op not in known)


class Meter:
    """Reads the stack's counters around one run. moto's counters are reset at the start; the ACME proxy keeps its
    whole log, so the meter remembers where the run started in it."""

    def __init__(self, stack: LocalStack, proxy: AcmeProxy) -> None:
        self.stack = stack
        self.proxy = proxy
        self._acme_mark = 0

    def start(self) -> None:
        self.stack.reset_aws_calls()
        self._acme_mark = len(self.proxy.requests)

    def stop(self) -> Counts:
        exchanges = self.proxy.requests[self._acme_mark :]
        by_path: dict[str, int] = {}
        for exchange in exchanges:
            key = f"{exchange.method} {_path_kind(exchange.path)}"
            by_path[key] = by_path.get(key, 0) + 1
        route53 = dict(self.stack.aws_calls().get("route53", {}))
        return Counts(route53, self.stack.dynamodb_items_read(), len(exchanges), by_path)


def _path_kind(path: str) -> str:
    """pebble's resource kind (`/my-order/abc` -> `/my-order/`), so that per-kind counts stay readable."""
    parts = path.split("/")
    return "/".join(parts[:2]) + ("/" if len(parts) > 2 else "")


@dataclass(frozen=True)
class Measurement:
    """One tool renewing N certificates once at one DNS delay."""

    tool: str
    n: int
    delay_seconds: float
    run: ChildRun
    counts: Counts
    renewed: int
    # Time inside the renewal itself, without interpreter start and imports (ours only: its child reports it).
    inner_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.run.returncode == 0 and self.renewed == self.n


def child_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    """A clean environment pointed at the stack: no AWS profile or credentials of the person running the bench can
    leak into either tool, only what the stack gives (dummy credentials, moto's endpoint, the CA bundle)."""
    kept = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")}
    return {**kept, **stack.env, **extra}

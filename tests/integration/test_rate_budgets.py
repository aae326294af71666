"""Account-wide budgets shared by concurrent processes: K processes, each paced to its share of Route53's account
rate (settings.Settings.route53_share_per_second), make their calls at once and none is throttled; unpaced, or each
paced to the whole budget, the same calls are. The stack throttles per account across processes, as Route53 does
(tests/stack/strict_rates.py), so this proves the emulation and the pacing together."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.stack import LocalStack
from tests.stack.strict_rates import ROUTE53, Rate, RatesControl

PROCESSES = 3
CALLS_EACH = 20
# The account's rate in this test: faster than AWS's 10 so that the paced runs take 3 s, not 6. The burst leaves
# room for the processes' first calls arriving together and for a little scheduling jitter, not for more.
ACCOUNT_RATE = Rate(per_second=20.0, burst=2 * PROCESSES)

# A worker process: build the Route53 client as the function does (runtime.route53_client, from the environment's
# settings) or without pacing, say "ready", wait for "go", make its calls.
WORKER = f"""
import sys
from acme_renewer import runtime
from acme_renewer.settings import Settings

settings = Settings.from_env()
paced = sys.argv[1] == "paced"
route53 = runtime.route53_client(settings) if paced else runtime.client("route53", "us-east-1")
route53.list_hosted_zones()  # connected (one call, before the others start)
print("ready", flush=True)
sys.stdin.readline()
for _ in range({CALLS_EACH}):
    route53.list_hosted_zones()
"""


def run_workers(stack: LocalStack, mode: str, concurrency: int, *, until_throttled: bool = False) -> list[int | None]:
    """The workers' exit codes; with `until_throttled`, they are stopped at the first throttled call (None)."""
    env = {
        **os.environ,
        **stack.env,
        "WORKER_CONCURRENCY": str(concurrency),
        "ROUTE53_REQUESTS_PER_SECOND": repr(ACCOUNT_RATE.per_second),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mode], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        stack.rates.set_rate(ROUTE53, ACCOUNT_RATE)  # a full bucket, and no throttle counted from the warm-up
        stack.rates.reset_throttled()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        deadline = time.monotonic() + 60
        while until_throttled and time.monotonic() < deadline and any(w.poll() is None for w in workers):
            if stack.rates.throttled().get(ROUTE53, 0) > 0:
                break
            time.sleep(0.05)
        if not until_throttled:
            for worker in workers:
                worker.wait(timeout=60)
        return [worker.poll() for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def test_processes_paced_to_their_share_are_never_throttled(stack: LocalStack, route53_rate: RatesControl) -> None:
    assert run_workers(stack, "paced", concurrency=PROCESSES) == [0] * PROCESSES
    assert route53_rate.throttled().get(ROUTE53, 0) == 0


@pytest.mark.parametrize(
    ("mode", "concurrency"),
    [("unpaced", 1), ("paced", 1)],
    ids=["unpaced", "each-paced-to-the-whole-budget"],
)
def test_the_same_calls_beyond_the_share_are_throttled(
    stack: LocalStack, route53_rate: RatesControl, mode: str, concurrency: int
) -> None:
    run_workers(stack, mode, concurrency, until_throttled=True)
    assert route53_rate.throttled().get(ROUTE53, 0) > 0

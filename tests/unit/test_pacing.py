"""Client-side pacing (pacing.py): calls spaced to a rate, on a real client, per operation when asked."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import boto3
import pytest

from acme_renewer.pacing import RateLimiter, Shares, SlottedRateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_rate_limiter_spaces_requests() -> None:
    time: ClassVar[FakeTime] = FakeTime()
    limiter = RateLimiter(5, clock=time.clock, sleep=time.sleep)
    starts = []
    for _ in range(11):
        limiter.wait()
        starts.append(time.now)
    assert starts[-1] == pytest.approx(2.0)  # 11 requests at 5 per second take 2 s
    assert min(b - a for a, b in itertools.pairwise(starts)) == pytest.approx(0.2)


def test_the_rate_limiter_paces_a_real_client(route53: Any) -> None:
    time: ClassVar[FakeTime] = FakeTime()
    limiter = RateLimiter(4, clock=time.clock, sleep=time.sleep)
    limiter.attach(route53)
    limiter.attach(route53)  # a second attach does not double the pacing
    for _ in range(5):
        route53.list_hosted_zones()
    assert time.now == pytest.approx(1.0)


def test_a_limiter_on_one_operation_leaves_the_others_alone(mocked_aws: None) -> None:
    acm = boto3.client("acm", region_name="eu-west-1")
    time: ClassVar[FakeTime] = FakeTime()
    RateLimiter(1, clock=time.clock, sleep=time.sleep).attach(acm, "ImportCertificate")
    for _ in range(3):
        acm.list_certificates()
    assert time.now == 0.0
    for _ in range(3):
        with pytest.raises(acm.exceptions.ClientError):  # not a certificate; the call is still paced
            acm.import_certificate(Certificate=b"not a certificate", PrivateKey=b"not a key")
    assert time.now == pytest.approx(2.0)


class Recording(RateLimiter):
    """A RateLimiter on FakeTime that remembers the rates runtime builds it with."""

    time: ClassVar[FakeTime] = FakeTime()
    rates: ClassVar[list[float]] = []

    def __init__(self, per_second: float, *, shares: Callable[[], int] = lambda: 1) -> None:
        Recording.rates.append(per_second / shares())
        super().__init__(per_second, shares=shares, clock=Recording.time.clock, sleep=Recording.time.sleep)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch, mocked_aws: None) -> Iterator[type[Recording]]:
    from acme_renewer import runtime

    monkeypatch.setattr(runtime, "RateLimiter", Recording)
    monkeypatch.setattr(runtime, "_route53_limiters", {})
    monkeypatch.setattr(runtime, "_shares", {})
    Recording.time, Recording.rates = FakeTime(), []
    runtime.client.cache_clear()
    yield Recording
    runtime.client.cache_clear()


def test_route53_calls_are_paced_to_the_process_share(recording: type[Recording]) -> None:
    from acme_renewer import runtime
    from acme_renewer.settings import Settings

    settings = Settings("t", "eu-west-1", route53_requests_per_second=10.0, worker_concurrency=5)
    route53 = runtime.route53_client(settings)
    for _ in range(5):
        route53.list_hosted_zones()
    assert recording.rates == [2.0]
    assert recording.time.now == pytest.approx(2.0)  # 5 calls at 2 per second: the first at once


def test_secrets_writes_are_paced_to_the_process_share_and_reads_are_not(recording: type[Recording]) -> None:
    from acme_renewer import runtime
    from acme_renewer.settings import Settings

    settings = Settings("t", "eu-west-1", secrets_writes_per_second=4.0, worker_concurrency=2)
    secrets = runtime.secrets_client(settings)
    secrets.create_secret(Name="acme-renewer/x", SecretString="1")
    for value in "234":
        secrets.put_secret_value(SecretId="acme-renewer/x", SecretString=value)
    assert recording.rates == [2.0]
    assert recording.time.now == pytest.approx(1.5)  # create + 3 puts at 2 per second
    for _ in range(5):
        secrets.get_secret_value(SecretId="acme-renewer/x")
        secrets.describe_secret(SecretId="acme-renewer/x")
    assert recording.time.now == pytest.approx(1.5)


def test_two_roles_of_one_account_share_its_route53_share(recording: type[Recording]) -> None:
    """Route53 throttles the account, whichever role's credentials call it."""
    from acme_renewer import runtime
    from acme_renewer.models import ZoneRole
    from acme_renewer.settings import Settings

    settings = Settings("t", "eu-west-1", route53_requests_per_second=4.0, worker_concurrency=2)
    first = runtime.route53_client(settings, ZoneRole("arn:aws:iam::111122223333:role/a"))
    second = runtime.route53_client(settings, ZoneRole("arn:aws:iam::111122223333:role/b"))
    elsewhere = runtime.route53_client(settings, ZoneRole("arn:aws:iam::444455556666:role/a"))
    for route53 in (first, second, first, second):
        route53.list_hosted_zones()
    assert recording.time.now == pytest.approx(1.5)  # 4 calls of one account at 2 per second
    elsewhere.list_hosted_zones()
    assert recording.time.now == pytest.approx(1.5)  # another account, its own limiter


def test_the_budget_is_shared_by_the_batches_in_flight_never_more_than_worker_concurrency() -> None:
    time = FakeTime()
    in_flight = [2]
    asked: list[float] = []

    def count() -> int:
        asked.append(time.now)
        return in_flight[0]

    shares = Shares(5, count, refresh_seconds=10, clock=time.clock)
    limiter = RateLimiter(1.0, shares=shares, clock=time.clock, sleep=time.sleep)
    limiter.wait()
    limiter.wait()
    assert time.now == pytest.approx(2.0)  # two busy workers: half of 1 per second each
    in_flight[0] = 9  # more messages in flight than workers (the mapping's pollers hold some): still 1/5
    time.sleep(10)
    assert shares() == 5
    in_flight[0] = 0  # this worker's message counted a moment late: never a share of nothing
    time.sleep(10)
    assert shares() == 1
    assert asked == [0.0, 12.0, 22.0]  # once per refresh, not per call


def test_without_a_queue_or_with_one_worker_the_shares_are_fixed() -> None:
    def never() -> int:
        raise AssertionError("no queue to ask")

    assert Shares(4)() == 4
    assert Shares(1, never)() == 1


def test_a_count_that_cannot_be_read_gives_the_smallest_share(caplog: pytest.LogCaptureFixture) -> None:
    def denied() -> int:
        raise PermissionError("AccessDenied: sqs:GetQueueAttributes")

    time = FakeTime()
    shares = Shares(5, denied, refresh_seconds=10, clock=time.clock)
    assert shares() == 5
    time.sleep(10)
    assert shares() == 5
    assert sum("cannot count the batches in flight" in r.getMessage() for r in caplog.records) == 1


def test_a_worker_counts_the_batches_in_flight_on_the_queue(recording: type[Recording]) -> None:
    from acme_renewer import runtime
    from acme_renewer.settings import Settings

    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = sqs.create_queue(QueueName="renewals")["QueueUrl"]
    for body in "ab":
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)  # two workers busy
    settings = Settings("t", "eu-west-1", acm_imports_per_second=1.0, worker_concurrency=5, renewal_queue_url=url)
    assert runtime.shares(settings)() == 2
    runtime.secrets_client(settings)
    assert recording.rates == [25.0]  # Secrets Manager's 50 writes per second, halved


class Request:
    """What botocore's before-send hands a limiter: headers, with the retry modes' attempt number."""

    def __init__(self, attempt: int) -> None:
        self.headers = {"amz-sdk-request": f"ttl=20261201T000000Z; attempt={attempt}; max=10".encode()}


def test_processes_sharing_a_slotted_budget_take_turns_by_the_wall_clock() -> None:
    time = FakeTime()
    time.now = 100.2
    picks = iter([0, 1])
    first, second = (
        SlottedRateLimiter(1.0, shares=lambda: 2, clock=time.clock, sleep=time.sleep, choose=lambda k: next(picks))
        for _ in range(2)
    )
    sent: list[tuple[str, float]] = []
    for _ in range(3):
        for name, limiter in (("first", first), ("second", second)):
            limiter.wait()
            sent.append((name, time.now))
    # Each in the middle of a slot of its own: first in the even seconds, second in the odd ones.
    assert sent == [
        ("first", 100.5),
        ("second", 101.5),
        ("first", 102.5),
        ("second", 103.5),
        ("first", 104.5),
        ("second", 105.5),
    ]


def test_a_retry_makes_the_process_pick_another_slot() -> None:
    time = FakeTime()
    picks = iter([3, 1])
    limiter = SlottedRateLimiter(
        1.0, shares=lambda: 5, clock=time.clock, sleep=time.sleep, choose=lambda k: next(picks)
    )
    limiter(request=Request(attempt=1))
    assert (limiter.slot, time.now) == (3, 3.5)
    limiter(request=Request(attempt=1))
    assert (limiter.slot, time.now) == (3, 8.5)  # every fifth second
    limiter(request=Request(attempt=2))  # throttled in slot 3: someone else sends there too
    assert (limiter.slot, time.now) == (0, 10.5)  # the second of the four others: (3 + 1 + 1) mod 5


def test_alone_a_slotted_limiter_sends_at_once_then_at_its_rate() -> None:
    time = FakeTime()
    time.now = 7.9
    limiter = SlottedRateLimiter(1.0, shares=lambda: 1, clock=time.clock, sleep=time.sleep)
    limiter.wait()
    assert time.now == 7.9
    limiter.wait()
    assert time.now == pytest.approx(8.9)


def refused_share(arrivals: list[tuple[float, int]], attempts: list[int], burst: float = 2.0) -> tuple[int, int]:
    """Run arrivals (time, process) through a token bucket of 1 a second as the local stack's ACM; a refused one's
    next call is its retry. Returns (refused, sent)."""
    tokens, updated, refused = burst, 0.0, 0
    for at, index in sorted(arrivals):
        tokens, updated = min(burst, tokens + (at - updated)), at
        if tokens >= 1:
            tokens -= 1
            attempts[index] = 1
        else:
            refused += 1
            attempts[index] += 1
    return refused, len(arrivals)


def test_slotted_processes_are_refused_far_less_than_evenly_paced_ones() -> None:
    """Five processes at a fifth of 1 a second each, against a token bucket of burst 2: evenly paced with random
    phases, calls bunch up and are refused; in slots, only a shared slot after a full one is, and the retry moves."""
    rng = random.Random(16)
    rounds, processes = 60, 5
    slotted = [
        SlottedRateLimiter(1.0, shares=lambda: processes, clock=lambda: 0.0, sleep=lambda _: None, choose=rng.randrange)
        for _ in range(processes)
    ]
    attempts = [1] * processes
    phases = [rng.uniform(0, processes) for _ in range(processes)]
    even = [0, 0]
    slots = [0, 0]
    for round_ in range(rounds):
        arrivals = []
        for index, limiter in enumerate(slotted):
            limiter(request=Request(attempts[index]))
            arrivals.append((limiter.last_sent_at, index))
        refused, sent = refused_share(arrivals, attempts)
        slots = [slots[0] + refused, slots[1] + sent]
        drift = [rng.uniform(-0.3, 0.3) for _ in range(processes)]  # an even pace drifts with each call's length
        refused, sent = refused_share(
            [(round_ * processes + phases[i] + drift[i], i) for i in range(processes)], [1] * processes
        )
        even = [even[0] + refused, even[1] + sent]
    assert slots[0] / slots[1] < 0.1
    assert slots[0] / slots[1] < even[0] / even[1] / 2, (slots, even)

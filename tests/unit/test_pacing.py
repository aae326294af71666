"""Client-side pacing (pacing.py): calls spaced to a rate, on a real client, per operation when asked."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import boto3
import pytest

from acme_renewer.pacing import RateLimiter


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

    def __init__(self, per_second: float) -> None:
        Recording.rates.append(per_second)
        super().__init__(per_second, clock=Recording.time.clock, sleep=Recording.time.sleep)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch, mocked_aws: None) -> Iterator[type[Recording]]:
    from acme_renewer import runtime

    monkeypatch.setattr(runtime, "RateLimiter", Recording)
    monkeypatch.setattr(runtime, "_route53_limiters", {})
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

"""Client-side pacing (pacing.py): calls spaced to a rate, on a real client, per operation when asked."""

from __future__ import annotations

import itertools
from typing import Any

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
    time = FakeTime()
    limiter = RateLimiter(5, clock=time.clock, sleep=time.sleep)
    starts = []
    for _ in range(11):
        limiter.wait()
        starts.append(time.now)
    assert starts[-1] == pytest.approx(2.0)  # 11 requests at 5 per second take 2 s
    assert min(b - a for a, b in itertools.pairwise(starts)) == pytest.approx(0.2)


def test_the_rate_limiter_paces_a_real_client(route53: Any) -> None:
    time = FakeTime()
    limiter = RateLimiter(4, clock=time.clock, sleep=time.sleep)
    limiter.attach(route53)
    limiter.attach(route53)  # a second attach does not double the pacing
    for _ in range(5):
        route53.list_hosted_zones()
    assert time.now == pytest.approx(1.0)


def test_a_limiter_on_one_operation_leaves_the_others_alone(mocked_aws: None) -> None:
    acm = boto3.client("acm", region_name="eu-west-1")
    time = FakeTime()
    RateLimiter(1, clock=time.clock, sleep=time.sleep).attach(acm, "ImportCertificate")
    for _ in range(3):
        acm.list_certificates()
    assert time.now == 0.0
    for _ in range(3):
        with pytest.raises(acm.exceptions.ClientError):  # not a certificate; the call is still paced
            acm.import_certificate(Certificate=b"not a certificate", PrivateKey=b"not a key")
    assert time.now == pytest.approx(2.0)

"""Request rates in the local stack (tests/stack/strict_rates.py): Route53 and Secrets Manager writes are throttled
past AWS's rate per account, as AWS throttles them and moto never does. Each test fails against moto alone."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.test import Client

from tests.stack.in_process import InProcessStack
from tests.stack.strict_rates import AWS_RATES, RATES_PATH, ROUTE53, SECRETS_WRITES, Rate, RequestRates

ROUTE53_THROTTLING = "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html"
NO_RETRIES = Config(retries={"total_max_attempts": 1})
OTHER_ACCOUNT = "111122223333"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rated(clock: Clock, strict_aws: InProcessStack) -> InProcessStack:
    """The stack at AWS's rates, on a clock that moves only when a test moves it."""
    stack = InProcessStack(RequestRates(AWS_RATES, clock=clock))
    return stack


def in_account(client: Any, account: str) -> Any:
    client.meta.events.register("before-sign", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", account))  # fmt: skip
    return client


def calls_admitted(call: Any, attempts: int) -> int:
    """How many of `attempts` calls are answered before the first throttling error (which must be AWS's)."""
    for done in range(attempts):
        try:
            call()
        except ClientError as error:
            response = error.response
            assert response["Error"]["Message"] == "Rate exceeded"
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert response["Error"]["Code"] in ("Throttling", "ThrottlingException")
            return done
    return attempts


def test_route53_throttles_an_account_past_its_burst_then_at_its_rate(rated: InProcessStack, clock: Clock) -> None:
    """Route53's account bucket: 50 requests of burst, refilled at 10 per second; past it, HTTP 400 Throttling,
    "Rate exceeded" (ROUTE53_THROTTLING)."""
    route53 = rated.client("route53", config=NO_RETRIES)
    assert calls_admitted(route53.list_hosted_zones, 60) == 50
    with pytest.raises(ClientError) as refused:
        route53.get_change(Id="C1")  # every operation draws on the account's bucket
    assert refused.value.response["Error"]["Code"] == "Throttling"

    clock.now += 0.5  # 5 requests' worth at 10 per second
    assert calls_admitted(route53.list_hosted_zones, 10) == 5
    clock.now += 10  # a quiet spell refills the burst, no more
    assert calls_admitted(route53.list_hosted_zones, 60) == 50


def test_route53_below_its_rate_is_never_throttled(rated: InProcessStack, clock: Clock) -> None:
    route53 = rated.client("route53", config=NO_RETRIES)
    assert calls_admitted(route53.list_hosted_zones, 60) == 50  # the burst spent
    for _ in range(200):  # 20 seconds at 10 per second, from the empty bucket
        clock.now += 0.1
        route53.list_hosted_zones()
    assert calls_admitted(route53.list_hosted_zones, 1) == 0


def test_route53_throttles_each_account_on_its_own(rated: InProcessStack) -> None:
    mine = rated.client("route53", config=NO_RETRIES)
    theirs = in_account(rated.client("route53", config=NO_RETRIES), OTHER_ACCOUNT)
    assert calls_admitted(mine.list_hosted_zones, 60) == 50
    assert calls_admitted(theirs.list_hosted_zones, 60) == 50
    mine_again = rated.client("route53", config=NO_RETRIES)  # another client (process) of the same account
    assert calls_admitted(mine_again.list_hosted_zones, 1) == 0


def test_secrets_manager_writes_share_a_rate_per_account_and_region(rated: InProcessStack, clock: Clock) -> None:
    """The combined write quota, 50 per second per region
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html); reads are not in it."""
    rated.app.rates.set_rate(SECRETS_WRITES, Rate(2.0, 2.0))
    here = rated.client("secretsmanager", region="eu-west-1", config=NO_RETRIES)
    clock.now += 1  # CreateSecret is not in the quota; the bucket is full anyway
    here.create_secret(Name="s", SecretString="0")
    values = iter("123456")
    assert calls_admitted(lambda: here.put_secret_value(SecretId="s", SecretString=next(values)), 3) == 2
    with pytest.raises(ClientError) as refused:
        here.update_secret_version_stage(SecretId="s", VersionStage="X", MoveToVersionId="0" * 32)
    assert refused.value.response["Error"]["Code"] == "ThrottlingException"
    for _ in range(5):
        here.get_secret_value(SecretId="s")

    there = rated.client("secretsmanager", region="us-west-2", config=NO_RETRIES)
    there.create_secret(Name="s", SecretString="0")
    there.put_secret_value(SecretId="s", SecretString="1")  # another region's bucket


def test_the_rates_are_set_and_turned_off_over_the_private_path(rated: InProcessStack) -> None:
    http = Client(rated.app)
    assert http.get(RATES_PATH).json == {
        "rates": {ROUTE53: {"per_second": 10.0, "burst": 50.0}, SECRETS_WRITES: {"per_second": 50.0, "burst": 50.0}},
        "throttled": {},
    }
    assert http.put(RATES_PATH, json={"budget": ROUTE53, "per_second": 1, "burst": 2}).status_code == 200
    route53 = rated.client("route53", config=NO_RETRIES)
    assert calls_admitted(route53.list_hosted_zones, 5) == 2
    assert http.get(RATES_PATH).json["throttled"] == {ROUTE53: 1}

    assert http.put(RATES_PATH, json={"budget": ROUTE53, "per_second": None}).status_code == 200
    assert calls_admitted(route53.list_hosted_zones, 100) == 100
    assert http.delete(RATES_PATH).json["throttled"] == {}
    for bad in ({"budget": "s3", "per_second": 1}, {"per_second": 1}, {"budget": ROUTE53, "per_second": 0}):
        assert http.put(RATES_PATH, json=bad).status_code == 400

"""Faults on the AWS side during a renewal: Route53 throttling, a failing store, a lease conflict, a broken
delegation. Each test asserts that nothing was lost (tests/integration/invariants.py).

AWS errors are injected with a `before-send` handler on the run's own clients (runtime.client): the handler
hands botocore an HTTP error response instead of sending the request, so botocore parses it and its retry
handler decides about it exactly as it would for a real answer from AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from cryptography import x509

from acme_renewer import runtime
from acme_renewer.inventory.table import CertificateTable, status_id
from acme_renewer.report.outcomes import Outcome, Result
from acme_renewer.settings import Settings
from tests.integration.conftest import Calls
from tests.integration.invariants import (
    assert_nothing_lost,
    assert_valid_pair,
    challenge_records,
    make_due,
    read_item,
    secret_version,
)
from tests.integration.test_renewal import put_item, unique
from tests.stack import LocalStack

ALWAYS = range(1, 1_000)
LONG_AGO = "2000-01-01T00:00:00Z"


@dataclass
class _Body:
    """The `raw` of an AWSResponse: botocore reads the body through `stream()`."""

    content: bytes

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.content


@dataclass(eq=False)  # botocore's emitter compares handlers when unregistering: identity, not fields
class Fault:
    """A before-send handler: answers the chosen attempts (1-based, retries included) of the requests it
    applies to with an AWS error."""

    status: int
    headers: dict[str, str]
    body: bytes
    fail_attempts: Container[int] = ALWAYS
    applies_to: Callable[[AWSPreparedRequest], bool] = lambda _: True
    attempts: int = 0
    injected: int = 0

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if not self.applies_to(request):
            return None
        self.attempts += 1
        if self.attempts not in self.fail_attempts:
            return None  # send it for real
        self.injected += 1
        return AWSResponse(request.url, self.status, HTTPHeaders.from_dict(self.headers), _Body(self.body))


def route53_error(code: str, fail_attempts: Container[int] = ALWAYS) -> Fault:
    """Route53 (rest-xml) answers throttling with HTTP 400 and this body."""
    body = (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>Rate exceeded</Message></Error>"
        "<RequestId>00000000-fault-injected</RequestId></ErrorResponse>"
    )
    headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "00000000-fault-injected"}
    return Fault(400, headers, body.encode(), fail_attempts)


def json_error(code: str, message: str) -> Fault:
    """ACM and Secrets Manager speak JSON 1.1: the error code is the body's `__type`."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "00000000-fault-injected"}
    return Fault(400, headers, json.dumps({"__type": code, "message": message}).encode())


def spy() -> Fault:
    """Counts the attempts of an operation and fails none."""
    return Fault(0, {}, b"", fail_attempts=())


def inject(service: str, operation: str, fault: Fault) -> Fault:
    """Register the fault on the client the run uses; the env fixture drops the clients after the test."""
    client = runtime.client(service, "us-east-1")
    client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}", fault)
    return fault


def remove(service: str, operation: str, fault: Fault) -> None:
    client = runtime.client(service, "us-east-1")
    client.meta.events.unregister(f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}", fault)


def run() -> dict[str, Outcome]:
    report = runtime.build_renewer(Settings.from_env()).run()
    return {outcome.id: outcome for outcome in report.outcomes}


def retry_now(stack: LocalStack, env: dict[str, str], item_id: str) -> None:
    """Move the backoff into the past rather than wait for it."""
    stack.client("dynamodb").update_item(
        TableName=env["TABLE_NAME"],
        Key={"id": {"S": status_id(item_id)}},
        UpdateExpression="SET next_attempt_at = :past",
        ExpressionAttributeValues={":past": {"S": LONG_AGO}},
    )


@dataclass
class Issued:
    """A certificate issued by a clean first run, and inside its renewal window from then on."""

    id: str
    zone_id: str
    item: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def issued(stack: LocalStack, env: dict[str, str]) -> Issued:
    zone = unique("fault") + ".test"
    certificate = Issued("renewing", stack.create_hosted_zone(zone))
    put_item(stack, env, {"id": certificate.id, "domains": [zone, f"*.{zone}"]})
    assert run()[certificate.id].result is Result.RENEWED
    certificate.item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], certificate.id, [certificate.zone_id])
    make_due(stack, env["TABLE_NAME"], certificate.id)
    return certificate


# --- 5. Route53 throttling -----------------------------------------------------------------------


def test_route53_throttling_is_absorbed_by_botocore_retries(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zone = unique("throttled") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "throttled", "domains": [zone, f"*.{zone}"]})
    # Each handler sees every attempt; the first one that answers wins. Publishing is throttled once, the
    # removal meets PriorRequestNotComplete once, and so is the first poll throttled.
    throttled = inject("route53", "ChangeResourceRecordSets", route53_error("Throttling", fail_attempts={1}))
    pending = inject("route53", "ChangeResourceRecordSets", route53_error("PriorRequestNotComplete", {3}))
    poll = inject("route53", "GetChange", route53_error("Throttling", fail_attempts={1}))
    retried: list[int] = []
    runtime.client("route53", "us-east-1").meta.events.register(
        "after-call.route53.ChangeResourceRecordSets",
        lambda parsed, **_: retried.append(parsed["ResponseMetadata"]["RetryAttempts"]),
    )

    outcomes = run()

    assert outcomes["throttled"].result is Result.RENEWED, outcomes["throttled"].reason
    assert (throttled.injected, pending.injected, poll.injected) == (1, 1, 1)
    # Two API calls (publish, remove) took four attempts, each succeeding on its second: botocore retried.
    assert len(calls.route53_changes) == 2
    assert throttled.attempts == pending.attempts == 4
    assert retried == [1, 1]
    assert poll.attempts >= 2
    assert len(calls.new_orders) == 1
    assert_nothing_lost(stack, env["TABLE_NAME"], "throttled", [zone_id])


# --- 6. ACM import fails on a renewal ------------------------------------------------------------


def test_a_failed_acm_import_keeps_the_old_certificate_in_acm_and_the_next_run_repairs(
    stack: LocalStack, env: dict[str, str], calls: Calls, issued: Issued
) -> None:
    first = issued.item
    denied = inject("acm", "ImportCertificate", json_error("AccessDeniedException", "not authorized"))

    outcomes = run()

    assert outcomes[issued.id].result is Result.FAILED
    item, stored = assert_nothing_lost(
        stack, env["TABLE_NAME"], issued.id, [issued.zone_id], previous_serial=first["serial"]
    )
    assert stored is not None
    assert item["status"] == "FAILED"
    assert "ACM import into us-east-1 failed" in item["last_error"]
    assert "AccessDeniedException" in item["last_error"]
    assert item["failure_count"] == 1
    assert denied.injected == 1  # not retryable: one attempt
    # ACM still serves the old certificate at the same ARN; the secret already holds the new one (by design).
    assert item["acm_arns"] == first["acm_arns"]
    assert format(stored.acm["us-east-1"].serial_number, "x") == first["serial"]
    assert stored.current["serial"] != first["serial"]
    assert item["serial"] == first["serial"]
    assert len(calls.new_orders) == 2

    remove("acm", "ImportCertificate", denied)
    retry_now(stack, env, issued.id)
    outcomes = run()

    assert outcomes[issued.id].result is Result.RENEWED, outcomes[issued.id].reason
    item, repaired = assert_nothing_lost(
        stack, env["TABLE_NAME"], issued.id, [issued.zone_id], previous_serial=first["serial"]
    )
    assert repaired is not None
    assert item["acm_arns"] == first["acm_arns"]
    assert repaired.acm["us-east-1"] == repaired.current_leaf  # ACM's certificate is the key's in AWSCURRENT
    # The certificate issued by the failed run is recovered from its pending order: no second order.
    assert repaired.current["serial"] == stored.current["serial"] == item["serial"]
    assert len(calls.new_orders) == 2


# --- 7. Secrets Manager write fails on a renewal -------------------------------------------------


@pytest.mark.parametrize("secret", ["certificate", "pending key"])
def test_a_failed_secret_write_keeps_secret_and_acm_on_the_old_certificate_and_the_next_run_repairs(
    stack: LocalStack, env: dict[str, str], calls: Calls, issued: Issued, secret: str
) -> None:
    """The certificate's secret, written after finalization; or the pending order's key, written before it."""
    first = issued.item
    secret_name = Settings.from_env().default_secret_name(issued.id)
    # One secret: the pending key is its AWSPENDING version, the certificate its AWSCURRENT.
    pending = secret == "pending key"
    previous_before = read_previous_serial(stack, first["secret_arn"])
    denied = json_error("AccessDeniedException", "not authorized")
    denied.applies_to = lambda request: secret_id(request) == secret_name and is_pending(request) == pending
    inject("secretsmanager", "PutSecretValue", denied)
    imports = inject("acm", "ImportCertificate", spy())

    outcomes = run()

    assert outcomes[issued.id].result is Result.FAILED
    item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], issued.id, [issued.zone_id])
    assert stored is not None
    assert item["status"] == "FAILED"
    assert f"Secrets Manager refused writing {secret_name}:" in item["last_error"]
    assert "AccessDeniedException" in item["last_error"]
    assert denied.injected == 1
    # Secret and ACM both still hold the old certificate, and agree.
    assert stored.current["serial"] == first["serial"]
    assert read_previous_serial(stack, first["secret_arn"]) == previous_before
    assert imports.attempts == 0
    assert stored.acm["us-east-1"] == stored.current_leaf
    assert item["secret_version_id"] == first["secret_version_id"]
    assert len(calls.new_orders) == 2

    remove("secretsmanager", "PutSecretValue", denied)
    retry_now(stack, env, issued.id)
    outcomes = run()

    assert outcomes[issued.id].result is Result.RENEWED, outcomes[issued.id].reason
    item, stored = assert_nothing_lost(
        stack, env["TABLE_NAME"], issued.id, [issued.zone_id], previous_serial=first["serial"]
    )
    assert stored is not None
    assert item["acm_arns"] == first["acm_arns"]
    assert stored.acm["us-east-1"] == stored.current_leaf
    # An issued certificate is recovered from its pending order; without the key kept, it was never finalized.
    assert len(calls.new_orders) == (2 if secret == "certificate" else 3)


def secret_id(request: AWSPreparedRequest) -> str | None:
    body = request.body
    assert isinstance(body, (str, bytes))
    return str(json.loads(body)["SecretId"])


def is_pending(request: AWSPreparedRequest) -> bool:
    body = request.body
    assert isinstance(body, (str, bytes))
    return "AWSPENDING" in json.loads(body).get("VersionStages", [])


def read_previous_serial(stack: LocalStack, secret_id: str) -> str | None:
    previous = secret_version(stack, secret_id, "AWSPREVIOUS")
    return None if previous is None else str(previous["serial"])


# --- 8. Lease conflicts --------------------------------------------------------------------------


def test_a_lease_held_by_another_run_orders_nothing_and_leaves_the_item_alone(
    stack: LocalStack, env: dict[str, str], calls: Calls, issued: Issued
) -> None:
    now = datetime.now(UTC)
    table = CertificateTable(stack.client("dynamodb"), env["TABLE_NAME"])
    assert table.acquire_lease(issued.id, "another-run", now, now + timedelta(minutes=20)) is not None
    before = read_item(stack, env["TABLE_NAME"], issued.id)
    orders = len(calls.new_orders)

    outcomes = run()

    assert outcomes[issued.id].result is Result.LEASED
    assert len(calls.new_orders) == orders
    assert read_item(stack, env["TABLE_NAME"], issued.id) == before
    assert_nothing_lost(stack, env["TABLE_NAME"], issued.id, [issued.zone_id])


def test_a_lease_stolen_mid_renewal_still_records_the_stored_certificate(
    stack: LocalStack, env: dict[str, str], calls: Calls, issued: Issued
) -> None:
    first = issued.item

    def steal(**_: Any) -> None:
        # Another run takes the lease (ours ran past lease_until) after our stores, before our result write.
        stack.client("dynamodb").update_item(
            TableName=env["TABLE_NAME"],
            Key={"id": {"S": status_id(issued.id)}},
            UpdateExpression="SET lease_owner = :other",
            ExpressionAttributeValues={":other": {"S": "another-run"}},
        )

    acm = runtime.client("acm", "us-east-1")
    acm.meta.events.register("after-call.acm.ImportCertificate", steal)
    outcomes = run()
    acm.meta.events.unregister("after-call.acm.ImportCertificate", steal)

    # The certificate was stored, so the run reports it and the item names it; the lease stays with its new owner.
    assert outcomes[issued.id].result is Result.RENEWED, outcomes[issued.id].reason
    item = read_item(stack, env["TABLE_NAME"], issued.id)
    assert item["lease_owner"] == "another-run"
    current = secret_version(stack, first["secret_arn"], "AWSCURRENT")
    assert current is not None and current["serial"] != first["serial"]
    leaf = assert_valid_pair(stack, current)
    acm_pem = stack.client("acm").get_certificate(CertificateArn=first["acm_arns"]["us-east-1"])["Certificate"]
    assert x509.load_pem_x509_certificate(acm_pem.encode()) == leaf
    assert (item["status"], item["serial"]) == ("ISSUED", current["serial"])
    assert item["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert item["acm_arns"] == first["acm_arns"]
    assert challenge_records(stack, [issued.zone_id]) == []
    assert len(calls.new_orders) == 2


# --- 11. A broken delegation for one certificate of three ----------------------------------------


def test_a_broken_delegation_fails_that_certificate_only(stack: LocalStack, env: dict[str, str], calls: Calls) -> None:
    zones = {name: unique(name) + ".test" for name in ("good-1", "broken", "good-2")}
    zone_ids = {name: stack.create_hosted_zone(zone) for name, zone in zones.items()}
    for name, zone in zones.items():
        put_item(stack, env, {"id": name, "domains": [zone, f"www.{zone}"]})
    stack.set_dns_servfail([zones["broken"]])
    try:
        outcomes = run()
    finally:
        stack.set_dns_servfail([])

    assert {name: o.result for name, o in outcomes.items()} == {
        "good-1": Result.RENEWED,
        "broken": Result.FAILED,
        "good-2": Result.RENEWED,
    }
    assert len(calls.new_orders) == 3
    for name in zones:
        assert_nothing_lost(stack, env["TABLE_NAME"], name, zone_ids.values())
    broken = read_item(stack, env["TABLE_NAME"], "broken")
    assert broken["last_error"].startswith("DNS-01 validation failed for ")
    assert f"_acme-challenge.{zones['broken']}" in broken["last_error"]

"""The fan-out on the local stack: the scheduled function plans and queues batches in moto's SQS, and the worker
handler renews them from SQS events built as Lambda's event source mapping builds them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acme_renewer.inventory import batching
from acme_renewer.inventory.table import CertificateTable
from acme_renewer.renewal import Renewer
from acme_renewer.report.outcomes import Result
from tests.integration.conftest import Calls
from tests.integration.invariants import assert_nothing_lost, make_due
from tests.integration.test_batching import zones_with_certificates
from tests.integration.test_renewal import get_item
from tests.stack import LocalStack, handler
from tests.stack.handler import FakeLambdaContext, invoke_with

# Seconds a received message stays hidden: short, so that a failed one comes back within the test.
VISIBILITY_SECONDS = 1


@pytest.fixture
def queue(stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh queue in moto's SQS, named to the scheduled function by RENEWAL_QUEUE_URL, as the template does."""
    sqs = stack.client("sqs")
    url: str = sqs.create_queue(
        QueueName=f"renewals-{env['TABLE_NAME']}", Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
    )["QueueUrl"]
    monkeypatch.setenv("RENEWAL_QUEUE_URL", url)
    yield url
    sqs.delete_queue(QueueUrl=url)


def receive(stack: LocalStack, url: str, wait: int = 0) -> list[dict[str, Any]]:
    """Messages as the event source mapping receives them, with their system attributes."""
    received = stack.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=wait
    )
    messages: list[dict[str, Any]] = received.get("Messages", [])
    return messages


def sqs_event(stack: LocalStack, url: str, message: dict[str, Any]) -> dict[str, Any]:
    """The event Lambda gives the function for one message of this queue (BatchSize 1)."""
    arn = stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return handler.sqs_event(message, arn["QueueArn"], stack.region)


def deliver(stack: LocalStack, url: str, message: dict[str, Any]) -> dict[str, Any]:
    """Invoke the worker with the message, and delete it unless the response lists it as failed (what the
    event source mapping does with ReportBatchItemFailures)."""
    response: dict[str, Any] = invoke_with("worker", sqs_event(stack, url, message), FakeLambdaContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    if message["MessageId"] not in failed:
        stack.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return response


def bodies(messages: list[dict[str, Any]]) -> list[list[str]]:
    return [json.loads(m["Body"])["ids"] for m in messages]


def test_the_planner_queues_batches_and_the_workers_renew_each_certificate_once(
    stack: LocalStack,
    env: dict[str, str],
    calls: Calls,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    fast_acm_imports: float,
) -> None:
    placed = zones_with_certificates(stack, env, zones=2, per_zone=2)
    monkeypatch.setenv("BATCH_SIZE", "2")
    # The daily full run renews one batch in place and queues what it deferred.
    full = invoke_with("renewal", {"source": "schedule", "scan": "full"}, FakeLambdaContext())
    assert full["renewed"] == 2 and full["deferred"] == 2
    assert full["queued"] == {"messages": 1, "certificates": 2, "refused": 0}
    (message,) = receive(stack, queue)
    deferred = [c["id"] for c in full["certificates"] if c["result"] == Result.DEFERRED.value]
    assert sorted(bodies([message])[0]) == sorted(deferred)

    # SQS delivers at least once: the same message twice orders nothing twice.
    first = deliver(stack, queue, message)
    again = deliver(stack, queue, message)
    assert first["batchItemFailures"] == again["batchItemFailures"] == []
    assert len(calls.new_orders) == len(placed)
    for item_id, zone_id in placed.items():
        item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
        assert item["status"] == "ISSUED"

    # Everything due again: the regular schedule only plans (no order), in batches of one zone each.
    for item_id in placed:
        make_due(stack, env["TABLE_NAME"], item_id)
    serials = {item_id: get_item(stack, env, item_id)["serial"] for item_id in placed}
    calls.new_orders.clear()
    due = invoke_with("renewal", {"source": "schedule", "scan": "due"}, FakeLambdaContext())
    assert due["renewed"] == 0 and calls.new_orders == []
    assert due["queued"] == {"messages": 2, "certificates": 4, "refused": 0}
    messages = receive(stack, queue)
    assert len(messages) == 2
    zones_of = [{placed[i] for i in ids} for ids in bodies(messages)]
    assert all(len(zones) == 1 for zones in zones_of)  # a batch is one zone: one change, one DNS wait
    for queued in messages:
        assert deliver(stack, queue, queued)["batchItemFailures"] == []
    assert len(calls.new_orders) == len(placed)
    for item_id in placed:
        item = get_item(stack, env, item_id)
        assert item["status"] == "ISSUED" and item["serial"] != serials[item_id]
    assert receive(stack, queue) == []


def test_a_worker_that_raises_leaves_its_message_for_redelivery_and_nothing_is_lost(
    stack: LocalStack,
    env: dict[str, str],
    calls: Calls,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    fast_acm_imports: float,
) -> None:
    placed = zones_with_certificates(stack, env, zones=1, per_zone=2)
    invoke_with("renewal", {"source": "schedule", "scan": "full"}, FakeLambdaContext())  # issues both in place
    for item_id in placed:
        make_due(stack, env["TABLE_NAME"], item_id)
    calls.new_orders.clear()
    invoke_with("renewal", {"source": "schedule", "scan": "due"}, FakeLambdaContext())
    (message,) = receive(stack, queue)

    original = Renewer.renew

    def table_unreachable(self: Renewer, ids: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the table is unreachable")

    monkeypatch.setattr(Renewer, "renew", table_unreachable)
    response = deliver(stack, queue, message)
    assert response["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert calls.new_orders == []

    # Back after the visibility timeout, received a second time, and renewed.
    monkeypatch.setattr(Renewer, "renew", original)
    (redelivered,) = receive(stack, queue, wait=VISIBILITY_SECONDS + 2)
    assert redelivered["MessageId"] == message["MessageId"]
    assert redelivered["Attributes"]["ApproximateReceiveCount"] == "2"
    assert deliver(stack, queue, redelivered)["batchItemFailures"] == []
    assert len(calls.new_orders) == len(placed)
    assert all(get_item(stack, env, item_id)["status"] == "ISSUED" for item_id in placed)


def test_a_message_that_is_not_a_batch_fails_alone(stack: LocalStack, env: dict[str, str], queue: str) -> None:
    stack.client("sqs").send_message(QueueUrl=queue, MessageBody='{"id": "forgot-the-list"}')
    (message,) = receive(stack, queue)
    assert deliver(stack, queue, message)["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]


def test_a_batch_overlapping_a_running_worker_leaves_its_leased_certificate_alone(
    stack: LocalStack,
    env: dict[str, str],
    calls: Calls,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
    fast_acm_imports: float,
) -> None:
    """Two workers with one id: the one that holds the lease renews it, the other reports it `leased` and orders
    nothing; once the lease is gone the id is still due, and the next plan queues it."""
    placed = zones_with_certificates(stack, env, zones=1, per_zone=2)
    invoke_with("renewal", {"source": "schedule", "scan": "full"}, FakeLambdaContext())
    for item_id in placed:
        make_due(stack, env["TABLE_NAME"], item_id)
    held, free = sorted(placed)
    table = CertificateTable(stack.client("dynamodb"), env["TABLE_NAME"])
    now = datetime.now(UTC)
    assert table.acquire_lease(held, "another-worker", now, now + timedelta(minutes=5)) is not None
    calls.new_orders.clear()

    # The lease is taken after the plan, as when another worker starts on an overlapping batch meanwhile.
    with monkeypatch.context() as planned_before:
        planned_before.setattr(batching, "parse_time", lambda raw: None)
        invoke_with("renewal", {"source": "schedule", "scan": "due"}, FakeLambdaContext())
    (message,) = receive(stack, queue)
    assert sorted(bodies([message])[0]) == [held, free]
    deliver(stack, queue, message)
    assert len(calls.new_orders) == 1
    assert get_item(stack, env, free)["status"] == "ISSUED"

    # The planner leaves out what a live lease holds; once it is released, the id is queued and renewed.
    invoke_with("renewal", {"source": "schedule", "scan": "due"}, FakeLambdaContext())
    assert receive(stack, queue) == []
    table.release_lease(held, "another-worker")
    planned = invoke_with("renewal", {"source": "schedule", "scan": "due"}, FakeLambdaContext())
    assert planned["queued"]["certificates"] == 1
    (retry,) = receive(stack, queue)
    deliver(stack, queue, retry)
    assert len(calls.new_orders) == 2

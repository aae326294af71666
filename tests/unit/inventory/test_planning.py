"""O(due) planning: a due-only run reads the due items from the sparse index, not the table."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from acme_renewer.inventory.table import SCHEDULED, CertificateTable, iso, parse_time, status_id
from acme_renewer.report.outcomes import Result
from tests.stack.table import create_table
from tests.unit.fakes import FakeCa
from tests.unit.test_renewal import REGION, SETTINGS, get, put, renewer

NOW = datetime.now(UTC)


@pytest.fixture
def aws(mocked_aws: None) -> None:
    """moto with the certificates table as the template defines it."""
    create_table(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)


class ItemsRead:
    """Items DynamoDB returned to reads (Scan, Query, GetItem, BatchGetItem), counted on the client itself."""

    def __init__(self, client: Any) -> None:
        self.by_operation: Counter[str] = Counter()
        client.meta.events.register("after-call.dynamodb", self._count)

    def _count(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("Scan", "Query"):
            self.by_operation[model.name] += len(parsed.get("Items", []))
        elif model.name == "GetItem":
            self.by_operation[model.name] += 1 if "Item" in parsed else 0
        elif model.name == "BatchGetItem":
            self.by_operation[model.name] += sum(len(v) for v in parsed.get("Responses", {}).values())

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


def fill(total: int, due: int) -> list[str]:
    """`total` certificates; `due` of them due an hour ago and never issued, the rest issued and due in a month.
    Each is a request item and its status item, as the renewer leaves them."""
    client = boto3.client("dynamodb", region_name=REGION)
    due_ids = [f"due-{i:05d}" for i in range(due)]
    later_ids = [f"later-{i:05d}" for i in range(total - due)]
    requests = [{"id": {"S": i}, "domains": {"L": [{"S": f"{i}.example.com"}]}} for i in due_ids + later_ids]
    statuses = [
        {"id": {"S": status_id(i)}, "status_of": {"S": i}, "schedule": {"S": SCHEDULED},
         "due_at": {"S": iso(NOW - timedelta(hours=1))}}
        for i in due_ids
    ] + [
        {"id": {"S": status_id(i)}, "status_of": {"S": i}, "schedule": {"S": SCHEDULED},
         "due_at": {"S": iso(NOW + timedelta(days=30))}, "not_before": {"S": iso(NOW - timedelta(days=30))},
         "not_after": {"S": iso(NOW + timedelta(days=60))}}
        for i in later_ids
    ]  # fmt: skip
    items = requests + statuses
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={SETTINGS.table_name: batch})
    return due_ids


def counted_renewer(ca: FakeCa) -> tuple[Any, ItemsRead]:
    run = renewer(ca)
    client = boto3.client("dynamodb", region_name=REGION)
    run.table = CertificateTable(client, SETTINGS.table_name)
    return run, ItemsRead(client)


def test_ten_due_among_ten_thousand_reads_about_ten(aws: None) -> None:
    due_ids = fill(10_000, 10)
    ca = FakeCa()
    run, reads = counted_renewer(ca)
    report = run.run(due_only=True)
    assert sorted(ca.orders) == due_ids
    assert [o.result for o in report.outcomes] == [Result.RENEWED] * len(due_ids)
    # The due status items from the index and one from the expiry index, and the due ones' requests; no Scan.
    assert reads.by_operation == Counter({"Query": len(due_ids) + 1, "BatchGetItem": len(due_ids)})
    assert reads.total <= 2 * len(due_ids) + 1
    assert report.items_read == reads.total
    # ManagedCertificates and MinDaysUntilExpiry without reading the table.
    assert report.managed_certificates is not None
    assert report.min_days_until_expiry is not None and 59 < report.min_days_until_expiry <= 60


def test_a_renewed_item_leaves_the_due_list_until_its_window(aws: None) -> None:
    (item_id,) = fill(1, 1)
    renewer(FakeCa()).run(due_only=True)
    item = get(item_id)
    due_at = parse_time(item["due_at"])
    not_before, not_after = parse_time(item["not_before"]), parse_time(item["not_after"])
    assert due_at is not None and not_before is not None and not_after is not None
    assert due_at == not_after - (not_after - not_before) / 3  # the last third of a 90-day lifetime
    ca, (run, reads) = FakeCa(), counted_renewer(FakeCa())
    assert run.run(due_only=True).outcomes == []
    assert reads.by_operation["Query"] == 1  # only the expiry index
    assert ca.orders == []


def test_the_full_run_schedules_what_the_stream_missed(aws: None) -> None:
    """An item written by hand has no due_at: the daily full run finds it and files it in the index."""
    put({"id": "by-hand", "domains": ["hand.example.com"]})
    assert renewer(FakeCa()).run(due_only=True).outcomes == []
    report = renewer(FakeCa()).run()
    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    assert get("by-hand")["schedule"] == SCHEDULED


def test_failures_are_due_at_their_next_attempt_and_a_pause_leaves_the_due_list(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    failing = FakeCa(fail_for=frozenset({"web"}))
    renewer(failing).run()
    item = get("web")
    assert item["due_at"] == item["next_attempt_at"]
    put({**get("web"), "failure_count": SETTINGS.max_consecutive_failures - 1, "next_attempt_at": iso(NOW)})
    renewer(failing).renew(["web"], force=True)
    item = get("web")
    assert item["failure_count"] == SETTINGS.max_consecutive_failures
    assert "due_at" not in item and item["schedule"] == SCHEDULED  # still watched by the expiry index


def test_a_disabled_item_leaves_both_indexes(aws: None) -> None:
    (item_id,) = fill(1, 1)
    put({**get(item_id), "enabled": False})
    renewer(FakeCa()).run()
    assert {"schedule", "due_at"}.isdisjoint(get(item_id))


def test_an_unchanged_schedule_is_not_written_again(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    renewer(FakeCa()).run()
    writes: Counter[str] = Counter()
    run = renewer(FakeCa())
    client = boto3.client("dynamodb", region_name=REGION)
    client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes.update(["UpdateItem"]))
    run.table = CertificateTable(client, SETTINGS.table_name)
    run.run()
    assert writes["UpdateItem"] == 0  # nothing due, the schedule is right: a full run writes nothing
    before = parse_time(get("web")["due_at"])
    put({**get("web"), "renew_before_days": 10})  # an edit the stream did not see
    run.run()
    assert writes["UpdateItem"] == 1
    after = parse_time(get("web")["due_at"])
    not_after = parse_time(get("web")["not_after"])
    assert before is not None and after is not None and not_after is not None
    assert after == not_after - timedelta(days=10) != before

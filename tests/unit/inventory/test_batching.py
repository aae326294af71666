"""The planner's batches: certificates that share zones, accounts and CA stay together, and the queue gets them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from acme_renewer.inventory.batching import (
    BYTES_PER_CALL,
    ENTRIES_PER_CALL,
    UNPARSABLE,
    RenewalQueue,
    ids_of,
    message_body,
    pack,
    placement,
    plan,
)
from acme_renewer.inventory.table import iso
from acme_renewer.settings import Settings, ZoneRoles

SETTINGS = Settings(table_name="certificates", region="eu-west-1")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/acme-dns"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def item(item_id: str, *domains: str, **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "domains": list(domains), **fields}


def test_names_of_one_zone_share_a_placement_and_other_zones_do_not() -> None:
    apex = placement(item("a", "example.com", "*.example.com"), SETTINGS)
    www = placement(item("b", "www.example.com"), SETTINGS)
    other = placement(item("c", "example.org"), SETTINGS)
    assert apex == www
    assert apex.zones == ("example.com",)
    assert other != apex and other.packing == apex.packing  # another zone, same CA and account: may share a batch


def test_the_zone_is_the_items_hosted_zone_or_its_challenge_alias_when_set() -> None:
    by_id = placement(item("a", "a.example.com", "b.example.net", hosted_zone_id="Z123"), SETTINGS)
    assert by_id.zones == ("Z123",)
    aliased = placement(item("b", "shop.customer.example", challenge_alias="shop.acme.example.net"), SETTINGS)
    assert aliased.zones == ("example.net",)


def test_a_zone_role_makes_another_account_and_its_zone_roles_key_the_zone() -> None:
    settings = replace(SETTINGS, zone_roles=ZoneRoles.parse(json.dumps({"team.example.com": {"role_arn": ROLE}})))
    team = placement(item("a", "api.team.example.com"), settings)
    own = placement(item("b", "www.example.com"), settings)
    assert team.accounts == (ROLE,) and team.zones == ("team.example.com",)
    assert own.accounts == ("",)
    assert team.packing != own.packing  # another account's Route53 budget: never in one batch
    named = placement(item("c", "www.example.com", zone_role_arn=ROLE), SETTINGS)
    assert named.accounts == (ROLE,)


def test_another_ca_never_shares_a_batch() -> None:
    production = placement(item("a", "example.com"), SETTINGS)
    staging = placement(item("b", "example.com", acme_directory=STAGING), SETTINGS)
    assert production.zones == staging.zones
    assert production.packing != staging.packing
    assert pack([("a", production), ("b", staging)], batch_size=10) == [["a"], ["b"]]


def test_an_invalid_item_is_still_planned_for_the_worker_to_record() -> None:
    assert placement(item("bad", "not a name"), SETTINGS) == UNPARSABLE
    assert placement({"id": "no-domains"}, SETTINGS) == UNPARSABLE


def test_a_group_larger_than_a_batch_fills_whole_batches_and_small_groups_fill_the_rest() -> None:
    big = placement(item("x", "example.com"), SETTINGS)
    small = placement(item("y", "example.org"), SETTINGS)
    tiny = placement(item("z", "example.net"), SETTINGS)
    placed = [(f"big-{n}", big) for n in range(7)] + [(f"small-{n}", small) for n in range(2)] + [("tiny", tiny)]
    batches = pack(placed, batch_size=3)
    assert batches[:2] == [["big-0", "big-1", "big-2"], ["big-3", "big-4", "big-5"]]
    # The big group's rest (1) and the small groups packed first-fit, largest first: 4 ids in 2 batches.
    assert sorted(map(sorted, batches[2:])) == [["big-6", "small-0", "small-1"], ["tiny"]]
    assert sorted(i for b in batches for i in b) == sorted(i for i, _ in placed)  # each id exactly once
    assert all(len(b) <= 3 for b in batches)


def test_a_group_stays_in_one_batch_when_it_fits() -> None:
    zones = [placement(item(str(z), f"zone{z}.test"), SETTINGS) for z in range(4)]
    placed = [(f"{z}-{n}", where) for z, where in enumerate(zones) for n in range(3)]
    batches = pack(placed, batch_size=7)
    for z in range(4):
        holding = [b for b in batches if any(i.startswith(f"{z}-") for i in b)]
        assert len(holding) == 1, (z, batches)
    assert len(batches) == 2  # 12 ids, 7 a batch, groups of 3: 2 + 2 groups


def test_an_id_listed_twice_is_planned_once() -> None:
    where = placement(item("a", "example.com"), SETTINGS)
    assert pack([("a", where), ("a", where)], batch_size=5) == [["a"]]


def test_the_plan_leaves_out_what_a_live_lease_holds() -> None:
    items = [
        item("free", "a.example.com"),
        item("held", "b.example.com", lease_until=iso(NOW + timedelta(minutes=5))),
        item("expired", "c.example.com", lease_until=iso(NOW - timedelta(minutes=5))),
    ]
    assert plan(items, replace(SETTINGS, batch_size=10), NOW) == [["free", "expired"]]


def test_a_batch_of_the_largest_ids_fits_one_message() -> None:
    ids = [("x" * 2048)[: 2048 - 3] + f"{n:03}" for n in range(100)]  # DynamoDB's largest partition key, 100 times
    body = message_body(ids, "due")
    assert len(body.encode()) <= BYTES_PER_CALL
    assert ids_of(body) == ids


@pytest.mark.parametrize("body", ["[]", '{"ids": "a"}', '{"ids": [""]}', '{"scan": "due"}'])
def test_a_message_that_is_not_a_batch_says_what_it_should_hold(body: str) -> None:
    with pytest.raises(ValueError, match='"ids"'):
        ids_of(body)


class FakeSqs:
    """SendMessageBatch as SQS answers it, refusing the entries whose body holds `refuse`; every call recorded."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.refuse = refuse

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        assert len(Entries) <= ENTRIES_PER_CALL
        assert sum(len(e["MessageBody"].encode()) for e in Entries) <= BYTES_PER_CALL
        self.calls.append(Entries)
        refused = [e for e in Entries if self.refuse and self.refuse in e["MessageBody"]]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in refused],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in refused],
        }


def test_batches_go_ten_to_a_call_and_no_call_exceeds_256_kib() -> None:
    sqs = FakeSqs()
    batches = [[f"cert-{b}-{n}" for n in range(3)] for b in range(23)]
    sent = RenewalQueue(sqs, "https://queue")  # type: ignore[arg-type]
    assert sent.send(batches, "due").messages == 23
    assert [len(call) for call in sqs.calls] == [10, 10, 3]
    bodies = [ids_of(e["MessageBody"]) for call in sqs.calls for e in call]
    assert bodies == batches

    large = FakeSqs()
    wide = [[f"{b}-{n}-" + "x" * 2000 for n in range(60)] for b in range(10)]  # about 120 KB a message
    RenewalQueue(large, "https://queue").send(wide, "due")  # type: ignore[arg-type]
    assert [len(call) for call in large.calls] == [2, 2, 2, 2, 2]


def test_a_refused_batch_is_counted_and_the_others_go() -> None:
    sqs = FakeSqs(refuse="poison")
    queued = RenewalQueue(sqs, "https://queue").send([["a", "b"], ["poison"], ["c"]], "due")  # type: ignore[arg-type]
    assert (queued.messages, queued.certificates, queued.failed_messages) == (2, 3, 1)


def test_the_queue_holds_what_was_sent(mocked_aws: None) -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = sqs.create_queue(QueueName="renewals")["QueueUrl"]
    batches = [[f"cert-{b}-{n}" for n in range(2)] for b in range(12)]
    RenewalQueue(sqs, url).send(batches, "full")
    received: list[list[str]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(ids_of(message["Body"]))
            assert json.loads(message["Body"])["scan"] == "full"
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(received) == sorted(batches)

"""Many certificates in one run on the local stack: one Route53 change per zone to publish and one to clean up,
pebble validating every name, the per-run limit (BATCH_SIZE), and the optional propagation check."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from acme_renewer.report.outcomes import Result
from tests.integration.conftest import Calls
from tests.integration.invariants import assert_nothing_lost, make_due
from tests.integration.test_renewal import get_item, put_item, unique
from tests.stack import LocalStack
from tests.stack.handler import FakeLambdaContext, emitted_metrics, invoke_with

DUE_RUN = {"source": "schedule", "scan": "due"}


def zones_with_certificates(stack: LocalStack, env: dict[str, str], zones: int, per_zone: int) -> dict[str, str]:
    """`per_zone` apex + wildcard certificates in each of `zones` new zones; returns item id -> zone id."""
    placed = {}
    for _ in range(zones):
        zone = unique("batch") + ".test"
        zone_id = stack.create_hosted_zone(zone)
        for n in range(per_zone):
            name = f"site{n}.{zone}"
            item_id = f"{zone.split('.')[0]}-{n}"
            put_item(stack, env, {"id": item_id, "domains": [name, f"*.{name}"]})
            placed[item_id] = zone_id
    return placed


def test_a_run_publishes_once_per_zone_and_pebble_validates_every_name(
    stack: LocalStack, env: dict[str, str], calls: Calls, fast_acm_imports: float
) -> None:
    placed = zones_with_certificates(stack, env, zones=2, per_zone=4)
    result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    assert result["renewed"] == len(placed)
    assert len(calls.new_orders) == len(placed)
    # Two zones: one change each to publish, one each to clean up, whatever the number of certificates.
    changes = Counter(change["HostedZoneId"] for change in calls.route53_changes)
    assert sorted(changes.values()) == [2, 2]
    published = [c for c in calls.route53_changes if c["ChangeBatch"]["Changes"][0]["Action"] == "CREATE"]
    assert len(published) == 2  # the names held nothing: CREATE, no read, no UPSERT
    # Apex and wildcard share a name: each record set carries both values.
    for change in published:
        assert all(len(c["ResourceRecordSet"]["ResourceRecords"]) == 2 for c in change["ChangeBatch"]["Changes"])
    for item_id, zone_id in placed.items():
        item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
        assert item["status"] == "ISSUED"


def test_one_bad_certificate_does_not_hold_back_the_batch(stack: LocalStack, env: dict[str, str]) -> None:
    placed = zones_with_certificates(stack, env, zones=1, per_zone=2)
    put_item(stack, env, {"id": "no-zone", "domains": [unique("nozone") + ".example"]})
    result = invoke_with("renewal", {"source": "schedule"})
    outcomes = {c["id"]: c for c in result["certificates"]}
    assert outcomes["no-zone"]["result"] == Result.FAILED.value
    assert "no public Route53 hosted zone" in outcomes["no-zone"]["reason"]
    assert all(outcomes[i]["result"] == Result.RENEWED.value for i in placed)


def test_past_the_batch_size_the_rest_stays_due_and_the_next_run_renews_it_once(
    stack: LocalStack, env: dict[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the queue (RENEWAL_QUEUE_URL unset: the CLI, the demo), a run takes at most BATCH_SIZE; the rest is
    deferred, unleased and still due, and the next run takes it."""
    placed = zones_with_certificates(stack, env, zones=1, per_zone=3)
    invoke_with("renewal", {"source": "schedule", "scan": "full"})
    for item_id in placed:
        make_due(stack, env["TABLE_NAME"], item_id)
    calls.new_orders.clear()
    monkeypatch.setenv("BATCH_SIZE", "2")

    results = [invoke_with("renewal", DUE_RUN, FakeLambdaContext()) for _ in range(2)]

    assert [(r["renewed"], r["deferred"]) for r in results] == [(2, 1), (1, 0)]
    assert len(calls.new_orders) == len(placed)  # nobody ordered twice
    renewed = [c["id"] for r in results for c in r["certificates"] if c["result"] == Result.RENEWED.value]
    assert sorted(renewed) == sorted(placed)


def test_the_propagation_check_asks_the_authoritative_server_before_answering(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    placed = zones_with_certificates(stack, env, zones=1, per_zone=2)
    host, port = stack.dns_address
    monkeypatch.setenv("PROPAGATION_CHECK", "authoritative")
    monkeypatch.setenv("PROPAGATION_CHECK_NAMESERVERS", f"{host}:{port}")
    capsys.readouterr()
    result = invoke_with("renewal", {"source": "schedule"})
    assert result["renewed"] == len(placed)
    messages = [json.loads(line).get("message") for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    assert "TXT values visible on every authoritative server" in messages
    # Checked after the records are live, before any challenge is answered.
    assert messages.index("challenge records live") > messages.index("TXT values visible on every authoritative server")


def test_with_route53_propagation_delay_the_run_waits_once(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str], fast_acm_imports: float
) -> None:
    """With changes PENDING for D seconds (and the DNS server serving nothing new until then), every certificate
    of the run shares one wait: Route53 calls are counted by the server, whatever the client did."""
    delay = 2.0
    placed = zones_with_certificates(stack, env, zones=2, per_zone=3)
    stack.reset_aws_calls()
    capsys.readouterr()
    stack.set_route53_delay(delay)
    try:
        result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    finally:
        stack.set_route53_delay(0)
    assert result["renewed"] == len(placed)
    route53 = stack.aws_calls()["route53"]
    assert route53["ChangeResourceRecordSets"] == 2 * 2  # two zones: publish and clean up, once each
    # One zone listing per run, and no read: the DNS server (CHALLENGE_LOOKUP=dns, as the stack's environment sets
    # it) says the names hold nothing, so publish CREATEs and cleanup DELETEs what publish wrote.
    assert (route53["ListHostedZones"], route53.get("ListResourceRecordSets", 0)) == (1, 0)
    # Polled with backoff over about D seconds: a handful of calls, not one series per certificate.
    assert route53["GetChange"] <= 2 * 6
    items = [get_item(stack, env, item_id) for item_id in placed]
    assert all(item["status"] == "ISSUED" for item in items)
    # One wait, shared: every certificate reports the same DNS wait, at least D long.
    waits = emitted_metrics(capsys.readouterr().out)["DnsPropagationSeconds"]
    assert len(waits) == len(placed) and len(set(waits)) == 1 and waits[0] >= delay

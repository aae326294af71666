"""The certificate lifecycle on the local stack: instant issuance from the table's stream, leases against
overlapping runs, backoff after failures, and re-issuance when the request changes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from acme import challenges

from acme_renewer.report.outcomes import Result
from acme_renewer.runtime import build_renewer
from acme_renewer.settings import Settings
from tests.integration.conftest import Calls
from tests.integration.invariants import wrong
from tests.integration.test_renewal import check_certificate, get_item, put_item, unique
from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy, Rule
from tests.stack.handler import FakeLambdaContext, event, invoke_with
from tests.stack.streams import StreamReader, lambda_event, passes_filter, stream_filters

FILTERS = stream_filters()


def deliver(reader: StreamReader) -> tuple[int, dict[str, Any]]:
    """Do what Lambda's event source mapping does: new records, filtered as the template says, to the handler."""
    records = reader.read()
    delivered = [r for r in records if passes_filter(r, FILTERS)]
    if not delivered:
        return len(records), {"batchItemFailures": []}
    response: dict[str, Any] = invoke_with("stream", lambda_event(delivered))
    return len(records), response


def test_a_new_item_is_issued_from_the_stream(stack: LocalStack, env: dict[str, str], calls: Calls) -> None:
    zone = unique("stream") + ".test"
    stack.create_hosted_zone(zone)
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, {"id": "instant", "domains": [zone, f"*.{zone}"]})

    seen, response = deliver(reader)

    assert (seen, response) == (1, {"batchItemFailures": []})
    check_certificate(stack, get_item(stack, env, "instant"), [zone, f"*.{zone}"])
    assert len(calls.new_orders) == 1
    # The renewer's own writes (lease, result) reach the stream but not the function, and order nothing.
    seen, _ = deliver(reader)
    assert seen >= 2
    assert len(calls.new_orders) == 1


def test_renewer_writes_are_dropped_by_the_template_filter_and_by_the_code(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zone = unique("own") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "own", "domains": [zone]})
    build_renewer(Settings.from_env()).run()
    reader = StreamReader(stack, env["TABLE_NAME"])
    build_renewer(Settings.from_env()).renew(["own"], force=True)
    records = reader.read()
    assert records and not any(passes_filter(r, FILTERS) for r in records)
    # Even delivered anyway (a filter misconfigured by hand), a status item's record orders nothing.
    orders = len(calls.new_orders)
    response = invoke_with("stream", lambda_event(records))
    assert response == {"batchItemFailures": []}
    assert len(calls.new_orders) == orders


def test_changed_domains_are_reissued_from_the_stream(stack: LocalStack, env: dict[str, str]) -> None:
    zone = unique("edit") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "edit", "domains": [zone]})
    build_renewer(Settings.from_env()).run()
    first = get_item(stack, env, "edit")
    reader = StreamReader(stack, env["TABLE_NAME"])

    # An operator's edit of the whole item, as read: request fields changed.
    put_item(stack, env, {**first, "domains": [zone, f"www.{zone}"]})
    deliver(reader)

    second = get_item(stack, env, "edit")
    check_certificate(stack, second, [zone, f"www.{zone}"])
    assert second["serial"] != first["serial"]
    assert second["acm_arns"] == first["acm_arns"]


def test_the_sample_stream_events_pass_or_fail_the_filter_as_named() -> None:
    assert passes_filter(event("stream_insert.json")["Records"][0], FILTERS)
    assert passes_filter(event("stream_modify.json")["Records"][0], FILTERS)
    assert passes_filter(event("stream_remove.json")["Records"][0], FILTERS)
    assert not passes_filter(event("stream_renewer_write.json")["Records"][0], FILTERS)


def test_two_overlapping_runs_order_each_certificate_once(stack: LocalStack, env: dict[str, str], calls: Calls) -> None:
    zones = [unique("race") + ".test" for _ in range(3)]
    for number, zone in enumerate(zones):
        stack.create_hosted_zone(zone)
        put_item(stack, env, {"id": f"race-{number}", "domains": [zone]})
    renewers = [build_renewer(Settings.from_env()) for _ in range(2)]
    start = threading.Barrier(len(renewers))
    reports = []

    def run(index: int) -> None:
        start.wait()
        reports.append(renewers[index].run())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(renewers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(calls.new_orders) == len(zones)
    renewed = [o.id for report in reports for o in report.outcomes if o.result is Result.RENEWED]
    assert sorted(renewed) == [f"race-{n}" for n in range(len(zones))]
    for number, zone in enumerate(zones):
        item = get_item(stack, env, f"race-{number}")
        check_certificate(stack, item, [zone])
        assert "lease_owner" not in item


def test_failures_back_off_and_a_success_resets_them(
    stack: LocalStack, env: dict[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = unique("backoff") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "flaky", "domains": [zone]})
    original = challenges.DNS01.validation
    monkeypatch.setattr(challenges.DNS01, "validation", lambda self, key: wrong(original(self, key)))

    build_renewer(Settings.from_env()).run()
    failed = get_item(stack, env, "flaky")
    assert (failed["status"], failed["failure_count"]) == ("FAILED", 1)
    wait = datetime.fromisoformat(failed["next_attempt_at"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(minutes=50) < wait < timedelta(minutes=70)

    report = build_renewer(Settings.from_env()).run()
    assert [o.result for o in report.outcomes] == [Result.BACKING_OFF]
    assert len(calls.new_orders) == 1

    # An hour later (moved on the item rather than waiting), still failing: the wait doubles.
    put_item(stack, env, {**get_item(stack, env, "flaky"), "next_attempt_at": "2000-01-01T00:00:00Z"})
    build_renewer(Settings.from_env()).run()
    failed = get_item(stack, env, "flaky")
    assert failed["failure_count"] == 2
    wait = datetime.fromisoformat(failed["next_attempt_at"].replace("Z", "+00:00")) - datetime.now(UTC)
    assert timedelta(hours=1.75) < wait < timedelta(hours=2.25)

    monkeypatch.setattr(challenges.DNS01, "validation", original)
    put_item(stack, env, {**get_item(stack, env, "flaky"), "next_attempt_at": "2000-01-01T00:00:00Z"})
    build_renewer(Settings.from_env()).run()
    issued = get_item(stack, env, "flaky")
    check_certificate(stack, issued, [zone])
    assert issued["failure_count"] == 0
    assert "next_attempt_at" not in issued and "last_error" not in issued


def test_the_cas_retry_after_is_honoured(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = unique("ratelimit") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "limited", "domains": [zone]})
    with AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls) as proxy:
        monkeypatch.setenv("ACME_DIRECTORY_URL", proxy.directory_url)
        proxy.add_rule(Rule(method="POST", path="/order-plz", status=429, headers={"Retry-After": "7200"}))

        build_renewer(Settings.from_env()).run()

        item = get_item(stack, env, "limited")
        assert item["status"] == "FAILED"
        assert "rateLimited" in item["last_error"] or "rate" in item["last_error"].lower()
        assert "retry after 7200 s" in item["last_error"]
        # Two hours, not the one hour of a first failure.
        wait = datetime.fromisoformat(item["next_attempt_at"].replace("Z", "+00:00")) - datetime.now(UTC)
        assert timedelta(hours=1.95) < wait <= timedelta(hours=2)

        report = build_renewer(Settings.from_env()).run()
        assert [o.result for o in report.outcomes] == [Result.BACKING_OFF]
        assert proxy.count("POST", "/order-plz") == 1


def test_a_crash_between_issuance_and_the_stores_is_recovered_without_a_new_order(
    stack: LocalStack, env: dict[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acme_renewer.stores.secrets import SecretStore

    zone = unique("crash") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "crash", "domains": [zone]})

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the function was killed")  # nothing of ours runs after this

    original = SecretStore.put
    monkeypatch.setattr(SecretStore, "put", crash)
    with pytest.raises(SystemExit):
        build_renewer(Settings.from_env()).run()
    monkeypatch.setattr(SecretStore, "put", original)
    assert len(calls.new_orders) == 1
    stuck = get_item(stack, env, "crash")
    assert "pending_order" in stuck and "not_after" not in stuck

    # The dead run's lease runs out.
    put_item(stack, env, {**get_item(stack, env, "crash"), "lease_until": "2000-01-01T00:00:00Z"})
    build_renewer(Settings.from_env()).run()

    item = get_item(stack, env, "crash")
    check_certificate(stack, item, [zone])
    assert len(calls.new_orders) == 1  # the certificate the CA issued to the dead run
    assert "pending_order" not in item and "pending_txt" not in item
    record_sets = stack.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert not [r for r in record_sets if r["Name"].startswith("_acme-challenge")]


def test_a_run_close_to_its_deadline_starts_nothing_and_the_next_run_does(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zones = [unique("deadline") + ".test" for _ in range(2)]
    for number, zone in enumerate(zones):
        stack.create_hosted_zone(zone)
        put_item(stack, env, {"id": f"late-{number}", "domains": [zone]})
    before = [get_item(stack, env, f"late-{n}") for n in range(2)]
    budget = Settings.from_env().renewal_budget_seconds

    # Lambda says less time is left than one renewal may need.
    result = invoke_with("renewal", event("schedule_full.json"), FakeLambdaContext(timeout_seconds=budget - 10))

    assert result["deferred"] == 2
    assert calls.new_orders == []
    # Untouched, except that each took its place in the due index, where the next due-only run finds it.
    after = [get_item(stack, env, f"late-{n}") for n in range(2)]
    assert [{k: v for k, v in item.items() if k not in ("schedule", "due_at")} for item in after] == before

    result = invoke_with("renewal", {"source": "schedule", "scan": "due"})
    assert result["renewed"] == 2
    for number, zone in enumerate(zones):
        check_certificate(stack, get_item(stack, env, f"late-{number}"), [zone])

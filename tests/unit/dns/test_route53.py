"""The Route53 adapter over moto's in-memory Route53: merged values, exact cleanup, INSYNC polling."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

from acme_renewer.dns.challenge import merge_values
from acme_renewer.dns.route53 import (
    INSYNC_POLL_DELAYS,
    INSYNC_POLL_MAX_DELAY,
    MAX_RECORDS_PER_CHANGE,
    MAX_VALUE_CHARACTERS_PER_CHANGE,
    Route53Dns,
    quote_txt,
    split_changes,
    unquote_txt,
)
from acme_renewer.errors import DnsPropagationError, DnsPublishError
from acme_renewer.models import TxtRecord
from acme_renewer.pacing import RateLimiter
from tests.stack.in_process import InProcessStack


def zone(client: Any, name: str, private: bool = False) -> str:
    extra: dict[str, Any] = {}
    if private:
        extra = {"VPC": {"VPCRegion": "us-east-1", "VPCId": "vpc-1"}, "HostedZoneConfig": {"PrivateZone": True}}
    return client.create_hosted_zone(Name=name, CallerReference=name + str(private), **extra)["HostedZone"]["Id"]


def txt(client: Any, zone_id: str, name: str) -> list[str]:
    for record_set in client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if record_set["Name"] == name + "." and record_set["Type"] == "TXT":
            return [r["Value"] for r in record_set["ResourceRecords"]]
    return []


def test_apex_and_wildcard_share_one_record_set_in_the_nested_zone(route53: Any) -> None:
    parent = zone(route53, "example.test")
    child = zone(route53, "sub.example.test")
    records = [
        TxtRecord("_acme-challenge.sub.example.test", "apex"),
        TxtRecord("_acme-challenge.sub.example.test", "wild"),
    ]
    dns = Route53Dns(route53)
    dns.publish(records)
    assert txt(route53, child, "_acme-challenge.sub.example.test") == [quote_txt("apex"), quote_txt("wild")]
    assert txt(route53, parent, "_acme-challenge.sub.example.test") == []
    dns.remove(records)
    assert txt(route53, child, "_acme-challenge.sub.example.test") == []


def test_values_of_others_survive_publish_and_remove(route53: Any) -> None:
    zone_id = zone(route53, "example.test")
    name = "_acme-challenge.example.test"
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "TXT",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": quote_txt("theirs")}],
                    },
                }
            ]
        },
    )
    dns = Route53Dns(route53)
    dns.publish([TxtRecord(name, "ours")])
    assert txt(route53, zone_id, name) == [quote_txt("theirs"), quote_txt("ours")]
    dns.remove([TxtRecord(name, "ours")])
    assert txt(route53, zone_id, name) == [quote_txt("theirs")]


def test_a_long_value_of_others_is_written_back_as_it_was_split(strict_aws: InProcessStack) -> None:
    """Route53's "Supported DNS record types", TXT: a string is at most 255 characters, a longer text is several
    strings, and a change holding a longer string is refused whole, for every certificate of the zone
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat). Someone's
    300-character value used to be joined into one string when ours were added, and so refused."""
    route53 = strict_aws.client("route53")
    zone_id = zone(route53, "example.test")
    name = "_acme-challenge.example.test"
    theirs = '"' + "d" * 255 + '" "' + "k" * 45 + '"'
    others = [{"Value": theirs}, {"Value": quote_txt("short")}]
    record_set = {"Name": name, "Type": "TXT", "TTL": 300, "ResourceRecords": others}
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )
    dns = Route53Dns(route53, sleep=lambda _: None)
    ours = [TxtRecord(name, "apex"), TxtRecord(name, "wild")]

    dns.publish(ours)
    assert txt(route53, zone_id, name) == [theirs, quote_txt("short"), quote_txt("apex"), quote_txt("wild")]
    dns.remove(ours)

    assert txt(route53, zone_id, name) == [theirs, quote_txt("short")]


def test_our_values_are_written_in_strings_of_at_most_255_characters() -> None:
    assert quote_txt("a" * 600) == '"' + "a" * 255 + '" "' + "a" * 255 + '" "' + "a" * 90 + '"'
    assert quote_txt('say "hi"') == r'"say \"hi\""'
    assert quote_txt("") == '""'
    assert unquote_txt(quote_txt("b" * 300)) == "b" * 300


def test_private_zones_are_never_used(route53: Any) -> None:
    public = zone(route53, "example.test")
    zone(route53, "internal.example.test", private=True)
    assert Route53Dns(route53).zone_for("_acme-challenge.internal.example.test").id == public.rsplit("/", 1)[-1]


class PendingChanges:
    """Wraps a Route53 client so that GetChange reports PENDING a number of times first."""

    def __init__(self, client: Any, pending_polls: int) -> None:
        self._client = client
        self.pending_polls = pending_polls

    def get_change(self, Id: str) -> Any:
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return {"ChangeInfo": {"Id": Id, "Status": "PENDING"}}
        return self._client.get_change(Id=Id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_waits_for_insync_with_backoff(route53: Any) -> None:
    zone(route53, "example.test")
    sleeps: list[float] = []
    pending_polls = len(INSYNC_POLL_DELAYS) + 2
    dns = Route53Dns(PendingChanges(route53, pending_polls=pending_polls), sleep=sleeps.append)  # type: ignore[arg-type]
    dns.publish([TxtRecord("_acme-challenge.example.test", "v")])
    # Quick polls first (a change often syncs within seconds), then a steady pace.
    assert sleeps == [*INSYNC_POLL_DELAYS, INSYNC_POLL_MAX_DELAY, INSYNC_POLL_MAX_DELAY]
    assert sleeps == sorted(sleeps)


def test_gives_up_when_the_change_never_syncs(route53: Any) -> None:
    zone(route53, "example.test")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    dns = Route53Dns(
        PendingChanges(route53, pending_polls=10**6),  # type: ignore[arg-type]
        timeout_seconds=60,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(DnsPropagationError, match="not INSYNC after 60 s"):
        dns.publish([TxtRecord("_acme-challenge.example.test", "v")])
    assert now[0] <= 60


class Calls:
    """Counts the API calls a client really makes, by operation (botocore's before-call event)."""

    def __init__(self, client: Any) -> None:
        self.by_operation: dict[str, int] = {}
        client.meta.events.register("before-call.route53", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.by_operation[model.name] = self.by_operation.get(model.name, 0) + 1


def certificate_records(count: int, zone_name: str) -> list[TxtRecord]:
    """Apex and wildcard of `count` names: two values on each _acme-challenge name."""
    return [
        TxtRecord(f"_acme-challenge.n{i}.{zone_name}", f"{kind}-{i}") for i in range(count) for kind in ("apex", "wild")
    ]


def test_a_batch_is_one_change_per_zone_and_one_wait(route53: Any) -> None:
    zones = {name: zone(route53, name) for name in ("one.test", "two.test")}
    records = certificate_records(30, "one.test") + certificate_records(20, "two.test")
    calls = Calls(route53)
    dns = Route53Dns(route53)
    dns.publish(records)
    assert calls.by_operation["ChangeResourceRecordSets"] == len(zones)
    # moto gives both changes one id: a single GetChange covers them.
    assert calls.by_operation["GetChange"] == 1
    for name, values in merge_values(records).items():
        zone_name = name.split(".", 2)[2]
        assert txt(route53, zones[zone_name], name) == [quote_txt(v) for v in values]  # apex and wildcard merged
    dns.remove(records)
    assert calls.by_operation["ChangeResourceRecordSets"] == 2 * len(zones)
    assert all(txt(route53, zone_id, r.name) == [] for r in records for zone_id in zones.values())


def test_reads_take_the_cheaper_of_per_name_or_whole_zone(route53: Any) -> None:
    zone(route53, "small.test")
    calls = Calls(route53)
    Route53Dns(route53).publish(certificate_records(40, "small.test"))
    # The zone has a handful of record sets: one page of the zone beats 40 reads by name.
    assert calls.by_operation["ListResourceRecordSets"] == 1

    zone(route53, "few.test")
    calls = Calls(route53)
    Route53Dns(route53).publish(certificate_records(1, "few.test"))
    assert calls.by_operation["ListResourceRecordSets"] == 1


def test_a_missing_zone_fails_only_its_names(route53: Any) -> None:
    zone_id = zone(route53, "known.test")
    good = certificate_records(2, "known.test")
    orphan = TxtRecord("_acme-challenge.unknown.example", "x")
    with pytest.raises(DnsPublishError) as raised:
        Route53Dns(route53).publish([*good, orphan])
    assert raised.value.names == frozenset({orphan.name})
    assert "unknown.example" in str(raised.value)
    assert quote_txt(good[0].value) in txt(route53, zone_id, good[0].name)


class RefusingZone:
    """Wraps a Route53 client so that ChangeResourceRecordSets on one zone is refused with AccessDenied."""

    def __init__(self, client: Any, zone_id: str) -> None:
        self._client = client
        self._zone_id = zone_id.rsplit("/", 1)[-1]

    def change_resource_record_sets(self, HostedZoneId: str, **kwargs: Any) -> Any:
        if HostedZoneId == self._zone_id:
            error = {"Error": {"Code": "AccessDenied", "Message": "not authorized on this zone"}}
            raise ClientError(error, "ChangeResourceRecordSets")  # type: ignore[arg-type]
        return self._client.change_resource_record_sets(HostedZoneId=HostedZoneId, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_refused_zone_and_a_missing_one_are_told_apart_record_by_record(route53: Any) -> None:
    refused_id = zone(route53, "refused.test")
    good_id = zone(route53, "good.test")
    in_refused = certificate_records(2, "refused.test")
    good = certificate_records(1, "good.test")
    orphan = TxtRecord("_acme-challenge.unknown.example", "x")
    with pytest.raises(DnsPublishError) as raised:
        Route53Dns(RefusingZone(route53, refused_id)).publish([*in_refused, *good, orphan])  # type: ignore[arg-type]
    assert quote_txt(good[0].value) in txt(route53, good_id, good[0].name)
    refused = "Route53 refused the change in zone 'refused.test': An error occurred (AccessDenied)"
    # One certificate's records in the refused zone: its zone's reason only, and only its own names.
    first = raised.value.about(in_refused[:2])
    assert first is not None and str(first).startswith(refused) and "unknown.example" not in str(first)
    assert first.names == {"_acme-challenge.n0.refused.test"}
    lost = raised.value.about([orphan])
    assert lost is not None and "refused.test" not in str(lost) and "unknown.example" in str(lost)
    assert raised.value.about(good) is None


def test_large_batches_are_split_within_route53_limits() -> None:
    changes: list[Any] = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": f"_acme-challenge.n{i}.example.test",
                "Type": "TXT",
                "TTL": 60,
                "ResourceRecords": [{"Value": quote_txt("x" * 43)}, {"Value": quote_txt("y" * 43)}],
            },
        }
        for i in range(400)
    ]
    batches = split_changes(changes)
    assert len(batches) > 1
    assert [c for batch in batches for c in batch] == changes  # nothing lost, order kept
    for batch in batches:
        values = [r["Value"] for c in batch for r in c["ResourceRecordSet"]["ResourceRecords"]]
        assert 2 * len(values) <= MAX_RECORDS_PER_CHANGE
        assert 2 * sum(map(len, values)) <= MAX_VALUE_CHARACTERS_PER_CHANGE
    # Packed, not one change per request: each batch but the last is close to the character limit.
    per_change = 2 * 2 * len(quote_txt("x" * 43))
    assert all(2 * sum(len(r["Value"]) for c in b for r in c["ResourceRecordSet"]["ResourceRecords"])
               > MAX_VALUE_CHARACTERS_PER_CHANGE - per_change for b in batches[:-1])  # fmt: skip


def test_the_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep)
    for _ in range(11):
        limiter.wait()
        starts.append(now[0])
    assert starts[-1] == pytest.approx(2.0)  # 11 requests at 5 per second take 2 s
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(0.2)


def test_the_rate_limiter_paces_a_real_client(route53: Any) -> None:
    now = [0.0]
    limiter = RateLimiter(4, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    limiter.attach(route53)
    limiter.attach(route53)  # a second attach does not double the pacing
    for _ in range(5):
        route53.list_hosted_zones()
    assert now[0] == pytest.approx(1.0)


class SyncingChanges:
    """GetChange of distinct change ids, each INSYNC from its own time on a fake clock; counts the polls."""

    def __init__(self, insync_at: dict[str, float], now: list[float]) -> None:
        self.insync_at = insync_at
        self.now = now
        self.polls: list[str] = []
        self.pending_answers = 0

    def get_change(self, Id: str) -> Any:
        self.polls.append(Id)
        insync = self.now[0] >= self.insync_at[Id]
        self.pending_answers += not insync
        return {"ChangeInfo": {"Id": Id, "Status": "INSYNC" if insync else "PENDING"}}


def wait_for(insync_at: dict[str, float]) -> tuple[SyncingChanges, float]:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    client = SyncingChanges(insync_at, now)
    Route53Dns(client, sleep=sleep, clock=lambda: now[0])._wait_insync(list(insync_at))  # type: ignore[arg-type]
    return client, now[0]


def test_changes_synced_in_order_cost_one_poll_each_plus_one_per_round() -> None:
    # 40 zones' changes, submitted a quarter second apart, each in sync 5 s after it was sent.
    insync_at = {f"/change/C{i}": 5.0 + i / 4 for i in range(40)}
    client, waited = wait_for(insync_at)
    assert waited >= max(insync_at.values())
    assert set(client.polls) == set(insync_at)
    # One INSYNC answer per change, and one PENDING answer per round (one round per sleep).
    assert len(client.polls) == len(insync_at) + client.pending_answers
    assert client.pending_answers <= len(INSYNC_POLL_DELAYS) + waited / INSYNC_POLL_MAX_DELAY
    assert len(client.polls) < 2 * len(insync_at)  # polling every pending change each round: over 5 times as many


def test_a_slow_early_change_is_waited_for_and_the_others_are_still_checked() -> None:
    insync_at = {"/change/A": 12.0, "/change/B": 0.0, "/change/C": 30.0}
    client, waited = wait_for(insync_at)
    assert waited >= 30.0
    assert client.polls[-1] == "/change/C"
    assert client.polls.count("/change/B") == 1

"""Route53 calls per certificate for one run's batch, counted on the local stack's AWS side (moto behind the
strict layer), and the conditional writes that let publish and remove skip reads without losing anyone's values.

The counts are exact for each scenario (bench/route53_calls.py prints them for N = 100): one ListHostedZones per
run, one read per zone (the CNAME lookup, which also tells which names hold no TXT), one change per zone to
publish and one to clean up, one GetChange (moto gives every change one id).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from acme_renewer.dns.accounts import AccountRoutedDns
from acme_renewer.dns.lookup import NameAnswer
from acme_renewer.dns.route53 import Route53Dns, quote_txt
from acme_renewer.errors import DnsPublishError
from acme_renewer.models import TxtRecord, ZoneRole
from bench.route53_calls import (
    Calls,
    ServedNames,
    cname,
    create_zone,
    delegated,
    distinct_zones,
    one_zone,
    run_batch,
)
from tests.stack.in_process import InProcessStack


def txt(client: Any, zone_id: str, name: str) -> list[str]:
    for record_set in client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if record_set["Name"] == name + "." and record_set["Type"] == "TXT":
            return [r["Value"] for r in record_set["ResourceRecords"]]
    return []


def upsert(client: Any, zone_id: str, name: str, values: list[str]) -> None:
    record_set = {"Name": name, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": v} for v in values]}
    client.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )


def test_certificates_in_zones_of_their_own_cost_three_calls_each(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    n = 12
    calls = run_batch(route53, distinct_zones(route53, n))
    # One read per zone (it was three: the CNAME lookup, then the TXT before publish and before cleanup).
    assert calls == {
        "ListHostedZones": 1,
        "ListResourceRecordSets": n,
        "ChangeResourceRecordSets": 2 * n,
        "GetChange": 1,
    }


def test_a_batch_in_one_zone_reads_it_once(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    records = one_zone(route53, 40)
    calls = run_batch(route53, records)
    assert calls == {"ListHostedZones": 1, "ListResourceRecordSets": 1, "ChangeResourceRecordSets": 2, "GetChange": 1}


def test_names_delegated_into_one_validation_zone_read_each_zone_once(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    n = 40
    records = delegated(route53, n)
    validation = next(z["Id"] for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == "validation.test.")
    calls = Calls(route53)
    dns = Route53Dns(route53, sleep=lambda _: None)
    resolved = dns.resolve(records)
    dns.publish(resolved)
    counted = dict(calls.by_operation)  # before the test's own reads
    assert {r.target for r in resolved} == {f"_acme-challenge.site{i}.validation.test" for i in range(n)}
    assert txt(route53, validation, "_acme-challenge.site3.validation.test") == [
        quote_txt("apex-site3.customer.test"),
        quote_txt("wild-site3.customer.test"),
    ]
    calls = Calls(route53)
    dns.remove(resolved)
    counted = {op: counted.get(op, 0) + calls.by_operation.get(op, 0) for op in {*counted, *calls.by_operation}}
    # The customer zone once (its CNAMEs), the validation zone once (CNAMEs and TXT at the targets at once).
    assert counted == {
        "ListHostedZones": 1,
        "ListResourceRecordSets": 2,
        "ChangeResourceRecordSets": 2,
        "GetChange": 1,
    }
    assert txt(route53, validation, "_acme-challenge.site3.validation.test") == []


def test_a_value_written_after_the_lookup_is_kept_by_publish(strict_aws: InProcessStack) -> None:
    """The lookup saw no TXT, so publish CREATEs without a read; someone wrote the name in between, Route53 refuses
    the CREATE, and publish reads the name and merges. Without the strict layer's rule (moto lets a CREATE
    overwrite), their value would be lost."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "race.test")
    name = "_acme-challenge.race.test"
    dns = Route53Dns(route53, sleep=lambda _: None)
    resolved = dns.resolve([TxtRecord(name, "ours")])
    upsert(route53, zone_id, name, [quote_txt("theirs")])
    calls = Calls(route53)
    dns.publish(resolved)
    assert calls.by_operation["ChangeResourceRecordSets"] == 2  # the refused CREATE, then the UPSERT
    assert txt(route53, zone_id, name) == [quote_txt("theirs"), quote_txt("ours")]
    dns.remove(resolved)
    assert txt(route53, zone_id, name) == [quote_txt("theirs")]


def test_a_value_added_after_publish_is_kept_by_remove(strict_aws: InProcessStack) -> None:
    """Remove DELETEs exactly what publish wrote; another run added its value meanwhile, Route53 refuses the
    DELETE, and remove reads the name and takes away only ours."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "race.test")
    name = "_acme-challenge.race.test"
    dns = Route53Dns(route53, sleep=lambda _: None)
    resolved = dns.resolve([TxtRecord(name, "ours")])
    dns.publish(resolved)
    upsert(route53, zone_id, name, [quote_txt("ours"), quote_txt("theirs")])
    calls = Calls(route53)
    dns.remove(resolved)
    assert calls.by_operation == {"ChangeResourceRecordSets": 2, "ListResourceRecordSets": 1}
    assert txt(route53, zone_id, name) == [quote_txt("theirs")]


def test_a_name_holding_other_values_is_read_again_before_its_upsert(strict_aws: InProcessStack) -> None:
    """An UPSERT overwrites whatever is there, so it is sent only after a fresh read; the lookup's is not enough."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "others.test")
    name = "_acme-challenge.others.test"
    upsert(route53, zone_id, name, [quote_txt("first")])
    dns = Route53Dns(route53, sleep=lambda _: None)
    resolved = dns.resolve([TxtRecord(name, "ours")])
    upsert(route53, zone_id, name, [quote_txt("first"), quote_txt("second")])
    calls = Calls(route53)
    dns.publish(resolved)
    assert calls.by_operation == {"ListResourceRecordSets": 1, "ChangeResourceRecordSets": 1, "GetChange": 1}
    assert txt(route53, zone_id, name) == [quote_txt("first"), quote_txt("second"), quote_txt("ours")]


class NoCreate:
    """A Route53 client whose policy allows only UPSERT and DELETE, as zone roles set up for older versions."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.refused = 0

    def change_resource_record_sets(self, ChangeBatch: Any, **kwargs: Any) -> Any:
        if any(change["Action"] == "CREATE" for change in ChangeBatch["Changes"]):
            self.refused += 1
            error = {"Error": {"Code": "AccessDenied", "Message": "not authorized to perform CREATE"}}
            raise ClientError(error, "ChangeResourceRecordSets")  # type: ignore[arg-type]
        return self._client.change_resource_record_sets(ChangeBatch=ChangeBatch, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_role_that_may_not_create_is_written_with_upserts_after_one_refusal(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    zones = [create_zone(route53, f"old{i}.test") for i in range(3)]
    records = [TxtRecord(f"_acme-challenge.old{i}.test", "ours") for i in range(3)]
    client = NoCreate(route53)
    dns = Route53Dns(client, sleep=lambda _: None)  # type: ignore[arg-type]
    dns.upsert_when_create_denied()  # as AccountRoutedDns does for a role's account
    resolved = dns.resolve(records)
    dns.publish(resolved)
    assert client.refused == 1  # the first zone only; the run then asks for no CREATE
    assert all(txt(route53, zone_id, r.name) == [quote_txt("ours")] for zone_id, r in zip(zones, records, strict=True))
    dns.remove(resolved)
    assert all(txt(route53, zone_id, r.name) == [] for zone_id, r in zip(zones, records, strict=True))


def test_in_the_functions_own_account_a_refused_create_is_the_zones_refusal(strict_aws: InProcessStack) -> None:
    """template.yaml allows CREATE, so an AccessDenied there is a policy scoped to other zones: reported at once,
    with one attempt, not hidden behind a second one."""
    route53 = strict_aws.client("route53")
    create_zone(route53, "scoped.test")
    client = NoCreate(route53)
    dns = Route53Dns(client, sleep=lambda _: None)  # type: ignore[arg-type]
    resolved = dns.resolve([TxtRecord("_acme-challenge.scoped.test", "ours")])
    with pytest.raises(DnsPublishError, match="AccessDenied"):
        dns.publish(resolved)
    assert client.refused == 1


def test_zone_roles_get_adapters_that_upsert_when_create_is_denied(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    built: dict[ZoneRole | None, Route53Dns] = {}

    def dns_for(role: ZoneRole | None) -> Route53Dns:
        built[role] = Route53Dns(route53)
        return built[role]

    routed = AccountRoutedDns(dns_for)
    role = ZoneRole("arn:aws:iam::111122223333:role/acme-dns")
    routed.adapter(None)
    routed.adapter(role)
    assert [built[None]._upsert_when_create_denied, built[role]._upsert_when_create_denied] == [False, True]


class Lookup:
    """NameAnswers that says what it is told: a stale DNS answer, or a failing one."""

    def __init__(self, empty: set[tuple[str, str]] | None = None, fail: bool = False) -> None:
        self._empty = empty or set()
        self._fail = fail
        self.asked: list[tuple[str, str]] = []

    def look(self, pairs: Any) -> dict[tuple[str, str], NameAnswer]:
        self.asked += [(zone.id, name) for zone, name in pairs]
        if self._fail:
            raise OSError("network unreachable")
        return dict.fromkeys(self._empty, NameAnswer(empty=True))


def test_with_dns_lookup_certificates_in_zones_of_their_own_are_not_read(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    n = 12
    records = distinct_zones(route53, n)
    calls = run_batch(route53, records, ServedNames(strict_aws.client("route53")))
    assert calls == {"ListHostedZones": 1, "ChangeResourceRecordSets": 2 * n, "GetChange": 1}
    zones = route53.list_hosted_zones()["HostedZones"]
    assert not any(
        rs["Type"] == "TXT"
        for zone in zones
        for rs in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    )


def test_with_dns_lookup_explicit_cnames_are_followed_without_a_read(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    records = delegated(route53, 10)
    dns = Route53Dns(route53, sleep=lambda _: None, dns_answers=ServedNames(strict_aws.client("route53")))
    calls = Calls(route53)
    resolved = dns.resolve(records)
    assert {r.target for r in resolved} == {f"_acme-challenge.site{i}.validation.test" for i in range(10)}
    dns.publish(resolved)
    dns.remove(resolved)
    # Neither the delegating zone nor the validation zone is read: one change to publish, one to clean up.
    assert calls.by_operation == {"ListHostedZones": 1, "ChangeResourceRecordSets": 2, "GetChange": 1}


def test_a_cname_dns_cannot_vouch_for_is_read_from_route53(strict_aws: InProcessStack) -> None:
    """A CNAME answer that may be a wildcard's is not among DNS's answers: the name is read, and followed."""
    route53 = strict_aws.client("route53")
    records = delegated(route53, 3)
    lookup = Lookup()  # tells nothing, as for a wildcard's CNAME
    calls = run_batch(route53, records, lookup)
    assert calls["ListResourceRecordSets"] >= 1 and len(lookup.asked) == 3 + 3  # the names, then their targets


def test_a_stale_dns_answer_over_a_txt_is_refused_by_route53_and_read(strict_aws: InProcessStack) -> None:
    """DNS said the name holds nothing (a minute behind Route53); someone's TXT is there. Route53 refuses the
    CREATE, publish reads the name and merges, and nothing of theirs is lost."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "stale.test")
    name = "_acme-challenge.stale.test"
    upsert(route53, zone_id, name, [quote_txt("theirs")])
    dns = Route53Dns(route53, sleep=lambda _: None, dns_answers=Lookup({(zone_id, name)}))
    resolved = dns.resolve([TxtRecord(name, "ours")])
    dns.publish(resolved)
    assert txt(route53, zone_id, name) == [quote_txt("theirs"), quote_txt("ours")]
    dns.remove(resolved)
    assert txt(route53, zone_id, name) == [quote_txt("theirs")]


def test_a_stale_dns_answer_over_a_new_cname_fails_with_route53s_reason(strict_aws: InProcessStack) -> None:
    """A CNAME added after DNS was asked: Route53 refuses a TXT beside it, the publish fails naming the CNAME, and
    no TXT is written anywhere (the next run sees the CNAME and writes at its target)."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "moved.test")
    create_zone(route53, "validation.test")
    name = "_acme-challenge.moved.test"
    cname(route53, zone_id, name, "_acme-challenge.moved.validation.test")
    dns = Route53Dns(route53, sleep=lambda _: None, dns_answers=Lookup({(zone_id, name)}))
    resolved = dns.resolve([TxtRecord(name, "ours")])
    assert resolved[0].target is None  # as DNS said
    with pytest.raises(DnsPublishError, match="conflicting RRSet of type CNAME"):
        dns.publish(resolved)
    assert txt(route53, zone_id, name) == []
    assert Route53Dns(route53).resolve([TxtRecord(name, "ours")])[0].target == "_acme-challenge.moved.validation.test"


def test_a_failing_dns_lookup_falls_back_to_reading_route53(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    n = 3
    records = distinct_zones(route53, n)
    lookup = Lookup(fail=True)
    calls = run_batch(route53, records, lookup)
    assert len(lookup.asked) == n
    assert calls["ListResourceRecordSets"] == n


def test_a_name_in_a_pinned_zone_is_not_asked_of_dns(strict_aws: InProcessStack) -> None:
    """hosted_zone_id pins one of two zones of a name (a migration): public DNS may answer for the other one."""
    route53 = strict_aws.client("route53")
    zone_id = create_zone(route53, "pinned.test")
    lookup = Lookup({(zone_id, "_acme-challenge.pinned.test")})
    dns = Route53Dns(route53, sleep=lambda _: None, dns_answers=lookup)
    dns.resolve([TxtRecord("_acme-challenge.pinned.test", "v", zone_id=zone_id)])
    assert lookup.asked == []

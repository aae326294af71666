"""Challenge records written elsewhere than at the name, on the local stack, with pebble following the CNAMEs
through our DNS server: a CNAME found in Route53, an item's challenge_alias, an item's pinned hosted zone."""

from __future__ import annotations

from typing import Any

from acme_renewer.dns.route53 import quote_txt
from acme_renewer.report.outcomes import Result
from tests.integration.conftest import Calls
from tests.integration.test_renewal import check_certificate, get_item, put_item, unique
from tests.stack import LocalStack
from tests.stack.handler import invoke_with

SCHEDULED_RUN = {"source": "schedule"}


def cname(stack: LocalStack, zone_id: str, name: str, target: str) -> None:
    record_set: Any = {"Name": name, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": target}]}
    stack.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )


def txt_names(stack: LocalStack, *zone_ids: str) -> list[str]:
    route53 = stack.client("route53")
    return [
        record_set["Name"]
        for zone_id in zone_ids
        for record_set in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        if record_set["Type"] == "TXT"
    ]


def changed_zones(calls: Calls) -> set[str]:
    return {change["HostedZoneId"].rsplit("/", 1)[-1] for change in calls.route53_changes}


def test_a_challenge_name_that_is_a_cname_has_its_value_written_at_the_target(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zone = unique("cname") + ".test"
    target_zone = unique("validation") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    target_id = stack.create_hosted_zone(target_zone)
    cname(stack, zone_id, f"_acme-challenge.www.{zone}", f"_acme-challenge.www-{zone}.{target_zone}")
    domains = [f"www.{zone}"]
    put_item(stack, env, {"id": "cname", "domains": domains})

    result = invoke_with("renewal", SCHEDULED_RUN)

    item = get_item(stack, env, "cname")
    assert result["renewed"] == 1, item.get("last_error")
    check_certificate(stack, item, domains)
    published = calls.route53_changes[0]["ChangeBatch"]["Changes"]
    assert [c["ResourceRecordSet"]["Name"] for c in published] == [f"_acme-challenge.www-{zone}.{target_zone}"]
    assert changed_zones(calls) == {target_id}  # nothing written where the CNAME is
    assert txt_names(stack, zone_id, target_id) == []
    assert "pending_txt" not in item


def test_certificates_with_one_challenge_alias_share_its_record(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    alias = unique("alias") + ".test"
    alias_id = stack.create_hosted_zone(alias)
    zones = [unique("aliased") + ".test" for _ in range(2)]
    for zone in zones:
        zone_id = stack.create_hosted_zone(zone)
        for name in (zone, f"a.{zone}"):
            cname(stack, zone_id, f"_acme-challenge.{name}", f"_acme-challenge.{alias}")
    requests = {f"aliased-{n}": [zone, f"*.{zone}", f"a.{zone}"] for n, zone in enumerate(zones)}
    for item_id, domains in requests.items():
        put_item(stack, env, {"id": item_id, "domains": domains, "challenge_alias": alias})

    result = invoke_with("renewal", SCHEDULED_RUN)

    assert result["renewed"] == 2, [get_item(stack, env, i).get("last_error") for i in requests]
    for item_id, domains in requests.items():
        check_certificate(stack, get_item(stack, env, item_id), domains)
    # One record set, one change, with the six values of both certificates.
    published = calls.route53_changes[0]["ChangeBatch"]["Changes"]
    assert [c["ResourceRecordSet"]["Name"] for c in published] == [f"_acme-challenge.{alias}"]
    assert len(published[0]["ResourceRecordSet"]["ResourceRecords"]) == 6
    assert changed_zones(calls) == {alias_id}
    assert txt_names(stack, alias_id) == []


def test_a_pinned_hosted_zone_is_used_among_zones_of_the_same_name(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    zone = unique("pinned") + ".test"
    served = stack.create_hosted_zone(zone)  # the stack's DNS server serves the first zone of a name
    other = stack.create_hosted_zone(zone)
    domains = [f"www.{zone}", zone]
    put_item(stack, env, {"id": "ambiguous", "domains": domains})
    put_item(stack, env, {"id": "pinned", "domains": domains, "hosted_zone_id": f"/hostedzone/{served}"})

    result = invoke_with("renewal", SCHEDULED_RUN)

    outcomes = {c["id"]: c for c in result["certificates"]}
    assert "several public hosted zones are named" in outcomes["ambiguous"]["reason"]
    item = get_item(stack, env, "pinned")
    assert outcomes["pinned"]["result"] == Result.RENEWED.value, item.get("last_error")
    check_certificate(stack, item, domains)
    assert changed_zones(calls) == {served}
    assert txt_names(stack, served, other) == []


def test_a_dead_runs_values_are_swept_from_the_cname_target(stack: LocalStack, env: dict[str, str]) -> None:
    zone = unique("sweep") + ".test"
    target_zone = unique("swept") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    target_id = stack.create_hosted_zone(target_zone)
    target = f"_acme-challenge.{target_zone}"
    cname(stack, zone_id, f"_acme-challenge.{zone}", target)
    left: Any = {"Name": target, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": quote_txt("dead-run")}]}
    stack.client("route53").change_resource_record_sets(
        HostedZoneId=target_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": left}]}
    )
    journal = [{"name": f"_acme-challenge.{zone}", "value": "dead-run", "target": target}]
    put_item(stack, env, {"id": "swept", "domains": [zone], "pending_txt": journal})

    result = invoke_with("renewal", SCHEDULED_RUN)

    item = get_item(stack, env, "swept")
    assert result["renewed"] == 1, item.get("last_error")
    check_certificate(stack, item, [zone])
    assert txt_names(stack, zone_id, target_id) == []
    assert "pending_txt" not in item

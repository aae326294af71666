"""Values someone else holds on a challenge name, on the local stack: the renewal goes through, and they are left
exactly as they were. The stack's strict layer refuses, as Route53 does, what moto accepts (tests/stack/strict.py).
"""

from __future__ import annotations

from typing import Any

from acme_renewer.report.outcomes import Result
from tests.integration.conftest import Calls
from tests.integration.invariants import assert_nothing_lost
from tests.integration.test_faults_aws import run
from tests.integration.test_renewal import put_item, unique
from tests.stack import LocalStack


def txt_record_sets(stack: LocalStack, zone_id: str) -> dict[str, list[str]]:
    record_sets = stack.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {rs["Name"]: [r["Value"] for r in rs["ResourceRecords"]] for rs in record_sets if rs["Type"] == "TXT"}


def test_a_long_value_of_someone_else_on_the_challenge_name_is_kept_as_it_was(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    """Route53's "Supported DNS record types", TXT: a string is at most 255 characters, a longer text is written
    as several strings, and a change holding a longer string is refused whole
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat). Someone's
    300-character value on `_acme-challenge.<name>` used to be joined into one string when ours were added, and
    every certificate of the zone failed with the refused change."""
    zone = unique("long-txt") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    name = f"_acme-challenge.{zone}."
    theirs = '"' + "t" * 255 + '" "' + "u" * 45 + '"'  # as Route53 holds a 300-character value
    record_set: Any = {"Name": name, "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": theirs}]}
    stack.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )
    put_item(stack, env, {"id": zone, "domains": [zone, f"*.{zone}"]})
    put_item(stack, env, {"id": "www." + zone, "domains": [f"www.{zone}"]})  # same zone, same change

    outcomes = run()

    for item_id in (zone, "www." + zone):
        assert outcomes[item_id].result is Result.RENEWED, outcomes[item_id].reason
        item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [])
        assert item["status"] == "ISSUED" and stored is not None
    assert txt_record_sets(stack, zone_id) == {name: [theirs]}
    assert len(calls.route53_changes) == 2  # one publish and one removal for the zone

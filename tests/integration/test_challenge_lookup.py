"""CHALLENGE_LOOKUP=dns on the local stack: which challenge names hold nothing is asked of our DNS server (which
serves Route53's records as its name servers would, propagation delay included), and Route53 is not read for them.
The stack's environment turns the lookup on, as the template does, so every integration test renews this way."""

from __future__ import annotations

import time

import pytest

from acme_renewer.dns.lookup import NameAnswer, ask_name, build_lookup, holds_nothing
from acme_renewer.dns.propagation import Nameserver
from acme_renewer.dns.route53 import HostedZone
from acme_renewer.inventory.table import status_id
from acme_renewer.report.outcomes import Result
from bench.route53_calls import cname
from tests.integration.invariants import assert_nothing_lost, make_due
from tests.integration.test_renewal import get_item, put_item, unique
from tests.stack import LocalStack
from tests.stack.handler import invoke_with
from tests.stack.processes import free_port

# Long enough for the first run to publish while the CNAME is still PENDING, short enough to wait out.
CNAME_DELAY_SECONDS = 4.0


def txt_names(stack: LocalStack, zone_id: str) -> list[str]:
    record_sets = stack.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [rs["Name"] for rs in record_sets if rs["Type"] == "TXT"]


def past_backoff(stack: LocalStack, table: str, item_id: str) -> None:
    """Due now, its failure's backoff over."""
    make_due(stack, table, item_id)
    stack.client("dynamodb").update_item(
        TableName=table, Key={"id": {"S": status_id(item_id)}}, UpdateExpression="REMOVE next_attempt_at"
    )


def server(stack: LocalStack) -> Nameserver:
    host, port = stack.dns_address
    return Nameserver(host, host, port)


def test_the_dns_server_says_which_names_hold_nothing(stack: LocalStack) -> None:
    zone = unique("lookup") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    route53 = stack.client("route53")
    txt_name, cname_name = f"_acme-challenge.t.{zone}", f"_acme-challenge.c.{zone}"
    record_set = {"Name": txt_name, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"v"'}]}
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": record_set}]}
    )
    cname(route53, zone_id, cname_name, f"_acme-challenge.elsewhere.{zone}")
    ns = server(stack)
    assert holds_nothing(ns, f"_acme-challenge.none.{zone}", 2.0) is True  # NXDOMAIN
    assert holds_nothing(ns, zone, 2.0) is True  # the apex: NS and SOA, no TXT
    assert holds_nothing(ns, txt_name, 2.0) is False
    assert holds_nothing(ns, cname_name, 2.0) is False
    assert holds_nothing(ns, "_acme-challenge.nowhere.invalid", 2.0) is False  # REFUSED: not its zone
    assert holds_nothing(Nameserver("closed", "127.0.0.1", free_port(udp_too=True)), txt_name, 0.5) is None


def test_a_renewal_in_a_zone_of_its_own_reads_no_record_sets(stack: LocalStack, env: dict[str, str]) -> None:
    zone = unique("own") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "own", "domains": [zone, f"*.{zone}"], "acm_regions": []})
    stack.reset_aws_calls()
    result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    assert result["renewed"] == 1
    route53 = stack.aws_calls()["route53"]
    assert route53.get("ListResourceRecordSets", 0) == 0
    assert route53["ChangeResourceRecordSets"] == 2  # CREATE, then DELETE of exactly that
    assert_nothing_lost(stack, env["TABLE_NAME"], "own", [zone_id])


def test_a_cname_dns_does_not_serve_yet_fails_the_run_and_the_next_one_writes_at_its_target(
    stack: LocalStack, env: dict[str, str]
) -> None:
    """An operator delegates _acme-challenge by CNAME just before a run: Route53 holds it, its name servers do not
    serve it yet (the change PENDING). DNS says the name holds nothing, Route53 refuses a TXT beside the CNAME
    (the strict layer's rule: moto would accept it), and the certificate fails with Route53's reason, leaving no
    TXT behind. Once the CNAME is served, the next run writes at its target and issues."""
    zone = unique("moving") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    validation = unique("validation") + ".test"
    validation_id = stack.create_hosted_zone(validation)
    put_item(stack, env, {"id": "moving", "domains": [zone], "acm_regions": []})
    assert invoke_with("renewal", {"source": "schedule", "scan": "full"})["renewed"] == 1
    make_due(stack, env["TABLE_NAME"], "moving")

    stack.set_route53_delay(CNAME_DELAY_SECONDS)
    try:
        cname(stack.client("route53"), zone_id, f"_acme-challenge.{zone}", f"_acme-challenge.{validation}")
        result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    finally:
        stack.set_route53_delay(0)
    outcome = next(c for c in result["certificates"] if c["id"] == "moving")
    assert outcome["result"] == Result.FAILED.value
    assert "conflicting RRSet of type CNAME" in outcome["reason"]
    assert "conflicting RRSet of type CNAME" in get_item(stack, env, "moving")["last_error"]
    assert txt_names(stack, zone_id) == txt_names(stack, validation_id) == []

    deadline = time.monotonic() + 10 * CNAME_DELAY_SECONDS
    while holds_nothing(server(stack), f"_acme-challenge.{zone}", 2.0) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the CNAME's change is in sync and served
    past_backoff(stack, env["TABLE_NAME"], "moving")
    result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    assert next(c for c in result["certificates"] if c["id"] == "moving")["result"] == Result.RENEWED.value
    assert txt_names(stack, zone_id) == []  # the zone keeps only the CNAME
    assert_nothing_lost(stack, env["TABLE_NAME"], "moving", [validation_id])


@pytest.fixture(autouse=True)
def _no_delay_left(stack: LocalStack) -> None:
    stack.set_route53_delay(0)


def test_an_explicit_cname_is_followed_from_dns_and_a_wildcards_is_left_to_route53(stack: LocalStack) -> None:
    zone = unique("cnames") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    route53 = stack.client("route53")
    cname(route53, zone_id, f"_acme-challenge.a.{zone}", f"_acme-challenge.a.validation.{zone}")
    cname(route53, zone_id, f"*.{zone}", f"lb.{zone}")
    ns = server(stack)
    assert ask_name(ns, f"_acme-challenge.a.{zone}", 2.0) == NameAnswer(cname=f"_acme-challenge.a.validation.{zone}")
    assert ask_name(ns, f"_acme-challenge.b.{zone}", 2.0) == NameAnswer(cname=f"lb.{zone}")  # the wildcard's
    hosted = HostedZone(zone_id, zone)
    told = build_lookup([stack.dns_address], None).look(
        [(hosted, f"_acme-challenge.a.{zone}"), (hosted, f"_acme-challenge.b.{zone}")]
    )
    assert told == {(zone_id, f"_acme-challenge.a.{zone}"): NameAnswer(cname=f"_acme-challenge.a.validation.{zone}")}


def test_a_certificate_under_a_wildcard_cname_gets_its_own_txt_and_issues(
    stack: LocalStack, env: dict[str, str]
) -> None:
    """`*.<zone> CNAME lb...` answers for `_acme-challenge.www.<zone>` too. Following it would end at a name the
    function may not write (and is not where the CA looks once the name has a record of its own): the renewer
    reads Route53, which holds no record at the name, and CREATEs the TXT there, which then wins over the wildcard."""
    zone = unique("wild") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    cname(stack.client("route53"), zone_id, f"*.{zone}", f"lb.{zone}")
    put_item(stack, env, {"id": "wild", "domains": [f"www.{zone}"], "acm_regions": []})
    stack.reset_aws_calls()
    result = invoke_with("renewal", {"source": "schedule", "scan": "full"})
    assert next(c for c in result["certificates"] if c["id"] == "wild")["result"] == Result.RENEWED.value
    assert stack.aws_calls()["route53"]["ListResourceRecordSets"] >= 1  # the wildcard's CNAME sent it to Route53
    assert txt_names(stack, zone_id) == []
    assert_nothing_lost(stack, env["TABLE_NAME"], "wild", [zone_id])


def test_a_delegated_certificate_is_renewed_without_reading_record_sets(stack: LocalStack, env: dict[str, str]) -> None:
    zone = unique("delegating") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    validation = unique("validation") + ".test"
    validation_id = stack.create_hosted_zone(validation)
    cname(stack.client("route53"), zone_id, f"_acme-challenge.{zone}", f"_acme-challenge.{validation}")
    put_item(stack, env, {"id": "delegated", "domains": [zone, f"*.{zone}"], "acm_regions": []})
    stack.reset_aws_calls()
    assert invoke_with("renewal", {"source": "schedule", "scan": "full"})["renewed"] == 1
    assert stack.aws_calls()["route53"].get("ListResourceRecordSets", 0) == 0
    assert txt_names(stack, zone_id) == []
    assert_nothing_lost(stack, env["TABLE_NAME"], "delegated", [validation_id])

"""Zones in other accounts, on the local stack: moto holds the zone in a second account only, the renewer assumes
a role there (an item's zone_role_arn, or ZONE_ROLES), pebble validates through our DNS server, and the
certificate lands in the function's own account."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError
from dnslib import DNSRecord  # type: ignore[import-untyped]

from acme_renewer.dns.route53 import quote_txt
from acme_renewer.report.outcomes import Result
from tests.integration.test_challenge_delegation import SCHEDULED_RUN, cname, txt_names
from tests.integration.test_faults_aws import Fault, inject, remove
from tests.integration.test_renewal import check_certificate, get_item, put_item, unique
from tests.stack import LocalStack
from tests.stack.handler import invoke_with


def new_account() -> str:
    """A moto account of its own per test: nothing another test created is in it."""
    return str(random.randrange(10**11, 10**12))


def served_txt(stack: LocalStack, name: str) -> list[str]:
    """What pebble would see: the TXT values our DNS server answers for a name."""
    reply = DNSRecord.parse(DNSRecord.question(name, "TXT").send(*stack.dns_address, timeout=2))
    return [str(rr.rdata).strip('"') for rr in reply.rr]


def txt_in(stack: LocalStack, zone_id: str, account: str) -> list[str]:
    """TXT record names in a zone of another account."""
    record_sets = stack.client("route53", account).list_resource_record_sets(HostedZoneId=zone_id)
    return [record_set["Name"] for record_set in record_sets["ResourceRecordSets"] if record_set["Type"] == "TXT"]


def own_zone_names(stack: LocalStack) -> set[str]:
    return {zone["Name"] for zone in stack.client("route53").list_hosted_zones()["HostedZones"]}


def upsert_txt(stack: LocalStack, zone_id: str, name: str, value: str, account: str) -> dict[str, Any]:
    record_set: Any = {"Name": name, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": quote_txt(value)}]}
    change: dict[str, Any] = stack.client("route53", account).change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )
    return change


def test_the_stack_refuses_assume_role_as_aws_does_and_serves_every_accounts_zones(stack: LocalStack) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "stack-dns", external_id="right")
    zone = unique("stack") + ".test"
    zone_id = stack.create_hosted_zone(zone, account)
    sts = stack.client("sts")
    for wrong in ({"ExternalId": "wrong"}, {}):
        with pytest.raises(ClientError, match="AccessDenied"):
            sts.assume_role(RoleArn=arn, RoleSessionName="test", **wrong)
    with pytest.raises(ClientError, match="AccessDenied"):
        sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/missing", RoleSessionName="test")
    assumed = sts.assume_role(RoleArn=arn, RoleSessionName="test", ExternalId="right")["AssumedRoleUser"]
    assert assumed["Arn"] == f"arn:aws:sts::{account}:assumed-role/stack-dns/test"

    name = f"_acme-challenge.{zone}."
    assert zone + "." not in own_zone_names(stack)
    upsert_txt(stack, zone_id, name, "first", account)
    assert served_txt(stack, name) == ["first"]
    stack.set_route53_delay(30)
    try:
        change = upsert_txt(stack, zone_id, name, "second", account)
        assert change["ChangeInfo"]["Status"] == "PENDING"
        assert served_txt(stack, name) == ["first"]  # held back in that account's zone too
    finally:
        stack.set_route53_delay(0)


def test_an_items_role_validates_a_name_whose_zone_is_in_another_account(
    stack: LocalStack, env: dict[str, str]
) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "acme-dns", external_id="ext-1234")
    zone = unique("theirs") + ".test"
    zone_id = stack.create_hosted_zone(zone, account)
    domains = [zone, f"*.{zone}"]
    put_item(stack, env, {"id": "theirs", "domains": domains, "zone_role_arn": arn, "zone_external_id": "ext-1234"})

    result = invoke_with("renewal", SCHEDULED_RUN)

    item = get_item(stack, env, "theirs")
    assert result["renewed"] == 1, item.get("last_error")
    assert zone + "." not in own_zone_names(stack)  # pebble could only have seen the other account's zone
    check_certificate(stack, item, domains)  # in ACM and Secrets Manager of the function's own account
    assert stack.client("acm", account).list_certificates()["CertificateSummaryList"] == []
    assert txt_in(stack, zone_id, account) == []
    assert "pending_txt" not in item


def test_zone_roles_send_each_name_to_the_account_of_its_zone(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "zone-roles", external_id="shared-ext")
    theirs = unique("mapped") + ".test"
    theirs_id = stack.create_hosted_zone(theirs, account)
    ours = unique("ours") + ".test"
    ours_id = stack.create_hosted_zone(ours)
    # A name of our zone delegated by CNAME to a name in their zone: written there, in their account.
    cname(stack, ours_id, f"_acme-challenge.www.{ours}", f"_acme-challenge.www-ours.{theirs}")
    monkeypatch.setenv("ZONE_ROLES", json.dumps({theirs: {"role_arn": arn, "external_id": "shared-ext"}}))
    requests = {"mapped": [f"a.{theirs}", theirs], "ours": [ours, f"www.{ours}"]}
    for item_id, domains in requests.items():
        put_item(stack, env, {"id": item_id, "domains": domains})

    result = invoke_with("renewal", SCHEDULED_RUN)

    assert result["renewed"] == 2, [get_item(stack, env, i).get("last_error") for i in requests]
    for item_id, domains in requests.items():
        item = get_item(stack, env, item_id)
        check_certificate(stack, item, domains)
        assert "pending_txt" not in item
    assert txt_in(stack, theirs_id, account) == []
    assert txt_names(stack, ours_id) == []


def test_a_role_that_cannot_be_assumed_fails_only_its_certificate(stack: LocalStack, env: dict[str, str]) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "guarded", external_id="the-right-one")
    theirs = unique("denied") + ".test"
    theirs_id = stack.create_hosted_zone(theirs, account)
    ours = unique("fine") + ".test"
    ours_id = stack.create_hosted_zone(ours)
    put_item(stack, env, {"id": "denied", "domains": [theirs], "zone_role_arn": arn, "zone_external_id": "wrong"})
    put_item(stack, env, {"id": "fine", "domains": [ours]})

    result = invoke_with("renewal", SCHEDULED_RUN)

    outcomes = {c["id"]: c for c in result["certificates"]}
    fine = get_item(stack, env, "fine")
    assert outcomes["fine"]["result"] == Result.RENEWED.value, fine.get("last_error")
    check_certificate(stack, fine, [ours])
    denied = get_item(stack, env, "denied")
    assert outcomes["denied"]["result"] == Result.FAILED.value
    assert denied["status"] == "FAILED"
    assert denied["last_error"].startswith(f"could not assume role {arn}: AccessDenied: ")
    assert "not authorized to perform: sts:AssumeRole" in denied["last_error"]
    assert "pending_txt" not in denied and "pending_txt" not in fine
    assert txt_in(stack, theirs_id, account) == []
    assert txt_names(stack, ours_id) == []


def test_a_dead_runs_values_are_swept_from_the_other_account(stack: LocalStack, env: dict[str, str]) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "sweeper", external_id="sweep-ext")
    zone = unique("swept") + ".test"
    zone_id = stack.create_hosted_zone(zone, account)
    name = f"_acme-challenge.{zone}"
    upsert_txt(stack, zone_id, name, "dead-run", account)
    journal = [{"name": name, "value": "dead-run", "role_arn": arn, "external_id": "sweep-ext"}]
    item = {"id": "swept", "domains": [zone], "zone_role_arn": arn, "zone_external_id": "sweep-ext"}
    put_item(stack, env, item | {"pending_txt": journal})

    result = invoke_with("renewal", SCHEDULED_RUN)

    swept = get_item(stack, env, "swept")
    assert result["renewed"] == 1, swept.get("last_error")
    check_certificate(stack, swept, [zone])
    assert txt_in(stack, zone_id, account) == []
    assert "pending_txt" not in swept


def test_two_certificates_failing_for_different_reasons_each_get_only_their_own(
    stack: LocalStack, env: dict[str, str]
) -> None:
    """One run, three certificates: Route53 refuses the change of one zone of this account (AccessDenied, as a
    policy scoped to other zones would), the role for another account's zone cannot be assumed, and the third is
    fine. Each failed item's last_error names its own zone or role and nothing of the other's."""
    account = new_account()
    arn = stack.create_zone_role(account, "guarded-" + unique("r"), external_id="the-right-one")
    theirs = unique("denied") + ".test"
    theirs_id = stack.create_hosted_zone(theirs, account)
    refused = unique("refused") + ".test"
    refused_id = stack.create_hosted_zone(refused)
    ours = unique("fine") + ".test"
    ours_id = stack.create_hosted_zone(ours)
    put_item(stack, env, {"id": "denied", "domains": [theirs], "zone_role_arn": arn, "zone_external_id": "wrong"})
    put_item(stack, env, {"id": "refused", "domains": [refused, f"*.{refused}"]})
    put_item(stack, env, {"id": "fine", "domains": [ours]})
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/renewal/acme-renewer is not authorized to perform:"
        f" route53:ChangeResourceRecordSets on resource: arn:aws:route53:::hostedzone/{refused_id}"
    )
    body = (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>"
        "<RequestId>00000000-fault-injected</RequestId></ErrorResponse>"
    ).encode()
    fault = Fault(403, {"Content-Type": "text/xml"}, body, applies_to=lambda request: refused_id in request.url)
    inject("route53", "ChangeResourceRecordSets", fault)
    try:
        result = invoke_with("renewal", SCHEDULED_RUN)
    finally:
        remove("route53", "ChangeResourceRecordSets", fault)

    assert fault.injected == 1  # the publish of that zone's values; nothing was written there to remove
    outcomes = {c["id"]: c["result"] for c in result["certificates"]}
    assert outcomes == {"denied": "failed", "refused": "failed", "fine": "renewed"}
    fine = get_item(stack, env, "fine")
    check_certificate(stack, fine, [ours])
    denied, refused_item = get_item(stack, env, "denied"), get_item(stack, env, "refused")
    assert denied["last_error"].startswith(f"could not assume role {arn}: AccessDenied: ")
    assert refused_item["last_error"] == (
        f"Route53 refused the change in zone {refused!r}: An error occurred (AccessDenied) when calling the"
        f" ChangeResourceRecordSets operation: {message}"
    )
    for foreign in (refused, refused_id, ours):
        assert foreign not in denied["last_error"]
    for foreign in (arn, theirs, ours, "could not assume"):
        assert foreign not in refused_item["last_error"]
    for item in (denied, refused_item, fine):
        assert "pending_txt" not in item
    assert txt_in(stack, theirs_id, account) == []
    assert txt_names(stack, refused_id) == [] and txt_names(stack, ours_id) == []

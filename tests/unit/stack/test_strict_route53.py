"""The strict layer refuses, as Route53 does, a TXT value holding a character-string over 255 characters, a CREATE
of a record set that exists and a DELETE of one that is not there exactly so."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.stack.in_process import InProcessStack
from tests.stack.strict_route53 import too_long_values

NAME = "_acme-challenge.example.test."


def txt(value: str, action: str = "UPSERT") -> dict[str, Any]:
    record_set = {"Name": NAME, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": value}]}
    return {"Changes": [{"Action": action, "ResourceRecordSet": record_set}]}


def values(route53: Any, zone_id: str) -> list[str]:
    record_sets = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [r["Value"] for rs in record_sets if rs["Name"] == NAME for r in rs["ResourceRecords"]]


def test_a_txt_string_over_255_characters_fails_the_whole_change(strict_aws: InProcessStack) -> None:
    """Route53's "Supported DNS record types", TXT: each string of a TXT value is at most 255 characters, a longer
    text is split into several quoted strings, and a change with a longer string is refused with InvalidChangeBatch
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat). moto accepts it."""
    route53 = strict_aws.client("route53")
    zone_id = route53.create_hosted_zone(Name="example.test.", CallerReference="1")["HostedZone"]["Id"]
    joined = '"' + "a" * 300 + '"'
    fine = txt('"ok"')["Changes"][0]
    fine["ResourceRecordSet"]["Name"] = "ok.example.test."
    batch = {"Changes": [fine, *txt(joined)["Changes"]]}

    with pytest.raises(ClientError) as refused:
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=batch)

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidChangeBatch"
    assert "CharacterStringTooLong (Value is too long)" in error["Message"]
    assert joined in error["Message"]
    names = [rs["Name"] for rs in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]]
    assert "ok.example.test." not in names  # all or nothing, as Route53

    split = '"' + "a" * 255 + '" "' + "a" * 45 + '"'
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=txt(split))
    assert values(route53, zone_id) == [split]


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ('"' + "a" * 255 + '"', False),
        ('"' + "a" * 256 + '"', True),
        ('"' + "a" * 200 + '" "' + "b" * 200 + '"', False),
        ('"' + "a" * 254 + r'\""', False),  # an escaped quote is one character
        ('"' + "a" * 254 + r'\052\052"', True),  # so is an octal code
        ('"unterminated', False),  # another rule's business: moto's error
    ],
)
def test_each_string_is_measured_as_route53_reads_it(value: str, refused: bool) -> None:
    body = (
        '<?xml version="1.0"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        "<ChangeBatch><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>a.test.</Name><Type>TXT</Type>"
        f"<TTL>60</TTL><ResourceRecords><ResourceRecord><Value>{value}</Value></ResourceRecord></ResourceRecords>"
        "</ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
    )
    assert too_long_values(body.encode()) == ([value] if refused else [])


def zone_with_value(route53: Any, value: str = '"a"') -> str:
    zone_id: str = route53.create_hosted_zone(Name="example.test.", CallerReference="1")["HostedZone"]["Id"]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=txt(value, "CREATE"))
    return zone_id


def delete(**fields: Any) -> dict[str, Any]:
    """A DELETE of the record set `zone_with_value` wrote, with these fields changed."""
    change = txt('"a"', "DELETE")
    change["Changes"][0]["ResourceRecordSet"].update(fields)
    return change


MISMATCH = "but the values provided do not match the current values"
WHERE = f"[name='{NAME}', type='TXT']"


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (txt('"b"', "CREATE"), f"Tried to create resource record set {WHERE} but it already exists"),
        (delete(ResourceRecords=[{"Value": '"b"'}]), f"Tried to delete resource record set {WHERE} {MISMATCH}"),
        (delete(TTL=300), MISMATCH),
        (delete(Name="other.example.test."), "[name='other.example.test.', type='TXT'] but it was not found"),
    ],
)
def test_create_and_delete_are_conditional(strict_aws: InProcessStack, batch: Any, message: str) -> None:
    """ChangeResourceRecordSets: a DELETE must give "all the same values that you specified when you created it",
    CREATE makes a new record set, and the batch is all or nothing
    (https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html). moto lets a
    CREATE overwrite, and answers a stale DELETE with an InvalidInput about AliasTarget, or accepts it."""
    route53 = strict_aws.client("route53")
    zone_id = zone_with_value(route53)
    with pytest.raises(ClientError) as refused:
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=batch)
    assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"
    assert message in refused.value.response["Error"]["Message"]
    assert values(route53, zone_id) == ['"a"']


def test_a_txt_cannot_be_created_beside_a_cname(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    zone_id = route53.create_hosted_zone(Name="example.test.", CallerReference="1")["HostedZone"]["Id"]
    alias = {"Name": NAME, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "_acme-challenge.other.test"}]}
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": alias}]}
    )
    with pytest.raises(ClientError, match="conflicting RRSet of type CNAME"):
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=txt('"b"', "CREATE"))


def test_a_delete_and_a_create_in_one_batch_replace_a_record_set(strict_aws: InProcessStack) -> None:
    route53 = strict_aws.client("route53")
    zone_id = zone_with_value(route53)
    replace = {"Changes": [txt('"a"', "DELETE")["Changes"][0], txt('"b"', "CREATE")["Changes"][0]]}
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=replace)
    assert values(route53, zone_id) == ['"b"']
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=txt('"b"', "DELETE"))
    assert values(route53, zone_id) == []

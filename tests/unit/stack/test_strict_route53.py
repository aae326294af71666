"""The strict layer refuses, as Route53 does, a TXT value holding a character-string over 255 characters."""

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

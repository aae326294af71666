"""Route53 propagation emulation: change ids, PENDING until the delay has passed, and the records served meanwhile.

A fake clock drives time; request and response bodies are the ones botocore writes and reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from tests.stack.aws_calls import service_model
from tests.stack.route53_emulation import (
    Change,
    Propagation,
    RecordKey,
    RecordSet,
    change_info_xml,
    parse_change_batch,
    record_key,
)

ZONE = "Z1"
OTHER_ZONE = "Z2"
DELAY = 5.0
SUBMITTED = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def propagation(clock: FakeClock) -> Propagation:
    return Propagation(DELAY, clock=clock, wall_clock=lambda: SUBMITTED)


def txt(name: str, *values: str) -> dict[str, Any]:
    return {"Name": name, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": f'"{v}"'} for v in values]}


def key(name: str, rtype: str = "TXT") -> RecordKey:
    return (name, rtype, None)


def values(record_sets: list[RecordSet], name: str) -> list[str]:
    return [rr["Value"] for rs in record_sets if rs["Name"] == name for rr in rs["ResourceRecords"]]


SOA = {"Name": "example.test.", "Type": "SOA", "TTL": 900, "ResourceRecords": [{"Value": "ns. host. 1 2 3 4 5"}]}
CHALLENGE = "_acme-challenge.example.test."


def test_each_change_gets_its_own_route53_shaped_id(propagation: Propagation) -> None:
    ids = {propagation.submit(ZONE, {key(CHALLENGE): []}).id for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("/change/C") and len(i) == len("/change/C2682N5HXP0BZ4") for i in ids)


def test_a_change_is_pending_until_the_delay_has_passed_then_in_sync(
    propagation: Propagation, clock: FakeClock
) -> None:
    change = propagation.submit(ZONE, {key(CHALLENGE): []})
    assert propagation.status(change) == "PENDING"
    clock.advance(DELAY - 0.001)
    assert propagation.status(change) == "PENDING"
    clock.advance(0.001)
    assert propagation.status(change) == "INSYNC"


def test_changes_are_found_by_id_with_or_without_prefix(propagation: Propagation) -> None:
    change = propagation.submit(ZONE, {key(CHALLENGE): []}, comment="renewal")
    assert propagation.change(change.id) == change
    assert propagation.change(change.id.removeprefix("/change/")) == change
    assert propagation.change("/change/C2682N5HXP0BZ4") is None  # moto's fixed id is not ours to answer


def test_a_new_name_is_not_served_until_in_sync(propagation: Propagation, clock: FakeClock) -> None:
    current = [SOA, txt(CHALLENGE, "token")]  # moto applies the change at once
    propagation.submit(ZONE, {key(CHALLENGE): []})
    assert propagation.served(ZONE, current) == [SOA]
    clock.advance(DELAY)
    assert propagation.served(ZONE, current) == current


def test_an_upsert_serves_the_old_values_until_in_sync(propagation: Propagation, clock: FakeClock) -> None:
    propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "old")]})
    current = [SOA, txt(CHALLENGE, "old", "new")]
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"old"']
    clock.advance(DELAY)
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"old"', '"new"']


def test_a_delete_leaves_the_old_record_served_until_in_sync(propagation: Propagation, clock: FakeClock) -> None:
    propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "gone")]})
    assert values(propagation.served(ZONE, [SOA]), CHALLENGE) == ['"gone"']
    clock.advance(DELAY)
    assert propagation.served(ZONE, [SOA]) == [SOA]


def test_other_names_types_and_zones_are_served_as_moto_holds_them(propagation: Propagation) -> None:
    propagation.submit(ZONE, {key(CHALLENGE): []})
    www = {"Name": CHALLENGE, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}
    current = [SOA, txt(CHALLENGE, "new"), www, txt("other.example.test.", "x")]
    assert propagation.served(ZONE, current) == [SOA, www, txt("other.example.test.", "x")]
    assert propagation.served(OTHER_ZONE, current) == current


def test_names_match_whatever_their_case_or_trailing_dot(propagation: Propagation) -> None:
    propagation.submit(ZONE, {record_key({"Name": "_ACME-Challenge.Example.TEST", "Type": "txt"}): []})
    assert propagation.served(ZONE, [SOA, txt(CHALLENGE, "new")]) == [SOA]


def test_changes_on_one_name_become_visible_one_after_the_other(propagation: Propagation, clock: FakeClock) -> None:
    propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "v0")]})
    clock.advance(1)
    propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "v1")]})
    current = [SOA, txt(CHALLENGE, "v2")]
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"v0"']
    clock.advance(DELAY - 1)  # the first change is in sync, the second is not
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"v1"']
    clock.advance(1)
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"v2"']


def test_a_change_made_with_no_delay_overtakes_pending_ones_on_its_names(propagation: Propagation) -> None:
    first = propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "v0")], key("b.example.test."): []})
    propagation.delay_seconds = 0
    second = propagation.submit(ZONE, {key(CHALLENGE): [txt(CHALLENGE, "v1")]})
    current = [SOA, txt(CHALLENGE, "v2"), txt("b.example.test.", "b")]
    assert (propagation.status(first), propagation.status(second)) == ("PENDING", "INSYNC")
    assert values(propagation.served(ZONE, current), CHALLENGE) == ['"v2"']
    assert values(propagation.served(ZONE, current), "b.example.test.") == []  # still the first change's


def test_a_new_delay_applies_to_later_changes_only(propagation: Propagation, clock: FakeClock) -> None:
    early = propagation.submit(ZONE, {key(CHALLENGE): []})
    propagation.delay_seconds = 1
    late = propagation.submit(ZONE, {key("b.example.test."): []})
    clock.advance(1)
    assert (propagation.status(early), propagation.status(late)) == ("PENDING", "INSYNC")
    assert (early.propagation_seconds, late.propagation_seconds) == (DELAY, 1)


def test_tracking_is_active_while_a_delay_is_set_or_changes_are_pending(
    propagation: Propagation, clock: FakeClock
) -> None:
    assert not Propagation(0).active
    assert propagation.active
    propagation.submit(ZONE, {key(CHALLENGE): []})
    propagation.delay_seconds = 0
    assert propagation.active  # the change made under the old delay still hides its name
    clock.advance(DELAY)
    assert not propagation.active


@pytest.mark.parametrize("seconds", [-1, math.nan])
def test_a_negative_delay_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="zero or more seconds"):
        Propagation(seconds)


def test_record_keys_decode_route53_octal_escapes() -> None:
    assert record_key({"Name": r"\052.Example.test", "Type": "txt"}) == ("*.example.test.", "TXT", None)
    assert record_key({"Name": "a.test.", "Type": "A", "SetIdentifier": "blue"}) == ("a.test.", "A", "blue")


def test_change_batch_is_read_from_the_body_botocore_sends() -> None:
    operation = route53_operation("ChangeResourceRecordSets")
    params = {
        "HostedZoneId": ZONE,
        "ChangeBatch": {
            "Comment": "renew a & b",
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": txt("_acme-challenge.Example.test", "token")},
                {
                    "Action": "DELETE",
                    "ResourceRecordSet": {
                        "Name": "www.example.test.",
                        "Type": "A",
                        "SetIdentifier": "blue",
                        "Weight": 10,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "192.0.2.1"}],
                    },
                },
            ],
        },
    }
    body = create_serializer("rest-xml").serialize_to_request(params, operation)["body"]
    batch = parse_change_batch(body)
    assert batch.keys == (key(CHALLENGE), ("www.example.test.", "A", "blue"))
    assert batch.comment == "renew a & b"


def test_a_body_that_is_not_a_change_batch_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_change_batch(b"not xml")
    with pytest.raises(ValueError, match="no Name or Type"):
        parse_change_batch(b"<ChangeBatch><Changes><Change><ResourceRecordSet/></Change></Changes></ChangeBatch>")


@pytest.mark.parametrize("response", ["ChangeResourceRecordSetsResponse", "GetChangeResponse"])
def test_change_info_reads_back_as_boto3_would(response: Any) -> None:
    change = Change("/change/CABC", ZONE, SUBMITTED, DELAY, ready_at=0.0, comment="a & <b>")
    operation = route53_operation(response.removesuffix("Response"))
    body = change_info_xml(response, change, "PENDING")
    parsed = create_parser("rest-xml").parse({"body": body, "headers": {}, "status_code": 200}, operation.output_shape)
    assert parsed["ChangeInfo"] == {
        "Id": "/change/CABC",
        "Status": "PENDING",
        "SubmittedAt": SUBMITTED,
        "Comment": "a & <b>",
    }


def route53_operation(name: str) -> Any:
    model = service_model("route53")
    assert model is not None
    return model.operation_model(name)

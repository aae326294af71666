"""The local stack with a Route53 propagation delay, and its server-side call counters.

Changes stay PENDING for DELAY seconds with ids of their own; meanwhile our DNS server, and so pebble, sees the names
they touched as they were before. Counts are read back from moto's side, whoever made the calls.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import josepy as jose
import pytest
from acme import challenges, client, crypto_util, messages
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from tests.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.literals import ChangeActionType
    from mypy_boto3_route53.type_defs import ChangeInfoTypeDef, ChangeTypeDef

DELAY = 1.5
# How long past DELAY a change may take to show INSYNC before the test gives up (a loaded machine, not a bound).
PATIENCE = 15.0


@pytest.fixture(scope="module")
def delayed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.start(tmp_path_factory.mktemp("delayed-stack"), route53_delay_seconds=DELAY) as started:
        yield started


@pytest.fixture(scope="module")
def zone_id(delayed_stack: LocalStack) -> str:
    return delayed_stack.create_hosted_zone("example.test")


def change(
    route53: Route53Client, zone_id: str, *changes: tuple[ChangeActionType, str, Sequence[str]]
) -> ChangeInfoTypeDef:
    """One ChangeResourceRecordSets of TXT record sets: (action, name, values) each."""
    batch: list[ChangeTypeDef] = [
        {
            "Action": action,
            "ResourceRecordSet": {
                "Name": name,
                "Type": "TXT",
                "TTL": 60,
                "ResourceRecords": [{"Value": f'"{value}"'} for value in values],
            },
        }
        for action, name, values in changes
    ]
    return route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": batch})["ChangeInfo"]


def wait_in_sync(route53: Route53Client, change_id: str) -> int:
    """Poll GetChange until INSYNC; returns how many GetChange calls that took."""
    deadline = time.monotonic() + DELAY + PATIENCE
    polls = 0
    while True:
        polls += 1
        if route53.get_change(Id=change_id)["ChangeInfo"]["Status"] == "INSYNC":
            return polls
        assert time.monotonic() < deadline, f"{change_id} still PENDING after {DELAY + PATIENCE} s"
        time.sleep(0.1)


def served_txt(stack: LocalStack, name: str) -> tuple[str, list[str]]:
    """RCODE and TXT values our DNS server answers, as pebble would ask it."""
    reply = DNSRecord.parse(DNSRecord.question(name, "TXT").send(*stack.dns_address, timeout=5))
    return RCODE[reply.header.rcode], sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.TXT)


def test_a_new_txt_is_pending_and_not_served_until_the_delay_has_passed(
    delayed_stack: LocalStack, zone_id: str
) -> None:
    route53 = delayed_stack.client("route53")
    name = "_acme-challenge.new.example.test."
    submitted = time.monotonic()
    info = change(route53, zone_id, ("UPSERT", name, ["token"]))

    assert info["Status"] == "PENDING"
    assert route53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "PENDING"
    assert served_txt(delayed_stack, name) == ("NXDOMAIN", [])
    # The API shows the change at once, as Route53's does; only the name servers lag behind.
    listed = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert name in [record_set["Name"] for record_set in listed]

    wait_in_sync(route53, info["Id"])
    assert time.monotonic() - submitted >= DELAY
    assert served_txt(delayed_stack, name) == ("NOERROR", ['"token"'])


def test_an_upsert_serves_the_old_values_and_a_delete_the_old_record_until_in_sync(
    delayed_stack: LocalStack, zone_id: str
) -> None:
    route53 = delayed_stack.client("route53")
    updated, deleted = "_acme-challenge.updated.example.test.", "_acme-challenge.deleted.example.test."
    first = change(route53, zone_id, ("UPSERT", updated, ["old"]), ("UPSERT", deleted, ["gone"]))
    wait_in_sync(route53, first["Id"])

    second = change(route53, zone_id, ("UPSERT", updated, ["old", "new"]), ("DELETE", deleted, ["gone"]))
    assert second["Id"] != first["Id"]
    assert served_txt(delayed_stack, updated) == ("NOERROR", ['"old"'])
    assert served_txt(delayed_stack, deleted) == ("NOERROR", ['"gone"'])

    wait_in_sync(route53, second["Id"])
    assert served_txt(delayed_stack, updated) == ("NOERROR", ['"new"', '"old"'])
    assert served_txt(delayed_stack, deleted)[0] == "NXDOMAIN"


def test_pebble_validates_only_what_is_in_sync(
    delayed_stack: LocalStack, zone_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A challenge answered while the TXT is still pending fails, as it would against Route53."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", delayed_stack.env["REQUESTS_CA_BUNDLE"])
    account_key = jose.jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    network = client.ClientNetwork(account_key, alg=jose.jwa.ES256, user_agent="propagation-test")
    acme = client.ClientV2(client.ClientV2.get_directory(delayed_stack.pebble.directory_url, network), network)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    route53 = delayed_stack.client("route53")

    def publish(domain: str) -> tuple[messages.OrderResource, messages.AuthorizationResource, Any, str]:
        key_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        order = acme.new_order(crypto_util.make_csr(key_pem, [domain]))
        (authorization,) = order.authorizations
        challenge = next(c for c in authorization.body.challenges if isinstance(c.chall, challenges.DNS01))
        validation = challenge.chall.validation(account_key)
        info = change(route53, zone_id, ("UPSERT", f"_acme-challenge.{domain}.", [validation]))
        return order, authorization, challenge, info["Id"]

    late_order, _, late_challenge, late_change = publish("late.example.test")  # propagates while `early` fails
    _, early, early_challenge, _ = publish("early.example.test")
    acme.answer_challenge(early_challenge, early_challenge.chall.response(account_key))
    deadline = time.monotonic() + PATIENCE
    while early.body.status == messages.STATUS_PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
        early, _ = acme.poll(early)
    assert early.body.status == messages.STATUS_INVALID

    wait_in_sync(route53, late_change)
    acme.answer_challenge(late_challenge, late_challenge.chall.response(account_key))
    finalized = acme.poll_and_finalize(late_order, deadline=datetime.datetime.now() + datetime.timedelta(seconds=30))
    assert finalized.fullchain_pem


def test_the_delay_can_be_changed_on_the_running_stack(delayed_stack: LocalStack, zone_id: str) -> None:
    route53 = delayed_stack.client("route53")
    assert delayed_stack.route53_delay_seconds == DELAY
    delayed_stack.set_route53_delay(0)
    try:
        assert delayed_stack.route53_delay_seconds == 0
        name = "_acme-challenge.at-once.example.test."
        assert change(route53, zone_id, ("UPSERT", name, ["now"]))["Status"] == "INSYNC"
        assert served_txt(delayed_stack, name) == ("NOERROR", ['"now"'])
    finally:
        delayed_stack.set_route53_delay(DELAY)
    assert change(route53, zone_id, ("UPSERT", "_acme-challenge.later.example.test.", ["x"]))["Status"] == "PENDING"
    with pytest.raises(ValueError, match="zero or more seconds"):
        delayed_stack.set_route53_delay(-1)


def test_route53_calls_are_counted_from_every_process_and_dns_reads_are_not(
    delayed_stack: LocalStack, zone_id: str
) -> None:
    route53 = delayed_stack.client("route53")
    delayed_stack.reset_aws_calls()
    assert delayed_stack.aws_calls() == {}

    name = "_acme-challenge.counted.example.test."
    polls = wait_in_sync(route53, change(route53, zone_id, ("UPSERT", name, ["c"]))["Id"])
    route53.list_hosted_zones_by_name(DNSName="example.test")
    route53.get_hosted_zone(Id=zone_id)
    for _ in range(3):
        served_txt(delayed_stack, name)  # what Route53's name servers answer is no API call
    # Another process, as certbot runs: one ListHostedZones.
    env = {key: value for key, value in os.environ.items() if key != "AWS_PROFILE"} | delayed_stack.env
    other = "import boto3; boto3.client('route53').list_hosted_zones()"
    subprocess.run([sys.executable, "-c", other], env=env, check=True, timeout=60)

    assert delayed_stack.aws_calls() == {
        "route53": {
            "ChangeResourceRecordSets": 1,
            "GetChange": polls,
            "ListHostedZonesByName": 1,
            "GetHostedZone": 1,
            "ListHostedZones": 1,
        }
    }


def test_dynamodb_calls_and_items_read_are_counted(delayed_stack: LocalStack) -> None:
    dynamodb = delayed_stack.client("dynamodb")
    table = "counted"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}})
    delayed_stack.reset_aws_calls()

    scanned = dynamodb.scan(TableName=table)["Items"]
    queried = dynamodb.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}}
    )["Items"]
    found = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})
    missing = dynamodb.get_item(TableName=table, Key={"pk": {"S": "nope"}})
    batch = dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]}})
    updated = dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "d"}})  # returns no attributes: nothing read
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        dynamodb.get_item(TableName="no-such-table", Key={"pk": {"S": "a"}})  # refused, but a call all the same

    assert delayed_stack.aws_calls() == {
        "dynamodb": {"Scan": 1, "Query": 1, "GetItem": 3, "BatchGetItem": 1, "UpdateItem": 1, "PutItem": 1}
    }
    returned = (
        len(scanned)
        + len(queried)
        + ("Item" in found)
        + ("Item" in missing)
        + len(batch["Responses"][table])
        + ("Attributes" in updated)
    )
    assert (returned, delayed_stack.dynamodb_items_read()) == (8, 8)
    delayed_stack.reset_aws_calls()
    assert (delayed_stack.aws_calls(), delayed_stack.dynamodb_items_read()) == ({}, 0)

"""The local stack itself: the DNS server serves moto's Route53 records, pebble validates DNS-01 against it,
and the table comes from template.yaml."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import josepy as jose
import pytest
import requests
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.stack import LocalStack
from tests.stack.pebble import start_pebble
from tests.stack.table import DEFAULT_TEMPLATE, create_table, load_template, table_properties

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.literals import RRTypeType
    from mypy_boto3_route53.type_defs import ChangeInfoTypeDef, ResourceRecordSetTypeDef

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.start(tmp_path_factory.mktemp("stack")) as started:
        print(f"local stack started in {started.startup_seconds:.2f} s")
        yield started


@pytest.fixture(scope="module")
def zones(stack: LocalStack) -> dict[str, str]:
    """Zone name -> id: a parent zone, a zone nested in it, and an unrelated zone to delegate to."""
    return {name: stack.create_hosted_zone(name) for name in ("example.test", "sub.example.test", "delegated.test")}


def upsert(route53: Route53Client, zone_id: str, name: str, rtype: RRTypeType, *values: str) -> ChangeInfoTypeDef:
    record_set: ResourceRecordSetTypeDef = {
        "Name": name,
        "Type": rtype,
        "TTL": 60,
        "ResourceRecords": [{"Value": value} for value in values],
    }
    return route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )["ChangeInfo"]


def query(stack: LocalStack, name: str, rtype: str = "TXT", *, tcp: bool = False) -> dns.message.Message:
    host, port = stack.dns_address
    request = dns.message.make_query(name, rtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(request, host, port=port, timeout=5)


def txt_values(response: dns.message.Message) -> list[list[bytes]]:
    return [list(rdata.strings) for rrset in response.answer if rrset.rdtype == dns.rdatatype.TXT for rdata in rrset]


def test_txt_with_two_values_is_served(stack: LocalStack, zones: dict[str, str]) -> None:
    upsert(
        stack.client("route53"),
        zones["example.test"],
        "_acme-challenge.two.example.test.",
        "TXT",
        '"value-one"',
        '"value-two"',
    )
    for tcp in (False, True):
        response = query(stack, "_acme-challenge.two.example.test", tcp=tcp)
        assert response.rcode() == dns.rcode.NOERROR
        assert sorted(txt_values(response)) == [[b"value-one"], [b"value-two"]]


def test_change_in_moto_is_seen_at_once(stack: LocalStack, zones: dict[str, str]) -> None:
    name = "_acme-challenge.changing.example.test."
    upsert(stack.client("route53"), zones["example.test"], name, "TXT", '"before"')
    assert txt_values(query(stack, name)) == [[b"before"]]
    upsert(stack.client("route53"), zones["example.test"], name, "TXT", '"after"')
    assert txt_values(query(stack, name)) == [[b"after"]]


def test_without_a_delay_changes_are_insync_at_once(stack: LocalStack, zones: dict[str, str]) -> None:
    """The default stack keeps moto's behaviour; a propagation delay is opt-in (test_propagation_emulation.py)."""
    route53 = stack.client("route53")
    assert stack.route53_delay_seconds == 0
    info = upsert(route53, zones["example.test"], "_acme-challenge.insync.example.test.", "TXT", '"now"')
    assert info["Status"] == "INSYNC"
    assert route53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "INSYNC"


def test_nested_zone_wins_over_parent(stack: LocalStack, zones: dict[str, str]) -> None:
    route53 = stack.client("route53")
    name = "_acme-challenge.a.sub.example.test."
    upsert(route53, zones["example.test"], name, "TXT", '"parent"')
    upsert(route53, zones["sub.example.test"], name, "TXT", '"nested"')
    assert txt_values(query(stack, name)) == [[b"nested"]]


def test_cname_to_another_zone_is_followed(stack: LocalStack, zones: dict[str, str]) -> None:
    route53 = stack.client("route53")
    upsert(route53, zones["example.test"], "_acme-challenge.x.example.test.", "CNAME", "_acme-challenge.delegated.test")
    upsert(route53, zones["delegated.test"], "_acme-challenge.delegated.test.", "TXT", '"from-delegated"')
    response = query(stack, "_acme-challenge.x.example.test")
    assert [dns.rdatatype.to_text(rrset.rdtype) for rrset in response.answer] == ["CNAME", "TXT"]
    assert txt_values(response) == [[b"from-delegated"]]


def test_missing_name_is_nxdomain_with_the_zone_soa(stack: LocalStack, zones: dict[str, str]) -> None:
    response = query(stack, "_acme-challenge.nothing.example.test")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [(rrset.name.to_text(), rrset.rdtype) for rrset in response.authority] == [
        ("example.test.", dns.rdatatype.SOA)
    ]


def test_name_outside_moto_zones_is_refused(stack: LocalStack, zones: dict[str, str]) -> None:
    assert query(stack, "example.org").rcode() == dns.rcode.REFUSED


def test_pebble_directory_is_reachable_with_the_generated_ca(stack: LocalStack) -> None:
    response = requests.get(stack.env["ACME_DIRECTORY_URL"], verify=stack.env["REQUESTS_CA_BUNDLE"], timeout=5)
    assert response.status_code == 200
    assert {"newAccount", "newNonce", "newOrder"} <= response.json().keys()
    assert (
        x509.load_pem_x509_certificate(stack.pebble.roots_pem().encode())
        .subject.rfc4514_string()
        .startswith("CN=Pebble Root CA")
    )


def test_pebble_config_options_reach_pebble(stack: LocalStack, tmp_path: Path) -> None:
    """EAB and certificate validity are config options; start a second pebble with both set."""
    pebble = start_pebble(
        tmp_path,
        tls=stack.tls,
        dns_address=stack.dns_address,
        certificate_validity_seconds=3600,
        eab_keys={"kid-1": "a" * 43},
    )
    try:
        directory = requests.get(pebble.directory_url, verify=str(stack.ca_bundle), timeout=5).json()
        assert directory["meta"]["externalAccountRequired"] is True
        assert "certificate validity period of 3600 seconds" in pebble.process.log_path.read_text()
    finally:
        pebble.stop()


def test_pids_file_lists_running_processes(stack: LocalStack) -> None:
    names = [line.split()[0] for line in (stack.workdir / "pids").read_text().splitlines()]
    assert names == ["moto", "pebble"]  # the DNS server runs in moto's process


def test_table_matches_the_repo_template(stack: LocalStack) -> None:
    if not DEFAULT_TEMPLATE.exists():
        pytest.skip(f"{DEFAULT_TEMPLATE} is not written yet")
    stack.create_table()
    assert_table_matches(stack, stack.table_name, table_properties(load_template(DEFAULT_TEMPLATE)))


CLOUDFORMATION_TEMPLATE = """\
Parameters:
  Prefix: {Type: String, Default: x}
Conditions:
  HasPrefix: !Not [!Equals [!Ref Prefix, ""]]
Resources:
  CertificatesTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !If [HasPrefix, !Sub "${Prefix}-certs", !Ref AWS::NoValue]
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
        - {AttributeName: due, AttributeType: N}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      BillingMode: PAY_PER_REQUEST
      GlobalSecondaryIndexes:
        - IndexName: by-due
          KeySchema: [{AttributeName: due, KeyType: HASH}]
          Projection: {ProjectionType: ALL}
      StreamSpecification: {StreamViewType: NEW_IMAGE}
      TimeToLiveSpecification: {AttributeName: expires, Enabled: true}
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Join ["-", [!Select [0, !Split [",", "a,b"]], !GetAtt CertificatesTable.Arn]]
      Tags: [{Key: k, Value: !Base64 {"Fn::FindInMap": [M, K, V]}}]
Outputs:
  Zones: {Value: !Join [",", !GetAZs ""], Condition: HasPrefix}
  Cidrs: {Value: !Select [0, !Cidr ["10.0.0.0/16", 2, 8]]}
  Imported: {Value: !ImportValue other-stack-table}
  Both: {Value: !If [HasPrefix, !And [!Condition HasPrefix, !Or [true, false]], x]}
"""


def test_table_from_a_template_with_short_tags_and_an_index(stack: LocalStack, tmp_path: Path) -> None:
    template_path = tmp_path / "template.yaml"
    template_path.write_text(CLOUDFORMATION_TEMPLATE)
    template = load_template(template_path)
    assert template["Resources"]["Queue"]["Properties"]["QueueName"]["Fn::Join"][1][1] == {
        "Fn::GetAtt": ["CertificatesTable", "Arn"]
    }
    create_table(stack.client("dynamodb"), "from-short-tags", template_path=template_path)
    assert_table_matches(stack, "from-short-tags", table_properties(template))


def assert_table_matches(stack: LocalStack, table_name: str, properties: dict[str, Any]) -> None:
    dynamodb = stack.client("dynamodb")
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    assert table["KeySchema"] == properties["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(properties["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == properties["BillingMode"]
    if "StreamSpecification" in properties:
        assert table["StreamSpecification"] == {
            "StreamEnabled": True,
            "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
        }
    expected_indexes = {
        index["IndexName"]: index["KeySchema"] for index in properties.get("GlobalSecondaryIndexes", [])
    }
    actual_indexes = {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])}
    assert actual_indexes == expected_indexes
    if "TimeToLiveSpecification" in properties:
        ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == properties["TimeToLiveSpecification"]["AttributeName"]


def test_pebble_validates_dns01_against_our_dns_server(
    stack: LocalStack, zones: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full order for example.test: the TXT goes into moto, pebble reads it through our DNS server."""
    # As the function will run: trusting pebble's listener through REQUESTS_CA_BUNDLE from stack.env.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", stack.env["REQUESTS_CA_BUNDLE"])
    account_key = jose.jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    network = client.ClientNetwork(account_key, alg=jose.jwa.ES256, user_agent="local-stack-test")
    acme = client.ClientV2(client.ClientV2.get_directory(stack.pebble.directory_url, network), network)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))

    certificate_key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = crypto_util.make_csr(
        certificate_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        ["example.test"],
    )
    order = acme.new_order(csr_pem)
    for authorization in order.authorizations:
        challenge = next(c for c in authorization.body.challenges if isinstance(c.chall, challenges.DNS01))
        upsert(
            stack.client("route53"),
            zones["example.test"],
            "_acme-challenge.example.test.",
            "TXT",
            f'"{challenge.chall.validation(account_key)}"',
        )
        acme.answer_challenge(challenge, challenge.chall.response(account_key))

    started = time.monotonic()
    order = acme.poll_and_finalize(order, deadline=datetime.datetime.now() + datetime.timedelta(seconds=30))
    print(f"poll_and_finalize took {time.monotonic() - started:.2f} s")

    leaf = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["example.test"]
    intermediate = x509.load_pem_x509_certificate(stack.pebble.intermediates_pem().encode())
    assert leaf.issuer == intermediate.subject


def test_restart_pebble_gives_a_new_root_and_keeps_the_dns_server(stack: LocalStack) -> None:
    """Runs last in this module: later tests would see the restarted pebble (same defaults, new root)."""
    old_root, old_pid = stack.pebble.roots_pem(), stack.pebble.process.pid
    pebble = stack.restart_pebble(pebble_env={"PEBBLE_WFE_NONCEREJECT": "0"})
    assert pebble is stack.pebble
    assert pebble.roots_pem() != old_root
    assert f"pebble {pebble.process.pid}" in (stack.workdir / "pids").read_text()
    assert pebble.process.pid != old_pid
    assert f"127.0.0.1:{stack.dns_address[1]}" in pebble.process.log_path.read_text()


def test_a_conditional_write_takes_effect_for_one_writer_only(stack: LocalStack, env: dict[str, str]) -> None:
    """DynamoDB checks a write's condition and applies it as one step, so of several runs taking one lease at once
    exactly one succeeds (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html);
    moto alone lets several through. Each round, eight writers race for a lease on a new item."""
    import threading

    for round_ in range(15):
        barrier = threading.Barrier(8)
        won: list[str] = []

        def take(
            owner: str,
            key: str = f"race-{round_}#status",
            barrier: threading.Barrier = barrier,
            won: list[str] = won,
        ) -> None:
            client = stack.client("dynamodb")  # one client per thread, as runs have
            barrier.wait()
            try:
                client.update_item(
                    TableName=env["TABLE_NAME"],
                    Key={"id": {"S": key}},
                    UpdateExpression="SET lease_owner = :me",
                    ConditionExpression="attribute_not_exists(lease_owner)",
                    ExpressionAttributeValues={":me": {"S": owner}},
                )
                won.append(owner)
            except client.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=take, args=(f"run-{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(won) == 1, (round_, won)

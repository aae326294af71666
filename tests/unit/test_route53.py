"""The Route53 adapter over moto's in-memory Route53: merged values, exact cleanup, INSYNC polling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from acme_renewer.dns_challenge import TxtRecord
from acme_renewer.errors import DnsPropagationError
from acme_renewer.route53 import Route53Dns, quote_txt


@pytest.fixture
def route53(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("route53", region_name="us-east-1")


def zone(client: Any, name: str, private: bool = False) -> str:
    extra: dict[str, Any] = {}
    if private:
        extra = {"VPC": {"VPCRegion": "us-east-1", "VPCId": "vpc-1"}, "HostedZoneConfig": {"PrivateZone": True}}
    return client.create_hosted_zone(Name=name, CallerReference=name + str(private), **extra)["HostedZone"]["Id"]


def txt(client: Any, zone_id: str, name: str) -> list[str]:
    for record_set in client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if record_set["Name"] == name + "." and record_set["Type"] == "TXT":
            return [r["Value"] for r in record_set["ResourceRecords"]]
    return []


def test_apex_and_wildcard_share_one_record_set_in_the_nested_zone(route53: Any) -> None:
    parent = zone(route53, "example.test")
    child = zone(route53, "sub.example.test")
    records = [
        TxtRecord("_acme-challenge.sub.example.test", "apex"),
        TxtRecord("_acme-challenge.sub.example.test", "wild"),
    ]
    dns = Route53Dns(route53)
    dns.publish(records)
    assert txt(route53, child, "_acme-challenge.sub.example.test") == [quote_txt("apex"), quote_txt("wild")]
    assert txt(route53, parent, "_acme-challenge.sub.example.test") == []
    dns.remove(records)
    assert txt(route53, child, "_acme-challenge.sub.example.test") == []


def test_values_of_others_survive_publish_and_remove(route53: Any) -> None:
    zone_id = zone(route53, "example.test")
    name = "_acme-challenge.example.test"
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "TXT",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": quote_txt("theirs")}],
                    },
                }
            ]
        },
    )
    dns = Route53Dns(route53)
    dns.publish([TxtRecord(name, "ours")])
    assert txt(route53, zone_id, name) == [quote_txt("theirs"), quote_txt("ours")]
    dns.remove([TxtRecord(name, "ours")])
    assert txt(route53, zone_id, name) == [quote_txt("theirs")]


def test_private_zones_are_never_used(route53: Any) -> None:
    public = zone(route53, "example.test")
    zone(route53, "internal.example.test", private=True)
    assert Route53Dns(route53).zone_for("_acme-challenge.internal.example.test").id == public.rsplit("/", 1)[-1]


class PendingChanges:
    """Wraps a Route53 client so that GetChange reports PENDING a number of times first."""

    def __init__(self, client: Any, pending_polls: int) -> None:
        self._client = client
        self.pending_polls = pending_polls

    def get_change(self, Id: str) -> Any:
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return {"ChangeInfo": {"Id": Id, "Status": "PENDING"}}
        return self._client.get_change(Id=Id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_waits_for_insync_with_backoff(route53: Any) -> None:
    zone(route53, "example.test")
    sleeps: list[float] = []
    dns = Route53Dns(PendingChanges(route53, pending_polls=6), sleep=sleeps.append)  # type: ignore[arg-type]
    dns.publish([TxtRecord("_acme-challenge.example.test", "v")])
    assert sleeps == [1, 2, 4, 8, 15, 15]


def test_gives_up_when_the_change_never_syncs(route53: Any) -> None:
    zone(route53, "example.test")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    dns = Route53Dns(
        PendingChanges(route53, pending_polls=10**6),  # type: ignore[arg-type]
        timeout_seconds=60,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(DnsPropagationError, match="not INSYNC after 60 s"):
        dns.publish([TxtRecord("_acme-challenge.example.test", "v")])
    assert now[0] <= 60

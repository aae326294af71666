"""Zone selection and TXT values: the parts of DNS-01 on Route53 that peers get wrong."""

import pytest

from acme_renewer.dns.challenge import challenge_record_name, merge_values, published
from acme_renewer.dns.route53 import HostedZone, longest_matching_zone, quote_txt, unquote_txt
from acme_renewer.errors import HostedZoneNotFoundError
from acme_renewer.models import TxtRecord

ZONES = [
    HostedZone("Z1", "example.com"),
    HostedZone("Z2", "sub.example.com"),
    HostedZone("Z3", "other.org"),
]


@pytest.mark.parametrize(
    ("name", "zone_id"),
    [
        ("_acme-challenge.example.com", "Z1"),
        ("_acme-challenge.www.example.com", "Z1"),
        ("_acme-challenge.sub.example.com", "Z2"),
        ("_acme-challenge.a.b.sub.example.com", "Z2"),
        ("_acme-challenge.notsub.example.com", "Z1"),  # a suffix match must be label-wise
        ("_acme-challenge.OTHER.org.", "Z3"),
    ],
)
def test_longest_matching_zone_wins(name: str, zone_id: str) -> None:
    assert longest_matching_zone(name, ZONES).id == zone_id


def test_no_zone_is_a_clear_error() -> None:
    with pytest.raises(HostedZoneNotFoundError, match="no public Route53 hosted zone contains"):
        longest_matching_zone("_acme-challenge.example.net", ZONES)


def test_two_zones_of_one_name_are_ambiguous() -> None:
    with pytest.raises(HostedZoneNotFoundError, match="several public hosted zones"):
        longest_matching_zone("_acme-challenge.example.com", [*ZONES, HostedZone("Z9", "example.com")])


def test_wildcard_validates_at_its_base_name() -> None:
    assert (
        challenge_record_name("*.Example.com") == challenge_record_name("example.com") == "_acme-challenge.example.com"
    )


def test_apex_and_wildcard_values_are_merged_on_one_name() -> None:
    records = [
        TxtRecord("_acme-challenge.example.com", "apex"),
        TxtRecord("_acme-challenge.www.example.com", "www"),
        TxtRecord("_acme-challenge.example.com", "wildcard"),
        TxtRecord("_acme-challenge.example.com", "apex"),
    ]
    assert merge_values(records) == {
        "_acme-challenge.example.com": ("apex", "wildcard"),
        "_acme-challenge.www.example.com": ("www",),
    }


@pytest.mark.parametrize("value", ["plain", 'with "quotes"', "back\\slash"])
def test_txt_quoting_round_trips(value: str) -> None:
    assert unquote_txt(quote_txt(value)) == value


def test_long_txt_values_come_back_as_one_string() -> None:
    assert unquote_txt('"abc" "def"') == "abcdef"


class RecordingDns:
    def __init__(self, fail_publish: bool = False) -> None:
        self.fail_publish = fail_publish
        self.removed: list[list[TxtRecord]] = []

    def publish(self, records: list[TxtRecord]) -> None:
        if self.fail_publish:
            raise RuntimeError("route53 down")

    def remove(self, records: list[TxtRecord]) -> None:
        self.removed.append(records)


@pytest.mark.parametrize("fail_publish", [False, True])
def test_records_are_removed_whatever_happens(fail_publish: bool) -> None:
    dns = RecordingDns(fail_publish)
    records = [TxtRecord("_acme-challenge.example.com", "v")]
    with pytest.raises(RuntimeError), published(dns, records):
        raise RuntimeError("validation failed")
    assert dns.removed == [records]

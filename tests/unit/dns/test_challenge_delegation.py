"""Where challenge values are written: a pinned hosted zone, a challenge alias, a CNAME found in Route53."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from acme_renewer.batch import BatchIssuer
from acme_renewer.dns.challenge import challenge_record
from acme_renewer.dns.route53 import MAX_CNAME_HOPS, Route53Dns, quote_txt
from acme_renewer.errors import DnsPublishError, ItemValidationError
from acme_renewer.inventory.policy import ISSUANCE_FIELDS, REQUEST_FIELDS, fingerprint
from acme_renewer.inventory.table import state_from_item
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import IssuedCertificate, TxtRecord
from acme_renewer.settings import Settings
from tests.unit.dns.test_route53 import txt, zone
from tests.unit.fakes import FakeCa, FakeDns
from tests.unit.test_batch import Journal, jobs

SETTINGS = Settings(table_name="certificates", region="eu-west-1")


def bare(zone_id: str) -> str:
    return zone_id.rsplit("/", 1)[-1]


def cname(client: Any, zone_id: str, name: str, target: str) -> None:
    record_set = {"Name": name, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": target + "."}]}
    client.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record_set}]}
    )


# --- the item --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Z0123456789ABCDEFGHIJ", "Z0123456789ABCDEFGHIJ"),
        ("/hostedzone/Z0123456789ABCDEFGHIJ", "Z0123456789ABCDEFGHIJ"),
        ("hostedzone/z1rwwtk7y8uddq", "Z1RWWTK7Y8UDDQ"),
    ],
)
def test_a_hosted_zone_id_is_kept_bare(raw: str, expected: str) -> None:
    request = parse_item({"id": "x", "domains": ["example.com"], "hosted_zone_id": raw}, SETTINGS)
    assert request.hosted_zone_id == expected
    assert request.warnings == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hosted_zone_id": "example.com"}, "hosted_zone_id 'example.com' must be a Route53 hosted zone id"),
        ({"hosted_zone_id": "/hostedzone/"}, "must be a Route53 hosted zone id"),
        ({"hosted_zone_id": 12}, "hosted_zone_id a number (12) must be"),
        ({"challenge_alias": "_acme-challenge.validation.example.net"}, "without '_acme-challenge.'"),
        ({"challenge_alias": "*.example.net"}, "not a wildcard"),
        ({"challenge_alias": "bad..example.net"}, "challenge_alias 'bad..example.net'"),
        ({"challenge_alias": ["validation.example.net"]}, "challenge_alias must be a domain name (S)"),
    ],
)
def test_bad_delegation_fields_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item({"id": "x", "domains": ["example.com"], **fields}, SETTINGS)
    assert message in str(raised.value)


def test_a_challenge_alias_is_normalized() -> None:
    request = parse_item(
        {"id": "x", "domains": ["example.com"], "challenge_alias": "Validation.Example.NET."}, SETTINGS
    )
    assert request.challenge_alias == "validation.example.net"


# Digests from before either field existed (tests/unit/inventory/test_policy.py has the same items).
BARE_ITEM = {"id": "bare", "domains": ["example.org"]}


def test_items_without_the_fields_keep_their_fingerprints() -> None:
    directory = "https://acme.example/dir"
    for item in (BARE_ITEM, BARE_ITEM | {"hosted_zone_id": None, "challenge_alias": None}):
        assert fingerprint(item, REQUEST_FIELDS, directory) == "90219d55117c6928556d00b860084aa9"
        assert fingerprint(item, ISSUANCE_FIELDS, directory) == "8741a3b4f4e850ac7cf63de7efdefd7c"


def test_the_fields_are_request_fields_but_do_not_change_the_certificate() -> None:
    directory = "https://acme.example/dir"
    for extra in ({"hosted_zone_id": "Z1"}, {"challenge_alias": "validation.example.net"}):
        assert fingerprint(BARE_ITEM | extra, REQUEST_FIELDS, directory) != fingerprint(
            BARE_ITEM, REQUEST_FIELDS, directory
        )
        assert fingerprint(BARE_ITEM | extra, ISSUANCE_FIELDS, directory) == fingerprint(
            BARE_ITEM, ISSUANCE_FIELDS, directory
        )


def test_an_alias_sends_every_name_to_one_record() -> None:
    records = [challenge_record(d, d, alias="validation.example.net") for d in ("a.example.com", "*.b.example.org")]
    assert {r.name for r in records} == {"_acme-challenge.a.example.com", "_acme-challenge.b.example.org"}
    assert {r.written_at for r in records} == {"_acme-challenge.validation.example.net"}


def test_the_journal_keeps_where_values_were_written() -> None:
    state = state_from_item(
        {
            "pending_txt": [
                {"name": "_acme-challenge.a.test", "value": "v", "target": "_acme-challenge.b.test", "zone_id": "Z1"},
                {"name": "_acme-challenge.c.test", "value": "w"},
            ]
        }
    )
    assert state.pending_txt == (
        TxtRecord("_acme-challenge.a.test", "v", "_acme-challenge.b.test", "Z1"),
        TxtRecord("_acme-challenge.c.test", "w"),
    )


# --- Route53 ---------------------------------------------------------------------------------------


def test_a_pinned_zone_is_chosen_among_zones_of_the_same_name(route53: Any) -> None:
    first = zone(route53, "example.test")
    second = route53.create_hosted_zone(Name="example.test", CallerReference="second")["HostedZone"]["Id"]
    name = "_acme-challenge.www.example.test"
    dns = Route53Dns(route53)
    with pytest.raises(DnsPublishError, match="several public hosted zones"):
        dns.publish([TxtRecord(name, "v")])
    record = TxtRecord(name, "v", zone_id=bare(second))
    dns.publish(dns.resolve([record]))
    assert txt(route53, second, name) == [quote_txt("v")]
    assert txt(route53, first, name) == []
    dns.remove([record])
    assert txt(route53, second, name) == []


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("private", "is the private hosted zone 'example.test'; the CA validates over public DNS and cannot see it"),
        ("other", "which does not contain '_acme-challenge.www.example.test'; pin the zone that does"),
        ("Z0000000000000MISSING", "'Z0000000000000MISSING' is not a Route53 hosted zone of this account"),
    ],
)
def test_a_pinned_zone_that_cannot_serve_is_refused_for_that_certificate_only(
    route53: Any, pin: str, message: str
) -> None:
    zone(route53, "example.test")
    zones = {"private": bare(zone(route53, "example.test", private=True)), "other": bare(zone(route53, "other.test"))}
    fine = TxtRecord("_acme-challenge.fine.example.test", "ok")
    pinned = TxtRecord("_acme-challenge.www.example.test", "v", zone_id=zones.get(pin, pin))
    with pytest.raises(DnsPublishError) as raised:
        Route53Dns(route53).publish([fine, pinned])
    assert message in str(raised.value)
    assert raised.value.names == frozenset({"_acme-challenge.www.example.test"})
    assert txt(route53, zone_id_named(route53, "example.test"), fine.name) == [quote_txt("ok")]


def zone_id_named(client: Any, name: str) -> str:
    zones = client.list_hosted_zones_by_name(DNSName=name)["HostedZones"]
    return next(z["Id"] for z in zones if z["Name"] == name + "." and not z["Config"]["PrivateZone"])


def test_an_alias_target_goes_to_the_longest_matching_zone(route53: Any) -> None:
    parent = zone(route53, "example.net")
    child = zone(route53, "validation.example.net")
    record = challenge_record("www.example.com", "v", alias="validation.example.net")
    dns = Route53Dns(route53)
    assert dns.resolve([record]) == [record]  # an alias is not looked up again
    dns.publish([record])
    assert txt(route53, child, "_acme-challenge.validation.example.net") == [quote_txt("v")]
    assert txt(route53, parent, "_acme-challenge.validation.example.net") == []


def test_a_cname_found_in_route53_is_followed_across_zones(route53: Any) -> None:
    source = zone(route53, "example.test")
    middle = zone(route53, "hop.test")
    end = zone(route53, "validation.test")
    cname(route53, source, "_acme-challenge.www.example.test", "_acme-challenge.www.hop.test")
    cname(route53, middle, "_acme-challenge.www.hop.test", "_acme-challenge.www.validation.test")
    plain = TxtRecord("_acme-challenge.example.test", "apex")
    delegated = TxtRecord("_acme-challenge.www.example.test", "www")
    dns = Route53Dns(route53)
    resolved = dns.resolve([plain, delegated])
    assert resolved == [plain, TxtRecord(delegated.name, "www", target="_acme-challenge.www.validation.test")]
    dns.publish(resolved)
    assert txt(route53, end, "_acme-challenge.www.validation.test") == [quote_txt("www")]
    assert txt(route53, source, "_acme-challenge.example.test") == [quote_txt("apex")]
    dns.remove(resolved)
    assert txt(route53, end, "_acme-challenge.www.validation.test") == []


def test_a_cname_target_the_policy_forbids_writing_is_refused_before_route53(route53: Any) -> None:
    source = zone(route53, "example.test")
    zone(route53, "validation.test")
    cname(route53, source, "_acme-challenge.www.example.test", "www.validation.test")
    dns = Route53Dns(route53)
    resolved = dns.resolve([TxtRecord("_acme-challenge.www.example.test", "v")])
    with pytest.raises(DnsPublishError, match=r"may write only TXT records named _acme-challenge\.\*"):
        dns.publish(resolved)


def test_a_cname_chain_is_followed_only_so_far(route53: Any) -> None:
    zone_id = zone(route53, "example.test")
    names = [f"_acme-challenge.n{i}.example.test" for i in range(MAX_CNAME_HOPS + 2)]
    for here, there in itertools.pairwise(names):
        cname(route53, zone_id, here, there)
    [resolved] = Route53Dns(route53).resolve([TxtRecord(names[0], "v")])
    assert resolved.target == names[MAX_CNAME_HOPS]


def test_a_cname_outside_this_account_is_reported_at_publish(route53: Any) -> None:
    zone_id = zone(route53, "example.test")
    cname(route53, zone_id, "_acme-challenge.www.example.test", "_acme-challenge.elsewhere.invalid")
    dns = Route53Dns(route53)
    resolved = dns.resolve([TxtRecord("_acme-challenge.www.example.test", "v")])
    with pytest.raises(DnsPublishError, match=r"is a CNAME to _acme-challenge\.elsewhere\.invalid: no public Route53"):
        dns.publish(resolved)


def test_two_certificates_aliased_to_one_target_share_one_record_set(route53: Any) -> None:
    target_zone = zone(route53, "example.net")
    first = [challenge_record(d, f"one-{d}", alias="example.net") for d in ("a.test", "*.a.test")]
    second = [challenge_record("b.test", "two", alias="example.net")]
    dns = Route53Dns(route53)
    dns.publish(first + second)
    assert txt(route53, target_zone, "_acme-challenge.example.net") == [
        quote_txt("one-a.test"),
        quote_txt("one-*.a.test"),
        quote_txt("two"),
    ]
    dns.remove(first)
    assert txt(route53, target_zone, "_acme-challenge.example.net") == [quote_txt("two")]
    dns.remove(second)
    assert txt(route53, target_zone, "_acme-challenge.example.net") == []


# --- the batch -------------------------------------------------------------------------------------


def test_the_batch_journals_and_publishes_where_the_cname_points() -> None:
    dns = FakeDns()
    dns.cnames = {"_acme-challenge.a.example.com": "_acme-challenge.shared.example.net"}
    batch = jobs("a", "b")
    seen: dict[str, list[str]] = {}
    publish = dns.publish

    def publish_and_look(records: list[TxtRecord]) -> None:
        publish(records)
        seen.update({name: list(values) for name, values in dns.records.items()})

    dns.publish = publish_and_look  # type: ignore[method-assign]
    results = BatchIssuer(FakeCa(dns=dns), dns).issue(batch)
    assert all(isinstance(r, IssuedCertificate) for r in results)
    assert "_acme-challenge.shared.example.net" in seen
    assert "_acme-challenge.a.example.com" not in seen
    journal = batch[0].journal
    assert isinstance(journal, Journal)
    # apex and wildcard both validate at _acme-challenge.a.example.com, which is the CNAME
    assert {r.written_at for r in journal.written} == {"_acme-challenge.shared.example.net"}
    assert dns.records == {}

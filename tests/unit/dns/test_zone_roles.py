"""Zones in other accounts: the item's zone_role_arn, ZONE_ROLES, the journal, and the router that sends each
challenge value to the Route53 of the account holding its zone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from acme_renewer import runtime
from acme_renewer.batch import BatchIssuer, Job
from acme_renewer.dns.accounts import AccountRoutedDns
from acme_renewer.dns.route53 import Route53Dns
from acme_renewer.errors import ConfigurationError, DnsPublishError, ItemValidationError, ZoneRoleError
from acme_renewer.inventory.policy import ISSUANCE_FIELDS, REQUEST_FIELDS, fingerprint
from acme_renewer.inventory.table import CertificateTable, state_from_item
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import IssuedCertificate, TxtRecord, ZoneRole
from acme_renewer.settings import Settings, ZoneRoles
from tests.unit.fakes import FakeCa, FakeDns
from tests.unit.test_batch import Journal, request

SETTINGS = Settings(table_name="t", region="us-east-1")
ARN = "arn:aws:iam::111122223333:role/acme-dns"
OTHER_ARN = "arn:aws-cn:iam::444455556666:role/path/to/dns"
ROLE = ZoneRole(ARN, "ext-42")
OTHER = ZoneRole(OTHER_ARN)
ITEM = {"id": "x", "domains": ["example.org"]}


# --- the item ----------------------------------------------------------------------------------------------------


def test_an_item_names_a_role_and_its_external_id() -> None:
    parsed = parse_item(ITEM | {"zone_role_arn": ARN, "zone_external_id": "ext-42"}, SETTINGS)
    assert parsed.zone_role == ROLE
    assert parse_item(ITEM | {"zone_role_arn": OTHER_ARN}, SETTINGS).zone_role == OTHER
    assert parse_item(ITEM, SETTINGS).zone_role is None
    assert parse_item(ITEM | {"zone_role_arn": ARN}, SETTINGS).warnings == ()  # a known field


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"zone_role_arn": "acme-dns"}, "zone_role_arn 'acme-dns' must be the ARN of an IAM role"),
        ({"zone_role_arn": "arn:aws:iam::1111:role/x"}, "must be the ARN of an IAM role"),
        ({"zone_role_arn": "arn:aws:iam::111122223333:user/x"}, "must be the ARN of an IAM role"),
        ({"zone_role_arn": "arn:aws:iam::111122223333:role/" + "n" * 65}, "must be the ARN of an IAM role"),
        ({"zone_role_arn": 12}, "zone_role_arn a number (12) must be"),
        ({"zone_external_id": "ext-42"}, "zone_external_id is set without zone_role_arn"),
        ({"zone_role_arn": ARN, "zone_external_id": "x"}, "zone_external_id 'x' must be 2-1224"),
        ({"zone_role_arn": ARN, "zone_external_id": "has space"}, "zone_external_id 'has space' must be"),
        ({"zone_role_arn": ARN, "zone_external_id": "e" * 1225}, "must be 2-1224"),
        ({"zone_role_arn": ARN, "zone_external_id": 7}, "zone_external_id a number (7) must be"),
    ],
)
def test_a_bad_role_is_refused_with_a_reason(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ItemValidationError) as refused:
        parse_item(ITEM | extra, SETTINGS)
    assert message in str(refused.value)


def test_the_role_fields_are_request_fields_that_do_not_reissue_and_leave_old_digests_alone() -> None:
    directory = "https://acme.example/dir"
    bare = {"id": "bare", "domains": ["example.org"]}
    assert fingerprint(bare, REQUEST_FIELDS, directory) == "90219d55117c6928556d00b860084aa9"  # as before
    for extra in ({"zone_role_arn": ARN}, {"zone_role_arn": ARN, "zone_external_id": "ext-42"}):
        assert fingerprint(bare | extra, REQUEST_FIELDS, directory) != fingerprint(bare, REQUEST_FIELDS, directory)
        assert fingerprint(bare | extra, ISSUANCE_FIELDS, directory) == fingerprint(bare, ISSUANCE_FIELDS, directory)
    with_id = bare | {"zone_role_arn": ARN, "zone_external_id": "ext-42"}
    assert fingerprint(with_id, REQUEST_FIELDS, directory) != fingerprint(
        bare | {"zone_role_arn": ARN}, REQUEST_FIELDS, directory
    )


def test_the_order_writes_the_items_role_on_every_record() -> None:
    from acme_renewer.dns.challenge import challenge_record

    record = challenge_record("*.example.org", "v", alias="validation.example.net", role=ROLE)
    assert record == TxtRecord("_acme-challenge.example.org", "v", "_acme-challenge.validation.example.net", None, ROLE)


# --- ZONE_ROLES --------------------------------------------------------------------------------------------------


def test_zone_roles_pick_the_longest_key_on_label_boundaries() -> None:
    roles = ZoneRoles.parse(
        json.dumps(
            {"example.org": {"role_arn": ARN, "external_id": "ext-42"}, "Sub.Example.org.": {"role_arn": OTHER_ARN}}
        )
    )
    assert roles.role_for("_acme-challenge.example.org") == ROLE
    assert roles.role_for("_acme-challenge.www.example.org.") == ROLE
    assert roles.role_for("_acme-challenge.sub.example.org") == OTHER
    assert roles.role_for("_acme-challenge.a.sub.example.org") == OTHER
    assert roles.role_for("_acme-challenge.notexample.org") is None
    assert roles.role_for("example.com") is None
    assert ZoneRoles.parse("").role_for("example.org") is None


def test_settings_read_zone_roles_from_the_environment() -> None:
    env = {"TABLE_NAME": "t", "AWS_REGION": "us-east-1", "ZONE_ROLES": f'{{"example.org": {{"role_arn": "{ARN}"}}}}'}
    assert Settings.from_env(env).zone_roles.role_for("_acme-challenge.example.org") == ZoneRole(ARN)
    assert Settings.from_env(env | {"ZONE_ROLES": " "}).zone_roles == ZoneRoles()
    assert Settings.from_env({"TABLE_NAME": "t", "AWS_REGION": "us-east-1"}).zone_roles == ZoneRoles()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{example.org: 1}", "ZONE_ROLES must be a JSON object such as"),
        (f'[{{"role_arn": "{ARN}"}}]', "ZONE_ROLES must be a JSON object from zone name to role, got list"),
        ('{"example.org": "arn:aws:iam::111122223333:role/x"}', "ZONE_ROLES['example.org'] must be an object"),
        ('{"example.org": {"role": "x"}}', "ZONE_ROLES['example.org'] must be an object"),
        ('{"example.org": {"role_arn": "nope"}}', "ZONE_ROLES['example.org'].role_arn 'nope' must be an IAM role ARN"),
        (f'{{"example.org": {{"role_arn": "{ARN}", "external_id": "a"}}}}', "].external_id must be 2-1224"),
        (f'{{"ex ample.org": {{"role_arn": "{ARN}"}}}}', "ZONE_ROLES key 'ex ample.org' must be a hosted zone"),
        (f'{{"a.org": {{"role_arn": "{ARN}"}}, "A.org.": {{"role_arn": "{ARN}"}}}}', "names the zone 'a.org' twice"),
    ],
)
def test_bad_zone_roles_stop_the_function_with_a_reason(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({"TABLE_NAME": "t", "AWS_REGION": "us-east-1", "ZONE_ROLES": raw})
    assert message in str(refused.value)


# --- the journal -------------------------------------------------------------------------------------------------


class RecordingDynamoDb:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> None:
        self.updates.append(kwargs)


def test_the_journal_keeps_the_role_and_old_journals_still_read() -> None:
    dynamodb = RecordingDynamoDb()
    records = [TxtRecord("_acme-challenge.a.test", "v", role=ROLE), TxtRecord("_acme-challenge.b.test", "w")]
    CertificateTable(dynamodb, "t").journal_txt("a", "run", records)  # type: ignore[arg-type]
    [written] = [v for v in dynamodb.updates[0]["ExpressionAttributeValues"].values() if "L" in v]
    entries = [{key: value["S"] for key, value in entry["M"].items()} for entry in written["L"]]
    assert entries == [
        {"name": "_acme-challenge.a.test", "value": "v", "role_arn": ARN, "external_id": "ext-42"},
        {"name": "_acme-challenge.b.test", "value": "w"},
    ]
    assert state_from_item({"pending_txt": entries}).pending_txt == tuple(records)
    old = {"pending_txt": [{"name": "_acme-challenge.a.test", "value": "v", "target": "_acme-challenge.c.test"}]}
    assert state_from_item(old).pending_txt == (TxtRecord("_acme-challenge.a.test", "v", "_acme-challenge.c.test"),)


# --- the router --------------------------------------------------------------------------------------------------


class Accounts:
    """One FakeDns per account; `refuse` are roles whose AssumeRole fails."""

    def __init__(self, *refuse: ZoneRole) -> None:
        self.dns: dict[ZoneRole | None, FakeDns] = {}
        self.refuse = set(refuse)
        self.built: list[ZoneRole | None] = []

    def __call__(self, role: ZoneRole | None) -> FakeDns:
        self.built.append(role)
        if role in self.refuse:
            assert role is not None
            raise ZoneRoleError(f"could not assume role {role.arn}: AccessDenied: not authorized")
        return self.dns.setdefault(role, FakeDns())

    def of(self, role: ZoneRole | None) -> FakeDns:
        return self.dns.setdefault(role, FakeDns())


def test_one_account_only_is_a_plain_route53() -> None:
    accounts = Accounts()
    router = AccountRoutedDns(accounts)
    records = router.resolve([TxtRecord("_acme-challenge.a.test", "v")])
    assert records == [TxtRecord("_acme-challenge.a.test", "v")]
    router.publish(records)
    assert accounts.of(None).records == {"_acme-challenge.a.test": ["v"]}
    router.remove(records)
    assert accounts.of(None).records == {}
    assert accounts.built == [None]  # built once for the run


def test_an_items_role_looks_up_and_writes_in_its_account_only() -> None:
    accounts = Accounts()
    accounts.of(ROLE).cnames["_acme-challenge.a.test"] = "_acme-challenge.a.validation.test"
    accounts.of(None).cnames["_acme-challenge.a.test"] = "_acme-challenge.wrong.test"  # not the role's account
    router = AccountRoutedDns(accounts, ZoneRoles((("a.test", OTHER),)))  # the item wins over ZONE_ROLES
    [record] = router.resolve([TxtRecord("_acme-challenge.a.test", "v", role=ROLE)])
    assert record == TxtRecord("_acme-challenge.a.test", "v", "_acme-challenge.a.validation.test", role=ROLE)
    router.publish([record])
    assert accounts.of(ROLE).records == {"_acme-challenge.a.validation.test": ["v"]}
    assert accounts.of(None).records == {} and accounts.of(OTHER).records == {}


def test_zone_roles_follow_a_cname_into_the_account_of_its_target() -> None:
    accounts = Accounts()
    zone_roles = ZoneRoles((("validation.test", OTHER), ("a.test", ROLE)))
    accounts.of(ROLE).cnames["_acme-challenge.a.test"] = "_acme-challenge.a.validation.test"
    accounts.of(OTHER).cnames["_acme-challenge.a.validation.test"] = "_acme-challenge.end.test"
    plain = TxtRecord("_acme-challenge.b.test", "w")
    aliased = TxtRecord("_acme-challenge.c.test", "x", target="_acme-challenge.validation.test")
    router = AccountRoutedDns(accounts, zone_roles)
    resolved = router.resolve([TxtRecord("_acme-challenge.a.test", "v"), plain, aliased])
    assert resolved == [
        # a.test's zone is in ROLE's account, its CNAME target in OTHER's, whose CNAME leads to our own
        TxtRecord("_acme-challenge.a.test", "v", "_acme-challenge.end.test", role=None),
        plain,
        replace(aliased, role=OTHER),  # an alias is written in the account of its own zone
    ]


def test_a_role_that_cannot_be_assumed_fails_only_its_records() -> None:
    accounts = Accounts(ROLE)
    router = AccountRoutedDns(accounts)
    ours, theirs = TxtRecord("_acme-challenge.a.test", "v"), TxtRecord("_acme-challenge.b.test", "w", role=ROLE)
    resolved = router.resolve([ours, theirs])
    assert resolved == [ours, theirs]
    with pytest.raises(DnsPublishError) as partial:
        router.publish(resolved)
    assert str(partial.value) == f"could not assume role {ARN}: AccessDenied: not authorized"
    assert partial.value.covers(theirs) and not partial.value.covers(ours)
    assert accounts.of(None).records == {"_acme-challenge.a.test": ["v"]}
    router.remove(resolved)  # nothing of theirs was written: nothing to fail on
    assert accounts.of(None).records == {}
    assert accounts.built.count(ROLE) == 1  # STS is asked once per run


def test_a_dead_runs_values_in_an_account_out_of_reach_stay_journaled() -> None:
    router = AccountRoutedDns(Accounts(ROLE))
    with pytest.raises(DnsPublishError, match=f"could not assume role {ARN}"):
        router.remove([TxtRecord("_acme-challenge.b.test", "w", role=ROLE)])


def test_accounts_publish_together_and_partial_failures_stay_with_their_records() -> None:
    both_writing = threading.Barrier(2, timeout=5)  # broken if one account waited for the other

    class Waiting(FakeDns):
        def publish(self, records: list[TxtRecord]) -> None:
            both_writing.wait()
            super().publish(records)
            refused = [r for r in records if r.name.startswith("_acme-challenge.refused")]
            if refused:
                raise DnsPublishError("zone refused", frozenset(r.written_at for r in refused))

    accounts = Accounts()
    accounts.dns = {None: Waiting(), ROLE: Waiting()}
    router = AccountRoutedDns(accounts)
    records = [
        TxtRecord("_acme-challenge.a.test", "v"),
        TxtRecord("_acme-challenge.refused.test", "w", role=ROLE),
        TxtRecord("_acme-challenge.b.test", "x", role=ROLE),
    ]
    with pytest.raises(DnsPublishError) as partial:
        router.publish(records)
    assert str(partial.value) == f"in the account of role {ARN}: zone refused"
    assert [partial.value.covers(r) for r in records] == [False, True, False]


def test_a_batch_fails_only_the_certificates_of_an_unusable_role() -> None:
    accounts = Accounts(ROLE)
    router = AccountRoutedDns(accounts)
    ca = FakeCa(dns=accounts.of(None))
    jobs = [Job(request("ours"), Journal()), Job(replace(request("theirs"), zone_role=ROLE), Journal())]
    ours, theirs = BatchIssuer(ca, router).issue(jobs)
    assert isinstance(ours, IssuedCertificate)
    assert isinstance(theirs, DnsPublishError) and f"could not assume role {ARN}: AccessDenied" in str(theirs)
    assert accounts.of(None).records == {}
    assert all(isinstance(job.journal, Journal) and job.journal.cleared for job in jobs)


# --- the clients (runtime.py) ------------------------------------------------------------------------------------


@pytest.fixture
def aws(mocked_aws: None) -> Iterator[None]:
    """moto, with runtime's cached clients built anew on it and dropped afterwards."""
    runtime.client.cache_clear()
    yield
    runtime.client.cache_clear()


def test_a_role_client_acts_in_the_roles_account(aws: None) -> None:
    theirs = runtime.route53_dns(SETTINGS, ROLE)
    sts = runtime.client("sts", "us-east-1", ROLE)
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::111122223333:assumed-role/acme-dns/acme-renewer"
    zone = runtime.client("route53", "us-east-1", ROLE).create_hosted_zone(Name="b.test.", CallerReference="b")
    record = TxtRecord("_acme-challenge.b.test", "w", role=ROLE)
    theirs.publish([record])
    assert theirs.txt_values(theirs.zone_of(record), record.name) == ["w"]
    assert zone["HostedZone"]["Name"] == "b.test."
    own = boto3.client("route53", region_name="us-east-1")
    assert own.list_hosted_zones()["HostedZones"] == []  # nothing of theirs is in our account
    assert isinstance(theirs, Route53Dns)


def test_a_refused_assume_role_names_the_role(aws: None) -> None:
    with Stubber(runtime.client("sts", "us-east-1")) as sts:
        expected = {"RoleArn": ARN, "RoleSessionName": "acme-renewer", "ExternalId": "ext-42"}
        sts.add_client_error("assume_role", "AccessDenied", "User is not authorized", 403, expected_params=expected)
        with pytest.raises(ZoneRoleError) as refused:
            runtime.route53_dns(SETTINGS, ROLE)
    assert str(refused.value) == f"could not assume role {ARN}: AccessDenied: User is not authorized"


def test_the_own_accounts_adapter_uses_the_one_cached_client(aws: None) -> None:
    # Other code (the CLI, the integration tests' hooks) reaches the same client as runtime.client("route53", ...).
    assert runtime.route53_dns(SETTINGS)._client is runtime.client("route53", "us-east-1")
    assert runtime.route53_dns(SETTINGS, ROLE)._client is not runtime.client("route53", "us-east-1")


class ZoneRefusingDns(FakeDns):
    """The function's own Route53 as Route53Dns fails: a zone in `refused` refuses its whole change (one reason for
    all of its records), and a name under `orphan.test` has no zone (a reason per record); the rest goes out."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__()
        self.refused = refused

    def publish(self, records: list[TxtRecord]) -> None:
        failures: list[tuple[list[TxtRecord], str]] = []
        by_zone: dict[str, list[TxtRecord]] = {}
        for record in records:
            zone = ".".join(record.written_at.split(".")[-2:])
            if zone == "orphan.test":
                failures.append(([record], f"no public Route53 hosted zone contains {record.written_at!r}"))
            else:
                by_zone.setdefault(zone, []).append(record)
        for zone, group in by_zone.items():
            if zone in self.refused:
                failures.append((group, f"Route53 refused the change in zone {zone!r}: {self.refused[zone]}"))
            else:
                super().publish(group)
        if failures:
            raise DnsPublishError.of(failures)


def test_each_failed_certificate_of_a_batch_gets_only_its_own_names_and_reasons() -> None:
    """A zone refused, a role that cannot be assumed and a missing zone in one batch: every certificate's error
    names its own zone, role or names, and nothing of the others'."""
    accounts = Accounts(ROLE)
    accounts.dns[None] = ZoneRefusingDns({"refused.test": "AccessDenied: not authorized on that zone"})
    ca = FakeCa(dns=accounts.of(None))
    jobs = [
        Job(request("api", "api.refused.test", "*.api.refused.test"), Journal()),
        Job(request("www", "www.refused.test"), Journal()),  # the same refused zone: the same reason
        Job(replace(request("theirs", "theirs.test"), zone_role=ROLE), Journal()),
        Job(request("orphan", "a.orphan.test", "b.orphan.test", "fine.test"), Journal()),
        Job(request("fine", "ok.test"), Journal()),
    ]
    api, www, theirs, orphan, fine = BatchIssuer(ca, AccountRoutedDns(accounts)).issue(jobs)

    assert isinstance(fine, IssuedCertificate)
    zone_refused = "Route53 refused the change in zone 'refused.test': AccessDenied: not authorized on that zone"
    assert isinstance(api, DnsPublishError) and str(api) == zone_refused
    assert api.names == {"_acme-challenge.api.refused.test"}
    assert isinstance(www, DnsPublishError) and str(www) == zone_refused
    assert www.names == {"_acme-challenge.www.refused.test"}
    assert isinstance(theirs, DnsPublishError)
    assert str(theirs) == f"could not assume role {ARN}: AccessDenied: not authorized"
    assert theirs.names == {"_acme-challenge.theirs.test"}
    assert isinstance(orphan, DnsPublishError)
    assert str(orphan) == (
        "no public Route53 hosted zone contains '_acme-challenge.a.orphan.test'; "
        "no public Route53 hosted zone contains '_acme-challenge.b.orphan.test'"
    )
    assert orphan.names == {"_acme-challenge.a.orphan.test", "_acme-challenge.b.orphan.test"}  # not fine.test
    for job, error in zip(jobs[:4], (api, www, theirs, orphan), strict=True):
        assert isinstance(error, DnsPublishError)
        others = [other for other in jobs if other is not job]
        assert not any(name in str(error) for other in others for name in other.request.domains), str(error)
    assert accounts.of(None).records == {}
    assert all(isinstance(job.journal, Journal) and job.journal.cleared for job in jobs)


def test_the_part_of_a_publish_error_about_some_records() -> None:
    a, b, c = (TxtRecord(f"_acme-challenge.{n}.test", n) for n in "abc")
    error = DnsPublishError.of([([a, b], "zone test refused"), ([c], "no zone for c")])
    assert str(error) == "zone test refused; no zone for c"
    mine = error.about([a, TxtRecord("_acme-challenge.ok.test", "ok")])
    assert mine is not None and str(mine) == "zone test refused"
    assert mine.records == {a} and mine.names == {a.name} and mine.failures == ((frozenset({a}), "zone test refused"),)
    assert error.about([TxtRecord("_acme-challenge.ok.test", "ok")]) is None
    # An error built without groups is the same for everyone it covers.
    plain = DnsPublishError("one message", frozenset({a.name}))
    assert plain.about([a, b]) is plain and plain.about([b]) is None

"""The pipeline with a fake CA over in-memory AWS (moto's mock, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from acme_renewer.errors import CaRetryLaterError
from acme_renewer.inventory.ari import RenewalInfoError, SuggestedWindow
from acme_renewer.inventory.table import (
    CertificateTable,
    parse_time,
    status_id,
)
from acme_renewer.renewal import Renewer
from acme_renewer.report.outcomes import Result
from acme_renewer.runtime import memoize
from acme_renewer.settings import Settings
from acme_renewer.stores.acm import AcmStore
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore
from tests.stack.in_process import InProcessStack
from tests.stack.table import create_table, write_item
from tests.unit.fakes import FakeCa, FakeDns

REGION = "eu-west-1"
SETTINGS = Settings(table_name="certificates", region=REGION)


@pytest.fixture
def aws(mocked_aws: None) -> None:
    """moto with the certificates table as the template defines it."""
    create_table(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)


def table() -> CertificateTable:
    return CertificateTable(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)


DNS = FakeDns()


def renewer(
    ca: FakeCa, clock: Callable[[], datetime] | None = None, time_left: Callable[[], float] | None = None
) -> Renewer:
    DNS.dead = False  # a run "killed" by an earlier renewer is over; this one is a new process
    ca.dns = DNS
    return Renewer(
        settings=SETTINGS,
        table=table(),
        orders=ca,
        dns=DNS,
        pending=PendingOrderStore(boto3.client("secretsmanager", region_name=REGION)),
        time_left=time_left,
        secrets=SecretStore(boto3.client("secretsmanager", region_name=REGION)),
        acm=AcmStore(lambda region: boto3.client("acm", region_name=region)),
        clock=clock or (lambda: datetime.now(UTC)),
    )


def two_months_later() -> Callable[[], datetime]:
    """A clock 61 days on: a fresh 90-day certificate is then in the last third of its lifetime."""
    return lambda: datetime.now(UTC) + timedelta(days=61)


def put(item: dict[str, Any]) -> None:
    """The request as an operator puts it; renewer fields in `item` (a seeded state) replace the status item."""
    write_item(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name, item)


def get(item_id: str) -> dict[str, Any]:
    """The certificate as the renewer sees it: request and status merged."""
    item = table().get(item_id)
    assert item is not None, item_id
    return item


def test_a_new_item_is_issued_and_stored(aws: None) -> None:
    put({"id": "web", "domains": ["example.com", "*.example.com"]})
    report = renewer(FakeCa()).run()

    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    item = get("web")
    assert item["status"] == "ISSUED"
    assert "last_error" not in item
    secret = json.loads(
        boto3.client("secretsmanager", region_name=REGION).get_secret_value(
            SecretId=SETTINGS.default_secret_name("web")
        )["SecretString"]
    )
    leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
    key = serialization.load_pem_private_key(secret["private_key"].encode(), None)
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert secret["fullchain"] == secret["certificate"] + secret["chain"]
    assert item["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert set(item["acm_arns"]) == {REGION}
    assert item["secret_arn"].startswith("arn:aws:secretsmanager:")


def test_one_failure_does_not_stop_the_others(aws: None) -> None:
    put({"id": "bad-input", "domains": ["not a name"]})
    put({"id": "bad-order", "domains": ["fails.example.com"]})
    put({"id": "good", "domains": ["good.example.com"]})
    ca = FakeCa(fail_for=frozenset({"bad-order"}))
    report = renewer(ca).run()

    results = {o.id: o.result for o in report.outcomes}
    assert results == {"bad-input": Result.FAILED, "bad-order": Result.FAILED, "good": Result.RENEWED}
    assert "bad-input" not in ca.orders  # rejected before any order
    assert "'not a name'" in get("bad-input")["last_error"]
    assert "validation failed" in get("bad-order")["last_error"]
    assert get("good")["status"] == "ISSUED"
    assert report.count(Result.FAILED) == 2


def test_nothing_due_orders_nothing_and_keeps_the_item(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    renewer(ca).run()
    before = get("web")
    report = renewer(ca).run()
    assert ca.orders == ["web"]
    assert [o.result for o in report.outcomes] == [Result.NOT_DUE]
    assert get("web") == before


def test_renewal_reimports_into_the_same_arn_with_a_new_key(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    renewer(ca).run()
    first = get("web")
    renewer(ca, two_months_later()).run()
    second = get("web")
    assert second["acm_arns"] == first["acm_arns"]
    assert second["serial"] != first["serial"]
    secrets = boto3.client("secretsmanager", region_name=REGION)
    previous = json.loads(
        secrets.get_secret_value(SecretId=first["secret_arn"], VersionStage="AWSPREVIOUS")["SecretString"]
    )
    current = json.loads(secrets.get_secret_value(SecretId=first["secret_arn"])["SecretString"])
    assert previous["serial"] == first["serial"]
    assert current["serial"] == second["serial"]
    assert previous["private_key"] != current["private_key"]


def test_disabled_items_are_skipped_and_reported(aws: None) -> None:
    put({"id": "off", "domains": ["example.com"], "enabled": False})
    ca = FakeCa()
    report = renewer(ca).run()
    assert [o.result for o in report.outcomes] == [Result.DISABLED]
    assert ca.orders == []


def test_min_days_until_expiry_covers_enabled_certificates(aws: None) -> None:
    put({"id": "short", "domains": ["a.example.com"]})
    renewer(FakeCa(lifetime=timedelta(days=6))).run()
    put({"id": "long", "domains": ["b.example.com"]})
    report = renewer(FakeCa(lifetime=timedelta(days=90))).run()
    assert report.min_days_until_expiry is not None
    assert 5.9 < report.min_days_until_expiry <= 6


def test_empty_acm_regions_skips_acm(aws: None) -> None:
    put({"id": "secret-only", "domains": ["example.com"], "acm_regions": []})
    renewer(FakeCa()).run()
    assert get("secret-only")["acm_arns"] == {}
    assert boto3.client("acm", region_name=REGION).list_certificates()["CertificateSummaryList"] == []


def test_a_deleted_acm_certificate_is_imported_anew(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    renewer(ca).run()
    old_arn = get("web")["acm_arns"][REGION]
    boto3.client("acm", region_name=REGION).delete_certificate(CertificateArn=old_arn)
    renewer(ca, two_months_later()).run()
    assert get("web")["status"] == "ISSUED"
    assert get("web")["acm_arns"][REGION] != old_arn


def test_the_ca_is_opened_once_even_when_it_fails() -> None:
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        raise ConnectionError("CA unreachable")

    session = memoize(factory)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            session()
    assert calls == [1]


def test_renewed_at_is_now(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    before = datetime.now(UTC) - timedelta(seconds=1)
    renewer(FakeCa()).run()
    renewed = datetime.fromisoformat(get("web")["last_renewed_at"].replace("Z", "+00:00"))
    assert before <= renewed <= datetime.now(UTC)


# --- leases ------------------------------------------------------------------------------------------


def test_a_leased_certificate_is_left_to_its_holder(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    now = datetime.now(UTC)
    assert table().acquire_lease("web", "other-run", now, now + timedelta(minutes=20)) is not None
    ca = FakeCa()
    report = renewer(ca).run()
    assert [o.result for o in report.outcomes] == [Result.LEASED]
    assert ca.orders == []
    assert get("web")["lease_owner"] == "other-run"


def test_the_lease_of_a_crashed_run_expires(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    table().acquire_lease("web", "crashed-run", long_ago, long_ago + timedelta(minutes=20))
    report = renewer(FakeCa()).run()
    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    item = get("web")
    assert "lease_owner" not in item and "lease_until" not in item


def test_a_run_that_lost_the_race_does_not_order_again(aws: None) -> None:
    """Two overlapping runs: the second saw the item before the first renewed it."""
    put({"id": "web", "domains": ["example.com"]})
    stale_snapshot = get("web")
    first, second = FakeCa(), FakeCa()
    renewer(first).run()
    late = renewer(second)
    (outcome,) = late._process([stale_snapshot], force=False).outcomes
    assert outcome.result is Result.NOT_DUE
    assert (first.orders, second.orders) == (["web"], [])
    assert "lease_owner" not in get("web")


def raw(item_id: str) -> dict[str, Any] | None:
    found = boto3.resource("dynamodb", region_name=REGION).Table(SETTINGS.table_name).get_item(Key={"id": item_id})
    item: dict[str, Any] | None = found.get("Item")
    return item


def test_the_renewer_never_writes_a_request_item(aws: None) -> None:
    """Its state goes on the status item, so the request's stream records are all the operator's."""
    request = {"id": "web", "domains": ["example.com"], "key_type": "ec-p384"}
    put(request)
    assert [o.result for o in renewer(FakeCa()).run().outcomes] == [Result.RENEWED]
    assert raw("web") == request
    status = raw(status_id("web"))
    assert status is not None and status["status_of"] == "web" and status["status"] == "ISSUED"


def test_a_put_of_the_whole_request_keeps_what_the_renewer_knows(aws: None) -> None:
    """The README's put-item run again with one more name (or the console's edit): same ACM ARN, same secret."""
    put({"id": "web", "domains": ["example.com"]})
    renewer(FakeCa()).run()
    first = get("web")
    put({"id": "web", "domains": ["example.com", "www.example.com"]})  # the whole item, state not included
    assert get("web")["acm_arns"] == first["acm_arns"]
    assert [o.result for o in renewer(FakeCa()).run().outcomes] == [Result.RENEWED]
    second = get("web")
    assert second["issued_domains"] == ["example.com", "www.example.com"]
    assert (second["acm_arns"], second["secret_arn"]) == (first["acm_arns"], first["secret_arn"])
    assert second["serial"] != first["serial"]


def test_an_item_from_before_status_items_hands_its_state_over_when_read(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    renewer(FakeCa()).run()
    state = get("web")
    client = boto3.client("dynamodb", region_name=REGION)
    client.delete_item(TableName=SETTINGS.table_name, Key={"id": {"S": status_id("web")}})
    legacy = {**state, "written_by": "renewer"}  # one item, as versions before wrote it
    boto3.resource("dynamodb", region_name=REGION).Table(SETTINGS.table_name).put_item(Item=legacy)

    assert get("web") == state  # the merged view is the same certificate
    assert raw("web") == {"id": "web", "domains": ["example.com"]}  # the request keeps only the request
    status = raw(status_id("web"))
    assert status is not None and status["acm_arns"] == state["acm_arns"] and "written_by" not in status
    # And it renews in place.
    assert [o.result for o in renewer(FakeCa()).renew(["web"], force=True).outcomes] == [Result.RENEWED]
    assert get("web")["acm_arns"] == state["acm_arns"]


def test_the_old_image_of_an_overwritten_item_from_before_keeps_its_state(aws: None) -> None:
    """A put-item over an item of old, before any run read it: the stream's old image still has the state."""
    put({"id": "web", "domains": ["example.com"]})
    renewer(FakeCa()).run()
    state = get("web")
    client = boto3.client("dynamodb", region_name=REGION)
    client.delete_item(TableName=SETTINGS.table_name, Key={"id": {"S": status_id("web")}})
    put({"id": "web", "domains": ["example.com", "www.example.com"]})
    renewer(FakeCa()).adopt_state("web", {**state, "written_by": "renewer"})
    assert get("web")["acm_arns"] == state["acm_arns"]


def test_a_deleted_request_is_retired_by_the_full_run(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    put({"id": "kept", "domains": ["kept.example.com"]})
    renewer(FakeCa()).run()
    boto3.client("dynamodb", region_name=REGION).delete_item(TableName=SETTINGS.table_name, Key={"id": {"S": "web"}})
    report = renewer(FakeCa()).run()
    assert [o.id for o in report.outcomes] == ["kept"]
    status = raw(status_id("web"))
    assert status is not None and "retired_at" in status
    assert "schedule" not in status and "due_at" not in status  # no renewal, no expiry alarm
    assert status["acm_arns"]  # what was stored is still known
    # Added again, the certificate still far from its window: issued anew at once into the same ARNs (its secret
    # may be scheduled for deletion by then), and no longer retired.
    arns = status["acm_arns"]
    put({"id": "web", "domains": ["example.com"]})
    report = renewer(FakeCa()).run()
    assert {o.id: (o.result, o.reason) for o in report.outcomes}["web"] == (
        Result.RENEWED,
        "added again after its request was deleted",
    )
    again = raw(status_id("web"))
    assert again is not None and again["acm_arns"] == arns and "retired_at" not in again


# --- failures ----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)  # the item stores whole seconds

    def __call__(self) -> datetime:
        return self.now


def test_failures_back_off_and_success_resets_the_count(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    clock = Clock()
    failing = FakeCa(fail_for=frozenset({"web"}))

    renewer(failing, clock).run()
    item = get("web")
    assert (item["status"], item["failure_count"]) == ("FAILED", 1)
    waited = datetime.fromisoformat(item["next_attempt_at"].replace("Z", "+00:00")) - clock.now
    assert timedelta(minutes=53) < waited <= timedelta(minutes=67)

    report = renewer(failing, clock).run()  # too early: nothing is ordered
    assert [o.result for o in report.outcomes] == [Result.BACKING_OFF]
    assert failing.orders == ["web"]

    clock.now += timedelta(hours=1, minutes=7)
    renewer(failing, clock).run()
    item = get("web")
    assert item["failure_count"] == 2
    waited = datetime.fromisoformat(item["next_attempt_at"].replace("Z", "+00:00")) - clock.now
    assert timedelta(hours=1.8) < waited <= timedelta(hours=2.2)

    clock.now += timedelta(hours=3)
    renewer(FakeCa(), clock).run()
    item = get("web")
    assert (item["status"], item["failure_count"]) == ("ISSUED", 0)
    assert "next_attempt_at" not in item and "last_error" not in item


def test_the_cas_retry_after_is_honoured(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    clock = Clock()
    error = CaRetryLaterError("urn:ietf:params:acme:error:rateLimited", retry_after=6 * 3600)
    renewer(FakeCa(fail_for=frozenset({"web"}), error=error), clock).run()
    next_attempt = datetime.fromisoformat(get("web")["next_attempt_at"].replace("Z", "+00:00"))
    assert next_attempt - clock.now == timedelta(hours=6)


def test_after_too_many_failures_only_a_change_or_the_operator_retries(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    clock = Clock()
    failing = FakeCa(fail_for=frozenset({"web"}))
    for _ in range(SETTINGS.max_consecutive_failures):
        renewer(failing, clock).run()
        clock.now += timedelta(days=2)
    attempts = len(failing.orders)
    assert attempts == SETTINGS.max_consecutive_failures

    report = renewer(failing, clock).run()
    assert [o.result for o in report.outcomes] == [Result.PAUSED]
    assert len(failing.orders) == attempts

    report = renewer(FakeCa(), clock).renew(["web"], force=True)  # the operator's explicit renew
    assert [o.result for o in report.outcomes] == [Result.RENEWED]


def test_an_edited_item_is_retried_at_once(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    failing = FakeCa(fail_for=frozenset({"web"}))
    renewer(failing).run()
    put({**get("web"), "domains": ["example.com", "www.example.com"]})
    ca = FakeCa()
    report = renewer(ca).run()
    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    assert get("web")["failure_count"] == 0


def test_an_invalid_item_is_not_rewritten_every_run(aws: None) -> None:
    put({"id": "bad", "domains": ["not a name"]})
    renewer(FakeCa()).run()
    first = get("bad")
    report = renewer(FakeCa()).run()
    assert [o.result for o in report.outcomes] == [Result.BACKING_OFF]
    assert get("bad") == first


def test_renew_names_a_missing_item(aws: None) -> None:
    report = renewer(FakeCa()).renew(["ghost"])
    assert [(o.result, o.reason) for o in report.outcomes] == [(Result.FAILED, "no item with id 'ghost' in the table")]


def test_an_interrupted_renewal_gives_its_lease_back(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    with pytest.raises(KeyboardInterrupt):
        renewer(FakeCa(fail_for=frozenset({"web"}), error=KeyboardInterrupt())).run()
    assert "lease_owner" not in get("web")
    assert [o.result for o in renewer(FakeCa()).run().outcomes] == [Result.RENEWED]


def test_records_left_by_a_dead_run_are_swept_by_the_next(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    dying = FakeCa()
    dying.die_after_publish = SystemExit("Lambda timed out")  # no finally of ours runs after a kill
    with pytest.raises(SystemExit):
        renewer(dying).run()
    assert DNS.records == {"_acme-challenge.example.com": ["token-web"]}
    assert get("web")["pending_txt"] == [{"name": "_acme-challenge.example.com", "value": "token-web"}]
    # The dead run's lease runs out; the next run sweeps, then renews.
    later = Clock()
    later.now += timedelta(seconds=SETTINGS.lease_seconds + 1)
    report = renewer(FakeCa(), later).run()
    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    assert DNS.records == {}
    assert "pending_txt" not in get("web")


def test_a_live_runs_records_are_not_swept(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    dying = FakeCa()
    dying.die_after_publish = SystemExit("still running elsewhere")
    with pytest.raises(SystemExit):
        renewer(dying).run()
    # Its lease is still valid: another run leaves the records and the item alone.
    report = renewer(FakeCa()).run()
    assert [o.result for o in report.outcomes] == [Result.LEASED]
    assert DNS.records == {"_acme-challenge.example.com": ["token-web"]}


def test_no_renewal_starts_close_to_the_deadline(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    before = get("web")
    report = renewer(ca, time_left=lambda: SETTINGS.renewal_budget_seconds - 1).run()
    assert [(o.result, o.due) for o in report.outcomes] == [(Result.DEFERRED, True)]
    assert ca.orders == []
    # Nothing of the request or the state changed; the item only took its place in the due index.
    after = get("web")
    assert {k: v for k, v in after.items() if k not in ("schedule", "due_at", "written_by")} == before
    assert parse_time(after["due_at"]) <= datetime.now(UTC)
    assert [o.result for o in renewer(ca, time_left=lambda: 900).run(due_only=True).outcomes] == [Result.RENEWED]


def test_a_finalized_order_stays_pending_until_stored(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    put({"id": "web", "domains": ["example.com"]})

    def secrets_down(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Secrets Manager unavailable")

    original = SecretStore.put
    monkeypatch.setattr(SecretStore, "put", secrets_down)
    renewer(FakeCa()).run()
    item = get("web")
    assert item["status"] == "FAILED"
    assert item["pending_order"]["url"].startswith("https://ca.test/order/")
    secrets = boto3.client("secretsmanager", region_name=REGION)
    name = SETTINGS.default_secret_name("web")
    saved = json.loads(secrets.get_secret_value(SecretId=name, VersionStage="AWSPENDING")["SecretString"])
    assert saved["order_url"] == item["pending_order"]["url"]
    assert "private_key" not in json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])  # a placeholder
    monkeypatch.setattr(SecretStore, "put", original)
    put({**get("web"), "next_attempt_at": "2000-01-01T00:00:00Z"})
    renewer(FakeCa()).run()
    assert "pending_order" not in get("web")
    stages = secrets.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert not [labels for labels in stages.values() if "AWSPENDING" in labels]  # no stale pending key


class FakeRenewalInfo:
    """The CA's renewalInfo: a window per certificate id (None: no ARI), or RenewalInfoError; records each ask."""

    def __init__(self, window: SuggestedWindow | Exception | None) -> None:
        self.window = window
        self.asked: list[tuple[str, str]] = []

    def suggested_window(self, directory_url: str, cert_id: str) -> SuggestedWindow | None:
        self.asked.append((directory_url, cert_id))
        if isinstance(self.window, Exception):
            raise self.window
        return self.window


def ari_renewer(ca: FakeCa, info: FakeRenewalInfo, clock: Callable[[], datetime] | None = None) -> Renewer:
    return replace(renewer(ca, clock), renewal_info=info)


def test_a_ca_with_ari_gets_asked_and_a_revocation_renews_at_once(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa(ari=True)
    info = FakeRenewalInfo(None)
    ari_renewer(ca, info).run()
    first = get("web")
    cert_id = first["ari"]["cert_id"]
    assert info.asked == []  # nothing to ask before the certificate exists

    # The CA moves the window to the past (say the certificate is to be revoked): the next run renews.
    now = datetime.now(UTC)
    info.window = SuggestedWindow(
        now - timedelta(days=1), now - timedelta(hours=1), "https://ca.test/incident", timedelta(hours=6)
    )
    report = ari_renewer(ca, info).run()

    assert info.asked == [(SETTINGS.acme_directory_url, cert_id)]
    assert [o.result for o in report.outcomes] == [Result.RENEWED]
    assert "renew at once" in report.outcomes[0].reason and "https://ca.test/incident" in report.outcomes[0].reason
    renewed = get("web")
    assert renewed["serial"] != first["serial"]
    assert renewed["ari"]["cert_id"] != cert_id  # the new certificate's id, with no window yet
    assert set(renewed["ari"]) == {"cert_id"}
    assert ca.orders == ["web", "web"]


def test_the_window_is_stored_and_polled_again_only_after_retry_after(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa(ari=True)
    info = FakeRenewalInfo(None)
    ari_renewer(ca, info).run()
    now = datetime.now(UTC)
    info.window = SuggestedWindow(
        now + timedelta(days=20), now + timedelta(days=22), "https://ca.test/why", timedelta(hours=5)
    )

    report = ari_renewer(ca, info).run()

    assert [o.result for o in report.outcomes] == [Result.NOT_DUE]
    item = get("web")
    ari = item["ari"]
    assert ari["explanation_url"] == "https://ca.test/why"
    renew_at = parse_time(ari["renew_at"])
    assert renew_at is not None and info.window.start <= renew_at <= info.window.end
    next_check = parse_time(ari["next_check_at"])
    assert next_check is not None and timedelta(hours=4, minutes=59) < next_check - now < timedelta(hours=5, minutes=1)
    # The item comes back to the due index for the next poll, before the renewal moment.
    assert parse_time(item["due_at"]) == next_check
    assert len(info.asked) == 1

    ari_renewer(ca, info).run()  # Retry-After not passed: the CA is not asked again
    assert len(info.asked) == 1
    later = ari_renewer(ca, info, clock=lambda: next_check + timedelta(seconds=1)).run()
    assert len(info.asked) == 2 and [o.result for o in later.outcomes] == [Result.NOT_DUE]
    assert get("web")["ari"]["renew_at"] == ari["renew_at"]  # the same window keeps its moment
    inside = ari_renewer(ca, info, clock=lambda: renew_at + timedelta(seconds=1)).run()
    assert [o.result for o in inside.outcomes] == [Result.RENEWED]


def test_an_unreadable_answer_keeps_the_local_window_and_asks_again_in_an_hour(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa(ari=True)
    info = FakeRenewalInfo(RenewalInfoError("HTTP 500"))
    ari_renewer(ca, info).run()
    now = datetime.now(UTC)

    report = ari_renewer(ca, info).run()

    assert [o.result for o in report.outcomes] == [Result.NOT_DUE] and "last third" in report.outcomes[0].reason
    next_check = parse_time(get("web")["ari"]["next_check_at"])
    assert next_check is not None and timedelta(minutes=59) < next_check - now < timedelta(minutes=61)


def test_a_ca_without_ari_is_never_asked(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    info = FakeRenewalInfo(None)
    ari_renewer(FakeCa(ari=False), info).run()
    ari_renewer(FakeCa(ari=False), info).run()
    assert "ari" not in get("web") and info.asked == []


def test_the_requests_warnings_go_on_the_item_with_every_outcome_recorded(aws: None) -> None:
    typo = "unknown attribute 'key_tpye' ignored; did you mean 'key_type'?"
    put({"id": "web", "domains": ["example.com"], "key_tpye": "rsa-2048"})
    renewer(FakeCa()).run()
    issued = get("web")
    assert (issued["status"], issued["warnings"]) == ("ISSUED", [typo])

    # A failure records them as well.
    put({**issued, "domains": ["example.com", "www.example.com"]})
    renewer(FakeCa(fail_for=frozenset({"web"}))).run()
    failed = get("web")
    assert (failed["status"], failed["warnings"]) == ("FAILED", [typo])

    # Fixed (key_type spelled right, which changes the request): the next outcome removes them.
    fixed = {k: v for k, v in failed.items() if k != "key_tpye"} | {"key_type": "rsa-2048"}
    put(fixed)
    renewer(FakeCa()).run()
    renewed = get("web")
    assert renewed["status"] == "ISSUED" and "warnings" not in renewed


def test_an_invalid_item_records_its_warnings_beside_the_error(aws: None) -> None:
    put({"id": "typo", "domain": ["example.com"]})
    renewer(FakeCa()).run()
    item = get("typo")
    assert item["status"] == "FAILED" and "domains must be a non-empty list" in item["last_error"]
    assert item["warnings"] == ["unknown attribute 'domain' ignored; did you mean 'domains'?"]


def strict_renewer(stack: InProcessStack, ca: FakeCa) -> Renewer:
    """The pipeline over the local stack's AWS side in this process, whose strict layer can fail one secret."""
    ca.dns = DNS
    secrets = stack.client("secretsmanager", REGION)
    return Renewer(
        settings=SETTINGS,
        table=CertificateTable(stack.client("dynamodb", REGION), SETTINGS.table_name),
        orders=ca,
        dns=DNS,
        pending=PendingOrderStore(secrets),
        secrets=SecretStore(secrets),
        acm=AcmStore(lambda region: stack.client("acm", region)),
    )


def put_via(stack: InProcessStack, item: dict[str, Any]) -> None:
    write_item(stack.client("dynamodb", REGION), SETTINGS.table_name, item)


def get_via(stack: InProcessStack, item_id: str) -> dict[str, Any]:
    item = CertificateTable(stack.client("dynamodb", REGION), SETTINGS.table_name).get(item_id)
    assert item is not None, item_id
    return item


def test_an_unreadable_pending_order_fails_that_certificate_only(strict_aws: InProcessStack) -> None:
    """Any error reading the pending order's key (AccessDenied, KMS's DecryptionFailure) used to escape the run and
    leave every other leased certificate undone; now it is that certificate's failure, its pending order kept."""
    create_table(strict_aws.client("dynamodb", REGION), SETTINGS.table_name)
    ca = FakeCa()
    secret = SETTINGS.default_secret_name("stuck")
    # A first attempt was issued, and its secret refused: the order stays pending, its key kept as AWSPENDING.
    strict_aws.fail_secret(secret, "AccessDeniedException", "denied", ["PutSecretValue"], "AWSCURRENT")
    put_via(strict_aws, {"id": "stuck", "domains": ["stuck.example.com"]})
    assert [o.result for o in strict_renewer(strict_aws, ca).run().outcomes] == [Result.FAILED]
    strict_aws.clear_secret_faults()
    strict_aws.fail_secret(secret, "DecryptionFailure", "KMS refused the key", ["GetSecretValue"], "AWSPENDING")
    put_via(strict_aws, {**get_via(strict_aws, "stuck"), "next_attempt_at": "2000-01-01T00:00:00Z"})
    for name in ("one", "two"):
        put_via(strict_aws, {"id": name, "domains": [f"{name}.example.com"]})

    report = strict_renewer(strict_aws, ca).run()

    assert {o.id: o.result for o in report.outcomes} == {
        "stuck": Result.FAILED,
        "one": Result.RENEWED,
        "two": Result.RENEWED,
    }
    stuck = get_via(strict_aws, "stuck")
    refused = f"Secrets Manager refused reading {secret}: DecryptionFailure: KMS refused the key"
    assert stuck["last_error"] == refused
    assert "pending_order" in stuck and "lease_owner" not in stuck  # kept for the next run; the lease given back
    assert stuck["failure_count"] == 2
    assert ca.orders == ["stuck", "one", "two"]  # no second order for the pending one

    strict_aws.clear_secret_faults()
    put_via(strict_aws, {**get_via(strict_aws, "stuck"), "next_attempt_at": "2000-01-01T00:00:00Z"})
    assert [o.result for o in strict_renewer(strict_aws, ca).run().outcomes if o.id == "stuck"] == [Result.RENEWED]


def secret_versions(secrets: Any, item_id: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The AWSCURRENT document of the item's secret, and its versions' labels."""
    name = SETTINGS.default_secret_name(item_id)
    current = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    return current, secrets.describe_secret(SecretId=name)["VersionIdsToStages"]


def test_a_change_of_formats_renders_the_secret_again_without_an_order(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, `formats`: no order, no ACM import; the same certificate and key in the new formats, its PFX
    password kept by the next renewal; and back to PEM when the formats are removed."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    ca = FakeCa()
    put({"id": "web", "domains": ["example.com"]})
    renewer(ca).run()
    issued, _ = secret_versions(secrets, "web")
    imports: list[str] = []
    original_import = AcmStore.import_all

    def counted(store: AcmStore, *args: Any, **kwargs: Any) -> Any:
        imports.append("import")
        return original_import(store, *args, **kwargs)

    monkeypatch.setattr(AcmStore, "import_all", counted)

    put({**get("web"), "formats": ["pkcs12", "bundle"]})
    outcomes = renewer(ca).run().outcomes

    assert [(o.result, o.reason) for o in outcomes] == [
        (Result.RENEWED, "the secret's formats changed; rendering it again")
    ]
    assert (ca.orders, imports) == (["web"], [])
    rendered, _ = secret_versions(secrets, "web")
    assert (rendered["serial"], rendered["private_key"]) == (issued["serial"], issued["private_key"])
    assert rendered["bundle"] == issued["private_key"] + issued["fullchain"] and "pkcs12_legacy" not in rendered
    assert get("web")["secret_formats"] == ["pkcs12", "bundle"]
    assert [o.result for o in renewer(ca).run().outcomes] == [Result.NOT_DUE]  # rendered once

    renewed = renewer(ca, clock=two_months_later()).run().outcomes
    assert [o.result for o in renewed] == [Result.RENEWED] and ca.orders == ["web", "web"]
    after, _ = secret_versions(secrets, "web")
    assert after["serial"] != issued["serial"] and after["pkcs12_password"] == rendered["pkcs12_password"]

    put({**get("web"), "formats": []})
    assert [o.result for o in renewer(ca).run().outcomes] == [Result.RENEWED]
    pem, _ = secret_versions(secrets, "web")
    assert "pkcs12" not in pem and "bundle" not in pem and pem["serial"] == after["serial"]
    assert "secret_formats" not in get("web") and ca.orders == ["web", "web"]


def test_a_certificate_stored_by_a_run_that_died_before_recording_it_is_not_written_again(
    strict_aws: InProcessStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stored the certificate (with a PFX) and died before the item said so; the next one recovers the
    order's certificate from the AWSPENDING key. A PFX comes out different each time it is made, and AWS refuses a
    second body under the version's ClientRequestToken (ResourceExistsException, which the strict layer answers as
    AWS: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html), so the stored
    version is kept as it is."""
    create_table(strict_aws.client("dynamodb", REGION), SETTINGS.table_name)
    secrets = strict_aws.client("secretsmanager", REGION)
    ca = FakeCa(keeps_orders=True)
    put_via(strict_aws, {"id": "web", "domains": ["example.com"], "formats": ["pkcs12"]})

    def died(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the run died")

    original = CertificateTable.record_success
    monkeypatch.setattr(CertificateTable, "record_success", died)
    strict_renewer(strict_aws, ca).run()
    stored, stages = secret_versions(secrets, "web")
    assert sorted(map(sorted, stages.values())) == [["AWSCURRENT"], ["AWSPENDING"], ["AWSPREVIOUS"]]
    monkeypatch.setattr(CertificateTable, "record_success", original)
    put_via(strict_aws, {**get_via(strict_aws, "web"), "next_attempt_at": "2000-01-01T00:00:00Z"})

    outcomes = strict_renewer(strict_aws, ca).run().outcomes

    assert [(o.result, o.reason) for o in outcomes] == [(Result.RENEWED, "never issued")], outcomes
    assert ca.orders == ["web"]  # recovered, not ordered again
    current, stages = secret_versions(secrets, "web")
    assert current == stored
    assert get_via(strict_aws, "web")["serial"] == stored["serial"]
    assert not [labels for labels in stages.values() if "AWSPENDING" in labels]


def test_a_change_of_secret_regions_replicates_the_secret_without_an_order(aws: None) -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    name = SETTINGS.default_secret_name("web")
    ca = FakeCa()
    put({"id": "web", "domains": ["example.com"], "secret_regions": ["us-west-2"]})
    renewer(ca).run()

    def regions() -> list[str]:
        return sorted(s["Region"] for s in secrets.describe_secret(SecretId=name).get("ReplicationStatus", []))

    assert regions() == ["us-west-2"] and get("web")["secret_replicas"] == ["us-west-2"]
    put({**get("web"), "secret_regions": ["ap-south-1", "us-west-2"]})
    outcomes = renewer(ca).run().outcomes
    assert [(o.result, o.reason) for o in outcomes] == [
        (Result.RENEWED, "the secret's regions changed; replicating it again")
    ]
    assert regions() == ["ap-south-1", "us-west-2"] and ca.orders == ["web"]
    assert [o.result for o in renewer(ca).run().outcomes] == [Result.NOT_DUE]

    put({**get("web"), "secret_regions": []})
    assert [o.result for o in renewer(ca).run().outcomes] == [Result.RENEWED]
    assert regions() == [] and "secret_replicas" not in get("web") and ca.orders == ["web"]


def test_a_change_of_formats_with_no_certificate_in_the_secret_orders_anew_into_acm_too(aws: None) -> None:
    """The secret lost its certificate (written by hand, say): nothing to render from, so a new order, stored in
    the secret and imported into ACM like any other."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    ca = FakeCa()
    put({"id": "web", "domains": ["example.com"]})
    renewer(ca).run()
    first = get("web")
    secrets.put_secret_value(SecretId=SETTINGS.default_secret_name("web"), SecretString="{}")
    put({**get("web"), "formats": ["bundle"]})

    assert [o.result for o in renewer(ca).run().outcomes] == [Result.RENEWED]

    item = get("web")
    assert ca.orders == ["web", "web"] and item["serial"] != first["serial"]
    acm = boto3.client("acm", region_name=REGION).get_certificate(CertificateArn=item["acm_arns"][REGION])
    leaf = x509.load_pem_x509_certificate(acm["Certificate"].encode())
    assert format(leaf.serial_number, "x") == item["serial"]


def test_a_queued_id_whose_request_was_deleted_is_skipped_not_failed(aws: None) -> None:
    """A batch planned before its request was deleted: the worker skips the id (no RenewalFailures page); an
    operator naming an id that does not exist still gets a failure."""
    put({"id": "kept", "domains": ["kept.example.com"]})
    queued = renewer(FakeCa()).renew(["gone", "kept"], missing_ok=True)
    assert [(o.id, o.result) for o in queued.outcomes] == [("kept", Result.RENEWED)]
    named = renewer(FakeCa()).renew(["gone"], force=True)
    assert [(o.id, o.result) for o in named.outcomes] == [("gone", Result.FAILED)]

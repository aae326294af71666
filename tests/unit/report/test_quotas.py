"""Report stage, ACM quotas: what the renewer's certificates use of ACM's quotas per region, counted from the status
items (report/quotas.py), recorded at each import (`acm_imports`) and emitted as EMF with a Region dimension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics

from acme_renewer.inventory.table import CertificateTable, iso
from acme_renewer.models import SupersededArn, ZoneRole
from acme_renewer.renewal import Renewer
from acme_renewer.report.outcomes import AcmUsage, Outcome, Published, Result, RunReport
from acme_renewer.report.quotas import acm_usage
from acme_renewer.settings import Settings
from acme_renewer.stores.acm import AcmStore
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore
from tests.stack.handler import emf_documents
from tests.stack.table import create_table, write_item
from tests.unit.fakes import FakeCa, FakeDns

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
REGION, OTHER = "eu-west-1", "us-east-1"
ROLE = ZoneRole("arn:aws:iam::444455556666:role/acm")


def arn(region: str, name: str, account: str = "123456789012") -> str:
    return f"arn:aws:acm:{region}:{account}:certificate/{name}"


def idle(item_id: str) -> Outcome:
    return Outcome(item_id, Result.NOT_DUE, "fine")


def test_held_certificates_are_the_distinct_arns_of_each_region_superseded_ones_included() -> None:
    superseded = [
        {"region": REGION, "arn": arn(REGION, "old"), "replaced_at": iso(NOW)},
        # another account's counts against that account's quota, not this one's
        {"region": REGION, "arn": arn(REGION, "theirs", "444455556666"), "replaced_at": iso(NOW),
         "account": ROLE.account, "role_arn": ROLE.arn},
    ]  # fmt: skip
    items = [
        ({"id": "a", "acm_arns": {REGION: arn(REGION, "a"), OTHER: arn(OTHER, "a")}, "superseded_arns": superseded},
         idle("a")),
        ({"id": "b", "acm_arns": {REGION: arn(REGION, "b")}}, idle("b")),
        ({"id": "c", "acm_regions": []}, idle("c")),  # only a secret: no ACM quota at all
    ]  # fmt: skip
    assert acm_usage(items, NOW) == [AcmUsage(REGION, 3, 0), AcmUsage(OTHER, 1, 0)]  # sorted by region


def test_imports_in_365_days_count_every_import_and_forget_the_older_ones() -> None:
    times = [NOW - timedelta(days=400), NOW - timedelta(days=364), NOW - timedelta(days=60), NOW]
    items = [
        ({"id": "a", "acm_arns": {REGION: arn(REGION, "a")}, "acm_imports": {REGION: [iso(t) for t in times]}},
         idle("a")),
        ({"id": "b", "acm_imports": {OTHER: [iso(NOW - timedelta(days=366))], REGION: ["not a time"]}}, idle("b")),
    ]  # fmt: skip
    assert acm_usage(items, NOW) == [AcmUsage(REGION, 1, 3)]


def test_a_certificate_renewed_in_this_run_counts_as_it_is_now_not_as_it_was_read() -> None:
    """The full run's item was read before the renewal: the outcome's ARNs and imports are the current ones."""
    published = Published(
        domains=("www.example.com",),
        serial="1",
        not_after=NOW + timedelta(days=90),
        acm_arns={REGION: arn(REGION, "new")},
        secret_arn="s",
        first_issuance=False,
        superseded=(SupersededArn(REGION, arn(REGION, "old"), NOW),),
        acm_imports={REGION: (NOW - timedelta(days=60), NOW)},
    )
    renewed = Outcome("www", Result.RENEWED, "due", published.not_after, published=published)
    item = {"id": "www", "acm_arns": {REGION: arn(REGION, "old")}, "acm_imports": {REGION: [iso(NOW)]}}
    assert acm_usage([(item, renewed)], NOW) == [AcmUsage(REGION, 2, 2)]


def emitted_documents(report: RunReport, capsys: pytest.CaptureFixture[str], whole_table: bool = True) -> Any:
    metrics = Metrics(namespace="Test", service="acme-renewer")
    report.emit(metrics, whole_table=whole_table)
    metrics.flush_metrics()
    return emf_documents(capsys.readouterr().out)


def quota_figures(documents: Any) -> dict[tuple[str, str | None], float]:
    """(metric, Region or None) -> value, for the two quota metrics."""
    found = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Test"
            for metric in directive["Metrics"]:
                if metric["Name"].startswith("Acm"):
                    dimensions = [name for names in directive["Dimensions"] for name in names]
                    assert dimensions in (["service"], ["service", "Region"]) and document["service"] == "acme-renewer"
                    region = document["Region"] if "Region" in dimensions else None
                    value = document[metric["Name"]]
                    found[metric["Name"], region] = value[0] if isinstance(value, list) else value
    return found


def test_the_full_run_emits_each_region_and_the_fullest_one_for_the_alarms(capsys: pytest.CaptureFixture[str]) -> None:
    usage = [AcmUsage(OTHER, 2000, 1500), AcmUsage(REGION, 10, 4100)]
    documents = emitted_documents(RunReport(now=NOW, acm_usage=usage), capsys)
    assert quota_figures(documents) == {
        ("AcmImportedCertificates", OTHER): 2000, ("AcmImportedCertificates", REGION): 10,
        ("AcmImportsLast365Days", OTHER): 1500, ("AcmImportsLast365Days", REGION): 4100,
        ("AcmImportedCertificates", None): 2000, ("AcmImportsLast365Days", None): 4100,
    }  # fmt: skip


def test_nothing_in_acm_is_a_zero_and_a_stream_run_emits_no_quota_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert quota_figures(emitted_documents(RunReport(now=NOW, acm_usage=[]), capsys)) == {
        ("AcmImportedCertificates", None): 0, ("AcmImportsLast365Days", None): 0,
    }  # fmt: skip
    assert quota_figures(emitted_documents(RunReport(now=NOW, acm_usage=[AcmUsage(REGION, 1, 1)]), capsys, False)) == {}


def test_every_import_and_reimport_lands_on_the_status_item(mocked_aws: None) -> None:
    """Two renewals of one certificate: one ARN held, two imports recorded; a year later neither counts."""
    settings = Settings(table_name="certificates", region=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_table(dynamodb, settings.table_name)
    write_item(dynamodb, settings.table_name, {"id": "web", "domains": ["example.com"]})
    table = CertificateTable(dynamodb, settings.table_name)
    start = datetime.now(UTC)
    for days in (0, 61):
        ca, dns = FakeCa(), FakeDns()
        ca.dns = dns
        clock = lambda days=days: start + timedelta(days=days)  # noqa: E731
        Renewer(
            settings=settings,
            table=table,
            orders=ca,
            dns=dns,
            pending=PendingOrderStore(boto3.client("secretsmanager", region_name=REGION)),
            secrets=SecretStore(boto3.client("secretsmanager", region_name=REGION)),
            acm=AcmStore(lambda region: boto3.client("acm", region_name=region), clock=clock),
            clock=clock,
        ).run()
    item = table.get("web")
    assert item is not None and len(item["acm_imports"][REGION]) == 2
    assert acm_usage([(item, idle("web"))], start + timedelta(days=61)) == [AcmUsage(REGION, 1, 2)]
    assert acm_usage([(item, idle("web"))], start + timedelta(days=61 + 366)) == [AcmUsage(REGION, 1, 0)]

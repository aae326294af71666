"""Report stage: metrics, events for consumers, and the drift report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics

from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.report.drift import unmanaged_expiring
from acme_renewer.report.events import FAILED, ISSUED, RENEWED, EventPublisher, outcome_event
from acme_renewer.report.outcomes import (
    Failure,
    Outcome,
    Published,
    Result,
    RunReport,
    StaleEndpoint,
    UnmanagedCertificate,
)
from tests.stack.handler import emitted_metrics
from tests.unit.fakes import FakeCa

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def published(first: bool) -> Published:
    return Published(
        domains=("example.com", "*.example.com"),
        serial="abc",
        not_after=NOW + timedelta(days=90),
        acm_arns={"us-east-1": "arn:aws:acm:us-east-1:1:certificate/x"},
        secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:acme-renewer/certificates/web-AbCdEf",
        first_issuance=first,
    )


def renewed(first: bool = False) -> Outcome:
    return Outcome(
        "web",
        Result.RENEWED,
        "never issued",
        NOW + timedelta(days=90),
        due=True,
        duration_seconds=3.5,
        propagation_seconds=1.25,
        published=published(first),
        domains=("example.com", "*.example.com"),
    )


def emitted(report: RunReport, whole_table: bool, capsys: pytest.CaptureFixture[str]) -> dict[str, list[Any]]:
    metrics = Metrics(namespace="Test", service="acme-renewer")
    report.emit(metrics, whole_table=whole_table)
    metrics.flush_metrics()
    return emitted_metrics(capsys.readouterr().out)


def test_a_scheduled_run_emits_every_metric(capsys: pytest.CaptureFixture[str]) -> None:
    failed = Outcome("bad", Result.FAILED, "boom", NOW + timedelta(days=5), due=True)
    idle = Outcome("idle", Result.NOT_DUE, "fine", NOW + timedelta(days=50))
    report = RunReport(
        now=NOW,
        outcomes=[renewed(), failed, idle],
        unmanaged_expiring=[UnmanagedCertificate("arn", "us-east-1", "old.example.com", NOW + timedelta(days=3))],
        stale_endpoints=[],
        superseded_in_use=[],
    )
    values = emitted(report, True, capsys)
    assert values["CertificatesRenewed"] == [1]
    assert values["RenewalFailures"] == [1]
    assert values["CertificatesDue"] == [2]
    assert values["ManagedCertificates"] == [3]
    assert values["MinDaysUntilExpiry"] == [5]
    assert values["RenewalDuration"] == [3.5]
    assert values["DnsPropagationSeconds"] == [1.25]
    assert values["UnmanagedExpiringCertificates"] == [1]
    assert values["StaleEndpoints"] == [0]
    assert values["SupersededCertificatesInUse"] == [0]


def test_a_stream_run_emits_no_fleet_wide_figures(capsys: pytest.CaptureFixture[str]) -> None:
    values = emitted(RunReport(now=NOW, outcomes=[renewed()]), False, capsys)
    assert set(values) == {
        "CertificatesRenewed", "RenewalFailures", "CertificatesDue", "RenewalDuration", "DnsPropagationSeconds",
    }  # fmt: skip


def test_first_issuance_and_renewal_are_told_apart() -> None:
    assert outcome_event(renewed(first=True))[0] == ISSUED  # type: ignore[index]
    detail_type, detail = outcome_event(renewed(first=False))  # type: ignore[misc]
    assert detail_type == RENEWED
    assert detail["serial"] == "abc"
    assert detail["acm_certificate_arns"] == {"us-east-1": "arn:aws:acm:us-east-1:1:certificate/x"}
    assert detail["secret_arn"].endswith("web-AbCdEf")


def test_a_failure_event_says_when_the_next_attempt_is() -> None:
    failure = Outcome(
        "web", Result.FAILED, "DNS-01 validation failed", None, failure=Failure(2, NOW + timedelta(hours=2))
    )
    detail_type, detail = outcome_event(failure)  # type: ignore[misc]
    assert detail_type == FAILED
    assert (detail["failure_count"], detail["error"]) == (2, "DNS-01 validation failed")


def test_quiet_outcomes_publish_nothing() -> None:
    assert outcome_event(Outcome("web", Result.NOT_DUE, "fine")) is None


def test_events_reach_a_rule_on_the_bus(mocked_aws: None) -> None:
    events, sqs = boto3.client("events", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="consumer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="renewed", EventPattern=json.dumps({"source": ["acme-renewer"]}))
    events.put_targets(Rule="renewed", Targets=[{"Id": "queue", "Arn": queue_arn}])

    # More than one PutEvents batch.
    EventPublisher(events, "default").publish([outcome_event(renewed())] * 12)  # type: ignore[list-item]

    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages]
        )
    assert len(bodies) == 12
    assert {b["detail-type"] for b in bodies} == {RENEWED}
    assert "PRIVATE KEY" not in json.dumps(bodies)


def test_a_failing_bus_never_fails_the_run(mocked_aws: None) -> None:
    EventPublisher(boto3.client("events", region_name="us-east-1"), "no-such-bus").publish(
        [outcome_event(renewed())]  # type: ignore[list-item]
    )


def import_certificate(region: str, lifetime: timedelta) -> str:
    request = CertificateRequest("x", ("old.example.com",), KeyType.EC_P256, (), "s", None, True)
    certificate = FakeCa(lifetime=lifetime).sign(request)
    return boto3.client("acm", region_name=region).import_certificate(
        Certificate=certificate.certificate_pem.encode(),
        PrivateKey=certificate.private_key_pem.encode(),
        CertificateChain=certificate.chain_pem.encode(),
    )["CertificateArn"]


def test_drift_finds_imported_certificates_nobody_listed(mocked_aws: None) -> None:
    forgotten = import_certificate("eu-west-1", timedelta(days=5))
    managed = import_certificate("eu-west-1", timedelta(days=5))
    import_certificate("eu-west-1", timedelta(days=60))  # not expiring soon
    import_certificate("ap-south-1", timedelta(days=5))  # a region nobody uses

    found = unmanaged_expiring(
        lambda region: boto3.client("acm", region_name=region),
        ["eu-west-1", "us-east-1"],
        {managed},
        datetime.now(UTC),
        timedelta(days=14),
    )
    assert [(f.arn, f.region, f.domain) for f in found] == [(forgotten, "eu-west-1", "old.example.com")]


def test_stale_endpoints_make_events() -> None:
    from acme_renewer.report.events import ENDPOINT_STALE, stale_endpoint_event

    detail_type, detail = stale_endpoint_event(StaleEndpoint("web", "lb.example.com:443", "serves serial 1"))
    assert detail_type == ENDPOINT_STALE
    assert detail["endpoint"] == "lb.example.com:443"

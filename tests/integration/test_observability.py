"""Observability on the local stack: EMF metrics, events to a consumer's rule, the drift report, served
certificates, and structured logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from acme import challenges
from cryptography import x509

from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.report.events import ENDPOINT_STALE, FAILED, ISSUED, RENEWED, SOURCE
from tests.integration.invariants import make_due, wrong
from tests.integration.test_renewal import get_item, put_item, run, unique
from tests.stack import LocalStack
from tests.stack.handler import emitted_metrics
from tests.stack.tls_endpoint import TlsEndpoint
from tests.unit.fakes import FakeCa


@pytest.fixture
def consumer(stack: LocalStack, env: dict[str, str]) -> Iterator[Any]:
    """A consumer's EventBridge rule on the default bus, delivering our events into an SQS queue."""
    events, sqs = stack.client("events"), stack.client("sqs")
    name = unique("consumer")
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        bodies = []
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [json.loads(m["Body"]) for m in messages]
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    yield received
    events.remove_targets(Rule=name, Ids=["queue"])
    events.delete_rule(Name=name)


def test_consumers_hear_of_issuance_renewal_and_failure(
    stack: LocalStack, env: dict[str, str], consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = unique("events") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "web", "domains": [zone, f"*.{zone}"]})

    run()
    item = get_item(stack, env, "web")
    [issued] = consumer()
    assert issued["detail-type"] == ISSUED
    assert issued["detail"] == {
        "id": "web",
        "domains": [zone, f"*.{zone}"],
        "serial": item["serial"],
        "not_after": issued["detail"]["not_after"],
        "acm_certificate_arns": item["acm_arns"],
        "secret_arn": item["secret_arn"],
    }
    assert issued["detail"]["not_after"].startswith(item["not_after"][:19])

    make_due(stack, env["TABLE_NAME"], "web")
    run()
    [renewed] = consumer()
    assert renewed["detail-type"] == RENEWED
    assert renewed["detail"]["serial"] == get_item(stack, env, "web")["serial"] != item["serial"]

    original = challenges.DNS01.validation
    monkeypatch.setattr(challenges.DNS01, "validation", lambda self, key: wrong(original(self, key)))
    make_due(stack, env["TABLE_NAME"], "web")
    run()
    [failed] = consumer()
    assert failed["detail-type"] == FAILED
    assert failed["detail"]["failure_count"] == 1
    assert "DNS-01 validation failed" in failed["detail"]["error"]
    assert "PRIVATE KEY" not in json.dumps([issued, renewed, failed])


def test_drift_reports_an_imported_certificate_nobody_listed(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    request = CertificateRequest("x", ("forgotten.example.net",), KeyType.EC_P256, (), "s", None, True)
    certificate = FakeCa(lifetime=timedelta(days=5)).sign(request)
    arn = stack.client("acm").import_certificate(
        Certificate=certificate.certificate_pem.encode(),
        PrivateKey=certificate.private_key_pem.encode(),
        CertificateChain=certificate.chain_pem.encode(),
    )["CertificateArn"]
    try:
        capsys.readouterr()
        result = run()
        output = capsys.readouterr().out
        assert arn in [u["arn"] for u in result["unmanaged_expiring"]]
        [count] = emitted_metrics(output)["UnmanagedExpiringCertificates"]
        assert count == len(result["unmanaged_expiring"]) >= 1
        assert arn in output  # the log names it
    finally:
        stack.client("acm").delete_certificate(CertificateArn=arn)


def test_a_stale_endpoint_is_reported_until_it_serves_the_new_certificate(
    stack: LocalStack,
    env: dict[str, str],
    consumer: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENDPOINT_GRACE_MINUTES", "0")
    zone = unique("served") + ".test"
    stack.create_hosted_zone(zone)
    old = FakeCa(lifetime=timedelta(days=10)).sign(
        CertificateRequest("old", (zone,), KeyType.EC_P256, (), "s", None, True)
    )
    with TlsEndpoint() as endpoint:
        endpoint.serve(old.fullchain_pem, old.private_key_pem)
        put_item(stack, env, {"id": "served", "domains": [zone], "endpoints": [endpoint.address]})
        capsys.readouterr()

        result = run()

        assert [s["endpoint"] for s in result["stale_endpoints"]] == [endpoint.address]
        assert emitted_metrics(capsys.readouterr().out)["StaleEndpoints"] == [1]
        stale = [e for e in consumer() if e["detail-type"] == ENDPOINT_STALE]
        assert [e["detail"]["endpoint"] for e in stale] == [endpoint.address]

        # The consumer reloads with what the secret holds now.
        secret = json.loads(
            stack.client("secretsmanager").get_secret_value(SecretId=get_item(stack, env, "served")["secret_arn"])[
                "SecretString"
            ]
        )
        endpoint.serve(secret["fullchain"], secret["private_key"])
        result = run()
        assert result["stale_endpoints"] == []
        assert emitted_metrics(capsys.readouterr().out)["StaleEndpoints"] == [0]
        served = x509.load_pem_x509_certificate(secret["certificate"].encode())
        assert format(served.serial_number, "x") == get_item(stack, env, "served")["serial"]


def test_logs_carry_the_certificate_and_the_run(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone = unique("logs") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "logged", "domains": [zone]})
    capsys.readouterr()
    run()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"level"')]
    pipeline = [line for line in lines if line.get("certificate_id") == "logged"]
    messages = {line["message"] for line in pipeline}
    # "order created" is logged on a batch worker thread: the thread carries the certificate's id too.
    assert {"renewing", "order created", "certificate issued", "certificate processed"} <= messages
    run_ids = {line["run_id"] for line in pipeline}
    assert len(run_ids) == 1
    # The DNS work is the whole batch's: it carries the run, and no certificate.
    batch = [line for line in lines if line["message"] == "route53 change submitted"]
    assert batch and all(line.get("run_id") in run_ids and "certificate_id" not in line for line in batch)
    assert len({line["function_request_id"] for line in pipeline}) == 1
    # Lines outside a certificate do not inherit its id.
    assert any("certificate_id" not in line for line in lines)

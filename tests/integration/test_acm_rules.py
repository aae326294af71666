"""ACM's own rules on the local stack, whose ACM refuses as AWS does (tests/stack/strict_acm.py): a certificate
ACM would not re-import goes into a new ARN and the old one is superseded, reported while a load balancer uses
it; an ordinary renewal re-imports into the same ARN; many imports stay within ACM's rate.

https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html
https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography import x509

from acme_renewer.report.events import RENEWED, REPLACED
from tests.integration.invariants import acm_client, assert_nothing_lost, make_due, read_item
from tests.integration.test_observability import consumer  # noqa: F401 - a fixture
from tests.integration.test_renewal import put_item, run, unique
from tests.stack import LocalStack
from tests.stack.handler import emitted_metrics
from tests.unit.acm_stack import crafted_certificate

LOAD_BALANCER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"


def add(stack: LocalStack, env: dict[str, str], prefix: str, **fields: Any) -> tuple[str, str]:
    """An item for the apex of a new hosted zone; returns (id, zone id)."""
    zone = unique(prefix) + ".test"
    zone_id = stack.create_hosted_zone(zone)
    item_id = unique(prefix)
    put_item(stack, env, {"id": item_id, "domains": [zone], **fields})
    return item_id, zone_id


def leaf(stack: LocalStack, arn: str) -> x509.Certificate:
    pem = acm_client(stack, stack.region).get_certificate(CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.fixture
def strict(stack: LocalStack) -> LocalStack:
    """The stack's ACM at AWS's rate, its buckets full, no refusal counted yet."""
    stack.acm.set_import_rate(1.0)
    stack.acm.reset_refusals()
    return stack


def test_a_new_key_type_goes_into_a_new_arn_and_the_old_one_is_reported_while_a_load_balancer_uses_it(
    strict: LocalStack,
    env: dict[str, str],
    consumer: Any,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ACM refuses a re-import that changes the key type, so ec-p256 -> rsa-2048 cannot stay in the ARN that the
    load balancer uses: https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    stack, table = strict, env["TABLE_NAME"]
    item_id, zone_id = add(stack, env, "keytype", key_type="ec-p256")
    assert run()["renewed"] == 1
    first, stored = assert_nothing_lost(stack, table, item_id, [zone_id])
    assert stored is not None
    old_arn = first["acm_arns"][stack.region]
    stack.acm.mark_in_use(old_arn, [LOAD_BALANCER])
    consumer()  # the first issuance's event

    put_item(stack, env, {**first, "key_type": "rsa-2048"})  # the operator's edit
    capsys.readouterr()
    result = run()
    output = capsys.readouterr().out

    assert result["renewed"] == 1, result
    item, renewed = assert_nothing_lost(stack, table, item_id, [zone_id], previous_serial=first["serial"])
    assert renewed is not None
    new_arn = item["acm_arns"][stack.region]
    assert new_arn != old_arn
    described = acm_client(stack, stack.region).describe_certificate(CertificateArn=new_arn)["Certificate"]
    assert described["KeyAlgorithm"] == "RSA_2048"
    assert leaf(stack, old_arn) == stored.current_leaf, "the load balancer's ARN keeps the certificate it serves"
    assert [(e["region"], e["arn"]) for e in item["superseded_arns"]] == [(stack.region, old_arn)]
    assert stack.acm.refusals() == {}, "the renewer never sends ACM a re-import it refuses"

    events = {event["detail-type"]: event["detail"] for event in consumer()}
    assert set(events) == {RENEWED, REPLACED}
    replaced = events[REPLACED]
    assert (replaced["region"], replaced["old_acm_certificate_arn"], replaced["new_acm_certificate_arn"]) == (
        stack.region,
        old_arn,
        new_arn,
    )
    assert "EC_prime256v1 to RSA_2048" in replaced["reason"]
    assert events[RENEWED]["acm_certificate_arns"] == {stack.region: new_arn}

    assert [(s["arn"], s["new_arn"], s["in_use_by"]) for s in result["superseded_in_use"]] == [
        (old_arn, new_arn, [LOAD_BALANCER])
    ]
    assert emitted_metrics(output)["SupersededCertificatesInUse"] == [1]
    warnings = [
        json.loads(line) for line in output.splitlines() if '"superseded ACM certificate is still in use' in line
    ]
    assert [(w["level"], w["superseded_arn"], w["arn"]) for w in warnings] == [("WARNING", old_arn, new_arn)]

    # Someone moves the load balancer: the next daily run forgets the old ARN, and leaves it in ACM.
    stack.acm.mark_in_use(old_arn, [])
    result = run()
    assert result["superseded_in_use"] == [] and result["renewed"] == 0
    item, _ = assert_nothing_lost(stack, table, item_id, [zone_id], superseded_earlier=[old_arn])
    assert "superseded_arns" not in item
    assert leaf(stack, old_arn) == stored.current_leaf


def test_an_adopted_arn_whose_certificate_has_a_usage_the_new_one_lacks_is_superseded(
    strict: LocalStack, env: dict[str, str]
) -> None:
    """An ARN imported by hand, put on the item (`acm_arns`), holds a certificate with dataEncipherment, which
    pebble's lack: ACM would refuse the re-import ("you cannot remove existing values"), so the first certificate
    goes into a new ARN. https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    stack = strict
    zone = unique("adopted") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    by_hand = crafted_certificate(
        "rsa-2048", key_usage={"digital_signature", "key_encipherment", "data_encipherment"}, name=zone
    )
    adopted = acm_client(stack, stack.region).import_certificate(**by_hand.material)["CertificateArn"]
    item_id = unique("adopted")
    put_item(
        stack, env, {"id": item_id, "domains": [zone], "key_type": "rsa-2048", "acm_arns": {stack.region: adopted}}
    )

    assert run()["renewed"] == 1
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], superseded_earlier=[adopted])
    assert item["acm_arns"][stack.region] != adopted
    assert leaf(stack, adopted) == x509.load_pem_x509_certificate(by_hand.certificate_pem.encode())
    assert stack.acm.refusals() == {}
    # Nothing uses it: the same run's fleet check already forgot it.
    assert "superseded_arns" not in item


def test_an_ordinary_renewal_reimports_into_the_same_arn(strict: LocalStack, env: dict[str, str]) -> None:
    """Same key type, same usages: ACM re-imports in place, and the load balancer serves the renewal."""
    stack, table = strict, env["TABLE_NAME"]
    item_id, zone_id = add(stack, env, "inplace", key_type="rsa-2048")
    assert run()["renewed"] == 1
    first, _ = assert_nothing_lost(stack, table, item_id, [zone_id])
    stack.acm.mark_in_use(first["acm_arns"][stack.region], [LOAD_BALANCER])
    make_due(stack, table, item_id)
    result = run()
    item, stored = assert_nothing_lost(stack, table, item_id, [zone_id], previous_serial=first["serial"])
    assert stored is not None and item["acm_arns"] == first["acm_arns"]
    assert leaf(stack, item["acm_arns"][stack.region]) == stored.current_leaf
    assert "superseded_arns" not in item and result["superseded_in_use"] == []
    assert stack.acm.refusals() == {}


MANY = 6


def test_many_imports_in_one_run_stay_within_acms_rate(strict: LocalStack, env: dict[str, str]) -> None:
    """ImportCertificate allows 1 request per second per account and region; the store threads share one limiter
    per region, so a run importing several certificates at once is never throttled at ACM's own rate.
    https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits"""
    stack = strict
    items = [add(stack, env, "paced") for _ in range(MANY)]
    stack.reset_aws_calls()
    started = time.monotonic()
    result = run()
    elapsed = time.monotonic() - started
    assert result["renewed"] == MANY, result
    for item_id, zone_id in items:
        assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    assert stack.aws_calls()["acm"]["ImportCertificate"] == MANY, "an import was retried"
    # The bucket holds up to two requests; one a second after that: the run cannot be throttled.
    assert stack.acm.refusals() == {}
    print(f"\n{MANY} certificates issued and imported at 1 import/s in {elapsed:.1f} s")


def test_tests_that_import_many_certificates_raise_both_rates_together(
    stack: LocalStack, env: dict[str, str], fast_acm_imports: float
) -> None:
    assert stack.acm.import_rate() == fast_acm_imports
    stack.acm.reset_refusals()
    items = [add(stack, env, "fast") for _ in range(MANY)]
    stack.reset_aws_calls()
    assert run()["renewed"] == MANY
    assert stack.aws_calls()["acm"]["ImportCertificate"] == MANY and stack.acm.refusals() == {}
    for item_id, _ in items:
        assert read_item(stack, env["TABLE_NAME"], item_id)["status"] == "ISSUED"

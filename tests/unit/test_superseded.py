"""Superseded ACM ARNs through the pipeline (fake CA, moto's mock): a certificate ACM would not re-import goes
into a new ARN, the old one is recorded on the item, reported by the daily full run while ACM says something
uses it, and forgotten (never deleted) once nothing does, or it expired or is gone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest
from moto.acm.models import acm_backends

from acme_renewer.inventory.table import superseded_from_item
from acme_renewer.report.events import REPLACED, replaced_events
from acme_renewer.report.fleet import FleetChecks
from acme_renewer.report.outcomes import Result
from tests.unit.fakes import FakeCa
from tests.unit.test_renewal import REGION, get, put, renewer, table

BALANCER = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188"


@pytest.fixture
def aws(mocked_aws: None) -> None:
    from tests.stack.table import create_table
    from tests.unit.test_renewal import SETTINGS

    create_table(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)


def with_fleet_checks(ca: FakeCa) -> Any:
    run = renewer(ca)
    run.fleet = FleetChecks(
        acm_client_for_region=lambda region: boto3.client("acm", region_name=region),
        default_region=REGION,
        expiry_warning=timedelta(days=14),
        endpoint_grace=timedelta(minutes=60),
        record_superseded=lambda item_id, kept, read: table().set_superseded(item_id, kept, read=read),
    )
    return run


def used_by(arn: str, *users: str) -> None:
    """What ACM's InUseBy says of the ARN (moto keeps it on the certificate)."""
    acm_backends["123456789012"][REGION].get_certificate(arn).in_use_by = list(users)


def test_a_new_key_type_supersedes_the_arn_which_is_reported_while_in_use(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"], "key_type": "ec-p256"})
    ca = FakeCa()
    with_fleet_checks(ca).run()
    old_arn = get("web")["acm_arns"][REGION]
    used_by(old_arn, BALANCER)

    put({**get("web"), "key_type": "rsa-2048"})
    report = with_fleet_checks(ca).run()

    (outcome,) = report.outcomes
    assert outcome.result is Result.RENEWED
    item = get("web")
    new_arn = item["acm_arns"][REGION]
    assert new_arn != old_arn
    assert [(s.region, s.arn) for s in superseded_from_item(item["superseded_arns"])] == [(REGION, old_arn)]
    ((detail_type, detail),) = replaced_events(outcome)
    assert detail_type == REPLACED
    assert (detail["region"], detail["old_acm_certificate_arn"], detail["new_acm_certificate_arn"]) == (
        REGION,
        old_arn,
        new_arn,
    )
    assert "EC_prime256v1 to RSA_2048" in detail["reason"]
    assert [(s.arn, s.new_arn, s.in_use_by) for s in report.superseded_in_use or []] == [
        (old_arn, new_arn, (BALANCER,))
    ]
    assert report.as_dict()["superseded_in_use"][0]["in_use_by"] == [BALANCER]

    # Still in use a day later: still reported, still recorded.
    assert len(with_fleet_checks(ca).run().superseded_in_use or []) == 1
    assert "superseded_arns" in get("web")

    # The load balancer moved: forgotten, and left in ACM.
    used_by(old_arn)
    report = with_fleet_checks(ca).run()
    assert report.superseded_in_use == []
    assert "superseded_arns" not in get("web")
    boto3.client("acm", region_name=REGION).describe_certificate(CertificateArn=old_arn)


def test_a_superseded_certificate_that_is_gone_is_forgotten(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"], "key_type": "rsa-2048"})
    ca = FakeCa()
    with_fleet_checks(ca).run()
    old_arn = get("web")["acm_arns"][REGION]
    used_by(old_arn, BALANCER)
    put({**get("web"), "key_type": "rsa-3072"})
    with_fleet_checks(ca).run()
    assert "superseded_arns" in get("web")

    boto3.client("acm", region_name=REGION).delete_certificate(CertificateArn=old_arn)
    assert with_fleet_checks(ca).run().superseded_in_use == []
    assert "superseded_arns" not in get("web")


def test_a_superseded_list_that_changed_meanwhile_is_not_overwritten(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"], "key_type": "ec-p256"})
    ca = FakeCa()
    with_fleet_checks(ca).run()
    used_by(get("web")["acm_arns"][REGION], BALANCER)
    put({**get("web"), "key_type": "rsa-2048"})
    with_fleet_checks(ca).run()
    listed = superseded_from_item(get("web")["superseded_arns"])
    assert table().set_superseded("web", [], read=[]) is False  # read an empty list, but it is not
    assert table().set_superseded("web", [], read=listed) is True
    assert "superseded_arns" not in get("web")
    assert table().set_superseded("web", listed, read=[]) is True
    assert superseded_from_item(get("web")["superseded_arns"]) == listed
    assert table().set_superseded("gone", [], read=[]) is False


def test_an_ordinary_renewal_keeps_the_arn_and_supersedes_nothing(aws: None) -> None:
    put({"id": "web", "domains": ["example.com"]})
    ca = FakeCa()
    with_fleet_checks(ca).run()
    first = get("web")
    put({**first, "issued_fingerprint": "outdated"})
    report = with_fleet_checks(ca).run()
    assert get("web")["acm_arns"] == first["acm_arns"] and "superseded_arns" not in get("web")
    assert replaced_events(report.outcomes[0]) == [] and report.superseded_in_use == []

"""ACM's rules in the local stack (tests/stack/strict_acm.py), which moto alone does not enforce: each test fails
against moto without StrictAcm in front of it. Requests are the ones boto3 sends, answered in this process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from werkzeug.test import Client

from tests.stack.strict_acm import (
    EXTENDED_KEY_USAGES_MISSING,
    IMPORTED_EXCEEDED,
    IMPORTS_PER_YEAR_EXCEEDED,
    KEY_USAGES_MISSING,
    TAGS_ON_REIMPORT,
    YEAR_SECONDS,
)
from tests.unit.acm_stack import CLIENT_AUTH, SERVER_AUTH, InProcessAcm, crafted_certificate

REIMPORT_GUIDE = "https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"


@pytest.fixture
def acm() -> InProcessAcm:
    return InProcessAcm.start()


def import_new(client: Any, crafted: Any) -> str:
    arn: str = client.import_certificate(**crafted.material)["CertificateArn"]
    return arn


def refusal(client: Any, **params: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as refused:
        client.import_certificate(**params)
    error = refused.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_a_reimport_may_keep_the_key_type_and_the_usages(acm: InProcessAcm) -> None:
    client = acm.client()
    arn = import_new(client, crafted_certificate("rsa-2048"))
    acm.clock.now += 10
    again = crafted_certificate("rsa-2048", key_usage={"digital_signature", "key_encipherment", "key_agreement"})
    assert client.import_certificate(CertificateArn=arn, **again.material)["CertificateArn"] == arn


@pytest.mark.parametrize(("old", "new"), [("ec-p256", "rsa-2048"), ("rsa-2048", "rsa-3072"), ("ec-p256", "ec-p384")])
def test_a_reimport_that_changes_the_key_algorithm_or_size_is_refused(acm: InProcessAcm, old: str, new: str) -> None:
    """ "The key type and size cannot be changed."
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate(old))
    acm.clock.now += 10
    code, message, status = refusal(client, CertificateArn=arn, **crafted_certificate(new).material)
    assert (code, status) == ("ValidationException", 400)
    assert "key algorithm" in message


def test_a_reimport_that_drops_a_key_usage_is_refused(acm: InProcessAcm) -> None:
    """Key Usage values of the imported certificate cannot be removed.
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate("rsa-2048"))
    acm.clock.now += 10
    without = crafted_certificate("rsa-2048", key_usage={"digital_signature"})
    assert refusal(client, CertificateArn=arn, **without.material) == ("ValidationException", KEY_USAGES_MISSING, 400)


def test_an_ecdsa_certificate_may_drop_key_encipherment(acm: InProcessAcm) -> None:
    """The exception: keyEncipherment may be removed from ECDSA certificates (RFC 5480 §3).
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate("ec-p256"))
    acm.clock.now += 10
    without = crafted_certificate("ec-p256", key_usage={"digital_signature"})
    assert client.import_certificate(CertificateArn=arn, **without.material)["CertificateArn"] == arn
    acm.clock.now += 10
    lost_signature = crafted_certificate("ec-p256", key_usage={"key_agreement"})
    assert refusal(client, CertificateArn=arn, **lost_signature.material)[1] == KEY_USAGES_MISSING


def test_a_reimport_that_drops_an_extended_key_usage_is_refused_but_client_auth(acm: InProcessAcm) -> None:
    """Extended Key Usage values cannot be removed; the exception is the Client Authentication EKU.
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate("ec-p256"))
    acm.clock.now += 10
    server_only = crafted_certificate("ec-p256", extended_key_usage=[SERVER_AUTH])
    assert client.import_certificate(CertificateArn=arn, **server_only.material)["CertificateArn"] == arn
    acm.clock.now += 10
    client_only = crafted_certificate("ec-p256", extended_key_usage=[CLIENT_AUTH])
    assert refusal(client, CertificateArn=arn, **client_only.material) == (
        "ValidationException",
        EXTENDED_KEY_USAGES_MISSING,
        400,
    )


@pytest.mark.parametrize("extension", ["key_usage", "extended_key_usage"])
def test_a_reimport_may_not_add_an_extension_the_imported_certificate_lacks(acm: InProcessAcm, extension: str) -> None:
    """ "You cannot add a KeyUsage or ExtendedKeyUsage extension if the extension was not present in the
    previously imported certificate."
    https://docs.aws.amazon.com/acm/latest/userguide/import-certificate-prerequisites.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate("ec-p256", **{extension: None}))  # type: ignore[arg-type]
    acm.clock.now += 10
    code, message, _ = refusal(client, CertificateArn=arn, **crafted_certificate("ec-p256").material)
    assert code == "ValidationException" and "extension" in message


def test_a_reimport_with_tags_is_refused(acm: InProcessAcm) -> None:
    """ "You cannot apply resource tags when reimporting a certificate."
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    client = acm.client()
    crafted = crafted_certificate()
    arn = client.import_certificate(**crafted.material, Tags=[{"Key": "a", "Value": "b"}])["CertificateArn"]
    acm.clock.now += 10
    tags = [{"Key": "a", "Value": "b"}]
    assert refusal(client, CertificateArn=arn, Tags=tags, **crafted.material) == (
        "ValidationException",
        TAGS_ON_REIMPORT,
        400,
    )


def test_imports_beyond_the_rate_quota_are_throttled_per_region(acm: InProcessAcm) -> None:
    """ImportCertificate: 1 request per second per account and region; ACM answers ThrottlingException beyond it.
    https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits"""
    client, other_region = acm.client("eu-west-1"), acm.client("us-east-1")
    crafted = crafted_certificate()
    import_new(client, crafted)
    import_new(client, crafted)  # the burst: two at once
    assert refusal(client, **crafted.material) == ("ThrottlingException", "Rate exceeded", 400)
    import_new(other_region, crafted)  # a bucket per region
    acm.clock.now += 1.0
    import_new(client, crafted)
    assert refusal(client, **crafted.material)[0] == "ThrottlingException"
    for _ in range(5):  # at the quota, never throttled
        acm.clock.now += 1.0
        import_new(client, crafted)
    acm.clock.now += 2.0  # the bucket fills up again, to two
    for _ in range(3):  # at twice the quota, the burst runs out
        acm.clock.now += 0.5
        import_new(client, crafted)
    acm.clock.now += 0.5
    assert refusal(client, **crafted.material)[0] == "ThrottlingException"
    assert acm.app.refusals["ThrottlingException"] == 3


def test_every_role_and_session_of_one_account_shares_its_import_quota(acm: InProcessAcm) -> None:
    """The quota is the account's (and region's), not the caller's: two roles of one account, reached with
    AssumeRole, get two tokens between them, and the caller's own account keeps its own."""
    sts = acm.sts()
    theirs = [
        acm.client(
            credentials=sts.assume_role(RoleArn=f"arn:aws:iam::444455556666:role/{name}", RoleSessionName="test")[
                "Credentials"
            ]
        )
        for name in ("first", "second")
    ]
    crafted = crafted_certificate()
    import_new(theirs[0], crafted)
    import_new(theirs[1], crafted)
    assert refusal(theirs[0], **crafted.material)[0] == "ThrottlingException"
    assert refusal(theirs[1], **crafted.material)[0] == "ThrottlingException"
    import_new(acm.client(), crafted)  # this account's bucket is full
    acm.clock.now += 1.0
    import_new(theirs[1], crafted)


def test_the_import_rate_is_set_over_the_private_path(acm: InProcessAcm) -> None:
    http = Client(acm.app)
    assert http.get("/_stack/acm/import-rate").json == {"per_second": 1.0}
    assert http.put("/_stack/acm/import-rate", json={"per_second": 20}).json == {"per_second": 20.0}
    client, crafted = acm.client(), crafted_certificate()
    for _ in range(20):
        import_new(client, crafted)
    assert refusal(client, **crafted.material)[0] == "ThrottlingException"
    assert http.put("/_stack/acm/import-rate", json={"per_second": 0}).status_code == 400
    assert http.get("/_stack/acm/nothing").status_code == 404


def test_describe_answers_the_usages_and_the_users_acm_would(acm: InProcessAcm) -> None:
    """DescribeCertificate's KeyUsages, ExtendedKeyUsages and InUseBy (moto: none, empty, empty); an ARN's users stay
    across a re-import, as a re-import keeps the certificate's associations.
    https://docs.aws.amazon.com/acm/latest/APIReference/API_CertificateDetail.html"""
    client = acm.client()
    arn = import_new(client, crafted_certificate("rsa-2048"))
    balancer = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1"
    http = Client(acm.app)
    assert http.put("/_stack/acm/in-use", json={"arn": arn, "in_use_by": [balancer]}).status_code == 200
    acm.clock.now += 10
    client.import_certificate(CertificateArn=arn, **crafted_certificate("rsa-2048").material)
    described = client.describe_certificate(CertificateArn=arn)["Certificate"]
    assert [u["Name"] for u in described["KeyUsages"]] == ["DIGITAL_SIGNATURE", "KEY_ENCIPHERMENT"]
    assert [(u["Name"], u["OID"]) for u in described["ExtendedKeyUsages"]] == [
        ("TLS_WEB_SERVER_AUTHENTICATION", "1.3.6.1.5.5.7.3.1"),
        ("TLS_WEB_CLIENT_AUTHENTICATION", "1.3.6.1.5.5.7.3.2"),
    ]
    assert described["InUseBy"] == [balancer]
    http.put("/_stack/acm/in-use", json={"arn": arn, "in_use_by": []})
    assert client.describe_certificate(CertificateArn=arn)["Certificate"]["InUseBy"] == []
    assert http.put("/_stack/acm/in-use", data=json.dumps({"arn": arn})).status_code == 400


def test_an_unknown_arn_is_left_to_moto(acm: InProcessAcm) -> None:
    client = acm.client()
    arn = import_new(client, crafted_certificate()).rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    acm.clock.now += 10
    assert refusal(client, CertificateArn=arn, **crafted_certificate().material)[0] == "ResourceNotFoundException"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_certificate(CertificateArn=arn)


def test_new_imports_beyond_the_quota_of_imported_certificates_are_refused_per_region() -> None:
    """ "Imported certificates": 2,500 per account and region by default; a re-import into an ARN holds no more, and
    a deleted certificate gives its place back. https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html"""
    acm = InProcessAcm.start(imports_per_second=1000)
    acm.app.set_quotas(imported=2)
    client, other_region, crafted = acm.client("eu-west-1"), acm.client("us-east-1"), crafted_certificate()
    first, _second = import_new(client, crafted), import_new(client, crafted)
    assert refusal(client, **crafted.material) == ("LimitExceededException", IMPORTED_EXCEEDED.format(quota=2), 400)
    assert client.import_certificate(CertificateArn=first, **crafted.material)["CertificateArn"] == first
    import_new(other_region, crafted)  # a quota per region
    client.delete_certificate(CertificateArn=first)
    import_new(client, crafted)
    assert refusal(client, **crafted.material)[0] == "LimitExceededException"
    acm.app.set_quotas()  # none again, as moto
    import_new(client, crafted)


def test_imports_beyond_the_quota_per_365_days_are_refused_until_the_oldest_is_a_year_old() -> None:
    """ "Imported certificates in last 365 days": 5,000 by default; re-imports count too here (the stricter reading:
    AWS does not say). https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html"""
    acm = InProcessAcm.start(imports_per_second=1000)
    acm.app.set_quotas(imported_per_year=2)
    client, crafted = acm.client("eu-west-1"), crafted_certificate()
    arn = import_new(client, crafted)
    acm.clock.now += YEAR_SECONDS / 2
    client.import_certificate(CertificateArn=arn, **crafted.material)
    expected = ("LimitExceededException", IMPORTS_PER_YEAR_EXCEEDED.format(quota=2), 400)
    assert refusal(client, CertificateArn=arn, **crafted.material) == expected
    assert refusal(client, **crafted.material) == expected
    acm.clock.now += YEAR_SECONDS / 2 + 1  # the first import is more than 365 days old
    import_new(client, crafted)
    assert refusal(client, **crafted.material)[0] == "LimitExceededException"


def test_the_quotas_and_their_usage_are_read_and_set_over_the_private_path(acm: InProcessAcm) -> None:
    http = Client(acm.app)
    assert http.get("/_stack/acm/quotas").json == {"imported": None, "imported_per_year": None, "usage": []}
    import_new(acm.client("eu-west-1"), crafted_certificate())
    answer = http.put("/_stack/acm/quotas", json={"imported": 1, "imported_per_year": None}).json
    assert answer["imported"] == 1 and answer["imported_per_year"] is None
    assert [(u["region"], u["imported"], u["imports_in_year"]) for u in answer["usage"]] == [("eu-west-1", 1, 1)]
    assert refusal(acm.client("eu-west-1"), **crafted_certificate().material)[0] == "LimitExceededException"
    assert http.put("/_stack/acm/quotas", json={"imported": -1}).status_code == 400

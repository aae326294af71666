"""Stores stage, ACM: re-import into the item's ARN when ACM allows it, else into a new ARN with the old one
superseded. ACM here is the local stack's (StrictAcm over moto, in this process), which refuses as ACM does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from acme_renewer.models import CertificateRequest, IssuedCertificate, KeyType, SupersededArn
from acme_renewer.stores import acm as acm_store
from acme_renewer.stores.acm import AcmStore, KeyProfile, PartialImportError, reimport_refusals
from tests.unit.acm_stack import CLIENT_AUTH, SERVER_AUTH, Crafted, InProcessAcm, crafted_certificate

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
REGION, OTHER_REGION = "eu-west-1", "us-east-1"
TLS = frozenset({"DIGITAL_SIGNATURE", "KEY_ENCIPHERMENT"})
SERVER, CLIENT = SERVER_AUTH.dotted_string, CLIENT_AUTH.dotted_string


def request(*regions: str) -> CertificateRequest:
    return CertificateRequest("www", ("www.example.test",), KeyType.RSA_2048, regions or (REGION,), "s", None, True)


def issued(crafted: Crafted) -> IssuedCertificate:
    leaf = x509.load_pem_x509_certificate(crafted.certificate_pem.encode())
    return IssuedCertificate(
        certificate_pem=crafted.certificate_pem,
        chain_pem="",
        private_key_pem=crafted.private_key_pem,
        serial=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        domains=("www.example.test",),
    )


@pytest.fixture
def acm() -> InProcessAcm:
    return InProcessAcm.start(imports_per_second=1000)


@pytest.fixture
def store(acm: InProcessAcm) -> AcmStore:
    clients: dict[str, Any] = {}
    return AcmStore(lambda region: clients.setdefault(region, acm.client(region)), clock=lambda: NOW)


def leaf_at(acm: InProcessAcm, region: str, arn: str) -> str:
    return str(acm.client(region).get_certificate(CertificateArn=arn)["Certificate"])


# --- what ACM would refuse --------------------------------------------------------------------------------


def profile(algorithm: str = "RSA_2048", key_usages: Any = TLS, extended: Any = (SERVER, CLIENT)) -> KeyProfile:
    return KeyProfile(
        algorithm,
        None if key_usages is None else frozenset(key_usages),
        None if extended is None else frozenset(extended),
    )


@pytest.mark.parametrize(
    ("old", "new", "refused"),
    [
        (profile(), profile(), []),
        (profile(), profile(key_usages=TLS | {"KEY_AGREEMENT"}), []),  # adding a value is allowed
        (profile("EC_prime256v1"), profile("RSA_2048"), ["the key changes from EC_prime256v1 to RSA_2048"]),
        (profile("RSA_2048"), profile("RSA_3072"), ["the key changes from RSA_2048 to RSA_3072"]),
        (profile(), profile(key_usages={"DIGITAL_SIGNATURE"}), ["it lacks the Key Usage KEY_ENCIPHERMENT"]),
        (profile("EC_prime256v1"), profile("EC_prime256v1", key_usages={"DIGITAL_SIGNATURE"}), []),
        (profile(), profile(extended={SERVER}), []),  # clientAuth may go
        (profile(), profile(extended={CLIENT}), ["it lacks the Extended Key Usage TLS_WEB_SERVER_AUTHENTICATION"]),
        (profile(key_usages=None), profile(), ["it adds the Key Usage extension"]),
        (profile(extended=None), profile(), ["it adds the Extended Key Usage extension"]),
        (profile(key_usages=None, extended=None), profile(key_usages=None, extended=None), []),
    ],
)
def test_what_acm_refuses_on_a_reimport(old: KeyProfile, new: KeyProfile, refused: list[str]) -> None:
    """https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html and, for an added extension,
    https://docs.aws.amazon.com/acm/latest/userguide/import-certificate-prerequisites.html"""
    found = reimport_refusals(old, new)
    assert len(found) == len(refused)
    assert all(message.startswith(prefix) for message, prefix in zip(found, refused, strict=True))


def test_a_certificate_and_its_description_have_one_profile(acm: InProcessAcm) -> None:
    crafted = crafted_certificate("rsa-2048")
    client = acm.client()
    arn = client.import_certificate(**crafted.material)["CertificateArn"]
    described = KeyProfile.of_description(client.describe_certificate(CertificateArn=arn)["Certificate"])
    assert described == KeyProfile.of_certificate(crafted.certificate_pem) == profile()


def test_a_description_in_acms_other_spelling_reads_the_same() -> None:
    described: Any = {
        "KeyAlgorithm": "EC-prime256v1",
        "KeyUsages": [{"Name": "DIGITAL_SIGNATURE"}],
        "ExtendedKeyUsages": [{"Name": "TLS_WEB_SERVER_AUTHENTICATION"}],  # no OID
    }
    assert KeyProfile.of_description(described) == profile("EC_prime256v1", {"DIGITAL_SIGNATURE"}, {SERVER})
    assert KeyProfile.of_description({}) == KeyProfile("?", None, None)  # type: ignore[typeddict-item]


# --- the store ------------------------------------------------------------------------------------------


def test_a_renewal_that_acm_accepts_goes_into_the_same_arn(store: AcmStore, acm: InProcessAcm) -> None:
    first = store.import_all(request(), issued(crafted_certificate("rsa-2048")), {})
    renewal = crafted_certificate("rsa-2048", extended_key_usage=[SERVER_AUTH])  # clientAuth dropped, as CAs do
    second = store.import_all(request(), issued(renewal), first.arns)
    assert second.arns == first.arns and second.replacements == () and second.superseded == ()
    assert leaf_at(acm, REGION, first.arns[REGION]) == renewal.certificate_pem


def test_an_rsa_certificate_without_key_encipherment_goes_into_a_new_arn(store: AcmStore, acm: InProcessAcm) -> None:
    """ACM refuses to drop keyEncipherment from an RSA certificate on re-import (only ECDSA may):
    https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html"""
    old = crafted_certificate("rsa-2048")
    first = store.import_all(request(), issued(old), {})
    new = crafted_certificate("rsa-2048", key_usage={"digital_signature"})
    second = store.import_all(request(), issued(new), first.arns)
    old_arn, new_arn = first.arns[REGION], second.arns[REGION]
    assert new_arn != old_arn
    assert second.superseded == (SupersededArn(REGION, old_arn, NOW),)
    (replacement,) = second.replacements
    assert (replacement.superseded.arn, replacement.new_arn) == (old_arn, new_arn)
    assert "KEY_ENCIPHERMENT" in replacement.reason
    assert leaf_at(acm, REGION, old_arn) == old.certificate_pem, "the old ARN keeps what its users serve"
    assert leaf_at(acm, REGION, new_arn) == new.certificate_pem
    tags = acm.client().list_tags_for_certificate(CertificateArn=new_arn)["Tags"]
    assert {"Key": "acme-renewer:id", "Value": "www"} in tags


def test_a_new_key_type_goes_into_a_new_arn_and_earlier_superseded_arns_are_kept(store: AcmStore) -> None:
    earlier = SupersededArn(REGION, "arn:aws:acm:eu-west-1:123456789012:certificate/earlier", NOW - timedelta(days=9))
    first = store.import_all(request(), issued(crafted_certificate("ec-p256")), {})
    second = store.import_all(request(), issued(crafted_certificate("rsa-2048")), first.arns, [earlier])
    assert second.arns[REGION] != first.arns[REGION]
    assert second.superseded == (earlier, SupersededArn(REGION, first.arns[REGION], NOW))
    assert "the key changes from EC_prime256v1 to RSA_2048" in second.replacements[0].reason


def test_a_deleted_certificate_is_replaced_without_superseding(store: AcmStore, acm: InProcessAcm) -> None:
    first = store.import_all(request(), issued(crafted_certificate()), {})
    acm.client().delete_certificate(CertificateArn=first.arns[REGION])
    second = store.import_all(request(), issued(crafted_certificate()), first.arns)
    assert second.arns[REGION] != first.arns[REGION] and second.superseded == () and second.replacements == ()


def test_a_reimport_acm_refuses_for_a_reason_we_do_not_know_still_lands_in_a_new_arn(
    store: AcmStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.import_all(request(), issued(crafted_certificate("ec-p256")), {})
    monkeypatch.setattr(acm_store, "reimport_refusals", lambda old, new: [])  # blind to the key type
    second = store.import_all(request(), issued(crafted_certificate("rsa-2048")), first.arns)
    assert second.arns[REGION] != first.arns[REGION]
    assert second.replacements[0].reason.startswith("ACM refused the re-import: The key algorithm")


def test_a_failure_in_a_later_region_keeps_the_replacement_of_an_earlier_one(acm: InProcessAcm) -> None:
    clients = {REGION: acm.client(REGION)}

    def client_for(region: str) -> Any:
        if region == OTHER_REGION:
            raise RuntimeError("ACM in us-east-1 is unreachable")
        return clients[region]

    store = AcmStore(client_for, clock=lambda: NOW)
    first = store.import_all(request(REGION), issued(crafted_certificate("ec-p256")), {})
    with pytest.raises(PartialImportError) as failed:
        store.import_all(request(REGION, OTHER_REGION), issued(crafted_certificate("rsa-2048")), first.arns)
    assert set(failed.value.imported) == {REGION} and failed.value.imported[REGION] != first.arns[REGION]
    assert failed.value.superseded == (SupersededArn(REGION, first.arns[REGION], NOW),)


@pytest.mark.parametrize(
    ("quotas", "name"),
    [({"imported": 1}, "Imported certificates"), ({"imported_per_year": 1}, "Imported certificates in last 365 days")],
)
def test_a_quota_acm_refuses_beyond_is_named_with_its_fix(acm: InProcessAcm, quotas: Any, name: str) -> None:
    """LimitExceededException: the failure names the quota as Service Quotas spells it, where to raise it, and
    acm_regions: [] for certificates that need only the secret."""
    store = AcmStore(lambda region: acm.client(region), clock=lambda: NOW)
    store.import_all(request(REGION), issued(crafted_certificate()), {})
    acm.app.set_quotas(**quotas)
    with pytest.raises(PartialImportError) as failed:
        store.import_all(request(REGION), issued(crafted_certificate()), {})
    message = str(failed.value)
    assert message.startswith(f"ACM import into {REGION} failed: LimitExceededException:")
    assert f'ACM\'s quota "{name}"' in message
    assert f'Service Quotas console, AWS Certificate Manager (ACM), "{name}"' in message
    assert "acm_regions: []" in message and "The secret is stored" in message
    assert failed.value.imported == {}


def test_every_import_is_recorded_and_the_imports_older_than_365_days_are_forgotten(acm: InProcessAcm) -> None:
    """`imports` (the item's `acm_imports`): a time per import and per region, re-imports too; a partial store
    keeps the regions it imported into before it failed."""
    clients = {REGION: acm.client(REGION)}

    def client_for(region: str) -> Any:
        if region == OTHER_REGION:
            raise RuntimeError("ACM in us-east-1 is unreachable")
        return clients[region]

    store = AcmStore(client_for, clock=lambda: NOW)
    old, recent = NOW - timedelta(days=366), NOW - timedelta(days=300)
    history = {REGION: (old, recent), OTHER_REGION: (old,)}
    first = store.import_all(request(REGION), issued(crafted_certificate()), {}, history=history)
    assert first.imports == {REGION: (recent, NOW)}
    again = store.import_all(request(REGION), issued(crafted_certificate()), first.arns, history=first.imports)
    assert again.arns == first.arns and again.imports == {REGION: (recent, NOW, NOW)}
    with pytest.raises(PartialImportError) as failed:
        store.import_all(request(REGION, OTHER_REGION), issued(crafted_certificate()), first.arns, history=history)
    assert failed.value.imports == {REGION: (recent, NOW)}


def test_a_quota_refusal_is_not_retried(acm: InProcessAcm, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore counts LimitExceededException as throttling and retried it 10 times with the renewer's client
    config, about a minute per certificate; ACM refuses until the quota is raised, so once is the answer."""
    from acme_renewer.runtime import ACM_CLIENT_CONFIG

    monkeypatch.setattr("time.sleep", lambda seconds: None)  # were it retried, the test would not wait for it
    client = acm.client(REGION, config=ACM_CLIENT_CONFIG)
    store = AcmStore(lambda region: client, clock=lambda: NOW)
    store.import_all(request(REGION), issued(crafted_certificate()), {})
    acm.app.set_quotas(imported=1)
    with pytest.raises(PartialImportError):
        store.import_all(request(REGION), issued(crafted_certificate()), {})
    assert acm.app.refusals["LimitExceededException"] == 1

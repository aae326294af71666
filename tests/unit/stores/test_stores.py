"""Stores stage: secrets encrypted with the stack's key when it names one."""

import boto3

from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore
from tests.unit.fakes import FakeCa

REQUEST = CertificateRequest(
    "web", ("bücher.example".encode("idna").decode(),), KeyType.EC_P256, (), "acme-renewer/certificates/web", None, True
)


def test_a_customer_managed_key_encrypts_every_secret_we_create(secrets: object) -> None:
    key_id = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
    PendingOrderStore(secrets, key_id).save(REQUEST, "https://ca.test/order/1", "key")  # type: ignore[arg-type]
    SecretStore(secrets, key_id).put(REQUEST, FakeCa().sign(REQUEST))  # type: ignore[arg-type]
    other = CertificateRequest("other", REQUEST.domains, KeyType.EC_P256, (), "acme-renewer/certificates/o", None, True)
    SecretStore(secrets, key_id).put(other, FakeCa().sign(other))  # type: ignore[arg-type]
    for name in (REQUEST.secret_name, other.secret_name):
        assert secrets.describe_secret(SecretId=name)["KmsKeyId"] == key_id  # type: ignore[attr-defined]


def test_without_a_key_secrets_manager_chooses(secrets: object) -> None:
    SecretStore(secrets).put(REQUEST, FakeCa().sign(REQUEST))  # type: ignore[arg-type]
    assert "KmsKeyId" not in secrets.describe_secret(SecretId=REQUEST.secret_name)  # type: ignore[attr-defined]

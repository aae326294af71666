"""Stores stage, Secrets Manager: the certificate's secret, the pending order's key, and every secret we create.

The secret is written first: it is the one place that holds the key and the certificate together, so
after a failure in ACM the material is already kept and the item says FAILED until the next run
re-issues and re-imports.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from acme_renewer import SERVICE
from acme_renewer.errors import StoreError
from acme_renewer.models import CertificateRequest, IssuedCertificate

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import (
        CreateSecretRequestTypeDef,
        CreateSecretResponseTypeDef,
    )
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef as SecretTag

logger = Logger(service=SERVICE, child=True)
MANAGED_BY = "acme-renewer"


def secret_document(certificate: IssuedCertificate) -> str:
    return json.dumps(
        {
            "certificate": certificate.certificate_pem,
            "chain": certificate.chain_pem,
            "fullchain": certificate.fullchain_pem,
            "private_key": certificate.private_key_pem,
            "serial": certificate.serial,
            "not_after": certificate.not_after.isoformat(),
            "domains": list(certificate.domains),
        }
    )


class SecretStore:
    def __init__(self, client: SecretsManagerClient, kms_key_id: str | None = None) -> None:
        self._client = client
        self._kms_key_id = kms_key_id

    def put(self, request: CertificateRequest, certificate: IssuedCertificate) -> tuple[str, str]:
        with _refusal_as_store_error(request.secret_name):
            return self._put(request, certificate)

    def _put(self, request: CertificateRequest, certificate: IssuedCertificate) -> tuple[str, str]:
        """Write a new version (AWSPREVIOUS keeps the last one); return (secret ARN, version id)."""
        body = secret_document(certificate)
        # One token per certificate: a retried call cannot add a second version of the same certificate.
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request.secret_name}#{certificate.serial}"))
        try:
            response = self._client.put_secret_value(
                SecretId=request.secret_name, SecretString=body, ClientRequestToken=token
            )
            return response["ARN"], response["VersionId"]
        except self._client.exceptions.ResourceNotFoundException:
            pass
        secret_tags: list[SecretTag] = [
            {"Key": "managed-by", "Value": MANAGED_BY},
            {"Key": "acme-renewer:id", "Value": request.id},
        ]
        created = create_secret(
            self._client,
            {
                "Name": request.secret_name,
                "SecretString": body,
                "ClientRequestToken": token,
                "Description": f"TLS certificate {request.id} ({', '.join(request.domains)}), renewed by acme-renewer",
                "Tags": secret_tags,
            },
            self._kms_key_id,
        )
        logger.info("created certificate secret", extra={"secret_name": request.secret_name})
        return created["ARN"], created["VersionId"]


class PendingOrderStore:
    """The key of an order that may be issued but not stored yet, in `<secret_name>.pending` (same prefix, same KMS).

    Kept apart from the certificate's secret, whose AWSCURRENT must always hold a matching certificate and key.
    """

    def __init__(self, client: SecretsManagerClient, kms_key_id: str | None = None) -> None:
        self._client = client
        self._kms_key_id = kms_key_id

    @staticmethod
    def name(request: CertificateRequest) -> str:
        return f"{request.secret_name}.pending"

    def save(self, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        with _refusal_as_store_error(self.name(request)):
            self._save(request, order_url, key_pem)

    def _save(self, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        body = json.dumps({"order_url": order_url, "private_key": key_pem, "domains": list(request.domains)})
        try:
            self._client.put_secret_value(SecretId=self.name(request), SecretString=body)
        except self._client.exceptions.ResourceNotFoundException:
            create_secret(
                self._client,
                {
                    "Name": self.name(request),
                    "SecretString": body,
                    "Description": f"Key of the latest order for {request.id} until it is stored (acme-renewer)",
                },
                self._kms_key_id,
            )

    def load(self, request: CertificateRequest, order_url: str) -> str | None:
        """The key saved for this order, or None."""
        try:
            body = json.loads(self._client.get_secret_value(SecretId=self.name(request))["SecretString"])
        except self._client.exceptions.ResourceNotFoundException:
            return None
        key = body.get("private_key")
        return key if body.get("order_url") == order_url and isinstance(key, str) else None


def create_secret(
    client: SecretsManagerClient, request: CreateSecretRequestTypeDef, kms_key_id: str | None
) -> CreateSecretResponseTypeDef:
    """Every secret we create is encrypted with the stack's customer-managed key when it names one."""
    if kms_key_id:
        request = {**request, "KmsKeyId": kms_key_id}
    return client.create_secret(**request)


@contextmanager
def _refusal_as_store_error(secret_name: str) -> Iterator[None]:
    try:
        yield
    except ClientError as refused:
        error = refused.response.get("Error", {})
        raise StoreError(
            f"Secrets Manager refused writing {secret_name}: {error.get('Code', '?')}: {error.get('Message', refused)}"
        ) from refused

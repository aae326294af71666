"""Stores stage, Secrets Manager: the certificate's secret, the pending order's key, and every secret we create.

The secret is written first: it is the one place that holds the key and the certificate together, so
after a failure in ACM the material is already kept and the item says FAILED until the next run
re-issues and re-imports.

Every refusal of Secrets Manager (or of KMS behind it: AccessDenied, DecryptionFailure) on a read or a write is the
StoreError of the certificate concerned, never an error of the run. A secret of ours that is scheduled for deletion
is restored, because the renewer needs it again (see `restoring`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

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
T = TypeVar("T")


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
        with secrets_manager_errors(request.secret_name, "writing"):
            return self._put(request, certificate)

    def _put(self, request: CertificateRequest, certificate: IssuedCertificate) -> tuple[str, str]:
        """Write a new version (AWSPREVIOUS keeps the last one); return (secret ARN, version id)."""
        body = secret_document(certificate)
        # One token per certificate: a retried call cannot add a second version of the same certificate.
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request.secret_name}#{certificate.serial}"))
        try:
            response = restoring(
                self._client,
                request.secret_name,
                lambda: self._client.put_secret_value(
                    SecretId=request.secret_name, SecretString=body, ClientRequestToken=token
                ),
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
        with secrets_manager_errors(self.name(request), "writing"):
            self._save(request, order_url, key_pem)

    def _save(self, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        name = self.name(request)
        body = json.dumps({"order_url": order_url, "private_key": key_pem, "domains": list(request.domains)})
        try:
            restoring(self._client, name, lambda: self._client.put_secret_value(SecretId=name, SecretString=body))
        except self._client.exceptions.ResourceNotFoundException:
            create_secret(
                self._client,
                {
                    "Name": name,
                    "SecretString": body,
                    "Description": f"Key of the latest order for {request.id} until it is stored (acme-renewer)",
                },
                self._kms_key_id,
            )

    def load(self, request: CertificateRequest, order_url: str) -> str | None:
        """The key saved for this order, or None; StoreError when the secret cannot be read (the order may be
        issued: the certificate fails, rather than order again and lose it)."""
        name = self.name(request)
        with secrets_manager_errors(name, "reading"):
            try:
                secret = restoring(self._client, name, lambda: self._client.get_secret_value(SecretId=name))
            except self._client.exceptions.ResourceNotFoundException:
                return None
        try:
            body = json.loads(secret["SecretString"])
            key = body.get("private_key")
            return key if body.get("order_url") == order_url and isinstance(key, str) else None
        except (KeyError, ValueError, AttributeError):
            logger.warning("the pending order's secret holds no order key; ordering anew", extra={"secret_name": name})
            return None


def create_secret(
    client: SecretsManagerClient, request: CreateSecretRequestTypeDef, kms_key_id: str | None
) -> CreateSecretResponseTypeDef:
    """Every secret we create is encrypted with the stack's customer-managed key when it names one."""
    if kms_key_id:
        request = {**request, "KmsKeyId": kms_key_id}
    return client.create_secret(**request)


def restoring(client: SecretsManagerClient, secret_name: str, call: Callable[[], T]) -> T:
    """`call` on one of our secrets; when Secrets Manager refuses it because the secret is scheduled for deletion,
    the secret is restored (RestoreSecret) and the call made once more.

    Such a secret was deleted with a recovery window, and its certificate (or ACME account) is wanted again: the
    item was added back, say. Until the window ends, AWS refuses both reading and writing it, and creating a new
    secret of that name: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html.
    """
    try:
        return call()
    except ClientError as refused:
        if not scheduled_for_deletion(refused):
            raise
    restore(client, secret_name)
    return call()


def scheduled_for_deletion(error: ClientError) -> bool:
    """Whether Secrets Manager refused because the secret is scheduled for deletion: InvalidRequestException, whose
    other causes (rotation settings, a secret managed by another service) only its message tells apart; AWS's says
    "...because it was marked for deletion"."""
    details = error.response.get("Error", {})
    return details.get("Code") == "InvalidRequestException" and "delet" in str(details.get("Message", "")).lower()


def restore(client: SecretsManagerClient, secret_name: str) -> None:
    """Cancel the secret's scheduled deletion; StoreError naming the deletion and the fix when that is refused."""
    try:
        client.restore_secret(SecretId=secret_name)
    except (ClientError, BotoCoreError) as refused:
        raise StoreError(
            f"secret {secret_name} is scheduled for deletion, and restoring it was refused ({refusal(refused)}): "
            f"restore it (aws secretsmanager restore-secret --secret-id {secret_name}), or delete it for good "
            f"(aws secretsmanager delete-secret --secret-id {secret_name} --force-delete-without-recovery) so that a "
            "new one is created; then renew the certificate"
        ) from refused
    logger.warning(
        "restored a secret that was scheduled for deletion: the renewer needs it again",
        extra={"secret_name": secret_name},
    )


@contextmanager
def secrets_manager_errors(secret_name: str, doing: str) -> Iterator[None]:
    """Any refusal of Secrets Manager, or of KMS behind it, while `doing` ("reading", "writing") the secret, as a
    StoreError: it fails the certificate concerned, not the run."""
    try:
        yield
    except (ClientError, BotoCoreError) as refused:
        raise StoreError(f"Secrets Manager refused {doing} {secret_name}: {refusal(refused)}") from refused


def refusal(error: ClientError | BotoCoreError) -> str:
    """`Code: message` of an AWS error; the exception's class and text for one that never reached AWS."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', '?')}: {details.get('Message', error)}"
    return f"{type(error).__name__}: {error}"

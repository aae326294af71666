"""Stores stage, Secrets Manager: the certificate's secret (its certificate, and the key of its pending order), and
every secret we create.

One secret per certificate, with the staging labels of Secrets Manager's rotation: the key of an order that may be
issued but not stored yet is a version labelled AWSPENDING only, and AWSCURRENT moves to the certificate's version
when it is stored, so AWSCURRENT always holds a certificate and its key (or, before the first one, a placeholder
without a key). Before this, the pending key lived in a secret of its own, `<secret_name>.pending` (LEGACY_SUFFIX):
it is still read to recover, and deleted once the certificate is stored.

The secret is written first: it is the one place that holds the key and the certificate together, so
after a failure in ACM the material is already kept and the item says FAILED until the next run
re-issues and re-imports.

Every refusal of Secrets Manager (or of KMS behind it: AccessDenied, DecryptionFailure) on a read or a write is the
StoreError of the certificate concerned, never an error of the run. A secret of ours that is scheduled for deletion
is restored, because the renewer needs it again (see `restoring`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from acme_renewer import SERVICE
from acme_renewer.errors import StoreError
from acme_renewer.models import CertificateRequest, IssuedCertificate
from acme_renewer.stores import formats

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import (
        CreateSecretRequestTypeDef,
        CreateSecretResponseTypeDef,
    )
    from mypy_boto3_secretsmanager.type_defs import TagTypeDef as SecretTag

logger = Logger(service=SERVICE, child=True)
MANAGED_BY = "acme-renewer"
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
LEGACY_SUFFIX = ".pending"
# The first version of a secret gets AWSCURRENT whatever VersionStages says (PutSecretValue: "If this operation
# creates the first version for the secret, then Secrets Manager automatically attaches the staging label
# AWSCURRENT to it"): a new certificate's secret starts with this, so that the pending key is never AWSCURRENT.
PLACEHOLDER = {"status": "no certificate yet: the first one is being issued"}
# Recovery window of the legacy `.pending` secret once its certificate is stored: the shortest AWS allows, so that a
# mistake can still be undone (restore-secret) and nothing of value is kept for long.
LEGACY_RECOVERY_DAYS = 7
T = TypeVar("T")


def legacy_pending_name(request: CertificateRequest) -> str:
    return f"{request.secret_name}{LEGACY_SUFFIX}"


class SecretStore:
    def __init__(self, client: SecretsManagerClient, kms_key_id: str | None = None) -> None:
        self._client = client
        self._kms_key_id = kms_key_id

    def put(self, request: CertificateRequest, certificate: IssuedCertificate) -> tuple[str, str]:
        """Make the certificate, in the request's formats, the secret's AWSCURRENT; return (secret ARN, version id).

        AWSPREVIOUS keeps the last one. When AWSCURRENT already holds this certificate in these formats (a run that
        stored it and died before recording it), it is kept: a PFX comes out different each time it is made, and
        AWS refuses a second body under the same ClientRequestToken."""
        with secrets_manager_errors(request.secret_name, "reading"):
            current = self._current(request.secret_name)
        if current is not None:
            document, arn, version_id = current
            if document.get("serial") == certificate.serial and formats.has_formats(document, request.formats):
                return arn, version_id
        with secrets_manager_errors(request.secret_name, "writing"):
            return self._put(request, certificate, current)

    def current_document(self, request: CertificateRequest) -> Mapping[str, Any] | None:
        """The secret's AWSCURRENT document; None when there is none yet. StoreError when it cannot be read."""
        with secrets_manager_errors(request.secret_name, "reading"):
            current = self._current(request.secret_name)
        return None if current is None else current[0]

    def _current(self, name: str) -> tuple[dict[str, Any], str, str] | None:
        try:
            secret = restoring(self._client, name, lambda: self._client.get_secret_value(SecretId=name))
        except self._client.exceptions.ResourceNotFoundException:
            return None  # no secret, or no AWSCURRENT version yet
        try:
            document = json.loads(secret["SecretString"])
        except (KeyError, ValueError):
            return None
        return (document, secret["ARN"], secret["VersionId"]) if isinstance(document, dict) else None

    def _put(
        self,
        request: CertificateRequest,
        certificate: IssuedCertificate,
        current: tuple[dict[str, Any], str, str] | None,
    ) -> tuple[str, str]:
        body = json.dumps(formats.document(certificate, request.formats, current[0] if current else None))
        token = certificate_token(request, certificate, current[2] if current else None)
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
        created = create_certificate_secret(self._client, request, self._kms_key_id, body, token)
        return created["ARN"], created["VersionId"]

    def replicate(self, request: CertificateRequest) -> list[str]:
        """Make the secret's replica regions the request's `secret_regions`: ReplicateSecretToRegions for the new ones,
        RemoveRegionsFromReplication for those no longer listed. Replicas use Secrets Manager's key of their region
        (aws/secretsmanager): validation refuses secret_regions with a key of the stack's own.

        The certificate is stored by then, and each replica follows its versions: what goes wrong is returned as
        warnings for the item, and the regions are compared again at the next renewal."""
        name = request.secret_name
        try:
            described = self._client.describe_secret(SecretId=name)
            have = {status["Region"]: status for status in described.get("ReplicationStatus", [])}
            gone = [region for region in have if region not in request.secret_regions]
            if gone:
                self._client.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=gone)
                logger.info("secret no longer replicated", extra={"secret_name": name, "regions": gone})
            new = [region for region in request.secret_regions if region not in have]
            statuses = list(have.values())
            if new:
                answer = self._client.replicate_secret_to_regions(
                    SecretId=name, AddReplicaRegions=[{"Region": region} for region in new]
                )
                statuses = list(answer.get("ReplicationStatus", []))
                logger.info("secret replicated", extra={"secret_name": name, "regions": new})
        except (ClientError, BotoCoreError) as refused:
            return [
                f"secret_regions: Secrets Manager refused replicating {name} ({refusal(refused)}); the certificate is"
                " stored in the function's region, and the replicas are tried again at the next renewal"
            ]
        return [
            f"secret_regions: replicating {name} to {status['Region']} failed: {status.get('StatusMessage', '?')};"
            f" see `aws secretsmanager describe-secret --secret-id {name}` (a secret of that name already in the"
            " region is not overwritten)"
            for status in statuses
            if status.get("Region") in request.secret_regions and status.get("Status") == "Failed"
        ]


def certificate_token(request: CertificateRequest, certificate: IssuedCertificate, current_version: str | None) -> str:
    """One token per certificate, formats and version it follows: a retried call cannot add a second version of
    the same certificate. A token AWS knows with the same body "succeeds but does nothing", AWSCURRENT staying
    where it is, so the same certificate written again in other formats, or back in earlier ones, needs a token of
    its own: the version it replaces tells them apart."""
    formats_digest = hashlib.sha256(",".join(request.formats).encode()).hexdigest()[:16]
    seed = f"{request.secret_name}#{certificate.serial}#{formats_digest}#{current_version or ''}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def create_certificate_secret(
    client: SecretsManagerClient, request: CertificateRequest, kms_key_id: str | None, body: str, token: str | None
) -> CreateSecretResponseTypeDef:
    """The certificate's secret, tagged with its item's id, with `body` as its first (AWSCURRENT) version."""
    secret_tags: list[SecretTag] = [
        {"Key": "managed-by", "Value": MANAGED_BY},
        {"Key": "acme-renewer:id", "Value": request.id},
    ]
    secret: CreateSecretRequestTypeDef = {
        "Name": request.secret_name,
        "SecretString": body,
        "Description": f"TLS certificate {request.id} ({', '.join(request.domains)}), renewed by acme-renewer",
        "Tags": secret_tags,
    }
    if token is not None:
        secret["ClientRequestToken"] = token
    created = create_secret(client, secret, kms_key_id)
    logger.info("created certificate secret", extra={"secret_name": request.secret_name})
    return created


class PendingOrderStore:
    """The key of an order that may be issued but not stored yet: a version of the certificate's own secret that
    only AWSPENDING labels. Recovery also reads the legacy `<secret_name>.pending` secret, which `clear` deletes."""

    def __init__(self, client: SecretsManagerClient, kms_key_id: str | None = None) -> None:
        self._client = client
        self._kms_key_id = kms_key_id
        # Legacy secrets a recovery read a key from: deleted by `clear` whatever the item says.
        self._legacy_read: set[str] = set()

    def save(self, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        with secrets_manager_errors(request.secret_name, "writing"):
            self._save(request, order_url, key_pem)

    def _save(self, request: CertificateRequest, order_url: str, key_pem: str) -> None:
        name = request.secret_name
        body = json.dumps({"order_url": order_url, "private_key": key_pem, "domains": list(request.domains)})

        def put() -> object:
            return self._client.put_secret_value(SecretId=name, SecretString=body, VersionStages=[PENDING])

        try:
            restoring(self._client, name, put)
        except self._client.exceptions.ResourceNotFoundException:
            create_certificate_secret(self._client, request, self._kms_key_id, json.dumps(PLACEHOLDER), None)
            put()

    def load(self, request: CertificateRequest, order_url: str) -> str | None:
        """The key saved for this order (the AWSPENDING version, else the legacy secret), or None; StoreError when
        a secret cannot be read (the order may be issued: the certificate fails, rather than order again and lose
        it)."""
        with secrets_manager_errors(request.secret_name, "reading"):
            key = self._key(request.secret_name, order_url, PENDING)
        if key is None:
            legacy = legacy_pending_name(request)
            with secrets_manager_errors(legacy, "reading"):
                key = self._key(legacy, order_url, CURRENT)
            if key is not None:
                self._legacy_read.add(legacy)
        return key

    def _key(self, name: str, order_url: str, stage: str) -> str | None:
        try:
            secret = restoring(
                self._client, name, lambda: self._client.get_secret_value(SecretId=name, VersionStage=stage)
            )
        except self._client.exceptions.ResourceNotFoundException:
            return None
        try:
            body = json.loads(secret["SecretString"])
            key = body.get("private_key")
            return key if body.get("order_url") == order_url and isinstance(key, str) else None
        except (KeyError, ValueError, AttributeError):
            logger.warning("the pending order's version holds no order key", extra={"secret_name": name})
            return None

    def clear(self, request: CertificateRequest, *, legacy_gone: bool = False) -> bool:
        """Once the certificate is stored: no version is AWSPENDING any more, and the legacy `.pending` secret is
        deleted, with the shortest recovery window: unless `legacy_gone` (the item says it was deleted) and this
        store read no key from it. Returns whether the legacy secret is gone now (deleted, never made, or already
        scheduled for deletion). StoreError when Secrets Manager refuses."""
        name = request.secret_name
        with secrets_manager_errors(name, "cleaning up the pending order of"):
            stages = self._client.describe_secret(SecretId=name).get("VersionIdsToStages", {})
            for version_id, labels in stages.items():
                if PENDING in labels:
                    self._client.update_secret_version_stage(
                        SecretId=name, VersionStage=PENDING, RemoveFromVersionId=version_id
                    )
        legacy_name = legacy_pending_name(request)
        if legacy_gone and legacy_name not in self._legacy_read:
            return True
        with secrets_manager_errors(legacy_name, "deleting"):
            try:
                self._client.delete_secret(SecretId=legacy_name, RecoveryWindowInDays=LEGACY_RECOVERY_DAYS)
            except self._client.exceptions.ResourceNotFoundException:
                self._legacy_read.discard(legacy_name)
                return True  # gone, or never made
            except ClientError as refused:
                if scheduled_for_deletion(refused):
                    self._legacy_read.discard(legacy_name)
                    return True  # deleted by an earlier run, its window not over yet
                raise
        self._legacy_read.discard(legacy_name)
        logger.info("deleted the legacy pending-order secret", extra={"secret_name": legacy_name})
        return True


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

"""Delivery stage, Secrets Manager adapter: the certificate's secret (AWSCURRENT) as the host reads it, for
`acme-renewer install`; a refusal becomes the DeliveryError that says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from acme_renewer.delivery.files import parse_document, unreadable

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class CertificateSecret:
    def __init__(self, client: SecretsManagerClient) -> None:
        self._client = client

    def read(self, secret: str, certificate_id: str, *, issued: bool = True) -> dict[str, Any]:
        """The secret's JSON document; GetSecretValue only, the one permission a host needs. `issued` False: the
        item has no certificate yet (see files.unreadable)."""
        try:
            response = self._client.get_secret_value(SecretId=secret)
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", ""), details.get("Message", "")
            raise unreadable(code, message, secret, certificate_id, issued=issued) from None
        return parse_document(response.get("SecretString") or "", secret)

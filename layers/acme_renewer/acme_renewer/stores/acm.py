"""Stores stage, ACM: import the certificate into every requested region, re-importing into the known ARN."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.errors import StoreError
from acme_renewer.models import CertificateRequest, IssuedCertificate
from acme_renewer.stores.secrets import MANAGED_BY

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient
    from mypy_boto3_acm.type_defs import ImportCertificateRequestTypeDef

logger = Logger(service=SERVICE, child=True)


class AcmStore:
    """Imports into ACM per region, re-importing into the known ARN so that attached resources keep working."""

    def __init__(self, client_for_region: Callable[[str], ACMClient]) -> None:
        self._client_for_region = client_for_region

    def import_all(
        self, request: CertificateRequest, certificate: IssuedCertificate, known_arns: Mapping[str, str]
    ) -> dict[str, str]:
        arns: dict[str, str] = {}
        for region in request.acm_regions:
            try:
                arns[region] = self._import(region, request, certificate, known_arns.get(region))
            except Exception as exc:
                raise PartialImportError(region, arns, exc) from exc
        return arns

    def _import(self, region: str, request: CertificateRequest, certificate: IssuedCertificate, arn: str | None) -> str:
        client = self._client_for_region(region)
        material: ImportCertificateRequestTypeDef = {
            "Certificate": certificate.certificate_pem.encode("ascii"),
            "PrivateKey": certificate.private_key_pem.encode("ascii"),
        }
        if certificate.chain_pem:  # ACM rejects an empty CertificateChain
            material["CertificateChain"] = certificate.chain_pem.encode("ascii")
        if arn:
            try:
                reimport: ImportCertificateRequestTypeDef = {**material, "CertificateArn": arn}
                return client.import_certificate(**reimport)["CertificateArn"]
            except client.exceptions.ResourceNotFoundException:
                logger.warning("ACM certificate is gone; importing a new one", extra={"region": region, "arn": arn})
        # Tags only on the first import: ACM refuses tags on a re-import.
        material["Tags"] = [
            {"Key": "managed-by", "Value": MANAGED_BY},
            {"Key": "acme-renewer:id", "Value": request.id},
        ]
        new_arn = client.import_certificate(**material)["CertificateArn"]
        logger.info("imported new ACM certificate", extra={"region": region, "arn": new_arn})
        return new_arn


class PartialImportError(StoreError):
    """ACM import failed in one region; `imported` holds the regions already done, to be kept on the item."""

    def __init__(self, region: str, imported: dict[str, str], cause: Exception) -> None:
        self.imported = imported
        super().__init__(f"ACM import into {region} failed: {type(cause).__name__}: {cause}")

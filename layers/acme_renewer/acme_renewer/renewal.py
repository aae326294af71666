"""The pipeline for one run: inventory -> order -> DNS challenge -> stores -> report, one certificate at a time.

Each certificate's failure is caught here, once, written to its item, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from acme_renewer.errors import ItemValidationError, RenewalError
from acme_renewer.inventory import CertificateTable, renewal_decision, state_from_item
from acme_renewer.models import CertificateRequest, CertificateState, IssuedCertificate, StoredCertificate
from acme_renewer.report import Outcome, Result, RunReport
from acme_renewer.settings import Settings
from acme_renewer.stores import AcmStore, PartialImportError, SecretStore
from acme_renewer.validation import parse_item

logger = Logger(child=True)


@dataclass
class Renewer:
    settings: Settings
    table: CertificateTable
    # The order and DNS challenge stages, behind one call; see runtime.build_renewer.
    issue: Callable[[CertificateRequest], IssuedCertificate]
    secrets: SecretStore
    acm: AcmStore
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def run(self) -> RunReport:
        report = RunReport(now=self.clock())
        for item in self.table.items():
            outcome = self._renew_item(item, report.now)
            logger.info(
                "certificate processed",
                extra={"certificate_id": outcome.id, "result": outcome.result.value, "reason": outcome.reason},
            )
            report.outcomes.append(outcome)
        return report

    def _renew_item(self, item: Mapping[str, Any], now: datetime) -> Outcome:
        item_id = str(item.get("id"))
        state = state_from_item(item)
        enabled = item.get("enabled") is not False
        try:
            request = parse_item(item, self.settings)
        except ItemValidationError as invalid:
            return self._fail(item_id, invalid, state, now, enabled)
        for warning in request.warnings:
            logger.warning(warning, extra={"certificate_id": request.id})
        if not request.enabled:
            return Outcome(request.id, Result.DISABLED, "enabled is false", state.not_after, enabled=False)
        decision = renewal_decision(request, state, now)
        if not decision.due:
            return Outcome(request.id, Result.NOT_DUE, decision.reason, state.not_after)
        logger.info("renewing", extra={"certificate_id": request.id, "reason": decision.reason})
        try:
            return self._issue_and_store(request, state, decision.reason, now)
        except Exception as error:
            return self._fail(request.id, error, state, now, enabled)

    def _issue_and_store(
        self, request: CertificateRequest, state: CertificateState, reason: str, now: datetime
    ) -> Outcome:
        certificate = self.issue(request)
        logger.info(
            "certificate issued",
            extra={
                "certificate_id": request.id,
                "serial": certificate.serial,
                "not_after": certificate.not_after.isoformat(),
            },
        )
        secret_arn, version_id = self.secrets.put(request, certificate)
        acm_arns = self.acm.import_all(request, certificate, state.acm_arns)
        self.table.record_success(request.id, certificate, StoredCertificate(acm_arns, secret_arn, version_id), now)
        return Outcome(request.id, Result.RENEWED, reason, certificate.not_after)

    def _fail(self, item_id: str, error: Exception, state: CertificateState, now: datetime, enabled: bool) -> Outcome:
        if isinstance(error, RenewalError):
            message = str(error)
            logger.error("renewal failed", extra={"certificate_id": item_id, "error": message})
        else:
            message = f"unexpected {type(error).__name__}: {error}"
            logger.exception("renewal failed unexpectedly", extra={"certificate_id": item_id})
        arns = {**state.acm_arns, **error.imported} if isinstance(error, PartialImportError) else None
        try:
            self.table.record_failure(item_id, message, now, acm_arns=arns)
        except Exception:
            logger.exception("could not record the failure on the item", extra={"certificate_id": item_id})
        return Outcome(item_id, Result.FAILED, message, state.not_after, enabled=enabled)

"""Report stage, whole table: checks that only a scheduled run, which saw every item, can make.

- drift: imported ACM certificates outside the inventory that expire soon (drift.py);
- served certificates: each item's `endpoints` must serve a certificate at least as new as ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.inventory.table import parse_time
from acme_renewer.inventory.validation import known_regions
from acme_renewer.report.drift import unmanaged_expiring
from acme_renewer.report.endpoints import (
    Endpoint,
    ServedCertificate,
    check_endpoints,
    fetch_served_certificate,
    parse_endpoints,
)
from acme_renewer.report.outcomes import Outcome, Result, StaleEndpoint, UnmanagedCertificate

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient

logger = Logger(service=SERVICE, child=True)
Processed = Sequence[tuple[Mapping[str, Any], Outcome]]


@dataclass
class FleetChecks:
    acm_client_for_region: Callable[[str], ACMClient]
    default_region: str
    # Expiring within this is reported as drift (the expiry alarm's threshold).
    expiry_warning: timedelta
    # A consumer gets this long after a renewal to pick up the new certificate before its endpoint counts as stale.
    endpoint_grace: timedelta
    fetch: Callable[[Endpoint, str], ServedCertificate] = fetch_served_certificate

    def inspect(
        self, processed: Processed, now: datetime, known_arns: Iterable[str] = ()
    ) -> tuple[list[UnmanagedCertificate], list[StaleEndpoint]]:
        """`known_arns`: ACM certificates of the renewer's that no item renews any more (retired on purpose)."""
        return self._drift(processed, now, set(known_arns)), self._stale_endpoints(processed, now)

    def _drift(self, processed: Processed, now: datetime, known: set[str]) -> list[UnmanagedCertificate]:
        managed: set[str] = set(known)
        regions = {self.default_region}
        for item, outcome in processed:
            managed.update(v for v in (item.get("acm_arns") or {}).values() if isinstance(v, str))
            if outcome.published is not None:
                managed.update(outcome.published.acm_arns.values())
            raw_regions = item.get("acm_regions")
            if isinstance(raw_regions, list):
                regions.update(r for r in raw_regions if isinstance(r, str) and r in known_regions())
        try:
            found = unmanaged_expiring(self.acm_client_for_region, regions, managed, now, self.expiry_warning)
        except Exception:
            logger.exception("drift report failed", extra={"regions": sorted(regions)})
            return []
        for certificate in found:
            logger.warning(
                "imported ACM certificate outside the inventory expires soon",
                extra={
                    "arn": certificate.arn,
                    "region": certificate.region,
                    "domain": certificate.domain,
                    "not_after": certificate.not_after.isoformat(),
                },
            )
        return found

    def _stale_endpoints(self, processed: Processed, now: datetime) -> list[StaleEndpoint]:
        stale = []
        for item, outcome in processed:
            endpoints, _problems = parse_endpoints(item.get("endpoints", []))
            server_name = _server_name(item, outcome)
            if not endpoints or not outcome.enabled or outcome.not_after is None or server_name is None:
                continue
            renewed_at = now if outcome.result is Result.RENEWED else parse_time(item.get("last_renewed_at"))
            in_grace = renewed_at is not None and now - renewed_at < self.endpoint_grace
            for check in check_endpoints(endpoints, server_name, outcome.not_after, fetch=self.fetch):
                if not check.stale:
                    continue
                if in_grace:
                    logger.info(
                        "endpoint not updated yet", extra={"certificate_id": outcome.id, "check": check.describe()}
                    )
                    continue
                logger.warning(
                    "endpoint serves an older certificate",
                    extra={"stale_certificate_id": outcome.id, "check": check.describe()},
                )
                stale.append(StaleEndpoint(outcome.id, str(check.endpoint), check.describe()))
        return stale


def _server_name(item: Mapping[str, Any], outcome: Outcome) -> str | None:
    """SNI for the handshake: the subject of the certificate now in force."""
    if outcome.published is not None:
        return outcome.published.domains[0]
    names = item.get("issued_domains") or item.get("domains")
    return names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None

"""Report stage, whole table: checks that only a scheduled run, which saw every item, can make.

- drift: imported ACM certificates outside the inventory that expire soon (drift.py);
- served certificates: each item's `endpoints` must serve a certificate at least as new as ours;
- superseded ARNs: an item's ACM certificates that ACM would not let us re-import into (stores/acm.py), reported
  while ACM says something uses them; forgotten (never deleted) once nothing does, or they expired or are gone.
  Those of other accounts are described there with the role they were recorded with; kept while it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.inventory.table import account_arns_from_item, parse_time, superseded_from_item
from acme_renewer.inventory.validation import known_regions
from acme_renewer.models import SupersededArn, ZoneRole
from acme_renewer.report.drift import unmanaged_expiring
from acme_renewer.report.endpoints import (
    Endpoint,
    ServedCertificate,
    check_endpoints,
    fetch_served_certificate,
    parse_endpoints,
)
from acme_renewer.report.outcomes import Outcome, Result, StaleEndpoint, SupersededInUse, UnmanagedCertificate

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient

logger = Logger(service=SERVICE, child=True)
Processed = Sequence[tuple[Mapping[str, Any], Outcome]]
# Writes an item's superseded ARNs (id, the ones kept, the ones read); False when the item changed meanwhile.
RecordSuperseded = Callable[[str, Sequence[SupersededArn], Sequence[SupersededArn]], bool]


@dataclass
class FleetChecks:
    acm_client_for_region: Callable[[str], ACMClient]
    default_region: str
    # Expiring within this is reported as drift (the expiry alarm's threshold).
    expiry_warning: timedelta
    # A consumer gets this long after a renewal to pick up the new certificate before its endpoint counts as stale.
    endpoint_grace: timedelta
    fetch: Callable[[Endpoint, str], ServedCertificate] = fetch_served_certificate
    # Forgets the superseded ARNs nothing uses any more; None: they are only reported.
    record_superseded: RecordSuperseded | None = None
    # ACM of another account's region, with the role a superseded ARN there was recorded with; None: such ARNs
    # are kept and not checked.
    acm_client_for_role: Callable[[ZoneRole, str], ACMClient] | None = None

    def inspect(
        self, processed: Processed, now: datetime, known_arns: Iterable[str] = ()
    ) -> tuple[list[UnmanagedCertificate], list[StaleEndpoint], list[SupersededInUse]]:
        """`known_arns`: ACM certificates of the renewer's that no item renews any more (retired on purpose)."""
        return (
            self._drift(processed, now, set(known_arns)),
            self._stale_endpoints(processed, now),
            self._superseded(processed, now),
        )

    def _drift(self, processed: Processed, now: datetime, known: set[str]) -> list[UnmanagedCertificate]:
        managed: set[str] = set(known)
        regions = {self.default_region}
        for item, outcome in processed:
            managed.update(v for v in (item.get("acm_arns") or {}).values() if isinstance(v, str))
            if outcome.published is not None:
                managed.update(outcome.published.acm_arns.values())
            # Superseded ARNs are reported on their own (below), not as drift, while the item lists them.
            managed.update(entry.arn for entry in _superseded_of(item, outcome))
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

    def _superseded(self, processed: Processed, now: datetime) -> list[SupersededInUse]:
        in_use: list[SupersededInUse] = []
        for item, outcome in processed:
            listed = _superseded_of(item, outcome)
            if not listed:
                continue
            current_arns = outcome.published.acm_arns if outcome.published is not None else item.get("acm_arns") or {}
            account_arns = (
                outcome.published.acm_account_arns
                if outcome.published is not None
                else account_arns_from_item(item.get("acm_account_arns"))
            )
            kept = []
            for entry in listed:
                now_in = current_arns if entry.account is None else account_arns.get(entry.account, {})
                found = self._still_in_use(outcome.id, entry, now, now_in.get(entry.region))
                if found is not False:
                    kept.append(entry)
                if isinstance(found, SupersededInUse):
                    in_use.append(found)
            if len(kept) < len(listed) and self.record_superseded is not None:
                try:
                    self.record_superseded(outcome.id, kept, listed)
                except Exception:
                    logger.exception(
                        "could not forget superseded ACM certificates", extra={"certificate_id": outcome.id}
                    )
        return in_use

    def _still_in_use(self, item_id: str, entry: SupersededArn, now: datetime, new_arn: Any) -> SupersededInUse | bool:
        """The superseded certificate's use, from DescribeCertificate; False: to be forgotten (unused, expired or
        gone); True: unknown this time (kept, not reported)."""
        log = {"certificate_id": item_id, "region": entry.region, "superseded_arn": entry.arn}
        if entry.role is not None:
            log |= {"account": entry.role.account, "role_arn": entry.role.arn}
        try:
            client = self._client_of(entry)
        except Exception:
            logger.exception("could not reach the account of a superseded ACM certificate; kept", extra=log)
            return True
        if client is None:
            return True
        try:
            described = client.describe_certificate(CertificateArn=entry.arn)["Certificate"]
        except client.exceptions.ResourceNotFoundException:
            logger.info("superseded ACM certificate is gone; forgotten", extra=log)
            return False
        except Exception:
            logger.exception("could not check a superseded ACM certificate", extra=log)
            return True
        users = tuple(described.get("InUseBy", []))
        not_after = described.get("NotAfter")
        if not users:
            logger.info("superseded ACM certificate is no longer in use; forgotten (not deleted)", extra=log)
            return False
        if (not_after is not None and not_after <= now) or described.get("Status") == "EXPIRED":
            logger.warning(
                "superseded ACM certificate expired while in use; forgotten", extra={**log, "in_use_by": users}
            )
            return False
        found = SupersededInUse(item_id, entry.region, entry.arn, new_arn if isinstance(new_arn, str) else None,
                                users, not_after, entry.account)  # fmt: skip
        logger.warning(
            "superseded ACM certificate is still in use: move its users to the new ARN before it expires",
            extra={
                **log,
                "arn": found.new_arn,
                "in_use_by": list(users),
                "not_after": not_after.isoformat() if not_after else None,
            },
        )
        return found

    def _client_of(self, entry: SupersededArn) -> ACMClient | None:
        """ACM where the superseded certificate is: the own account's, or the role's; None: not reachable here."""
        if entry.role is None:
            return self.acm_client_for_region(entry.region)
        if self.acm_client_for_role is None:
            return None
        return self.acm_client_for_role(entry.role, entry.region)


def _superseded_of(item: Mapping[str, Any], outcome: Outcome) -> tuple[SupersededArn, ...]:
    """The item's superseded ARNs now: as this run stored them, else as the item was read."""
    if outcome.published is not None:
        return outcome.published.superseded
    return superseded_from_item(item.get("superseded_arns"))


def _server_name(item: Mapping[str, Any], outcome: Outcome) -> str | None:
    """SNI for the handshake: the subject of the certificate now in force."""
    if outcome.published is not None:
        return outcome.published.domains[0]
    names = item.get("issued_domains") or item.get("domains")
    return names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None

"""Report stage: the outcome of every certificate in a run, and the metrics that alarms watch."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from acme_renewer.models import Replacement, SupersededArn


class Result(enum.Enum):
    RENEWED = "renewed"
    FAILED = "failed"
    NOT_DUE = "not_due"
    DISABLED = "disabled"
    BACKING_OFF = "backing_off"  # failed recently; waits for next_attempt_at
    PAUSED = "paused"  # too many consecutive failures; waits for the item to change
    LEASED = "leased"  # another run is renewing it right now
    DEFERRED = "deferred"  # due, but the run is too close to its deadline to start it; the next run takes it


@dataclass(frozen=True)
class Published:
    """The public facts of a certificate that landed: safe for logs and events, no key material."""

    domains: tuple[str, ...]
    serial: str
    not_after: datetime
    acm_arns: dict[str, str]
    secret_arn: str
    first_issuance: bool
    # The item's superseded ACM ARNs after this store, and the ones this store replaced (region, old, new, why).
    superseded: tuple[SupersededArn, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    # ARNs in other accounts (acm_accounts): account id -> region -> ARN.
    acm_account_arns: dict[str, dict[str, str]] = field(default_factory=dict)
    # The item's imports into ACM within 365 days, this one's included: region -> times.
    acm_imports: dict[str, tuple[datetime, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    failure_count: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class Outcome:
    id: str
    result: Result
    reason: str
    not_after: datetime | None = None  # the expiry in force after the run
    enabled: bool = True
    due: bool = False  # the run found it due (renewed, failed or left to another run's lease)
    duration_seconds: float | None = None  # from the decision to the stored result, for renewals
    propagation_seconds: float | None = None
    published: Published | None = None
    failure: Failure | None = None
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaleEndpoint:
    certificate_id: str
    endpoint: str
    detail: str


@dataclass(frozen=True)
class SupersededInUse:
    """A superseded ACM certificate of an item that ACM says is still in use: its users must move to `new_arn`."""

    certificate_id: str
    region: str
    arn: str
    new_arn: str | None  # the item's ARN in that region now; None when the item no longer imports there
    in_use_by: tuple[str, ...]
    not_after: datetime | None
    account: str | None = None  # the account holding it; None: the function's own


@dataclass(frozen=True)
class UnmanagedCertificate:
    arn: str
    region: str
    domain: str
    not_after: datetime


@dataclass(frozen=True)
class AcmUsage:
    """What the renewer uses of ACM's quotas in one region of its own account (report/quotas.py)."""

    region: str
    imported_certificates: int  # "Imported certificates"
    imports_last_365_days: int  # "Imported certificates in last 365 days"


# The quota metrics: each per region (dimension Region), and the region with the most without it, for the alarms.
ACM_QUOTA_METRICS: dict[str, Callable[[AcmUsage], int]] = {
    "AcmImportedCertificates": lambda usage: usage.imported_certificates,
    "AcmImportsLast365Days": lambda usage: usage.imports_last_365_days,
}


@dataclass
class RunReport:
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    # Whole-table facts, known only to a full run that saw every item; None otherwise.
    unmanaged_expiring: list[UnmanagedCertificate] | None = None
    stale_endpoints: list[StaleEndpoint] | None = None
    superseded_in_use: list[SupersededInUse] | None = None
    # A due-only run saw few items: the fleet figures come from the table's indexes instead.
    managed_certificates: int | None = None
    soonest_not_after: datetime | None = None
    # Items read from the table by this run (Scan, Query, GetItem).
    items_read: int | None = None
    # What the renewer's certificates use of ACM's quotas, per region; None but in a full run.
    acm_usage: list[AcmUsage] | None = None

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def min_days_until_expiry(self) -> float | None:
        """Over enabled certificates that have a certificate at all; None when there is none."""
        not_afters = [o.not_after for o in self.outcomes if o.enabled and o.not_after]
        if self.soonest_not_after is not None:
            not_afters.append(self.soonest_not_after)
        days = [(not_after - self.now).total_seconds() / 86400 for not_after in not_afters]
        return min(days) if days else None

    def merge(self, other: RunReport) -> RunReport:
        return RunReport(now=self.now, outcomes=[*self.outcomes, *other.outcomes])

    def emit(self, metrics: Metrics, *, whole_table: bool = True) -> None:
        """Counters are published as zeros too, so that every alarm has a data point to judge.

        `whole_table` is for the scheduled run, which saw every item: only then do the fleet-wide figures
        (managed count, smallest days left, drift, stale endpoints) mean anything.
        """
        count = MetricUnit.Count
        metrics.add_metric(name="CertificatesRenewed", unit=count, value=self.count(Result.RENEWED))
        metrics.add_metric(name="RenewalFailures", unit=count, value=self.count(Result.FAILED))
        metrics.add_metric(name="CertificatesDue", unit=count, value=sum(1 for o in self.outcomes if o.due))
        for outcome in self.outcomes:
            if outcome.duration_seconds is not None:
                metrics.add_metric(name="RenewalDuration", unit=MetricUnit.Seconds, value=outcome.duration_seconds)
            if outcome.propagation_seconds is not None:
                metrics.add_metric(
                    name="DnsPropagationSeconds", unit=MetricUnit.Seconds, value=outcome.propagation_seconds
                )
        if not whole_table:
            return
        managed = self.managed_certificates
        if managed is None:
            managed = sum(1 for o in self.outcomes if o.enabled)
        metrics.add_metric(name="ManagedCertificates", unit=count, value=managed)
        if (days := self.min_days_until_expiry) is not None:
            metrics.add_metric(name="MinDaysUntilExpiry", unit=count, value=round(days, 2))
        # Only a full run checks these; a due-only run leaves the alarms' last data point standing.
        if self.unmanaged_expiring is not None:
            metrics.add_metric(name="UnmanagedExpiringCertificates", unit=count, value=len(self.unmanaged_expiring))
        if self.stale_endpoints is not None:
            metrics.add_metric(name="StaleEndpoints", unit=count, value=len(self.stale_endpoints))
        if self.superseded_in_use is not None:
            metrics.add_metric(name="SupersededCertificatesInUse", unit=count, value=len(self.superseded_in_use))
        if self.acm_usage is not None:
            self._emit_acm_usage(metrics, self.acm_usage)

    @staticmethod
    def _emit_acm_usage(metrics: Metrics, usage: list[AcmUsage]) -> None:
        """One EMF document per region (its own Region dimension), and the highest region's figure with the
        run's other metrics: 0 when nothing is imported anywhere, so that the alarms always have a data point."""
        service = {"service": metrics.service} if metrics.service else {}
        for name, figure in ACM_QUOTA_METRICS.items():
            for entry in usage:
                with single_metric(
                    name=name,
                    unit=MetricUnit.Count,
                    value=figure(entry),
                    namespace=metrics.namespace,
                    default_dimensions=service,
                ) as metric:
                    metric.add_dimension(name="Region", value=entry.region)
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=max((figure(e) for e in usage), default=0))

    def as_dict(self) -> dict[str, Any]:
        min_days = self.min_days_until_expiry
        summary: dict[str, Any] = {
            "renewed": self.count(Result.RENEWED),
            "failed": self.count(Result.FAILED),
            **{result.value: self.count(result) for result in Result if result not in (Result.RENEWED, Result.FAILED)},
            "min_days_until_expiry": None if min_days is None else round(min_days, 2),
            "items_read": self.items_read,
            "certificates": [
                {
                    "id": o.id,
                    "result": o.result.value,
                    "reason": o.reason,
                    "not_after": o.not_after.isoformat() if o.not_after else None,
                }
                for o in self.outcomes
            ],
        }
        if self.unmanaged_expiring is not None:
            summary["unmanaged_expiring"] = [
                {"arn": u.arn, "region": u.region, "domain": u.domain, "not_after": u.not_after.isoformat()}
                for u in self.unmanaged_expiring
            ]
        if self.stale_endpoints is not None:
            summary["stale_endpoints"] = [
                {"id": s.certificate_id, "endpoint": s.endpoint, "detail": s.detail} for s in self.stale_endpoints
            ]
        if self.superseded_in_use is not None:
            summary["superseded_in_use"] = [
                {
                    "id": s.certificate_id,
                    "region": s.region,
                    "arn": s.arn,
                    "new_arn": s.new_arn,
                    "in_use_by": list(s.in_use_by),
                    "not_after": s.not_after.isoformat() if s.not_after else None,
                }
                | ({"account": s.account} if s.account else {})
                for s in self.superseded_in_use
            ]
        return summary

"""Report stage: the outcome of every certificate in a run, and the metrics that alarms watch."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


class Result(enum.Enum):
    RENEWED = "renewed"
    FAILED = "failed"
    NOT_DUE = "not_due"
    DISABLED = "disabled"
    BACKING_OFF = "backing_off"  # failed recently; waits for next_attempt_at
    PAUSED = "paused"  # too many consecutive failures; waits for the item to change
    LEASED = "leased"  # another run is renewing it right now


@dataclass(frozen=True)
class Outcome:
    id: str
    result: Result
    reason: str
    not_after: datetime | None = None  # the expiry in force after the run
    enabled: bool = True


@dataclass
class RunReport:
    now: datetime
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def min_days_until_expiry(self) -> float | None:
        """Over enabled certificates that have a certificate at all; None when there is none."""
        days = [(o.not_after - self.now).total_seconds() / 86400 for o in self.outcomes if o.enabled and o.not_after]
        return min(days) if days else None

    def merge(self, other: RunReport) -> RunReport:
        return RunReport(now=self.now, outcomes=[*self.outcomes, *other.outcomes])

    def emit(self, metrics: Metrics, *, include_expiry: bool = True) -> None:
        # Zeros are published too, so that an alarm always has a data point to judge.
        metrics.add_metric(name="CertificatesRenewed", unit=MetricUnit.Count, value=self.count(Result.RENEWED))
        metrics.add_metric(name="RenewalFailures", unit=MetricUnit.Count, value=self.count(Result.FAILED))
        if include_expiry and (days := self.min_days_until_expiry) is not None:
            metrics.add_metric(name="MinDaysUntilExpiry", unit=MetricUnit.Count, value=round(days, 2))

    def as_dict(self) -> dict[str, Any]:
        return {
            "renewed": self.count(Result.RENEWED),
            "failed": self.count(Result.FAILED),
            **{result.value: self.count(result) for result in Result if result not in (Result.RENEWED, Result.FAILED)},
            "min_days_until_expiry": None
            if self.min_days_until_expiry is None
            else round(self.min_days_until_expiry, 2),
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

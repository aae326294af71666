"""Report stage, EventBridge adapter: tell consumers that a certificate changed, so they can reload without polling.

Events carry names, serials, expiry and ARNs, never key material: consumers fetch the key from the secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.report.outcomes import Outcome, Result, StaleEndpoint

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

logger = Logger(service=SERVICE, child=True)

SOURCE = "acme-renewer"
ISSUED = "Certificate Issued"
RENEWED = "Certificate Renewed"
FAILED = "Certificate Renewal Failed"
REPLACED = "Certificate Replaced"
ENDPOINT_STALE = "Endpoint Stale"
_BATCH = 10  # PutEvents takes at most 10 entries


def outcome_event(outcome: Outcome) -> tuple[str, dict[str, Any]] | None:
    """(detail-type, detail) for an outcome worth telling, else None. A certificate imported into other accounts
    also has `acm_account_certificate_arns`: account id -> region -> ARN."""
    if outcome.result is Result.RENEWED and outcome.published is not None:
        published = outcome.published
        issued: dict[str, Any] = {
            "id": outcome.id,
            "domains": list(published.domains),
            "serial": published.serial,
            "not_after": published.not_after.isoformat(),
            "acm_certificate_arns": published.acm_arns,
            "secret_arn": published.secret_arn,
        }
        if published.acm_account_arns:  # only with acm_accounts: the events of other items stay as they were
            issued["acm_account_certificate_arns"] = published.acm_account_arns
        return (ISSUED if published.first_issuance else RENEWED), issued
    if outcome.result is Result.FAILED:
        detail: dict[str, Any] = {
            "id": outcome.id,
            "domains": list(outcome.domains),
            "error": outcome.reason,
            "not_after": outcome.not_after.isoformat() if outcome.not_after else None,
        }
        if outcome.failure is not None:
            detail["failure_count"] = outcome.failure.failure_count
            detail["next_attempt_at"] = outcome.failure.next_attempt_at.isoformat()
        return FAILED, detail
    return None


def replaced_events(outcome: Outcome) -> list[tuple[str, dict[str, Any]]]:
    """One event per region where the certificate went into a new ACM ARN because ACM refuses the re-import:
    whatever uses the old ARN keeps the old certificate until it is moved to the new one."""
    if outcome.result is not Result.RENEWED or outcome.published is None:
        return []
    published = outcome.published
    return [
        (
            REPLACED,
            {
                "id": outcome.id,
                "region": replacement.superseded.region,
                "old_acm_certificate_arn": replacement.superseded.arn,
                "new_acm_certificate_arn": replacement.new_arn,
                "reason": replacement.reason,
                "domains": list(published.domains),
                "serial": published.serial,
                "not_after": published.not_after.isoformat(),
            }
            # In another account (acm_accounts): which one; the ARNs name it too.
            | ({"account": replacement.superseded.account} if replacement.superseded.account else {}),
        )
        for replacement in published.replacements
    ]


def stale_endpoint_event(stale: StaleEndpoint) -> tuple[str, dict[str, Any]]:
    return ENDPOINT_STALE, {"id": stale.certificate_id, "endpoint": stale.endpoint, "detail": stale.detail}


class EventPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Best effort: a consumer's notification must never turn a stored certificate into a failure."""
        entries: list[PutEventsRequestEntryTypeDef] = [
            {"Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": self._bus}
            for detail_type, detail in events
        ]
        for start in range(0, len(entries), _BATCH):
            batch = entries[start : start + _BATCH]
            try:
                response = self._client.put_events(Entries=batch)
            except Exception:
                logger.exception("could not publish events", extra={"events": len(batch)})
                continue
            if response.get("FailedEntryCount"):
                failed = [e.get("ErrorCode") for e in response["Entries"] if e.get("ErrorCode")]
                logger.error("some events were not published", extra={"errors": failed})

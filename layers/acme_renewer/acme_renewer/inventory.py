"""Inventory: read the certificates table, decide what is due, and write each outcome back to its item."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from acme_renewer.models import CertificateRequest, CertificateState, IssuedCertificate, Status, StoredCertificate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_ERROR_LENGTH = 2000
_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


@dataclass(frozen=True)
class Decision:
    due: bool
    reason: str


def renewal_decision(request: CertificateRequest, state: CertificateState, now: datetime) -> Decision:
    """Due when never issued, when the names changed, or inside the renewal window.

    The default window is the last third of the certificate's lifetime (Let's Encrypt's own advice);
    `renew_before_days` on the item replaces it.
    """
    if state.not_after is None:
        return Decision(True, "never issued")
    if set(state.issued_domains) != set(request.domains):
        return Decision(True, "domains changed since the last issuance")
    remaining = state.not_after - now
    if request.renew_before_days is not None:
        window = timedelta(days=request.renew_before_days)
        rule = f"renew_before_days={request.renew_before_days}"
    elif state.not_before is not None:
        window = (state.not_after - state.not_before) / 3
        rule = "last third of the lifetime"
    else:
        return Decision(True, "item has not_after but no not_before; renewing to learn the lifetime")
    if remaining <= window:
        return Decision(True, f"{_days(remaining)} days left, inside the window ({rule})")
    return Decision(False, f"{_days(remaining)} days left, outside the window ({rule})")


def days_until(moment: datetime, now: datetime) -> float:
    return (moment - now).total_seconds() / 86400


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f}"


def state_from_item(item: Mapping[str, Any]) -> CertificateState:
    """Read what the renewer wrote earlier; a field it cannot read counts as absent, so the item gets re-issued."""
    return CertificateState(
        not_before=_parse_time(item.get("not_before")),
        not_after=_parse_time(item.get("not_after")),
        issued_domains=tuple(d for d in item.get("issued_domains", []) if isinstance(d, str)),
        acm_arns={k: v for k, v in (item.get("acm_arns") or {}).items() if isinstance(v, str)},
    )


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CertificateTable:
    """DynamoDB adapter for the certificates table. Items are plain dicts at this edge."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def items(self) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True):
            for raw in page.get("Items", []):
                yield {k: _deserializer.deserialize(v) for k, v in raw.items()}

    def record_success(
        self, item_id: str, certificate: IssuedCertificate, stored: StoredCertificate, now: datetime
    ) -> None:
        self._update(
            item_id,
            {
                "status": Status.ISSUED.value,
                "not_before": iso(certificate.not_before),
                "not_after": iso(certificate.not_after),
                "serial": certificate.serial,
                "issued_domains": list(certificate.domains),
                "acm_arns": stored.acm_arns,
                "secret_arn": stored.secret_arn,
                "secret_version_id": stored.secret_version_id,
                "last_attempt_at": iso(now),
                "last_renewed_at": iso(now),
            },
            remove=("last_error",),
        )

    def record_failure(
        self, item_id: str, error: str, now: datetime, acm_arns: Mapping[str, str] | None = None
    ) -> None:
        fields: dict[str, Any] = {
            "status": Status.FAILED.value,
            "last_error": error[:MAX_ERROR_LENGTH],
            "last_attempt_at": iso(now),
        }
        if acm_arns:
            # A partial store still created ARNs; keep them so the next run re-imports in place.
            fields["acm_arns"] = dict(acm_arns)
        self._update(item_id, fields)

    def _update(self, item_id: str, fields: Mapping[str, Any], remove: tuple[str, ...] = ()) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": _serializer.serialize(value) for i, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        if remove:
            names.update({f"#r{i}": name for i, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        # The condition keeps a certificate deleted during the run from coming back as a half item.
        self._client.update_item(
            TableName=self._table,
            Key={"id": {"S": item_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(id)",
        )

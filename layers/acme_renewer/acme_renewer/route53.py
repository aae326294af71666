"""DNS challenge stage, Route53 adapter: find the hosted zone, write and delete TXT values, wait for INSYNC."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.dns_challenge import TxtRecord, is_subdomain, merge_values
from acme_renewer.errors import DnsPropagationError, HostedZoneNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ChangeTypeDef

logger = Logger(service=SERVICE, child=True)


@dataclass(frozen=True)
class HostedZone:
    id: str  # without the /hostedzone/ prefix
    name: str  # lowercase, no trailing dot


def longest_matching_zone(name: str, zones: Sequence[HostedZone]) -> HostedZone:
    """The most specific zone wins: a delegated sub.example.com answers for its names, not example.com."""
    matches = [zone for zone in zones if is_subdomain(name, zone.name)]
    if not matches:
        raise HostedZoneNotFoundError(
            f"no public Route53 hosted zone contains {name!r}; "
            "create one or delegate the name to a zone this account owns"
        )
    longest = max(len(zone.name) for zone in matches)
    best = [zone for zone in matches if len(zone.name) == longest]
    if len(best) > 1:
        ids = ", ".join(sorted(zone.id for zone in best))
        raise HostedZoneNotFoundError(
            f"several public hosted zones are named {best[0].name!r} ({ids}); cannot tell which one is delegated"
        )
    return best[0]


def quote_txt(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote_txt(value: str) -> str:
    """Route53 returns each TXT value quoted; long values come as several quoted chunks."""
    chunks: list[str] = []
    current: list[str] = []
    inside = escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if inside:
                chunks.append("".join(current))
                current = []
            inside = not inside
        elif inside:
            current.append(char)
    return "".join(chunks) if chunks else value


class Route53Dns:
    """Writes challenge values into the longest matching public hosted zone.

    Values are merged with what is already on the name (another run may be validating the same
    name), and removal takes away only our values.
    """

    def __init__(
        self,
        client: Route53Client,
        *,
        ttl: int = 60,
        timeout_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._zones: list[HostedZone] | None = None

    def zones(self) -> list[HostedZone]:
        """Public zones, listed once per adapter (one run); private zones are invisible to the CA."""
        if self._zones is None:
            zones = []
            for page in self._client.get_paginator("list_hosted_zones").paginate():
                for zone in page["HostedZones"]:
                    if not zone.get("Config", {}).get("PrivateZone", False):
                        zones.append(HostedZone(zone["Id"].rsplit("/", 1)[-1], zone["Name"].rstrip(".").lower()))
            self._zones = zones
        return self._zones

    def zone_for(self, name: str) -> HostedZone:
        return longest_matching_zone(name, self.zones())

    def publish(self, records: list[TxtRecord]) -> None:
        change_ids = [
            self._change(zone, [self._upsert_or_delete(zone, name, add=values) for name, values in names.items()])
            for zone, names in self._by_zone(records).items()
        ]
        self._wait_insync(change_ids)

    def remove(self, records: list[TxtRecord]) -> None:
        for zone, names in self._by_zone(records).items():
            changes = [self._upsert_or_delete(zone, name, drop=values) for name, values in names.items()]
            self._change(zone, changes)

    def txt_values(self, zone: HostedZone, name: str) -> list[str]:
        """Current values of one TXT record set, unquoted, or [] when it does not exist."""
        record_set = self._record_set(zone, name)
        return [unquote_txt(r["Value"]) for r in record_set["ResourceRecords"]] if record_set else []

    def _by_zone(self, records: list[TxtRecord]) -> dict[HostedZone, dict[str, tuple[str, ...]]]:
        grouped: dict[HostedZone, dict[str, tuple[str, ...]]] = {}
        for name, values in merge_values(records).items():
            grouped.setdefault(self.zone_for(name), {})[name] = values
        return grouped

    def _record_set(self, zone: HostedZone, name: str) -> Any:
        response = self._client.list_resource_record_sets(
            HostedZoneId=zone.id, StartRecordName=name, StartRecordType="TXT", MaxItems="1"
        )
        for record_set in response["ResourceRecordSets"]:
            if record_set["Name"].rstrip(".").lower() == name and record_set["Type"] == "TXT":
                return record_set
        return None

    def _upsert_or_delete(
        self, zone: HostedZone, name: str, add: tuple[str, ...] = (), drop: tuple[str, ...] = ()
    ) -> ChangeTypeDef | None:
        current = self._record_set(zone, name)
        current_values = [unquote_txt(r["Value"]) for r in current["ResourceRecords"]] if current else []
        wanted = [v for v in current_values if v not in drop] + [v for v in add if v not in current_values]
        if wanted == current_values:
            return None
        if not wanted:
            # Route53 deletes only on an exact match of the record set as it stands.
            return {"Action": "DELETE", "ResourceRecordSet": current}
        return {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": name,
                "Type": "TXT",
                "TTL": self._ttl,
                "ResourceRecords": [{"Value": quote_txt(v)} for v in wanted],
            },
        }

    def _change(self, zone: HostedZone, changes: list[ChangeTypeDef | None]) -> str | None:
        batch = [c for c in changes if c is not None]
        if not batch:
            return None
        response = self._client.change_resource_record_sets(
            HostedZoneId=zone.id,
            ChangeBatch={"Comment": "acme-renewer dns-01", "Changes": batch},
        )
        logger.info("route53 change submitted", extra={"zone": zone.name, "changes": len(batch)})
        return response["ChangeInfo"]["Id"]

    def _wait_insync(self, change_ids: list[str | None]) -> None:
        """Poll GetChange with capped exponential backoff (boto's waiter sleeps 30 s between polls)."""
        deadline = self._clock() + self._timeout
        delay = 1.0
        for change_id in filter(None, change_ids):
            while self._client.get_change(Id=change_id)["ChangeInfo"]["Status"] != "INSYNC":
                if self._clock() + delay > deadline:
                    raise DnsPropagationError(f"Route53 change {change_id} was not INSYNC after {self._timeout:.0f} s")
                self._sleep(delay)
                delay = min(delay * 2, 15.0)

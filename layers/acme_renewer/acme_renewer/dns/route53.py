"""DNS challenge stage, Route53 adapter: follow CNAMEs, find the hosted zone, write and delete TXT values, wait for
INSYNC."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from acme_renewer import SERVICE
from acme_renewer.dns.challenge import CHALLENGE_LABEL, is_subdomain, merge_values
from acme_renewer.errors import DnsPropagationError, DnsPublishError, HostedZoneNotFoundError
from acme_renewer.models import Phase, PhaseObserver, Step, TxtRecord

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ChangeTypeDef

logger = Logger(service=SERVICE, child=True)


@dataclass(frozen=True)
class HostedZone:
    id: str  # without the /hostedzone/ prefix
    name: str  # lowercase, no trailing dot
    record_count: int = 0  # record sets in the zone, as ListHostedZones reported it
    private: bool = False  # never chosen by name: the CA cannot see it


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


# Route53's "Supported DNS record types", TXT: each quoted string of a value is at most 255 characters; a longer
# text is several strings (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html).
MAX_TXT_STRING = 255


def quote_txt(value: str) -> str:
    """A value as Route53 takes it: quoted and escaped, in strings of at most 255 characters (an ACME value is 43)."""
    strings = [value[i : i + MAX_TXT_STRING] for i in range(0, len(value), MAX_TXT_STRING)] or [""]
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in strings)


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


# ChangeResourceRecordSets limits per request; an UPSERT counts each value, and each character, twice.
MAX_RECORDS_PER_CHANGE = 1000
MAX_VALUE_CHARACTERS_PER_CHANGE = 32000
# ListResourceRecordSets returns at most 300 record sets per page.
RECORD_SETS_PER_PAGE = 300
# CNAMEs followed from _acme-challenge.<name> to where the TXT is written; the CA follows more, but a longer
# chain is far more likely a mistake than a design.
MAX_CNAME_HOPS = 3
# Seconds between GetChange polls: quick at first (a change often syncs within seconds), then every 10 s.
INSYNC_POLL_DELAYS = (1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 5.0)
INSYNC_POLL_MAX_DELAY = 10.0

# Called once per zone after INSYNC with the zone id and name -> the values that must be visible
# (propagation.PropagationCheck.wait_visible); returns the seconds it waited.
VisibilityCheck = Callable[[str, Mapping[str, Sequence[str]]], float]


class Route53Dns:
    """Writes challenge values into the longest matching public hosted zone (or the zone the item pins), a
    whole batch at a time; a challenge name that is a CNAME has its value written at the CNAME's target.

    Values are merged with what is already on the name (another run may be validating the same
    name), and removal takes away only our values. One publish or remove makes one
    ChangeResourceRecordSets per hosted zone (more only past Route53's per-request limits), and
    publish waits for all its changes together.
    """

    def __init__(
        self,
        client: Route53Client,
        *,
        ttl: int = 60,
        timeout_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        visibility_check: VisibilityCheck | None = None,
        on_phase: PhaseObserver | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._check = visibility_check
        # Told what publish is doing (writing, the wait for INSYNC) for a progress display; None: nobody asks.
        self._on_phase = on_phase
        self._zones: list[HostedZone] | None = None

    def all_zones(self) -> list[HostedZone]:
        """Every zone of the account, private ones too, listed once per adapter (one run)."""
        if self._zones is None:
            self._zones = [
                HostedZone(
                    zone["Id"].rsplit("/", 1)[-1],
                    zone["Name"].rstrip(".").lower(),
                    int(zone.get("ResourceRecordSetCount", 0)),
                    bool(zone.get("Config", {}).get("PrivateZone", False)),
                )
                for page in self._client.get_paginator("list_hosted_zones").paginate()
                for zone in page["HostedZones"]
            ]
        return self._zones

    def zones(self) -> list[HostedZone]:
        """Public zones: private zones are invisible to the CA."""
        return [zone for zone in self.all_zones() if not zone.private]

    def zone_for(self, name: str) -> HostedZone:
        return longest_matching_zone(name, self.zones())

    def pinned_zone(self, zone_id: str, name: str) -> HostedZone:
        """The zone an item's hosted_zone_id names, if it exists, is public and contains the name."""
        zone = next((zone for zone in self.all_zones() if zone.id == zone_id), None)
        if zone is None:
            raise HostedZoneNotFoundError(f"hosted_zone_id {zone_id!r} is not a Route53 hosted zone of this account")
        if zone.private:
            raise HostedZoneNotFoundError(
                f"hosted_zone_id {zone_id} is the private hosted zone {zone.name!r}; the CA validates over public "
                "DNS and cannot see it: pin the public zone of that name"
            )
        if not is_subdomain(name, zone.name):
            raise HostedZoneNotFoundError(
                f"hosted_zone_id {zone_id} is the zone {zone.name!r}, which does not contain {name!r}; "
                "pin the zone that does, or remove hosted_zone_id"
            )
        return zone

    def zone_of(self, record: TxtRecord) -> HostedZone:
        """Where the record's value is written: the pinned zone, else the longest matching public zone."""
        try:
            if record.zone_id is not None:
                return self.pinned_zone(record.zone_id, record.written_at)
            return self.zone_for(record.written_at)
        except HostedZoneNotFoundError as missing:
            if record.target is None:
                raise
            raise HostedZoneNotFoundError(f"{record.name} is a CNAME to {record.target}: {missing}") from None

    def resolve(self, records: list[TxtRecord]) -> list[TxtRecord]:
        """Follow each challenge name's CNAME chain (at most MAX_CNAME_HOPS) through the record sets of this
        account's zones, a hop for the whole batch at a time; records with a target already keep it.

        A name whose zone cannot be found stays as it is: publish reports that zone as missing.
        """
        ends: dict[tuple[str, str | None], str] = {(r.name, r.zone_id): r.name for r in records if r.target is None}
        following = list(ends)
        for _ in range(MAX_CNAME_HOPS):
            by_zone: dict[HostedZone, list[tuple[str, str | None]]] = {}
            for key in following:
                zone = self._lookup_zone(ends[key], key[1])
                if zone is not None:
                    by_zone.setdefault(zone, []).append(key)
            following = []
            for zone, keys in by_zone.items():
                cnames = self._current(zone, sorted({ends[key] for key in keys}), "CNAME")
                for key in keys:
                    values = cnames.get(ends[key], {}).get("ResourceRecords", [])
                    if values:
                        ends[key] = values[0]["Value"].rstrip(".").lower()
                        following.append(key)
            if not following:
                break
        resolved = []
        for record in records:
            end = ends.get((record.name, record.zone_id), record.name)
            resolved.append(replace(record, target=end) if end != record.name else record)
        if any(r.target for r in resolved):
            logger.info(
                "challenge names delegated by CNAME",
                extra={"targets": sorted({r.target for r in resolved if r.target})[:20]},
            )
        return resolved

    def _lookup_zone(self, name: str, pinned: str | None) -> HostedZone | None:
        """The zone to look for a CNAME on the name in: the pinned one if it contains the name, else the
        longest public match; None when there is none (the name is not ours, or is ambiguous)."""
        zones = self.zones()
        if pinned is not None:
            zones = [zone for zone in zones if zone.id == pinned and is_subdomain(name, zone.name)] or zones
        try:
            return longest_matching_zone(name, zones)
        except HostedZoneNotFoundError:
            return None

    def publish(self, records: list[TxtRecord]) -> None:
        """Write the values, then wait until every change is INSYNC (and visible, if checked).

        Raises DnsPublishError naming the records whose zone is missing or refused the change, after
        the others went out and synced; DnsPropagationError when the wait times out.
        """
        failures: list[tuple[list[TxtRecord], str]] = []
        submitted: list[tuple[HostedZone, dict[str, tuple[str, ...]], list[str]]] = []
        by_zone = self._by_zone(records, failures)
        if by_zone:
            self._phase(Phase(Step.PUBLISHING, records=sum(map(len, by_zone.values())), zones=len(by_zone)))
        for zone, zone_records in by_zone.items():
            names = merge_values(zone_records)
            try:
                current = self._current(zone, list(names))
                changes = [self._change_for(current.get(name), name, add=values) for name, values in names.items()]
                change_ids = self._submit(zone, changes)
            except (ClientError, BotoCoreError) as refused:
                failures.append((zone_records, f"Route53 refused the change in zone {zone.name!r}: {refused}"))
                continue
            submitted.append((zone, names, change_ids))
        self._wait_insync([change_id for _, _, ids in submitted for change_id in ids])
        if self._check is not None and submitted:
            self._phase(Phase(Step.CHECKING, zones=len(submitted)))
            for zone, names, _ in submitted:
                self._check(zone.id, names)
        if failures:
            raise DnsPublishError.of(failures)

    def remove(self, records: list[TxtRecord]) -> None:
        """Delete our values, one change per zone; no wait, nothing depends on the removal being live."""
        problems: list[str] = []
        for zone, zone_records in self._by_zone(records, []).items():
            names = merge_values(zone_records)
            try:
                current = self._current(zone, list(names))
                self._submit(
                    zone, [self._change_for(current.get(name), name, drop=values) for name, values in names.items()]
                )
            except (ClientError, BotoCoreError) as refused:
                problems.append(f"zone {zone.name!r}: {refused}")
        if problems:
            raise DnsPublishError("could not remove challenge values: " + "; ".join(problems), frozenset())

    def txt_values(self, zone: HostedZone, name: str) -> list[str]:
        """Current values of one TXT record set, unquoted, or [] when it does not exist."""
        record_set = self._current(zone, [name]).get(name)
        return [unquote_txt(r["Value"]) for r in record_set["ResourceRecords"]] if record_set else []

    def _by_zone(
        self, records: list[TxtRecord], failures: list[tuple[list[TxtRecord], str]]
    ) -> dict[HostedZone, list[TxtRecord]]:
        """Records grouped by the zone they are written in; those without one go to `failures`."""
        in_zone: dict[HostedZone, list[TxtRecord]] = {}
        for record in records:
            if record.target is not None and not record.target.startswith(CHALLENGE_LABEL + "."):
                # template.yaml lets the function change no other names; Route53 would refuse with AccessDenied.
                failures.append(
                    (
                        [record],
                        f"{record.name} is a CNAME to {record.target}, but the function may write only TXT records "
                        f"named {CHALLENGE_LABEL}.*: point the CNAME at {CHALLENGE_LABEL}.<a name in your zone>",
                    )
                )
                continue
            try:
                zone = self.zone_of(record)
            except HostedZoneNotFoundError as missing:
                failures.append(([record], str(missing)))
                continue
            in_zone.setdefault(zone, []).append(record)
        return in_zone

    def _current(
        self, zone: HostedZone, names: list[str], record_type: Literal["TXT", "CNAME"] = "TXT"
    ) -> dict[str, Any]:
        """The record sets of this type now on these names, read in as few calls as possible: one call per
        name, or the whole zone page by page when that takes fewer calls (a large batch in a small zone)."""
        pages = max(1, -(-zone.record_count // RECORD_SETS_PER_PAGE))
        if len(names) <= pages:
            found = {}
            for name in names:
                response = self._client.list_resource_record_sets(
                    HostedZoneId=zone.id, StartRecordName=name, StartRecordType=record_type, MaxItems="1"
                )
                for record_set in response["ResourceRecordSets"]:
                    if record_set["Name"].rstrip(".").lower() == name and record_set["Type"] == record_type:
                        found[name] = record_set
            return found
        wanted = set(names)
        found = {}
        for page in self._client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone.id):
            for record_set in page["ResourceRecordSets"]:
                name = record_set["Name"].rstrip(".").lower()
                if record_set["Type"] == record_type and name in wanted:
                    found[name] = record_set
        return found

    def _change_for(
        self, current: Any, name: str, add: tuple[str, ...] = (), drop: tuple[str, ...] = ()
    ) -> ChangeTypeDef | None:
        """The change that adds or drops our values on one name. Every other value goes back exactly as Route53
        holds it: joining someone's long value split into several strings would make one over 255 characters, and
        Route53 would refuse the zone's whole change."""
        records = [r["Value"] for r in current["ResourceRecords"]] if current else []
        present = [unquote_txt(record) for record in records]
        kept = [record for record, value in zip(records, present, strict=True) if value not in drop]
        wanted = kept + [quote_txt(value) for value in add if value not in present]
        if wanted == records:
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
                "ResourceRecords": [{"Value": record} for record in wanted],
            },
        }

    def _submit(self, zone: HostedZone, changes: list[ChangeTypeDef | None]) -> list[str]:
        """One ChangeResourceRecordSets per batch that fits Route53's limits; returns the change ids."""
        change_ids = []
        for batch in split_changes([c for c in changes if c is not None]):
            response = self._client.change_resource_record_sets(
                HostedZoneId=zone.id,
                ChangeBatch={"Comment": "acme-renewer dns-01", "Changes": batch},
            )
            logger.info("route53 change submitted", extra={"zone": zone.name, "changes": len(batch)})
            change_ids.append(response["ChangeInfo"]["Id"])
        return change_ids

    def _phase(self, phase: Phase) -> None:
        if self._on_phase is not None:
            self._on_phase(phase)

    def _wait_insync(self, change_ids: list[str]) -> None:
        """Poll GetChange until every change is INSYNC (boto's waiter sleeps 30 s between polls)."""
        began = self._clock()
        deadline = began + self._timeout
        pending = list(dict.fromkeys(change_ids))  # moto gives every change the same id
        polls = 0
        while pending:
            pending = [c for c in pending if self._client.get_change(Id=c)["ChangeInfo"]["Status"] != "INSYNC"]
            if not pending:
                return
            self._phase(Phase(Step.WAITING, changes=len(pending), seconds=self._clock() - began))
            delay = INSYNC_POLL_DELAYS[polls] if polls < len(INSYNC_POLL_DELAYS) else INSYNC_POLL_MAX_DELAY
            polls += 1
            if self._clock() + delay > deadline:
                raise DnsPropagationError(
                    f"Route53 change {', '.join(pending)} was not INSYNC after {self._timeout:.0f} s"
                )
            self._sleep(delay)


def split_changes(changes: list[ChangeTypeDef]) -> list[list[ChangeTypeDef]]:
    """Pack changes in order into requests within Route53's limits on values and characters."""
    batches: list[list[ChangeTypeDef]] = []
    records = characters = 0
    for change in changes:
        weight = 2 if change["Action"] == "UPSERT" else 1
        values = [r["Value"] for r in change["ResourceRecordSet"].get("ResourceRecords", [])]
        change_records = weight * len(values)
        change_characters = weight * sum(len(v) for v in values)
        if change_records > MAX_RECORDS_PER_CHANGE or change_characters > MAX_VALUE_CHARACTERS_PER_CHANGE:
            raise DnsPublishError(
                f"the TXT record {change['ResourceRecordSet']['Name']} has too many values for one Route53 change",
                frozenset({change["ResourceRecordSet"]["Name"]}),
            )
        if (
            not batches
            or records + change_records > MAX_RECORDS_PER_CHANGE
            or characters + change_characters > MAX_VALUE_CHARACTERS_PER_CHANGE
        ):
            batches.append([])
            records = characters = 0
        batches[-1].append(change)
        records += change_records
        characters += change_characters
    return batches

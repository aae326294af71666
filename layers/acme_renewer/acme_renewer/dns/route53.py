"""DNS challenge stage, Route53 adapter: follow CNAMEs, find the hosted zone, write and delete TXT values, wait for
INSYNC."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from acme_renewer import SERVICE
from acme_renewer.dns.challenge import CHALLENGE_LABEL, is_subdomain, merge_values
from acme_renewer.errors import DnsPropagationError, DnsPublishError, HostedZoneNotFoundError
from acme_renewer.models import Phase, PhaseObserver, Step, TxtRecord

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_route53.type_defs import ChangeTypeDef, ResourceRecordSetTypeDef

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


class NameAnswers(Protocol):
    """lookup.NameLookup: what DNS says of (zone, name) pairs, by (zone id, name), for the names it says hold
    nothing (`empty`) or are an explicit CNAME (`cname`, its target); the others are left out."""

    def look(self, pairs: Iterable[tuple[HostedZone, str]]) -> Mapping[tuple[str, str], DnsAnswer]: ...


class DnsAnswer(Protocol):
    @property
    def empty(self) -> bool: ...

    @property
    def cname(self) -> str | None: ...


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

    Reads are spent only where a write needs them. The CNAME lookup reads each challenge name's record set
    whatever its type, so it also learns which names hold no TXT; publish CREATEs those without reading again,
    and remove DELETEs exactly the record sets publish wrote. Both actions are conditional in Route53 (a CREATE
    of a name that exists, or a DELETE of a record set that differs, fails the whole change), so knowledge that
    went stale meanwhile (another run wrote the name) costs a fresh read and one more change, never a value of
    someone else's. UPSERT, which overwrites whatever is there, is sent only after a fresh read.
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
        dns_answers: NameAnswers | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._check = visibility_check
        # Told what publish is doing (writing, the wait for INSYNC) for a progress display; None: nobody asks.
        self._on_phase = on_phase
        # Asked before any Route53 read which challenge names hold nothing or are a CNAME (lookup.NameLookup, over
        # DNS); None: every name is read from Route53.
        self._dns_answers = dns_answers
        self._zones: list[HostedZone] | None = None
        # (zone id, name) -> the TXT record set this run last saw or wrote there, None when there was none.
        # Only ever acted on through CREATE and DELETE, which Route53 refuses when it no longer holds.
        self._known: dict[tuple[str, str], Any | None] = {}
        # False once Route53 refused a CREATE with AccessDenied in an account whose policy may predate CREATE.
        self._may_create = True
        self._upsert_when_create_denied = False

    def upsert_when_create_denied(self) -> None:
        """For an account reached by a zone role: its policy, written by its owner for an older version, may allow
        only UPSERT and DELETE. A CREATE it refuses (AccessDenied) is sent again as an UPSERT after a read, and so
        is every later write of the run. The function's own policy (template.yaml) allows CREATE, and there an
        AccessDenied is the zone's, reported at once."""
        self._upsert_when_create_denied = True

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
            # Not for a pinned zone (hosted_zone_id): public DNS may be answering for another zone of its name.
            told = self._told([(zone, ends[key]) for zone, keys in by_zone.items() for key in keys if key[1] is None])
            for zone, keys in by_zone.items():
                unknown = sorted({ends[key] for key in keys if (zone.id, ends[key]) not in told})
                found = self._challenge_sets(zone, unknown) if unknown else {}
                for key in keys:
                    answer, record_set = told.get((zone.id, ends[key])), found.get(ends[key])
                    if answer is not None and answer.cname is not None:
                        ends[key] = answer.cname
                        following.append(key)
                    elif record_set is not None and record_set["Type"] == "CNAME" and record_set["ResourceRecords"]:
                        ends[key] = record_set["ResourceRecords"][0]["Value"].rstrip(".").lower()
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

    def _told(self, pairs: list[tuple[HostedZone, str]]) -> dict[tuple[str, str], DnsAnswer]:
        """What DNS says of these (zone, name) pairs, for the names it says hold nothing (remembered as holding no
        TXT, so that publish CREATEs them without a read; a CREATE that turns out stale is refused by Route53 and
        read again: _apply) or are an explicit CNAME (followed without a read)."""
        if self._dns_answers is None or not pairs:
            return {}
        try:
            told = dict(self._dns_answers.look(pairs))
        except Exception:  # a lookup is an economy: without it, Route53 is read as before
            logger.exception("asking DNS about the challenge names failed")
            return {}
        self._known |= dict.fromkeys(key for key, answer in told.items() if answer.empty)
        return told

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
                change_ids = self._apply(zone, names, adding=True)
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
                self._apply(zone, names, adding=False)
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

    def _apply(self, zone: HostedZone, names: Mapping[str, tuple[str, ...]], *, adding: bool) -> list[str]:
        """Add (or drop) our values on these names of one zone; returns the change ids.

        A name whose record set this run already knows needs no read when the change is a CREATE or a DELETE; the
        others are read first. When Route53 refuses the change as stale (InvalidChangeBatch: a CREATE of a name
        that now exists, a DELETE of a record set that changed), every name is read afresh and the change sent
        once more; a second refusal is the caller's to report. See upsert_when_create_denied for a CREATE refused
        with AccessDenied.
        """
        change_ids: list[str] = []
        fresh = False
        while True:
            changes = self._changes(zone, names, adding=adding, fresh=fresh)
            try:
                # Into the list as each request is accepted: a refusal of a later one must not lose the ids of
                # the earlier ones, whose values the retry finds written and publish must still wait for.
                self._submit(zone, [change for _, change in changes], change_ids)
            except ClientError as refused:
                for name in names:
                    self._known.pop((zone.id, name), None)
                code = refused.response.get("Error", {}).get("Code")
                creating = any(change is not None and change["Action"] == "CREATE" for _, change in changes)
                if code == "AccessDenied" and creating and self._upsert_when_create_denied:
                    # The policy of a zone role written for older versions allows only UPSERT and DELETE; go on
                    # as they did (a read, then UPSERT) for the rest of the run.
                    logger.warning(
                        "Route53 refused a CREATE of challenge records: add CREATE to the "
                        "route53:ChangeResourceRecordSetsActions of the policy (see the README, Hosted zones in "
                        "other accounts); until then every write is read first",
                        extra={"zone": zone.name},
                    )
                    self._may_create = False
                elif fresh or code != "InvalidChangeBatch":
                    raise
                else:
                    logger.info("route53 refused a change as stale; reading again", extra={"zone": zone.name})
                fresh = True
                continue
            for name, change in changes:
                if change is not None:
                    written = change["ResourceRecordSet"]
                    self._known[zone.id, name] = None if change["Action"] == "DELETE" else written
            return change_ids

    def _changes(
        self, zone: HostedZone, names: Mapping[str, tuple[str, ...]], *, adding: bool, fresh: bool
    ) -> list[tuple[str, ChangeTypeDef | None]]:
        """The change of each name, from what this run knows of it where that makes a conditional change, else
        from a read."""
        changes: dict[str, ChangeTypeDef | None] = {}
        unknown: list[str] = []
        for name, values in names.items():
            key = (zone.id, name)
            if fresh or key not in self._known:
                unknown.append(name)
                continue
            change = self._change_for(self._known[key], name, values, adding=adding)
            if change is not None and change["Action"] == "UPSERT":
                unknown.append(name)  # it would overwrite what is there now: read it first
            else:
                changes[name] = change
        if unknown:
            current = self._current(zone, unknown)
            for name in unknown:
                self._known[zone.id, name] = current.get(name)
                changes[name] = self._change_for(current.get(name), name, names[name], adding=adding)
        return [(name, changes[name]) for name in names]

    def _challenge_sets(self, zone: HostedZone, names: list[str]) -> dict[str, Any]:
        """The CNAME or TXT record set on each of these names; a name with neither is missing from the answer.

        One read by name (StartRecordName, any type, MaxItems 1) or the zone page by page, as _current; Route53
        lists a name's record sets by type, and a name with a CNAME holds nothing else. What it learns of each
        name's TXT is remembered for publish. A name whose first record set is of another type is read again
        by type.
        """
        found: dict[str, Any] = {}
        if self._per_name(zone, names):
            unclear = []
            for name in names:
                response = self._client.list_resource_record_sets(
                    HostedZoneId=zone.id, StartRecordName=name, MaxItems="1"
                )
                first = next(iter(response["ResourceRecordSets"]), None)
                if first is None or first["Name"].rstrip(".").lower() != name:
                    self._known[zone.id, name] = None
                elif first["Type"] in ("CNAME", "TXT"):
                    found[name] = first
                    self._known[zone.id, name] = first if first["Type"] == "TXT" else None
                else:
                    unclear.append(name)
            if unclear:
                found |= self._current(zone, unclear, "CNAME")
                txt = self._current(zone, unclear, "TXT")
                found |= txt
                self._known |= {(zone.id, name): txt.get(name) for name in unclear}
            return found
        wanted = set(names)
        txt = {}
        for page in self._client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone.id):
            for record_set in page["ResourceRecordSets"]:
                name = record_set["Name"].rstrip(".").lower()
                if name in wanted and record_set["Type"] in ("CNAME", "TXT"):
                    found[name] = record_set
                    if record_set["Type"] == "TXT":
                        txt[name] = record_set
        self._known |= {(zone.id, name): txt.get(name) for name in names}
        return found

    @staticmethod
    def _per_name(zone: HostedZone, names: list[str]) -> bool:
        """Whether reading the names one by one takes fewer calls than reading the whole zone."""
        return len(names) <= max(1, -(-zone.record_count // RECORD_SETS_PER_PAGE))

    def _current(
        self, zone: HostedZone, names: list[str], record_type: Literal["TXT", "CNAME"] = "TXT"
    ) -> dict[str, Any]:
        """The record sets of this type now on these names, read in as few calls as possible: one call per
        name, or the whole zone page by page when that takes fewer calls (a large batch in a small zone)."""
        if self._per_name(zone, names):
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

    def _change_for(self, current: Any, name: str, values: tuple[str, ...], *, adding: bool) -> ChangeTypeDef | None:
        """The change that adds or drops our values on one name: CREATE where there is no record set, DELETE of
        the record set as it stands when nothing is left, else UPSERT. Every other value goes back exactly as
        Route53 holds it: joining someone's long value split into several strings would make one over 255
        characters, and Route53 would refuse the zone's whole change."""
        records = [r["Value"] for r in current["ResourceRecords"]] if current else []
        present = [unquote_txt(record) for record in records]
        kept = [record for record, value in zip(records, present, strict=True) if adding or value not in values]
        wanted = kept + [quote_txt(value) for value in values if adding and value not in present]
        if wanted == records:
            return None
        if not wanted:
            # Route53 deletes only on an exact match of the record set as it stands.
            return {"Action": "DELETE", "ResourceRecordSet": current}
        record_set: ResourceRecordSetTypeDef = {
            "Name": name,
            "Type": "TXT",
            "TTL": self._ttl,
            "ResourceRecords": [{"Value": record} for record in wanted],
        }
        if current or not self._may_create:
            return {"Action": "UPSERT", "ResourceRecordSet": record_set}
        return {"Action": "CREATE", "ResourceRecordSet": record_set}

    def _submit(self, zone: HostedZone, changes: list[ChangeTypeDef | None], change_ids: list[str]) -> None:
        """One ChangeResourceRecordSets per batch that fits Route53's limits; appends the change ids."""
        for batch in split_changes([c for c in changes if c is not None]):
            response = self._client.change_resource_record_sets(
                HostedZoneId=zone.id,
                ChangeBatch={"Comment": "acme-renewer dns-01", "Changes": batch},
            )
            logger.info("route53 change submitted", extra={"zone": zone.name, "changes": len(batch)})
            change_ids.append(response["ChangeInfo"]["Id"])

    def _phase(self, phase: Phase) -> None:
        if self._on_phase is not None:
            self._on_phase(phase)

    def _wait_insync(self, change_ids: list[str]) -> None:
        """Poll GetChange until every change is INSYNC (boto's waiter sleeps 30 s between polls).

        Oldest first, and a round ends at the first change still PENDING: changes submitted one after another
        sync in about that order, so the later ones would only answer PENDING too. Each change then costs the
        one poll that finds it INSYNC, plus one poll per round, rather than one per change per round. The order is
        an economy, not an assumption: every change is still seen INSYNC before publish returns.
        """
        began = self._clock()
        deadline = began + self._timeout
        pending = list(dict.fromkeys(change_ids))  # in submission order; moto gives every change the same id
        polls = 0
        while pending:
            while pending and self._client.get_change(Id=pending[0])["ChangeInfo"]["Status"] == "INSYNC":
                pending.pop(0)
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
        weight = 2 if change["Action"] == "UPSERT" else 1  # Route53 counts an UPSERT as a DELETE and a CREATE
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

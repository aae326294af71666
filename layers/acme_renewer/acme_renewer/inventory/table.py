"""Inventory: read the certificates table, lease one certificate at a time, and write each outcome back.

Each certificate is two items in the table (cert-manager's spec and status): the operator's **request**, keyed by
its id, which the renewer never writes, and the renewer's **status**, keyed `<id>#status`, which holds everything
the renewer knows (ARNs, expiry, journal, lease, failures). A put-item of the whole request, a console edit or an
update-item therefore cannot lose the renewer's state, and every stream record of a request is an operator's write.
Readers get one merged dict per certificate: the status's fields, then the request's on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from acme_renewer.inventory.validation import STATE_FIELDS, display_name
from acme_renewer.models import (
    AriState,
    CertificateState,
    IssuedCertificate,
    Status,
    StoredCertificate,
    SupersededArn,
    TxtRecord,
    ZoneRole,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_ERROR_LENGTH = 2000
# The status item of certificate `www` is `www#status` (ids cannot hold '#'), and carries `status_of = "www"`:
# the stream trigger's filter drops every record of an item that has it.
STATUS_SUFFIX = "#status"
STATUS_OF = "status_of"
# Before the split, the renewer wrote its state on the request item, marked `written_by`; such an item's state
# moves to its status item when first read (and from the stream's old image, see adopt_state).
LEGACY_MARK = "written_by"
BATCH_GET_LIMIT = 100
# The sparse indexes of template.yaml: items with `schedule` = SCHEDULED are in them, keyed by `due_at`
# (when the item is next due) and by `not_after`.
SCHEDULED = "renewal"
DUE_INDEX = "due"
EXPIRY_INDEX = "expiry"
_deserializer = TypeDeserializer()
_serializer = TypeSerializer()


def iso(moment: datetime) -> str:
    """ISO-8601 UTC to the second; such strings also sort in time order, which the lease condition relies on."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_from_item(item: Mapping[str, Any]) -> CertificateState:
    """Read what the renewer wrote earlier; a field it cannot read counts as absent, so the item gets re-issued."""
    failure_count = item.get("failure_count", 0)
    return CertificateState(
        not_before=parse_time(item.get("not_before")),
        not_after=parse_time(item.get("not_after")),
        issued_domains=tuple(d for d in item.get("issued_domains", []) if isinstance(d, str)),
        acm_arns={k: v for k, v in (item.get("acm_arns") or {}).items() if isinstance(v, str)},
        pending_order=_pending_order(item.get("pending_order")),
        pending_txt=tuple(
            TxtRecord(r["name"], r["value"], _str(r.get("target")), _str(r.get("zone_id")), _zone_role(r))
            for r in item.get("pending_txt") or []
            if isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("value"), str)
        ),
        issued_fingerprint=_str(item.get("issued_fingerprint")),
        attempt_fingerprint=_str(item.get("attempt_fingerprint")),
        failure_count=int(failure_count) if isinstance(failure_count, (int, Decimal)) else 0,
        next_attempt_at=parse_time(item.get("next_attempt_at")),
        ari=ari_from_item(item.get("ari")),
        superseded=superseded_from_item(item.get("superseded_arns")),
        acm_account_arns=account_arns_from_item(item.get("acm_account_arns")),
        secret_formats=tuple(f for f in item.get("secret_formats") or [] if isinstance(f, str)),
        secret_replicas=tuple(r for r in item.get("secret_replicas") or [] if isinstance(r, str)),
        acm_imports=imports_from_item(item.get("acm_imports")),
        legacy_pending_gone=item.get("legacy_pending_gone") is True,
    )


def imports_from_item(raw: Any) -> dict[str, tuple[datetime, ...]]:
    """The status's `acm_imports` (region -> ISO times of imports); what the renewer cannot read is left out."""
    if not isinstance(raw, dict):
        return {}
    found = {
        str(region): tuple(t for t in map(parse_time, times) if t is not None)
        for region, times in raw.items()
        if isinstance(times, list)
    }
    return {region: times for region, times in found.items() if times}


def imports_to_item(imports: Mapping[str, Sequence[datetime]]) -> dict[str, list[str]]:
    return {region: [iso(t) for t in times] for region, times in imports.items() if times}


def account_arns_from_item(raw: Any) -> dict[str, dict[str, str]]:
    """The status's `acm_account_arns` (account id -> region -> ARN); what the renewer cannot read is left out."""
    if not isinstance(raw, dict):
        return {}
    found = {
        str(account): {r: arn for r, arn in regions.items() if isinstance(r, str) and isinstance(arn, str)}
        for account, regions in raw.items()
        if isinstance(regions, dict)
    }
    return {account: regions for account, regions in found.items() if regions}


def superseded_from_item(raw: Any) -> tuple[SupersededArn, ...]:
    """The item's `superseded_arns`; an entry the renewer cannot read is left out."""
    entries = []
    for entry in raw if isinstance(raw, list) else []:
        replaced_at = parse_time(entry.get("replaced_at")) if isinstance(entry, dict) else None
        if replaced_at is not None and isinstance(entry.get("region"), str) and isinstance(entry.get("arn"), str):
            entries.append(SupersededArn(entry["region"], entry["arn"], replaced_at, _zone_role(entry)))
    return tuple(entries)


def superseded_to_item(entries: Sequence[SupersededArn]) -> list[dict[str, str]]:
    """An entry of another account carries its account and the role (and external id) that reaches it there."""
    return [
        {"region": e.region, "arn": e.arn, "replaced_at": iso(e.replaced_at)}
        | ({"account": e.role.account, "role_arn": e.role.arn} if e.role else {})
        | ({"external_id": e.role.external_id} if e.role and e.role.external_id else {})
        for e in entries
    ]


def ari_from_item(raw: Any) -> AriState | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("cert_id"), str):
        return None
    return AriState(
        cert_id=raw["cert_id"],
        window_start=parse_time(raw.get("window_start")),
        window_end=parse_time(raw.get("window_end")),
        explanation_url=_str(raw.get("explanation_url")),
        renew_at=parse_time(raw.get("renew_at")),
        checked_at=parse_time(raw.get("checked_at")),
        next_check_at=parse_time(raw.get("next_check_at")),
    )


def ari_to_item(state: AriState) -> dict[str, str]:
    """The `ari` map of the item; absent values are left out."""
    values = {
        "cert_id": state.cert_id,
        "window_start": state.window_start,
        "window_end": state.window_end,
        "explanation_url": state.explanation_url,
        "renew_at": state.renew_at,
        "checked_at": state.checked_at,
        "next_check_at": state.next_check_at,
    }
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in values.items() if v is not None}


def _pending_order(raw: Any) -> tuple[str, str] | None:
    if isinstance(raw, dict) and isinstance(raw.get("url"), str) and isinstance(raw.get("fingerprint"), str):
        return raw["url"], raw["fingerprint"]
    return None


def _zone_role(journaled: Mapping[str, Any]) -> ZoneRole | None:
    """The role a journaled value was written with (or a superseded ARN is reached with); journals from before
    zone roles have none (own account)."""
    arn = journaled.get("role_arn")
    return ZoneRole(arn, _str(journaled.get("external_id"))) if isinstance(arn, str) else None


def deserialize(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in raw.items()}


def _str(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None


def parse_time(raw: Any) -> datetime | None:
    """An ISO-8601 time with its zone, as the renewer writes them; anything else is None."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def status_id(item_id: str) -> str:
    return f"{item_id}{STATUS_SUFFIX}"


def is_status(item: Mapping[str, Any]) -> bool:
    return str(item.get("id", "")).endswith(STATUS_SUFFIX)


def state_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """The renewer's fields of an item (a merged view, or a request item from before the split)."""
    return {k: v for k, v in item.items() if k in STATE_FIELDS and k != LEGACY_MARK}


def request_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator owns: everything but the renewer's fields."""
    return {k: v for k, v in item.items() if k not in STATE_FIELDS and k != STATUS_OF}


def merged(request: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[str, Any]:
    """One dict per certificate: the status's fields, and the request's on top (its id wins)."""
    state = {k: v for k, v in (status or {}).items() if k not in ("id", STATUS_OF)}
    return {**state, **request}


class CertificateTable:
    """DynamoDB adapter for the certificates table: request items (the operator's) and status items (ours).

    Items are plain dicts at this edge; every read returns the merged view of a certificate.
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        # Items this adapter has read (Scan, Query, GetItem, BatchGetItem), for the run's report.
        self.items_read = 0
        # Status items whose request is gone, as the last full scan found them: deleted certificates.
        self.orphans: list[dict[str, Any]] = []

    def items(self) -> Iterator[dict[str, Any]]:
        """Every certificate: the daily full run. Status items without a request are kept in `orphans`."""
        requests: dict[str, dict[str, Any]] = {}
        statuses: dict[str, dict[str, Any]] = {}
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True):
            for raw in page.get("Items", []):
                self.items_read += 1
                item = deserialize(raw)
                if is_status(item):
                    statuses[str(item["id"]).removesuffix(STATUS_SUFFIX)] = item
                else:
                    requests[str(item.get("id"))] = item
        self.orphans = [status for item_id, status in statuses.items() if item_id not in requests]
        for item_id, request in requests.items():
            yield self._view(request, statuses.get(item_id))

    def due(self, now: datetime) -> Iterator[dict[str, Any]]:
        """The certificates due by `now`, from the sparse `due` index of status items: a scheduled run reads
        these and their requests, no others.

        The index is eventually consistent; the lease re-reads each item before anything is done with it.
        """
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="#schedule = :scheduled AND due_at <= :now",
            ExpressionAttributeNames={"#schedule": "schedule"},
            ExpressionAttributeValues={":scheduled": {"S": SCHEDULED}, ":now": {"S": iso(now)}},
        )
        for page in pages:
            found = [deserialize(raw) for raw in page.get("Items", [])]
            self.items_read += len(found)
            legacy = [item for item in found if not is_status(item)]  # request items from before the split
            statuses = {str(item[STATUS_OF]): item for item in found if is_status(item) and STATUS_OF in item}
            requests = self._get_many(list(statuses))
            for item_id, status in statuses.items():
                if item_id in requests:
                    yield self._view(requests[item_id], status)
                else:
                    self.retire(item_id, now)  # its request was deleted and the stream did not say so
            for request in legacy:
                yield self._view(request, None)

    def soonest_expiry(self) -> datetime | None:
        """The earliest not_after among scheduled (enabled) certificates, in one item read."""
        response = self._client.query(
            TableName=self._table,
            IndexName=EXPIRY_INDEX,
            KeyConditionExpression="#schedule = :scheduled",
            ExpressionAttributeNames={"#schedule": "schedule"},
            ExpressionAttributeValues={":scheduled": {"S": SCHEDULED}},
            ScanIndexForward=True,
            Limit=1,
        )
        self.items_read += len(response.get("Items", []))
        items = [deserialize(raw) for raw in response.get("Items", [])]
        return parse_time(items[0].get("not_after")) if items else None

    def approximate_count(self) -> int:
        """DynamoDB's count of the `expiry` index (every certificate issued and scheduled), refreshed by DynamoDB
        about every six hours; reads no item."""
        table = self._client.describe_table(TableName=self._table)["Table"]
        for index in table.get("GlobalSecondaryIndexes", []):
            if index.get("IndexName") == EXPIRY_INDEX:
                return int(index.get("ItemCount", 0))
        return 0

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The certificate's merged view; None when there is no request (never added, or deleted)."""
        found = self._get_many([item_id], statuses=True)
        request = found.get(item_id)
        return self._view(request, found.get(status_id(item_id))) if request is not None else None

    def get_status(self, item_id: str) -> dict[str, Any] | None:
        """The status item alone (a deleted certificate keeps it: what was issued, where it was stored)."""
        raw = self._client.get_item(TableName=self._table, Key=_status_key(item_id), ConsistentRead=True)
        self.items_read += 1 if "Item" in raw else 0
        return deserialize(raw["Item"]) if "Item" in raw else None

    def adopt_state(self, item_id: str, old_image: Mapping[str, Any]) -> bool:
        """A request item from before the split was overwritten (put-item, console edit): its old image still
        holds the renewer's state; keep it on the status item, unless one exists. True when it was kept."""
        state = state_fields(old_image)
        return bool(state) and self._create_status(item_id, state)

    def retire(self, item_id: str, now: datetime) -> bool:
        """The request was deleted on purpose: out of the due and expiry indexes (no renewal, no expiry alarm),
        `retired_at` set; the ARNs and the secret stay on the status item, so drift does not report them as
        unmanaged. A run holding the lease finishes first. False when there is no status (never issued)."""
        try:
            self._update(item_id, {"retired_at": iso(now)}, remove=("schedule", "due_at"), unleased_at=now, exists=True)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def set_schedule(self, item_id: str, due_at: datetime | None, *, scheduled: bool, now: datetime) -> bool:
        """Put the certificate in the due index at `due_at`, only in the expiry index (due_at None), or in neither
        (scheduled False: disabled). Not while a live run holds the lease: that run writes its own.
        Returns False when it is leased."""
        fields: dict[str, Any] = {}
        remove: tuple[str, ...] = ("schedule", "due_at")
        if scheduled:
            fields["schedule"] = SCHEDULED
            remove = ("due_at",)
            if due_at is not None:
                fields["due_at"] = iso(due_at)
                remove = ()
        try:
            self._update(item_id, fields, remove=remove, unleased_at=now)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_legacy_pending_gone(self, item_id: str) -> None:
        """The certificate's legacy `.pending` secret is deleted (or never was): `legacy_pending_gone` on its status,
        so that no later renewal sends another DeleteSecret for it."""
        self._update(item_id, {"legacy_pending_gone": True}, exists=True)

    def record_ari(self, item_id: str, state: AriState, now: datetime) -> bool:
        """Write what the CA said of the certificate's renewal (the status's `ari`), unless a live run holds the
        lease (it is renewing: its result replaces the map) or the certificate changed meanwhile."""
        try:
            self._update(item_id, {"ari": ari_to_item(state)}, unleased_at=now, ari_of=state.cert_id)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def set_superseded(self, item_id: str, entries: Sequence[SupersededArn], *, read: Sequence[SupersededArn]) -> bool:
        """Replace the status's `superseded_arns` (as `read`) with `entries`; False, writing nothing, when the list
        changed meanwhile (a renewal superseded another ARN) or the status is gone."""
        names = {"#superseded": "superseded_arns"}
        values: dict[str, Any] = {}
        if read:
            condition = "attribute_exists(id) AND #superseded = :read"
            values[":read"] = _serializer.serialize(superseded_to_item(read))
        else:
            condition = "attribute_exists(id) AND attribute_not_exists(#superseded)"
        if entries:
            values[":entries"] = _serializer.serialize(superseded_to_item(entries))
            expression = "SET #superseded = :entries"
        else:
            expression = "REMOVE #superseded"
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _status_key(item_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._client.update_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def acquire_lease(
        self, item_id: str, owner: str, now: datetime, until: datetime, request: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Take the certificate's lease unless another run holds an unexpired one; return its merged view with the
        status as it is now. `request`: the request as just read (consistently), so as not to read it again;
        without it, it is read. None when leased, or when the request is gone.

        The lease outlives one renewal, so a crashed run's lease simply expires and the next run goes on.
        """
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_status_key(item_id),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until, #of = :id",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeNames={"#of": STATUS_OF},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"S": iso(until)},
                    ":now": {"S": iso(now)},
                    ":id": {"S": item_id},
                },
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        current = request_fields(request) if request is not None else self._get_many([item_id]).get(item_id)
        if current is None:  # deleted meanwhile
            self.release_lease(item_id, owner)
            self.retire(item_id, now)
            return None
        return merged(current, deserialize(response["Attributes"]))

    def journal_txt(self, item_id: str, owner: str, records: list[TxtRecord]) -> None:
        """Record the challenge values about to be published (see dns/challenge.py's JournaledDns)."""
        journal = [
            {"name": r.name, "value": r.value}
            | ({"target": r.target} if r.target else {})
            | ({"zone_id": r.zone_id} if r.zone_id else {})
            | ({"role_arn": r.role.arn} if r.role else {})
            | ({"external_id": r.role.external_id} if r.role and r.role.external_id else {})
            for r in records
        ]
        self._update(item_id, {"pending_txt": journal}, owner=owner)

    def mark_pending_order(self, item_id: str, owner: str, order_url: str, request_fingerprint: str) -> None:
        self._update(item_id, {"pending_order": {"url": order_url, "fingerprint": request_fingerprint}}, owner=owner)

    def clear_txt_journal(self, item_id: str, owner: str) -> None:
        self._update(item_id, {}, remove=("pending_txt",), owner=owner)

    def release_lease(self, item_id: str, owner: str) -> None:
        self._update(item_id, {}, remove=("lease_owner", "lease_until"), owner=owner)

    def record_success(
        self,
        item_id: str,
        certificate: IssuedCertificate,
        stored: StoredCertificate,
        now: datetime,
        *,
        fingerprints: tuple[str, str],
        owner: str,
        due_at: datetime,
        warnings: Sequence[str] = (),
        secret_formats: Sequence[str] = (),
        secret_replicas: Sequence[str] = (),
    ) -> None:
        """`warnings`: the request's (validation.parse_item), written as `warnings`, or removed when there are none.
        `secret_formats`: the formats the secret was written in, as `secret_formats` (removed when none);
        `secret_replicas`: the regions it is replicated to, likewise."""
        issued_fingerprint, attempt_fingerprint = fingerprints
        facts = {
            "schedule": SCHEDULED,
            "due_at": iso(due_at),
            "status": Status.ISSUED.value,
            "not_before": iso(certificate.not_before),
            "not_after": iso(certificate.not_after),
            "serial": certificate.serial,
            "issued_domains": list(certificate.domains),
            "display_domains": [display_name(d) for d in certificate.domains],  # IDNs in Unicode, for people
            "acm_arns": stored.acm_arns,
            "secret_arn": stored.secret_arn,
            "secret_version_id": stored.secret_version_id,
            "issued_fingerprint": issued_fingerprint,
            "attempt_fingerprint": attempt_fingerprint,
            "failure_count": 0,
            "last_attempt_at": iso(now),
            "last_renewed_at": iso(now),
        }
        remove: tuple[str, ...] = (
            "last_error", "next_attempt_at", "lease_owner", "lease_until", "pending_order", "retired_at",
        )  # fmt: skip
        if warnings:
            facts["warnings"] = list(warnings)
        else:
            remove += ("warnings",)
        for name, values in (("secret_formats", secret_formats), ("secret_replicas", secret_replicas)):
            if values:
                facts[name] = list(values)
            else:
                remove += (name,)
        if certificate.ari_id is not None:
            # The new certificate's id, and no window yet: the next run that reads the item asks the CA.
            facts["ari"] = ari_to_item(AriState(certificate.ari_id))
        else:
            remove += ("ari",)
        if stored.superseded:
            facts["superseded_arns"] = superseded_to_item(stored.superseded)
        else:
            remove += ("superseded_arns",)
        if stored.acm_account_arns:
            facts["acm_account_arns"] = stored.acm_account_arns
        else:
            remove += ("acm_account_arns",)
        if stored.acm_imports:
            facts["acm_imports"] = imports_to_item(stored.acm_imports)
        try:
            self._update(item_id, facts, remove=remove, owner=owner)
        except self._client.exceptions.ConditionalCheckFailedException:
            # Our lease ran out and another run took it, while ACM and the secret already hold our certificate:
            # the status must still name it, unless the other run stored a newer one. Its lease stays untouched.
            self._update(item_id, facts, newer_than=certificate.not_after)

    def record_failure(
        self,
        item_id: str,
        error: str,
        now: datetime,
        *,
        attempt_fingerprint: str,
        failure_count: int,
        next_attempt_at: datetime,
        owner: str | None,
        due_at: datetime | None,
        acm_arns: Mapping[str, str] | None = None,
        warnings: Sequence[str] = (),
        superseded: Sequence[SupersededArn] = (),
        acm_account_arns: Mapping[str, Mapping[str, str]] | None = None,
        acm_imports: Mapping[str, Sequence[datetime]] | None = None,
    ) -> None:
        """`due_at` None: out of the due index (paused until the request changes), still in the expiry index.
        `warnings` as in record_success; `acm_imports`: the imports so far, a partial store's included."""
        fields: dict[str, Any] = {
            "schedule": SCHEDULED,
            "status": Status.FAILED.value,
            "last_error": error[:MAX_ERROR_LENGTH],
            "last_attempt_at": iso(now),
            "attempt_fingerprint": attempt_fingerprint,
            "failure_count": failure_count,
            "next_attempt_at": iso(next_attempt_at),
        }
        if due_at is not None:
            fields["due_at"] = iso(due_at)
        if acm_arns:
            # A partial store still created ARNs; keep them so the next run re-imports in place.
            fields["acm_arns"] = dict(acm_arns)
        if acm_account_arns:
            fields["acm_account_arns"] = {account: dict(arns) for account, arns in acm_account_arns.items()}
        if acm_imports:
            fields["acm_imports"] = imports_to_item(acm_imports)
        remove: tuple[str, ...] = ("lease_owner", "lease_until") if owner else ()
        if warnings:
            fields["warnings"] = list(warnings)
        else:
            remove += ("warnings",)
        if superseded:
            # ...and the ARNs it replaced, which are then still in use.
            fields["superseded_arns"] = superseded_to_item(superseded)
        self._update(item_id, fields, remove=remove if due_at is not None else (*remove, "due_at"), owner=owner)

    # --- reading ---

    def _view(self, request: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
        """The merged view; a request from before the split first hands its state to the status item."""
        legacy = state_fields(request)
        if legacy or LEGACY_MARK in request:
            if status is None and legacy and self._create_status(str(request["id"]), legacy):
                status = {"id": status_id(str(request["id"])), STATUS_OF: request["id"], **legacy}
            self._strip_legacy(str(request["id"]), [*legacy, *([LEGACY_MARK] if LEGACY_MARK in request else [])])
            request = request_fields(request)
        return merged(request, status)

    def _get_many(self, item_ids: list[str], *, statuses: bool = False) -> dict[str, dict[str, Any]]:
        """Request items by id (and their status items, keyed by status id, with `statuses`), consistently."""
        keys = [{"id": {"S": i}} for i in item_ids] + ([_status_key(i) for i in item_ids] if statuses else [])
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            pending: Mapping[str, Any] = {
                self._table: {"Keys": keys[start : start + BATCH_GET_LIMIT], "ConsistentRead": True}
            }
            while pending:
                response = self._client.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(self._table, []):
                    self.items_read += 1
                    item = deserialize(raw)
                    found[str(item["id"])] = item
                pending = response.get("UnprocessedKeys") or {}
        return found

    # --- writing ---

    def _create_status(self, item_id: str, state: Mapping[str, Any]) -> bool:
        item = {**state, "id": status_id(item_id), STATUS_OF: item_id}
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: _serializer.serialize(v) for k, v in item.items()},
                ConditionExpression="attribute_not_exists(id)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False  # a status exists already: it is newer than any copy of the state on the request
        return True

    def _strip_legacy(self, item_id: str, names: list[str]) -> None:
        """Take the renewer's fields off a request item; its request fields are not touched, so the stream
        function finds no request change in the record this makes."""
        if not names:
            return
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):  # deleted meanwhile
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": item_id}},
                UpdateExpression="REMOVE " + ", ".join(f"#r{i}" for i in range(len(names))),
                ExpressionAttributeNames={f"#r{i}": name for i, name in enumerate(names)},
                ConditionExpression="attribute_exists(id)",
            )

    def _update(
        self,
        item_id: str,
        fields: Mapping[str, Any],
        remove: tuple[str, ...] = (),
        owner: str | None = None,
        newer_than: datetime | None = None,
        unleased_at: datetime | None = None,
        ari_of: str | None = None,
        exists: bool = False,
    ) -> None:
        """Write the certificate's status item (created by the first write); the request item is never touched."""
        fields = {**fields, STATUS_OF: item_id}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": _serializer.serialize(value) for i, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        if remove:
            names.update({f"#r{i}": name for i, name in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        conditions = []
        if exists:
            conditions.append("attribute_exists(id)")
        if owner is not None:
            # Only while we hold the lease: a status whose lease another run took is that run's to write.
            conditions.append("lease_owner = :owner")
            values[":owner"] = {"S": owner}
        if newer_than is not None:
            # At least as new: a renewal within the second of the certificate before it has the same not_after.
            conditions.append("(attribute_not_exists(not_after) OR not_after <= :newer)")
            values[":newer"] = {"S": iso(newer_than)}
        if unleased_at is not None:
            conditions.append("(attribute_not_exists(lease_until) OR lease_until < :unleased)")
            values[":unleased"] = {"S": iso(unleased_at)}
        if ari_of is not None:
            conditions.append("#ari.#ari_id = :ari")
            names.update({"#ari": "ari", "#ari_id": "cert_id"})
            values[":ari"] = {"S": ari_of}
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _status_key(item_id),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
        self._client.update_item(**request)


def _status_key(item_id: str) -> dict[str, Any]:
    return {"id": {"S": status_id(item_id)}}

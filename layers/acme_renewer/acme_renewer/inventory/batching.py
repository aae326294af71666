"""Inventory stage, fan-out: cut what is due into batches that share zones, accounts and CA, and queue them.

The scheduled run is the planner: it reads the `due` index and sends each batch (ids only) as one SQS message;
the worker function renews one message's batch as one run (one Route53 change per zone, one DNS wait).
Nothing is leased here: the worker leases each certificate before ordering, so a message delivered twice, or
two batches holding one id, orders nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.errors import ConfigurationError, ItemValidationError
from acme_renewer.inventory.table import parse_time
from acme_renewer.inventory.validation import parse_item
from acme_renewer.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

logger = Logger(service=SERVICE, child=True)

# SendMessageBatch takes at most 10 entries (quotas-messages.html), and at most 1 MiB in all (sqs-batch-api.html,
# both under https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/); a message was limited to
# 256 KiB, and so was a whole batch, before SQS raised both. A call is kept to 256 KiB: true under either rule.
ENTRIES_PER_CALL = 10
BYTES_PER_CALL = 262_144
# A worker's message: {"version": 1, "ids": [...], "scan": ...}. An id is a DynamoDB partition key, at most 2,048
# bytes: 100 ids make at most about 205 KB, and ids of a few dozen characters (the usual) about 4 KB.
MESSAGE_VERSION = 1


@dataclass(frozen=True)
class Placement:
    """What a certificate's batch must share with it: the CA and account it orders from, the AWS accounts (zone
    roles) its challenges are written with, and its hosted zones, approximated without asking Route53."""

    ca: tuple[str, str]  # (ACME directory, EAB secret or "")
    accounts: tuple[str, ...]  # zone role ARNs, "" for the function's own account
    zones: tuple[str, ...]

    @property
    def packing(self) -> tuple[tuple[str, str], tuple[str, ...]]:
        """Groups of one CA and the same accounts may share a batch: one ACME account, one Route53 rate budget."""
        return self.ca, self.accounts


# An item that does not validate is still sent, to be failed (and recorded) by the worker like any other run would.
UNPARSABLE = Placement(("", ""), (), ())


def placement(item: Mapping[str, Any], settings: Settings) -> Placement:
    """The batch key of a due item. A challenge is written at `challenge_alias` when set, else at the name; its
    zone is `hosted_zone_id` when set, else the longest ZONE_ROLES key the name is under, else the name's last
    two labels (its registrable parent in most TLDs; in `co.uk` and the like it groups more than one zone, which
    only makes the group larger, never wrong: the worker finds the real zones)."""
    try:
        request = parse_item(item, settings)
    except ItemValidationError:
        return UNPARSABLE
    account = request.account
    ca = (account.directory_url, account.eab_secret or "") if account else (settings.acme_directory_url, "")
    zones, roles = set(), set()
    for domain in request.domains:
        name = request.challenge_alias or domain.removeprefix("*.")
        configured = settings.zone_roles.role_for(name)
        role = request.zone_role or configured
        roles.add(role.arn if role is not None else "")
        if request.hosted_zone_id:
            zones.add(request.hosted_zone_id)
        elif configured is not None:
            zones.add(next(zone for zone, r in settings.zone_roles.by_zone if _under(name, zone) and r == configured))
        else:
            zones.add(".".join(name.split(".")[-2:]))
    return Placement(ca, tuple(sorted(roles)), tuple(sorted(zones)))


def _under(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def pack(placed: Iterable[tuple[str, Placement]], batch_size: int) -> list[list[str]]:
    """Batches of at most `batch_size` ids. Ids of one placement stay together (a group larger than a batch
    fills whole batches first); groups of one CA and accounts fill the rest, largest first, each into the first
    batch it fits (first-fit decreasing). Deterministic: groups keep the order they were first seen in."""
    if batch_size < 1:
        raise ConfigurationError(f"BATCH_SIZE must be at least 1, got {batch_size}")
    groups: dict[Placement, list[str]] = {}
    for item_id, where in placed:
        members = groups.setdefault(where, [])
        if item_id not in members:
            members.append(item_id)
    by_packing: dict[Any, list[list[str]]] = {}
    for where, members in groups.items():
        by_packing.setdefault(where.packing, []).append(members)
    batches: list[list[str]] = []
    for packed in by_packing.values():
        open_batches: list[list[str]] = []
        for members in sorted(packed, key=len, reverse=True):  # sorted() is stable: ties keep their order
            whole = len(members) - len(members) % batch_size
            batches += [members[i : i + batch_size] for i in range(0, whole, batch_size)]
            rest = members[whole:]
            if not rest:
                continue
            fits = next((b for b in open_batches if len(b) + len(rest) <= batch_size), None)
            if fits is None:
                open_batches.append(list(rest))
            else:
                fits.extend(rest)
        batches += open_batches
    return batches


def plan(items: Iterable[Mapping[str, Any]], settings: Settings, now: datetime) -> list[list[str]]:
    """The batches of the due items; an item whose lease is live is being renewed and is left out."""
    placed = []
    for item in items:
        lease_until = parse_time(item.get("lease_until"))
        if lease_until is not None and lease_until > now:
            continue
        placed.append((str(item.get("id")), placement(item, settings)))
    return pack(placed, settings.batch_size)


def message_body(ids: Sequence[str], scan: str) -> str:
    return json.dumps({"version": MESSAGE_VERSION, "ids": list(ids), "scan": scan}, separators=(",", ":"))


def ids_of(body: str) -> list[str]:
    """The ids of a worker's message; ValueError names what is wrong with a body that is not ours."""
    message = json.loads(body)
    ids = message.get("ids") if isinstance(message, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValueError(f'a renewal message holds {{"ids": ["<item id>", ...]}}, got {body[:200]!r}')
    return ids


@dataclass(frozen=True)
class Dispatched:
    messages: int
    certificates: int
    failed_messages: int = 0


class RenewalQueue:
    """The fan-out queue: SendMessageBatch, at most 10 entries and 256 KiB a call."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, batches: Sequence[Sequence[str]], scan: str) -> Dispatched:
        """Send every batch; a batch SQS refuses stays in the `due` index for the next planner run (logged)."""
        sent = failed = certificates = 0
        for call in _calls([message_body(ids, scan) for ids in batches]):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "MessageBody": body} for index, body in call
            ]
            response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            for refused in response.get("Failed", []):
                failed += 1
                logger.error(
                    "SQS refused a batch; its certificates stay due for the next planner run",
                    extra={"code": refused.get("Code"), "error": refused.get("Message")},
                )
            for accepted in response.get("Successful", []):
                sent += 1
                certificates += len(batches[int(accepted["Id"])])
        logger.info("batches queued", extra={"messages": sent, "certificates": certificates, "refused": failed})
        return Dispatched(sent, certificates, failed)


def _calls(bodies: Sequence[str]) -> list[list[tuple[int, str]]]:
    """The bodies cut into SendMessageBatch calls of at most ENTRIES_PER_CALL entries and BYTES_PER_CALL bytes."""
    calls: list[list[tuple[int, str]]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if length > BYTES_PER_CALL:
            raise ConfigurationError(f"a batch's message is {length} bytes, above SQS's 262,144: lower BATCH_SIZE")
        if not calls or len(calls[-1]) == ENTRIES_PER_CALL or size + length > BYTES_PER_CALL:
            calls.append([])
            size = 0
        calls[-1].append((index, body))
        size += length
    return calls

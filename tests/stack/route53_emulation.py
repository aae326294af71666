"""Route53 propagation for the local stack: per-change ids, PENDING until a delay has passed, and the record sets
Route53's name servers would still serve meanwhile (what the DNS server, and so pebble, may see).

Pure logic with an injectable clock; moto_server.py wires it in front of moto, which applies every change at once.
"""

from __future__ import annotations

import math
import re
import secrets
import string
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from xml.etree import ElementTree
from xml.sax.saxutils import escape

# A record set exactly as boto3's ListResourceRecordSets returns it:
# {"Name": "x.example.test.", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"abc"'}]}
RecordSet = Mapping[str, Any]
# What one change in a batch replaces: (name, type, set identifier). Route53 changes whole record sets, so a key
# names everything one change can touch.
RecordKey = tuple[str, str, str | None]
ChangeStatus = Literal["PENDING", "INSYNC"]

ROUTE53_XMLNS = "https://route53.amazonaws.com/doc/2013-04-01/"
CHANGE_ID_PREFIX = "/change/"
HOSTED_ZONE_PREFIX = "/hostedzone/"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_CHANGE_ID_ALPHABET = string.ascii_uppercase + string.digits


def normalize(name: str) -> str:
    """Lowercase, absolute form of a DNS name: `Example.TEST` -> `example.test.`."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def check_delay(seconds: float) -> float:
    """A propagation delay as a float; refuses negative ones (and NaN) with a message that says so."""
    if not seconds >= 0:
        raise ValueError(f"a propagation delay must be zero or more seconds, not {seconds!r}")
    return float(seconds)


def record_key(record_set: RecordSet) -> RecordKey:
    """The key of a record set; Route53 lists `*` as `\\052`, so octal escapes are decoded first."""
    name = _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), str(record_set["Name"]))
    return normalize(name), str(record_set["Type"]).upper(), record_set.get("SetIdentifier")


def zone_id_of(value: str) -> str:
    """`/hostedzone/Z1` or `Z1` -> `Z1`: boto3 strips the prefix from paths, responses carry it."""
    return value.removeprefix(HOSTED_ZONE_PREFIX)


def change_id_of(value: str) -> str:
    """`/change/C1` or `C1` -> `C1`."""
    return value.removeprefix(CHANGE_ID_PREFIX)


# RFC 1035 §3.3: a <character-string> is a length octet and that many octets; Route53 refuses longer ones.
MAX_CHARACTER_STRING_BYTES = 255


def character_strings(value: str) -> list[bytes]:
    """Split one Route53 TXT (or SPF, CAA) value (`"a" "b"`, maybe unquoted) into its character-strings, whatever
    their length; ValueError on an unterminated quote.

    Escapes follow Route53: `\\"`, `\\\\` and three-digit *octal* codes such as `\\052`.
    """
    strings: list[bytes] = []
    i, n = 0, len(value)
    while i < n:
        if value[i].isspace():
            i += 1
            continue
        quoted = value[i] == '"'
        i += 1 if quoted else 0
        chunk = bytearray()
        while i < n and (value[i] != '"' if quoted else not value[i].isspace()):
            if value[i] == "\\" and i + 1 < n:
                octal = value[i + 1 : i + 4]
                if len(octal) == 3 and all(c in "01234567" for c in octal):
                    chunk.append(int(octal, 8))
                    i += 4
                    continue
                i += 1
            chunk += value[i].encode()
            i += 1
        if quoted:
            if i >= n:
                raise ValueError(f"unterminated quoted string in TXT value {value!r}")
            i += 1  # closing quote
        strings.append(bytes(chunk))
    return strings


@dataclass(frozen=True)
class ChangeBatch:
    """What a ChangeResourceRecordSets request touches, read from its XML body."""

    keys: tuple[RecordKey, ...]
    comment: str | None = None


def parse_change_batch(body: bytes) -> ChangeBatch:
    """Keys and comment of a ChangeResourceRecordSets body; raises ValueError on a body that is not one."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise ValueError(f"not a ChangeResourceRecordSets body: {error}") from error
    keys: list[RecordKey] = []
    for record_set in _elements(root, "ResourceRecordSet"):
        fields = {_local(child.tag): (child.text or "").strip() for child in record_set}
        if "Name" not in fields or "Type" not in fields:
            raise ValueError("a ResourceRecordSet in the change batch has no Name or Type")
        keys.append(record_key(fields))
    comments = [(element.text or "") for element in _elements(root, "Comment")]
    return ChangeBatch(keys=tuple(keys), comment=comments[0] if comments else None)


def _elements(root: ElementTree.Element, local_name: str) -> Iterator[ElementTree.Element]:
    """Elements by local name, whatever namespace the client wrote (botocore writes Route53's default one)."""
    return (element for element in root.iter() if _local(element.tag) == local_name)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass(frozen=True)
class Change:
    """One accepted ChangeResourceRecordSets, as GetChange reports it."""

    id: str  # "/change/C..." as Route53 writes it in ChangeInfo
    zone_id: str
    submitted_at: datetime
    propagation_seconds: float
    ready_at: float  # on the Propagation's clock
    comment: str | None = None


@dataclass
class _Pending:
    change: Change
    # The record sets each touched key had just before the change; an empty list for a name it created.
    before: dict[RecordKey, list[RecordSet]] = field(default_factory=dict)


class Propagation:
    """Tracks changes until they are in sync and says what the name servers serve meanwhile.

    A key touched by pending changes is served as it was before the oldest of them that no later in-sync change
    on that key has overtaken (changes are in sync in submission order unless the delay was lowered in between).
    The delay applies to changes submitted after it is set; submitted ones keep their own.
    """

    def __init__(
        self,
        delay_seconds: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._delay = 0.0
        self.delay_seconds = delay_seconds
        self._changes: dict[str, Change] = {}
        self._pending: list[_Pending] = []

    @property
    def delay_seconds(self) -> float:
        return self._delay

    @delay_seconds.setter
    def delay_seconds(self, seconds: float) -> None:
        self._delay = check_delay(seconds)

    @property
    def active(self) -> bool:
        """Whether changes need tracking: a delay is set, or changes made under an earlier delay are pending."""
        self._prune()
        return self._delay > 0 or bool(self._pending)

    def submit(
        self, zone_id: str, before: Mapping[RecordKey, Sequence[RecordSet]], comment: str | None = None
    ) -> Change:
        """Record a change already applied to moto; `before` holds the touched keys' record sets prior to it."""
        change = Change(
            id=CHANGE_ID_PREFIX + self._new_id(),
            zone_id=zone_id_of(zone_id),
            submitted_at=self._wall_clock(),
            propagation_seconds=self._delay,
            ready_at=self._clock() + self._delay,
            comment=comment,
        )
        self._changes[change_id_of(change.id)] = change
        self._pending.append(_Pending(change, {key: list(record_sets) for key, record_sets in before.items()}))
        self._prune()
        return change

    def change(self, change_id: str) -> Change | None:
        """A change submitted here, by `/change/C..` or `C..`; None for ids we did not hand out."""
        return self._changes.get(change_id_of(change_id))

    def settled_until(self) -> float:
        """Until when (on this Propagation's clock) the served view stays as it is now, writes aside: the moment
        the next pending change is in sync (infinity when none is pending)."""
        return min(
            (pending.change.ready_at for pending in self._pending if pending.change.ready_at > self._clock()),
            default=math.inf,
        )

    def now(self) -> float:
        return self._clock()

    def status(self, change: Change) -> ChangeStatus:
        return "INSYNC" if self._clock() >= change.ready_at else "PENDING"

    def served(self, zone_id: str, current: Sequence[RecordSet]) -> list[RecordSet]:
        """The zone's record sets as the name servers answer now: moto's `current` ones, with every key that
        pending changes touched shown as it was before them."""
        self._prune()
        zone_id = zone_id_of(zone_id)
        hidden: dict[RecordKey, list[RecordSet]] = {}
        for pending in self._pending:  # oldest first: its "before" is what is still served
            if pending.change.zone_id == zone_id:
                for key, record_sets in pending.before.items():
                    hidden.setdefault(key, record_sets)
        if not hidden:
            return list(current)
        kept = [record_set for record_set in current if record_key(record_set) not in hidden]
        return kept + [record_set for record_sets in hidden.values() for record_set in record_sets]

    def _prune(self) -> None:
        """Forget changes that are in sync; an in-sync change also settles its keys for older pending ones."""
        now = self._clock()
        still_pending: list[_Pending] = []
        for pending in self._pending:
            if now < pending.change.ready_at:
                still_pending.append(pending)
                continue
            for older in still_pending:
                if older.change.zone_id == pending.change.zone_id:
                    for key in pending.before:
                        older.before.pop(key, None)
        self._pending = still_pending

    def _new_id(self) -> str:
        """Shaped like Route53's (`C` and 13 capitals or digits), and unique within this stack."""
        while True:
            candidate = "C" + "".join(secrets.choice(_CHANGE_ID_ALPHABET) for _ in range(13))
            if candidate not in self._changes:
                return candidate


def change_info_xml(
    response: Literal["ChangeResourceRecordSetsResponse", "GetChangeResponse"], change: Change, status: ChangeStatus
) -> bytes:
    """The body Route53 answers both operations with: a ChangeInfo."""
    submitted = change.submitted_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    comment = f"<Comment>{escape(change.comment)}</Comment>" if change.comment is not None else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{response} xmlns="{ROUTE53_XMLNS}"><ChangeInfo>'
        f"<Id>{escape(change.id)}</Id><Status>{status}</Status><SubmittedAt>{submitted}</SubmittedAt>{comment}"
        f"</ChangeInfo></{response}>"
    ).encode()

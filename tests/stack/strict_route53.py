"""Strict layer, Route53: a TXT character-string is at most 255 characters, or the whole change is refused; a CREATE
of a record set that exists, or a DELETE of one that is not there exactly so, is refused too.

Route53's "Supported DNS record types", TXT record type
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat): a TXT value is
one or more strings in double quotation marks, each at most 255 characters; a longer text is written as several
strings (`"first 255 characters" "the rest"`). A ChangeResourceRecordSets holding a longer string fails as a whole
with InvalidChangeBatch, in these words (as botocore reports it, e.g. https://github.com/boto/boto3/issues/1462):
`[Invalid Resource Record: 'FATAL problem: CharacterStringTooLong (Value is too long) encountered with '<value>'']`.
moto 5 accepts any length.

CREATE and DELETE are conditional. ChangeResourceRecordSets
(https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html): "To delete a resource
record set, you must specify all the same values that you specified when you created it", and a change batch is
transactional: "If validation for either the DELETE or the CREATE action fails, then the request is canceled".
API_Change.html: CREATE "creates a resource record set that has the specified values", UPSERT creates or updates.
AWS answers InvalidChangeBatch, as `Tried to create resource record set [name='x.example.com.', type='TXT'] but it
already exists` and `Tried to delete resource record set [name='x.example.com.', type='TXT'] but it was not found`
(e.g. https://github.com/hashicorp/terraform/issues/342), or `... but the values provided do not match the current
values`. moto 5 lets a CREATE overwrite an existing record set, and answers a DELETE whose values differ with a
misleading InvalidInput, or accepts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from werkzeug.test import EnvironBuilder

from tests.stack.aws_calls import AwsCall
from tests.stack.route53_emulation import (
    MAX_CHARACTER_STRING_BYTES,
    ROUTE53_XMLNS,
    character_strings,
    normalize,
    zone_id_of,
)
from tests.stack.strict import Moto, Refusal

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

_TEXT_TYPES = ("TXT", "SPF")


def refuse(call: AwsCall, environ: WSGIEnvironment, body: bytes, moto: Moto) -> Refusal | None:
    """InvalidChangeBatch for a change batch with a TXT (or SPF) value holding a string over 255 characters."""
    if call.service != "route53" or call.operation != "ChangeResourceRecordSets":
        return None
    values = too_long_values(body)
    if not values:
        return None
    message = (
        "[Invalid Resource Record: 'FATAL problem: CharacterStringTooLong (Value is too long) "
        f"encountered with '{values[0]}'']"
    )
    return Refusal.xml("InvalidChangeBatch", message, ROUTE53_XMLNS)


def too_long_values(body: bytes) -> list[str]:
    """The TXT and SPF values of a ChangeResourceRecordSets body with a character-string over 255 bytes.

    A body that is not XML, or a value with an unterminated quote, is left to moto: other rules, other errors.
    """
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    found = []
    for record_set in root.iterfind(".//{*}ResourceRecordSet"):
        if (record_set.findtext("{*}Type") or "").strip().upper() not in _TEXT_TYPES:
            continue
        for element in record_set.iterfind("{*}ResourceRecords/{*}ResourceRecord/{*}Value"):
            value = element.text or ""
            try:
                strings = character_strings(value)
            except ValueError:
                continue
            if any(len(string) > MAX_CHARACTER_STRING_BYTES for string in strings):
                found.append(value)
    return found


def conditional_changes(call: AwsCall, environ: WSGIEnvironment, body: bytes, moto: Moto) -> Refusal | None:
    """InvalidChangeBatch for a CREATE of a record set that exists (or of a name holding a CNAME), or a DELETE of
    one that does not exist with exactly these TTL and values, taking the batch's changes in order (a DELETE and a
    CREATE of one name in one batch is how a record set was replaced before UPSERT). Weighted, alias and other
    routing record sets are left to moto."""
    if call.service != "route53" or call.operation != "ChangeResourceRecordSets":
        return None
    try:
        changes = _simple_changes(ElementTree.fromstring(body))
    except ElementTree.ParseError:
        return None
    zone_id = zone_id_of(call.labels.get("Id", ""))
    state: dict[tuple[str, str], _Set | None] = {}
    for action, record_set in changes:
        name, kind = record_set.name, record_set.type
        for key in ((name, kind), (name, "CNAME")):
            if key not in state:
                state[key] = _moto_record_set(zone_id, *key, environ, moto)
        where = f"[name='{name}', type='{kind}']"
        if action == "CREATE":
            if state[name, kind] is not None:
                message = f"Tried to create resource record set {where} but it already exists"
                return Refusal.xml("InvalidChangeBatch", message, ROUTE53_XMLNS)
            if kind != "CNAME" and state[name, "CNAME"] is not None:
                message = (
                    f"RRSet of type {kind} with DNS name {name} is not permitted because a conflicting RRSet of "
                    f"type CNAME with the same DNS name already exists in zone {zone_id}."
                )
                return Refusal.xml("InvalidChangeBatch", message, ROUTE53_XMLNS)
            state[name, kind] = record_set
        elif action == "DELETE":
            current = state[name, kind]
            if current is None:
                message = f"Tried to delete resource record set {where} but it was not found"
                return Refusal.xml("InvalidChangeBatch", message, ROUTE53_XMLNS)
            if (current.ttl, sorted(current.values)) != (record_set.ttl, sorted(record_set.values)):
                message = (
                    f"Tried to delete resource record set {where} "
                    "but the values provided do not match the current values"
                )
                return Refusal.xml("InvalidChangeBatch", message, ROUTE53_XMLNS)
            state[name, kind] = None
        else:
            state[name, kind] = record_set
    return None


class _Set:
    """A simple record set as a change names it or moto lists it."""

    def __init__(self, name: str, kind: str, ttl: str, values: list[str]) -> None:
        self.name, self.type, self.ttl, self.values = normalize(name), kind.upper(), ttl.strip(), values


def _simple_changes(root: ElementTree.Element) -> list[tuple[str, _Set]]:
    """(action, record set) of every change; empty when one of them is not a simple record set."""
    found = []
    for change in root.iterfind(".//{*}Change"):
        record_set = change.find("{*}ResourceRecordSet")
        if record_set is None or any(
            record_set.find(f"{{*}}{field}") is not None
            for field in ("SetIdentifier", "AliasTarget", "TrafficPolicyInstanceId")
        ):
            return []
        values = [(v.text or "") for v in record_set.iterfind("{*}ResourceRecords/{*}ResourceRecord/{*}Value")]
        found.append(
            (
                (change.findtext("{*}Action") or "").strip().upper(),
                _Set(
                    record_set.findtext("{*}Name") or "",
                    record_set.findtext("{*}Type") or "",
                    record_set.findtext("{*}TTL") or "",
                    values,
                ),
            )
        )
    return found


def _moto_record_set(zone_id: str, name: str, kind: str, environ: WSGIEnvironment, moto: Moto) -> _Set | None:
    """The record set moto holds at (name, type), asked with the caller's headers (they pick moto's account)."""
    headers = [
        (key[len("HTTP_") :].replace("_", "-"), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_") and key != "HTTP_CONTENT_LENGTH"
    ]
    query: Any = {"name": name, "type": kind, "maxitems": "1"}
    builder = EnvironBuilder(
        method="GET", path=f"/2013-04-01/hostedzone/{zone_id}/rrset", query_string=query, headers=headers
    )
    answer = moto(builder.get_environ())
    if answer.code != 200:
        return None
    try:
        root = ElementTree.fromstring(answer.body)
    except ElementTree.ParseError:
        return None
    for record_set in root.iterfind(".//{*}ResourceRecordSet"):
        listed = _Set(
            record_set.findtext("{*}Name") or "",
            record_set.findtext("{*}Type") or "",
            record_set.findtext("{*}TTL") or "",
            [(v.text or "") for v in record_set.iterfind("{*}ResourceRecords/{*}ResourceRecord/{*}Value")],
        )
        if (listed.name, listed.type) == (name, kind) and record_set.find("{*}SetIdentifier") is None:
            return listed
    return None

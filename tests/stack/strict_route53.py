"""Strict layer, Route53: a TXT character-string is at most 255 characters, or the whole change is refused.

Route53's "Supported DNS record types", TXT record type
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/ResourceRecordTypes.html#TXTFormat): a TXT value is
one or more strings in double quotation marks, each at most 255 characters; a longer text is written as several
strings (`"first 255 characters" "the rest"`). A ChangeResourceRecordSets holding a longer string fails as a whole
with InvalidChangeBatch, in these words (as botocore reports it, e.g. https://github.com/boto/boto3/issues/1462):
`[Invalid Resource Record: 'FATAL problem: CharacterStringTooLong (Value is too long) encountered with '<value>'']`.
moto 5 accepts any length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree import ElementTree

from tests.stack.aws_calls import AwsCall
from tests.stack.route53_emulation import MAX_CHARACTER_STRING_BYTES, ROUTE53_XMLNS, character_strings
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

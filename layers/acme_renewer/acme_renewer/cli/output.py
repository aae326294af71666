"""Operator CLI, output: what the commands print, as aligned text on stdout or as JSON."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import Binary

from acme_renewer.inventory.table import parse_time
from acme_renewer.report.outcomes import Result


def label(result: Result) -> str:
    return result.value.replace("_", " ")


def is_key(result: Result) -> bool:
    """The summary always shows these two, zero or not."""
    return result in (Result.RENEWED, Result.FAILED)


def status_of(item: Mapping[str, Any]) -> str:
    status = str(item.get("status") or "-")
    return f"{status} (disabled)" if item.get("enabled") is False else status


def expiry_order(item: Mapping[str, Any], now: datetime) -> tuple[bool, float, str]:
    """Never-issued first, then by days left."""
    not_after = parse_time(item.get("not_after"))
    return (not_after is not None, days_left(not_after, now) if not_after else 0.0, str(item.get("id")))


def days_left(moment: datetime, now: datetime) -> float:
    return (moment - now).total_seconds() / 86400


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def shorten_names(names: list[str], width: int) -> str:
    """As many whole names as fit, then `+N more`."""
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = ", ".join([*shown, name]) + (f", +{rest} more" if rest else "")
        if shown and len(candidate) > width:
            return ", ".join(shown) + f", +{len(names) - index} more"
        shown.append(name)
    return ", ".join(shown) or "-"


def show_value(value: Any) -> str:
    plain = plain_json(value)
    return plain if isinstance(plain, str) else json.dumps(plain)


def plain_json(value: Any) -> Any:
    """DynamoDB values as JSON values: numbers as int or float, sets as sorted lists, binary as base64."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain_json(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, Binary):
        value = bytes(cast(Any, value))  # boto3-stubs type Binary.__bytes__ as returning str
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def to_json(value: Any) -> str:
    return json.dumps(plain_json(value), indent=2, sort_keys=True)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def out(line: str) -> None:
    print(line, file=sys.stdout)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)

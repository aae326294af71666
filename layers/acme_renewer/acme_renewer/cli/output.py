"""Operator CLI, output: what the commands print, as aligned text on stdout or as JSON."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


ELLIPSIS = "…"
# A DNS name as errors quote it ('_acme-challenge.www.example.com'), or bare: at least one dot between labels.
QUOTED_NAME = re.compile(r"'(\*?[\w-]+(?:\.[\w-]+)+\.?)'")
BARE_NAME = re.compile(r"\*?[\w-]+(?:\.[\w-]+)+")


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def shorten_middle(text: str, width: int) -> str:
    """Both ends kept, the middle cut: a long name keeps its zone, a long id its distinguishing tail."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def named_in(text: str) -> str | None:
    """The DNS name an error is about: the first quoted one, else the first bare one."""
    found = QUOTED_NAME.search(text) or BARE_NAME.search(text)
    return found.group(0) if found else None


def shorten_error(text: str, width: int) -> str:
    """An error cut to the width, keeping the name it is about (the hosted zone or domain that failed) whole
    where it fits, with as much as fits of the words before it (what went wrong) and after it."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    name = named_in(text)
    if name is None:
        return shorten_middle(text, width)
    if len(name) > width:
        # The end of a name is its zone, what the operator looks for first.
        return ELLIPSIS + name[len(name) - width + 1 :]
    start = text.index(name)
    before, after = text[:start], text[start + len(name) :]
    budget = width - len(name)
    # What went wrong comes first; the rest of the room goes to what follows the name.
    keep_after = min(len(after), max(budget - len(before), 0))
    return cut_end(before, budget - keep_after) + name + cut_end(after, keep_after)


def cut_end(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS if width >= 1 else ""


def shorten_names(names: Sequence[str], width: int) -> str:
    """As many whole names as fit, then `+N more`; a first name longer than the room is cut in its middle."""
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = ", ".join([*shown, name]) + (f", +{rest} more" if rest else "")
        if len(candidate) > width:
            if shown:
                return ", ".join(shown) + f", +{len(names) - index} more"
            more = f", +{rest} more" if rest else ""
            if width - len(more) < 5:
                return shorten_middle(f"{len(names)} names", width)
            return shorten_middle(name, width - len(more)) + more
        shown.append(name)
    return ", ".join(shown) or "-"


def wrap(text: str, lead: str, width: int | None = None) -> list[str]:
    """`lead` then the text, wrapped at spaces to the width, the next lines indented as far as the text starts.
    A word is never split (an ARN, a URL stay whole to copy), so only a word longer than the room overflows."""
    width = terminal_width() if width is None else width
    room = max(width - len(lead), 20)
    lines = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]
    return [(lead if index == 0 else " " * len(lead)) + line for index, line in enumerate(lines)]


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width, else 80 (a pipe or a file)."""
    return shutil.get_terminal_size((80, 24)).columns


@dataclass(frozen=True)
class Column:
    """A table column: its header, the narrowest it may become, and how a cell is cut to a width."""

    header: str
    minimum: int | None = None  # None: never shrinks
    cut: Callable[[str, int], str] = shorten_middle
    # Room kept against the others when all must shrink: a column of weight 2 ends up about twice as wide.
    weight: float = 1.0


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """Aligned lines that fit the width: while too wide, the widest column (for its weight) that may shrink gives
    up a character, so the long cells (names, errors) give way first and the short ones (status, dates) stay
    whole."""
    width = terminal_width() if width is None else width
    cells = [[" ".join(cell.split()) for cell in row] for row in rows]
    widths = [max([len(column.header), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    gaps = 2 * (len(columns) - 1)
    while sum(widths) + gaps > width:
        shrinkable = [
            i for i, column in enumerate(columns) if column.minimum is not None and widths[i] > column.minimum
        ]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda i: widths[i] / columns[i].weight)] -= 1
    lines = []
    for row in [[column.header for column in columns], *cells]:
        fitted = [cell if len(cell) <= widths[i] else columns[i].cut(cell, widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(fitted, widths, strict=True)).rstrip())
    return lines


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

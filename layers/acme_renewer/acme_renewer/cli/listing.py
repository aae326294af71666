"""Operator CLI, `list`: every certificate, the soonest to expire first."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from acme_renewer.cli.common import EXIT_OK, load_settings, open_table
from acme_renewer.cli.output import (
    Column,
    days_left,
    expiry_order,
    out,
    render_table,
    shorten_error,
    shorten_names,
    status_of,
    to_json,
)
from acme_renewer.inventory.table import parse_time

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands

# Fixed: STATUS, EXPIRES, DAYS (left). The others give way, the widest first, down to these widths: at 80 columns
# the error keeps 22 even beside `FAILED (disabled)`.
COLUMNS = (
    Column("ID", minimum=6),
    Column("NAMES", minimum=10, cut=lambda names, width: shorten_names(names.split(", "), width)),
    Column("STATUS"),
    Column("EXPIRES"),
    Column("DAYS"),
    Column("LAST ERROR", minimum=22, cut=shorten_error, weight=4),
)


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    listing = commands.add_parser("list", parents=[common], help="all certificates, the soonest to expire first")
    listing.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    now = datetime.now(UTC)
    items = sorted(open_table(settings).items(), key=lambda item: expiry_order(item, now))
    if args.json:
        out(to_json(items))
        return EXIT_OK
    if not items:
        out(f"no certificates in {settings.table_name}; add one with `acme-renewer add ID DOMAIN...`")
        return EXIT_OK
    for line in render_table(COLUMNS, [row(item, now) for item in items]):
        out(line)
    return EXIT_OK


def row(item: Mapping[str, Any], now: datetime) -> list[str]:
    not_after = parse_time(item.get("not_after"))
    return [
        str(item.get("id")),
        ", ".join(str(d) for d in item.get("domains") or []) or "-",
        status_of(item),
        f"{not_after:%Y-%m-%d}" if not_after else "-",
        f"{days_left(not_after, now):.1f}" if not_after else "-",
        str(item.get("last_error") or "") or "-",
    ]

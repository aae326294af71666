"""Operator CLI, `list`: every certificate, the soonest to expire first."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from acme_renewer.cli.common import EXIT_OK, load_settings, open_table
from acme_renewer.cli.output import days_left, expiry_order, out, shorten, shorten_names, status_of, to_json
from acme_renewer.inventory.table import parse_time

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands

NAMES_WIDTH = 40
ERROR_WIDTH = 60


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    listing = commands.add_parser("list", parents=[common], help="all certificates, the soonest to expire first")
    listing.add_argument("--json", action="store_true", help="the items as a JSON array")
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
    rows = [["ID", "NAMES", "STATUS", "EXPIRES", "DAYS LEFT", "LAST ERROR"]]
    for item in items:
        not_after = parse_time(item.get("not_after"))
        rows.append(
            [
                str(item.get("id")),
                shorten_names([str(d) for d in item.get("domains") or []], NAMES_WIDTH),
                status_of(item),
                f"{not_after:%Y-%m-%d}" if not_after else "-",
                f"{days_left(not_after, now):.1f}" if not_after else "-",
                shorten(str(item.get("last_error") or ""), ERROR_WIDTH) or "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK

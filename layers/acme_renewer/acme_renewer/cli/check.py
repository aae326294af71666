"""Operator CLI, `check`: the item's validation, then hosted zones, delegation, CAA and _acme-challenge CNAMEs of every
name; orders nothing."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from acme_renewer import runtime
from acme_renewer.cli.common import EXIT_FAILED, EXIT_OK, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import out, plural, shorten
from acme_renewer.dns.preflight import (
    Level,
    Preflight,
    Resolver,
    choose_identities,
    directory_caa_identities,
    parse_resolver_address,
)
from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.validation import parse_item

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    check = commands.add_parser(
        "check",
        parents=[common],
        help="check hosted zones, delegation, CAA and _acme-challenge CNAMEs; orders nothing",
    )
    check.add_argument("id", nargs="?", help="one certificate (default: all)")
    check.add_argument(
        "--resolver",
        metavar="HOST:PORT",
        help="DNS server to ask (default: $ACME_RENEWER_RESOLVER, else the system resolver)",
    )
    check.add_argument(
        "--ca-identity",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="the CA's CAA issuer domain, used when its directory lists none (repeatable; "
        "default: $ACME_CAA_IDENTITIES, comma-separated)",
    )
    check.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    table = open_table(settings)
    if args.id is not None:
        found = table.get(args.id)
        if found is None:
            raise OperatorError(not_found(args.id, settings))
        items = [found]
    else:
        items = sorted(table.items(), key=lambda item: str(item.get("id")))
        if not items:
            out(f"no certificates in {settings.table_name}")
            return EXIT_OK
    resolver_text = args.resolver or os.environ.get("ACME_RENEWER_RESOLVER", "").strip()
    resolver = Resolver(parse_resolver_address(resolver_text) if resolver_text else None)
    configured = args.ca_identity or os.environ.get("ACME_CAA_IDENTITIES", "").split(",")
    try:
        from_directory = directory_caa_identities(settings.acme_directory_url, settings.acme_network_timeout_seconds)
        directory_error = None
    except Exception as error:  # any failure to read the directory only makes the identities unknown
        from_directory, directory_error = None, shorten(f"{type(error).__name__}: {error}", 160)
    identities = choose_identities(from_directory, directory_error, configured)
    preflight = Preflight(runtime.client("route53", "us-east-1"), resolver, identities)

    out(f"CA        {settings.acme_directory_url}")
    if identities.domains:
        out(f"CAA ids   {', '.join(identities.domains)} ({identities.source})")
    else:
        out(f"CAA ids   {identities.source}")
    out(f"resolver  {resolver.description}")
    levels = dict.fromkeys(Level, 0)
    names = 0
    for item in items:
        out("")
        try:
            request = parse_item(item, settings)
        except ItemValidationError as invalid:
            out(f"{item.get('id')}")
            out(f"  {Level.FAIL.value:<5} item      {invalid}")
            levels[Level.FAIL] += 1
            levels[Level.WARN] += _item_warnings(invalid.warnings)
            continue
        out(f"{request.id}{'' if request.enabled else ' (disabled)'}")
        levels[Level.WARN] += _item_warnings(request.warnings)
        for name in request.domains:
            names += 1
            out(f"  {name}")
            for finding in preflight.check(name):
                levels[finding.level] += 1
                out(f"    {finding.level.value:<5} {finding.check:<9} {finding.detail}")
    out("")
    out(
        f"{plural(len(items), 'certificate')}, {plural(names, 'name')}: "
        + ", ".join(f"{count} {level.value}" for level, count in levels.items())
    )
    return EXIT_FAILED if levels[Level.FAIL] else EXIT_OK


def _item_warnings(warnings: Sequence[str]) -> int:
    """What validation says of the item beyond its problems (an unknown attribute, a key CloudFront cannot use),
    as the renewer also records it on the item (`warnings`); returns how many."""
    for warning in warnings:
        out(f"  {Level.WARN.value:<5} item      {warning}")
    return len(warnings)

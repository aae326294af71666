"""Operator CLI, `check`: the item's validation, then hosted zones, delegation, CAA and _acme-challenge CNAMEs of every
name; orders nothing."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acme_renewer import runtime
from acme_renewer.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OperatorError,
    build_resolver,
    load_settings,
    not_found,
    open_table,
)
from acme_renewer.cli.output import out, plural, shorten, to_json, wrap
from acme_renewer.dns.preflight import (
    CaIdentities,
    Finding,
    Level,
    Preflight,
    Resolver,
    choose_identities,
    directory_caa_identities,
)
from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.validation import parse_item
from acme_renewer.settings import Settings

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
            if args.json:
                out(to_json({"certificates": [], "summary": {level.value: 0 for level in Level}}))
            else:
                out(f"no certificates in {settings.table_name}")
            return EXIT_OK
    resolver = build_resolver(args.resolver)
    configured = args.ca_identity or os.environ.get("ACME_CAA_IDENTITIES", "").split(",")
    try:
        from_directory = directory_caa_identities(settings.acme_directory_url, settings.acme_network_timeout_seconds)
        directory_error = None
    except Exception as error:  # any failure to read the directory only makes the identities unknown
        from_directory, directory_error = None, shorten(f"{type(error).__name__}: {error}", 160)
    identities = choose_identities(from_directory, directory_error, configured)
    preflight = Preflight(runtime.client("route53", "us-east-1"), resolver, identities)
    certificates = [_check_item(item, settings, preflight) for item in items]
    levels = dict.fromkeys(Level, 0)
    for certificate in certificates:
        for finding in certificate.findings():
            levels[finding.level] += 1
    names = sum(len(certificate.names) for certificate in certificates)
    if args.json:
        document = {
            "ca": settings.acme_directory_url,
            "caa_identities": {"domains": list(identities.domains), "source": identities.source},
            "resolver": resolver.description,
            "certificates": [certificate.as_json() for certificate in certificates],
            "summary": {level.value: count for level, count in levels.items()},
        }
        out(to_json(document))
    else:
        _print(certificates, settings, identities, resolver)
        out("")
        out(
            f"{plural(len(items), 'certificate')}, {plural(names, 'name')}: "
            + ", ".join(f"{count} {level.value}" for level, count in levels.items())
        )
    return EXIT_FAILED if levels[Level.FAIL] else EXIT_OK


@dataclass(frozen=True)
class Checked:
    """One certificate's findings: the item's own (validation), then each name's."""

    id: str
    enabled: bool
    item: list[Finding]
    names: list[tuple[str, list[Finding]]]

    def findings(self) -> list[Finding]:
        return [*self.item, *(finding for _, findings in self.names for finding in findings)]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "enabled": self.enabled,
            "item": [_finding_json(finding) for finding in self.item],
            "names": [
                {"name": name, "findings": [_finding_json(finding) for finding in findings]}
                for name, findings in self.names
            ],
        }


def _check_item(item: Mapping[str, Any], settings: Settings, preflight: Preflight) -> Checked:
    try:
        request = parse_item(item, settings)
    except ItemValidationError as invalid:
        findings = [Finding("item", Level.FAIL, str(invalid))]
        # What validation says of the item beyond its problems (an unknown attribute, a key CloudFront cannot
        # use), as the renewer also records it on the item (`warnings`).
        findings += [Finding("item", Level.WARN, warning) for warning in invalid.warnings]
        return Checked(str(item.get("id")), item.get("enabled") is not False, findings, [])
    return Checked(
        request.id,
        request.enabled,
        [Finding("item", Level.WARN, warning) for warning in request.warnings],
        [(name, preflight.check(name)) for name in request.domains],
    )


def _finding_json(finding: Finding) -> dict[str, str]:
    return {"check": finding.check, "level": finding.level.value, "detail": finding.detail}


def _print(certificates: Sequence[Checked], settings: Settings, identities: CaIdentities, resolver: Resolver) -> None:
    caa = f"{', '.join(identities.domains)} ({identities.source})" if identities.domains else identities.source
    for label, value in (("CA", settings.acme_directory_url), ("CAA ids", caa), ("resolver", resolver.description)):
        for line in wrap(value, f"{label:<9} "):
            out(line)
    for certificate in certificates:
        out("")
        out(f"{certificate.id}{'' if certificate.enabled else ' (disabled)'}")
        for finding in certificate.item:
            _print_finding(finding, "  ")
        for name, findings in certificate.names:
            out(f"  {name}")
            for finding in findings:
                _print_finding(finding, "    ")


def _print_finding(finding: Finding, indent: str) -> None:
    lead = f"{indent}{finding.level.value:<5} {finding.check:<9} "
    for line in wrap(finding.detail, lead):
        out(line)

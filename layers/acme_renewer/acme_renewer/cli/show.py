"""Operator CLI, `show`: everything about one certificate, the request's defaults made visible."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from acme_renewer.cli.common import EXIT_OK, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import days_left, out, show_value, status_of, to_json, wrap
from acme_renewer.cli.table import OPTIONAL_REQUEST_FIELDS
from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.table import account_arns_from_item, parse_time
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import CertificateRequest
from acme_renewer.settings import Settings

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    show = commands.add_parser("show", parents=[common], help="everything about one certificate")
    show.add_argument("id")
    show.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    item = open_table(settings).get(args.id)
    if item is None:
        raise OperatorError(not_found(args.id, settings))
    if args.json:
        out(to_json(item))
        return EXIT_OK
    for label, value in describe_item(item, settings, datetime.now(UTC)):
        for line in wrap(value, f"{label:<20} "):
            out(line)
    return EXIT_OK


def describe_item(item: Mapping[str, Any], settings: Settings, now: datetime) -> list[tuple[str, str]]:
    """Label/value rows for `show`: the request with its defaults made visible, then what the renewer wrote."""
    rows: list[tuple[str, str]] = [("id", str(item.get("id")))]
    request: CertificateRequest | None = None
    try:
        request = parse_item(item, settings)
        warnings = request.warnings
    except ItemValidationError as invalid:
        warnings = invalid.warnings
        rows.append(("INVALID", "; ".join(invalid.problems)))

    def default(name: str) -> str:
        return "" if name in item else " (default)"

    if request is not None:
        renew_rule = (
            f"{request.renew_before_days} days before expiry"
            if request.renew_before_days
            else "in the last third of the lifetime"
        )
        rows += [
            ("domains", ", ".join(request.domains)),
            ("enabled", f"{'yes' if request.enabled else 'no'}{default('enabled')}"),
            ("key type", f"{request.key_type.value}{default('key_type')}"),
            ("ACM regions", f"{', '.join(request.acm_regions) or 'none (secret only)'}{default('acm_regions')}"),
            ("secret name", f"{request.secret_name}{default('secret_name')}"),
            ("secret formats", ", ".join(("pem", *request.formats)) + default("formats")),
            ("secret regions", ", ".join(request.secret_regions) or f"none{default('secret_regions')}"),
            ("renews", f"{renew_rule}{default('renew_before_days')}"),
            ("preferred chain", request.preferred_chain or "the CA's default"),
            ("hosted zone", request.hosted_zone_id or "the longest matching public zone"),
            ("challenge alias", request.challenge_alias or "none (CNAMEs are followed)"),
        ]
        rows += [
            (f"ACM in {target.account}", f"{', '.join(target.regions)} with role {target.role.arn}")
            for target in request.acm_accounts
        ]
    else:
        rows += [(name, show_value(item[name])) for name in ("domains", *OPTIONAL_REQUEST_FIELDS) if name in item]
    # As validation says them now; the item's `warnings` are those of the last attempt.
    rows += [("warning", warning) for warning in warnings]

    not_after = parse_time(item.get("not_after"))
    expiry = f"{item['not_after']} ({days_left(not_after, now):.1f} days left)" if not_after else "-"
    rows += [
        ("status", status_of(item)),
        ("not before", str(item.get("not_before", "-"))),
        ("not after", expiry),
        ("serial", str(item.get("serial", "-"))),
        ("issued domains", ", ".join(item.get("issued_domains") or []) or "-"),
    ]
    arns = item.get("acm_arns") or {}
    rows += [(f"ACM ARN {region}", str(arn)) for region, arn in sorted(arns.items())] or [("ACM ARN", "-")]
    # Other accounts' (acm_accounts): the ARN names its account.
    rows += [
        (f"ACM ARN {region}", arn)
        for _, regions in sorted(account_arns_from_item(item.get("acm_account_arns")).items())
        for region, arn in sorted(regions.items())
    ]
    version = f" (version {item['secret_version_id']})" if item.get("secret_version_id") else ""
    rows += [
        ("secret ARN", f"{item.get('secret_arn', '-')}{version}"),
        ("last attempt at", str(item.get("last_attempt_at", "-"))),
        ("last renewed at", str(item.get("last_renewed_at", "-"))),
        ("failure count", show_value(item.get("failure_count", 0))),
        ("next attempt at", str(item.get("next_attempt_at", "-"))),
        ("last error", str(item.get("last_error", "-"))),
    ]
    shown = {
        "id", "domains", *OPTIONAL_REQUEST_FIELDS, "status", "not_before", "not_after", "serial", "issued_domains",
        "acm_arns", "secret_arn", "secret_version_id", "last_attempt_at", "last_renewed_at", "failure_count",
        "next_attempt_at", "last_error", "warnings", "acm_account_arns",
        *(["acm_accounts", "formats", "secret_regions"] if request is not None else []),
    }  # fmt: skip
    rows += [(name, show_value(item[name])) for name in sorted(item) if name not in shown]
    return rows

"""Operator CLI, `add`: write a new certificate item, or replace the request of an existing one."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acme_renewer import runtime
from acme_renewer.cli.common import EXIT_OK, EXIT_USAGE, OperatorError, build_resolver, load_settings, open_table
from acme_renewer.cli.output import out, to_json
from acme_renewer.dns.challenge import challenge_record_name
from acme_renewer.dns.preflight import CaIdentities, Level, Preflight
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import CertificateRequest
from acme_renewer.settings import Settings

# us-east-1, eu-west-1, ap-southeast-2, us-gov-west-1, cn-north-1: what a domain almost never is.
AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# The zone checks need no CA.
NO_IDENTITIES = CaIdentities((), "not needed")

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    add = commands.add_parser("add", parents=[common], help="add a certificate (one item in the table)")
    add.add_argument("id", help="the item's id, e.g. www")
    add.add_argument("domains", nargs="+", metavar="DOMAIN", help="DNS names; the first one is the subject")
    add.add_argument("--key-type", help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    add.add_argument(
        "--region",
        action="append",
        metavar="REGION",
        help="an ACM region to import into (repeatable; default: the function's region)",
    )
    add.add_argument(
        "--regions",
        action="append",
        nargs="?",
        const="",
        metavar="R1,R2",
        help="ACM regions, comma-separated; --regions '' (or alone): no ACM import, as --no-acm",
    )
    add.add_argument("--no-acm", action="store_true", help="no ACM import: the secret only")
    add.add_argument("--secret-name", help="Secrets Manager secret (default: <SECRET_PREFIX>certificates/<id>)")
    add.add_argument("--renew-before-days", type=int, metavar="N", help="renew when fewer than N days are left")
    add.add_argument("--disabled", action="store_true", help="add it with enabled = false")
    add.add_argument(
        "--preferred-chain",
        metavar="ISSUER_CN",
        help="prefer the CA's chain whose top certificate this issuer signed, e.g. 'ISRG Root X1' (default: the CA's)",
    )
    add.add_argument(
        "--hosted-zone-id",
        metavar="ZONE_ID",
        help="write every challenge record in this public Route53 zone (default: the longest matching public zone)",
    )
    add.add_argument(
        "--challenge-alias",
        metavar="DOMAIN",
        help="every _acme-challenge.<name> is a CNAME to _acme-challenge.DOMAIN: write the values there",
    )
    add.add_argument(
        "--ca",
        metavar="DIRECTORY",
        help="the CA: a directory URL or letsencrypt, letsencrypt-staging, zerossl, google, buypass (default: the"
        " function's ACME_DIRECTORY_URL)",
    )
    add.add_argument("--eab-secret", metavar="SECRET", help="secret with the CA's EAB key id and HMAC key")
    add.add_argument("--profile", help="the CA profile to order, e.g. tlsserver (default: the CA's)")
    add.add_argument(
        "--profile-fallback", action="store_true", help="order the CA's default profile if it lacks --profile"
    )
    add.add_argument("--zone-role-arn", metavar="ARN", help="role to assume for the Route53 zones in another account")
    add.add_argument("--zone-external-id", metavar="ID", help="external id for --zone-role-arn")
    add.add_argument(
        "--acm-account",
        action="append",
        nargs=2,
        metavar=("ROLE_ARN", "R1,R2"),
        help="also import into ACM of the role's account, in these regions (repeatable: one per account)",
    )
    add.add_argument(
        "--acm-external-id",
        action="append",
        nargs=2,
        metavar=("ROLE_ARN", "ID"),
        help="the external id to assume that --acm-account role with",
    )
    add.add_argument(
        "--formats",
        metavar="F1,F2",
        help="formats of the secret beyond PEM, comma-separated: pkcs12, pkcs12-legacy, bundle",
    )
    add.add_argument(
        "--secret-regions",
        metavar="R1,R2",
        help="replicate the secret to these regions (Secrets Manager replication), comma-separated",
    )
    add.add_argument(
        "--strict",
        action="store_true",
        help="a name without a hosted zone, or a zone delegated elsewhere, is an error: exit 1, nothing written",
    )
    add.add_argument("--no-check", action="store_true", help="skip the hosted zone and delegation checks")
    add.add_argument(
        "--resolver",
        metavar="HOST:PORT",
        help="DNS server for the delegation check (default: $ACME_RENEWER_RESOLVER, else the system resolver)",
    )
    add.add_argument(
        "--replace",
        action="store_true",
        help="replace the request of an existing item; its issued certificate, ARNs and secret are kept",
    )
    add.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    item: dict[str, Any] = {"id": args.id, "domains": list(args.domains)}
    given = {
        "key_type": args.key_type,
        "acm_regions": acm_regions(args),
        "secret_name": args.secret_name,
        "renew_before_days": args.renew_before_days,
        "enabled": False if args.disabled else None,
        "preferred_chain": args.preferred_chain,
        "hosted_zone_id": args.hosted_zone_id,
        "challenge_alias": args.challenge_alias,
        "acme_directory": args.ca,
        "eab_secret": args.eab_secret,
        "profile": args.profile,
        "profile_fallback": True if args.profile_fallback else None,
        "zone_role_arn": args.zone_role_arn,
        "zone_external_id": args.zone_external_id,
        "acm_accounts": acm_accounts(args),
        "formats": comma_list(args.formats),
        "secret_regions": comma_list(args.secret_regions),
    }
    item.update({name: value for name, value in given.items() if value is not None})
    request = parse_item(item, settings)  # a bad item stops here: nothing is written
    findings = [] if args.no_check else zone_findings(request, settings, args.resolver)
    problems = [finding for finding in findings if finding.level is not Level.OK]
    if args.strict and problems:
        lines = "; ".join(f"{finding.name}: {finding.detail}" for finding in problems)
        raise OperatorError(f"{lines}; nothing written (--strict)")
    table = open_table(settings)
    if args.replace and table.replace_request(item):
        action = "replaced"
    elif table.create(item):
        action = "added"
    else:
        raise OperatorError(
            f"a certificate with id {args.id!r} already exists in {settings.table_name}; "
            "use `add --replace` to change it"
        )
    warnings = [*request.warnings, *(f"{finding.name}: {finding.detail}" for finding in problems)]
    if args.json:
        out(
            to_json(
                {
                    "action": action,
                    "id": request.id,
                    "request": item,
                    "warnings": warnings,
                    "zone_checks": [finding.as_json() for finding in findings],
                }
            )
        )
        return EXIT_OK
    if action == "replaced":
        out(f"replaced the request of {request.id}: {describe(request)}")
        out("  what the renewer knows stays on its status item (ACM ARNs, secret, expiry): a re-issue renews in place")
    else:
        out(f"added {request.id}: {describe(request)}")
    for warning in warnings:
        out(f"  warning: {warning}")
    # The stream function (or else the next scheduled run) acts on the write; `renew` does it from here.
    out(f"  the renewer picks it up by itself; to renew it from here now: acme-renewer renew {request.id}")
    return EXIT_OK


def acm_accounts(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """--acm-account ROLE_ARN R1,R2 (repeatable), each with its --acm-external-id ROLE_ARN ID; parse_item judges."""
    external_ids = dict(args.acm_external_id or [])
    roles = [role for role, _ in args.acm_account or []]
    if stray := sorted(set(external_ids) - set(roles)):
        raise OperatorError(f"--acm-external-id names {', '.join(stray)}, which no --acm-account names", EXIT_USAGE)
    if not roles:
        return None
    return [
        {"role_arn": role, "regions": [r.strip() for r in regions.split(",") if r.strip()]}
        | ({"external_id": external_ids[role]} if role in external_ids else {})
        for role, regions in args.acm_account
    ]


def comma_list(text: str | None) -> list[str] | None:
    """`a, b` as ["a", "b"]; None when the flag is absent, so the item keeps the field's default. Duplicates stay,
    for parse_item to refuse."""
    return None if text is None else [value.strip() for value in text.split(",") if value.strip()]


def acm_regions(args: argparse.Namespace) -> list[str] | None:
    """--region (repeatable) and --regions (comma-separated) together; --no-acm or an empty --regions: []."""
    listed = [region.strip() for text in args.regions or [] for region in text.split(",") if region.strip()] + list(
        args.region or []
    )
    if args.no_acm and listed:
        raise OperatorError("--no-acm cannot go with ACM regions", EXIT_USAGE)
    if args.no_acm or (args.regions is not None and not listed):
        return []
    # An old habit, `--regions a b`, would now make b a domain: say so rather than order a certificate for it.
    mistaken = [domain for domain in args.domains if AWS_REGION.fullmatch(domain)]
    if mistaken:
        raise OperatorError(
            f"{', '.join(mistaken)} looks like an AWS region, not a domain: "
            f"give regions as --regions a,b or --region a --region b",
            EXIT_USAGE,
        )
    return list(dict.fromkeys(listed)) or None


@dataclass(frozen=True)
class NamedFinding:
    name: str
    check: str
    level: Level
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "check": self.check, "level": self.level.value, "detail": self.detail}


def zone_findings(request: CertificateRequest, settings: Settings, resolver_text: str | None) -> list[NamedFinding]:
    """check's zone and NS checks of every name, as the renewer would find the zones; a name the item sends
    elsewhere (its own hosted zone, alias or zone role, or ZONE_ROLES) is not checked here: `check` says why."""
    if request.hosted_zone_id or request.challenge_alias or request.zone_role is not None:
        return []
    preflight = Preflight(runtime.client("route53", "us-east-1"), build_resolver(resolver_text), NO_IDENTITIES)
    return [
        NamedFinding(name, finding.check, finding.level, finding.detail)
        for name in request.domains
        if settings.zone_roles.role_for(challenge_record_name(name)) is None
        for finding in preflight.zone_checks(name)
    ]


def describe(request: CertificateRequest) -> str:
    regions = ", ".join(request.acm_regions) or "none (secret only)"
    regions += "".join(f"; account {t.account}: {', '.join(t.regions)}" for t in request.acm_accounts)
    state = "" if request.enabled else ", disabled"
    secret = request.secret_name + "".join(f", {name}" for name in request.formats)
    secret += f", replicated to {', '.join(request.secret_regions)}" if request.secret_regions else ""
    details = f"{request.key_type.value}, ACM: {regions}, secret {secret}{state}"
    return f"{', '.join(request.domains)} ({details})"

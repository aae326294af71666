"""Operator CLI, `add`: write a new certificate item, or replace the request of an existing one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from acme_renewer.cli.common import EXIT_OK, OperatorError, load_settings, open_table
from acme_renewer.cli.output import out
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import CertificateRequest

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    add = commands.add_parser("add", parents=[common], help="add a certificate (one item in the table)")
    add.add_argument("id", help="the item's id, e.g. www")
    add.add_argument("domains", nargs="+", metavar="DOMAIN", help="DNS names; the first one is the subject")
    add.add_argument("--key-type", help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072 or rsa-4096")
    add.add_argument(
        "--regions",
        nargs="*",
        metavar="REGION",
        help="ACM regions to import into (default: the function's region); --regions alone: no ACM import",
    )
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
        "acm_regions": args.regions,
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
    }
    item.update({name: value for name, value in given.items() if value is not None})
    request = parse_item(item, settings)  # a bad item stops here: nothing is written
    table = open_table(settings)
    if args.replace and table.replace_request(item):
        out(f"replaced the request of {request.id}: {describe(request)}")
        out("  what the renewer knows stays on its status item (ACM ARNs, secret, expiry): a re-issue renews in place")
    elif table.create(item):
        out(f"added {request.id}: {describe(request)}")
    else:
        raise OperatorError(
            f"a certificate with id {args.id!r} already exists in {settings.table_name}; "
            "use `add --replace` to change it"
        )
    for warning in request.warnings:
        out(f"  warning: {warning}")
    # The stream function (or else the next scheduled run) acts on the write; `renew` does it from here.
    out(f"  the renewer picks it up by itself; to renew it from here now: acme-renewer renew {request.id}")
    return EXIT_OK


def describe(request: CertificateRequest) -> str:
    regions = ", ".join(request.acm_regions) or "none (secret only)"
    state = "" if request.enabled else ", disabled"
    details = f"{request.key_type.value}, ACM: {regions}, secret {request.secret_name}{state}"
    return f"{', '.join(request.domains)} ({details})"

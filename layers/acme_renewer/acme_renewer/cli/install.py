"""Operator CLI, `install`: the certificate's secret as files on this host (delivery/files.py), for servers that
cannot use ACM; the table is read only to find the secret, and not at all with --secret."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

import boto3

from acme_renewer import runtime
from acme_renewer.cli.common import EXIT_USAGE, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import out, to_json
from acme_renewer.delivery.files import DeliveryError, add_install_options, deliver, parse_owner
from acme_renewer.delivery.secret import CertificateSecret

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    install = commands.add_parser(
        "install",
        parents=[common],
        help="write a certificate's files (cert, chain, fullchain, key) into a directory; reload when they change",
    )
    install.add_argument("id", help="the certificate's id")
    install.add_argument(
        "--secret",
        metavar="NAME_OR_ARN",
        help="read this secret and not the table (a host is usually allowed GetSecretValue on its secret only)",
    )
    install.add_argument("--region", help="the secret's region, with --secret (default: $AWS_REGION, the profile's)")
    add_install_options(install)
    install.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    owner = parse_owner(args.owner) if args.owner else None
    secret, region, issued = locate(args)
    try:
        document = CertificateSecret(runtime.client("secretsmanager", region)).read(secret, args.id, issued=issued)
        delivery = deliver(
            document,
            args.dir,
            certificate_id=args.id,
            secret=secret,
            pfx=args.pfx,
            bundle=args.bundle,
            owner=owner,
            reload_command=args.reload or None,
        )
    except DeliveryError as error:
        raise OperatorError(str(error), error.exit_code) from None
    out(to_json(delivery.as_json()) if args.json else "\n".join(delivery.lines()))
    return delivery.exit_code


def locate(args: argparse.Namespace) -> tuple[str, str, bool]:
    """(secret, region, issued): --secret as given, else the secret holding the item's current certificate, and
    whether the item says one was ever stored."""
    if args.secret:
        region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        region = region or boto3.session.Session().region_name
        if not region:
            raise OperatorError("no region: pass --region or set AWS_REGION", EXIT_USAGE)
        return args.secret, region, True
    if args.region:
        raise OperatorError("--region goes with --secret; without it the region is the table's", EXIT_USAGE)
    settings = load_settings(args)
    item = open_table(settings).get(args.id)
    if item is None:
        raise OperatorError(not_found(args.id, settings))
    # The status item's secret_arn is the secret of the certificate in force; before the first issuance there
    # is none, and the request's secret_name (or the default) is where it will be.
    secret = item.get("secret_arn") or item.get("secret_name") or settings.default_secret_name(args.id)
    return str(secret), settings.region, bool(item.get("secret_arn"))

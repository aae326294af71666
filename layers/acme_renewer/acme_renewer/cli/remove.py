"""Operator CLI, `remove`: delete a certificate's item, and say what is left of it in ACM and Secrets Manager."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from acme_renewer.cli.common import EXIT_OK, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import out

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    remove = commands.add_parser(
        "remove", parents=[common], help="delete a certificate's item (its ACM certificates and secret stay)"
    )
    remove.add_argument("id")
    remove.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    old = open_table(settings).delete(args.id)
    if old is None:
        raise OperatorError(not_found(args.id, settings))
    if "status" not in old:
        out(f"removed {args.id} from {settings.table_name}; it was never renewed, so nothing else is left")
        return EXIT_OK
    out(f"removed {args.id} from {settings.table_name}; its ACM certificates and its secret are kept.")
    out("To delete them by hand:")
    for region, arn in sorted((old.get("acm_arns") or {}).items()):
        out(f"  aws acm delete-certificate --region {region} --certificate-arn {arn}   # once nothing uses it")
    secret = old.get("secret_name") or settings.default_secret_name(args.id)
    out(
        f"  aws secretsmanager delete-secret --region {settings.region} --secret-id {secret} "
        "--recovery-window-in-days 7"
    )
    return EXIT_OK

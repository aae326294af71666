"""Operator CLI, `remove`: delete a certificate's request (retiring it), and say what is left of it and where."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from acme_renewer.cli.common import EXIT_OK, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import out
from acme_renewer.inventory.table import status_id

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
    table = open_table(settings)
    old = table.delete(args.id)
    if old is None:
        raise OperatorError(not_found(args.id, settings))
    if "status" not in old:
        table.forget(args.id)  # at most a place in the due index: nothing worth keeping
        out(f"removed {args.id} from {settings.table_name}; it was never renewed, so nothing else is left")
        return EXIT_OK
    out(f"removed {args.id} from {settings.table_name}: retired, no longer renewed, and its expiry pages nobody.")
    out("Its ACM certificates and its secret are kept; to delete them by hand:")
    for region, arn in sorted((old.get("acm_arns") or {}).items()):
        out(f"  aws acm delete-certificate --region {region} --certificate-arn {arn}   # once nothing uses it")
    secret = old.get("secret_name") or settings.default_secret_name(args.id)
    for name in (secret, f"{secret}.pending"):
        out(
            f"  aws secretsmanager delete-secret --region {settings.region} --secret-id {name} "
            "--recovery-window-in-days 7"
        )
    out("and last, its status item, the record that these were retired on purpose (without it, an ACM certificate")
    out("left behind counts as unmanaged, and pages before it expires):")
    key = json.dumps({"id": {"S": status_id(args.id)}})
    out(f"  aws dynamodb delete-item --region {settings.region} --table-name {settings.table_name} --key '{key}'")
    return EXIT_OK

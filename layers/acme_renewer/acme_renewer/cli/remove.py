"""Operator CLI, `remove`: delete a certificate's request (retiring it), and say what is left of it and where."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from acme_renewer import runtime
from acme_renewer.cli.common import EXIT_OK, OperatorError, load_settings, not_found, open_table
from acme_renewer.cli.output import out, to_json
from acme_renewer.inventory.table import account_arns_from_item, status_id
from acme_renewer.settings import Settings, is_role_arn
from acme_renewer.stores.secrets import LEGACY_SUFFIX

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
        if args.json:
            out(to_json({"id": args.id, "removed": True, "never_renewed": True, "kept": None, "commands": []}))
        else:
            out(f"removed {args.id} from {settings.table_name}; it was never renewed, so nothing else is left")
        return EXIT_OK
    arns = dict(sorted((old.get("acm_arns") or {}).items()))
    secret = old.get("secret_name") or settings.default_secret_name(args.id)
    # One secret per certificate; a certificate renewed by a version before that may still have its `.pending`.
    legacy = f"{secret}{LEGACY_SUFFIX}"
    legacy_exists = secret_exists(settings, legacy)
    secrets = [secret, legacy] if legacy_exists is not False else [secret]
    key = json.dumps({"id": {"S": status_id(args.id)}})
    acm_commands = [
        f"aws acm delete-certificate --region {region} --certificate-arn {arn}" for region, arn in arns.items()
    ]
    # In other accounts (acm_accounts): the same command, run in that account. Not with the item's role: it may
    # import and describe, not delete (README, ACM in other accounts).
    account_arns = account_arns_from_item(old.get("acm_account_arns"))
    roles = _roles(old.get("acm_accounts"))
    account_commands = [
        (
            f"aws acm delete-certificate --region {region} --certificate-arn {arn}",
            f"in account {account}"
            + (f" (not as {roles[account]}, which may only import)" if account in roles else ""),
        )
        for account, regions in sorted(account_arns.items())
        for region, arn in sorted(regions.items())
    ]
    # AWS refuses to delete a secret that still has replicas: they go first.
    replicas = [r for r in old.get("secret_replicas") or old.get("secret_regions") or [] if isinstance(r, str)]
    secret_commands = [
        f"aws secretsmanager delete-secret --region {settings.region} --secret-id {name} --recovery-window-in-days 7"
        for name in secrets
    ]
    if replicas:
        secret_commands.insert(
            0,
            f"aws secretsmanager remove-regions-from-replication --region {settings.region} --secret-id {secret}"
            f" --remove-replica-regions {' '.join(replicas)}",
        )
    status_command = (
        f"aws dynamodb delete-item --region {settings.region} --table-name {settings.table_name} --key '{key}'"
    )
    if args.json:
        kept = {"acm_arns": arns, "secrets": secrets, "status_item": status_id(args.id)}
        if account_arns:
            kept["acm_account_arns"] = account_arns
        commands = [*acm_commands, *(command for command, _ in account_commands), *secret_commands, status_command]
        out(to_json({"id": args.id, "removed": True, "never_renewed": False, "kept": kept, "commands": commands}))
        return EXIT_OK
    # The commands stay one line each, however wide: they are to be copied.
    out(f"removed {args.id} from {settings.table_name}: retired, no longer renewed, and its expiry pages nobody.")
    out("Its ACM certificates and its secret are kept; to delete them by hand:")
    for command in acm_commands:
        out(f"  {command}   # once nothing uses it")
    for command, where in account_commands:
        out(f"  {command}   # {where}, once nothing uses it")
    for command in secret_commands:
        out(f"  {command}" + ("   # if it exists" if legacy_exists is None and legacy in command else ""))
    out("and last, its status item, the record that these were retired on purpose (without it, an ACM certificate")
    out("left behind counts as unmanaged, and pages before it expires):")
    out(f"  {status_command}")
    return EXIT_OK


def _roles(raw: Any) -> dict[str, str]:
    """Account id -> the role the item named for it (acm_accounts), read leniently: the item is being removed."""
    entries = raw if isinstance(raw, list) else []
    arns = [
        str(entry["role_arn"]) for entry in entries if isinstance(entry, dict) and is_role_arn(entry.get("role_arn"))
    ]
    return {arn.split(":")[4]: arn for arn in arns}


def secret_exists(settings: Settings, name: str) -> bool | None:
    """Whether the secret exists and is not scheduled for deletion; None when Secrets Manager does not say."""
    try:
        described = runtime.client("secretsmanager", settings.region).describe_secret(SecretId=name)
    except ClientError as error:
        return False if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException" else None
    except BotoCoreError:
        return None
    return "DeletedDate" not in described

"""Operator CLI, `acme-renewer`: edit the certificates table, renew now, and check DNS before ordering.

It runs the same package as the function, configured the same way (boto3's usual environment and
profiles, plus `--table` or TABLE_NAME), so `renew` here is a renewal run on the operator's machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from acme_renewer import __version__, renewal, runtime
from acme_renewer.errors import ConfigurationError, ItemValidationError
from acme_renewer.inventory import SCHEDULED, CertificateTable, iso, parse_time
from acme_renewer.models import CertificateRequest
from acme_renewer.preflight import (
    Level,
    Preflight,
    Resolver,
    choose_identities,
    directory_caa_identities,
    parse_resolver_address,
)
from acme_renewer.report import Outcome, Result
from acme_renewer.settings import Settings
from acme_renewer.validation import parse_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Written on every item the CLI writes; the stream trigger tells operator edits from the renewer's own writes.
WRITTEN_BY = "operator"
# The optional request fields `add` can set; `add --replace` removes those not given, so defaults apply again.
OPTIONAL_REQUEST_FIELDS = (
    "key_type", "acm_regions", "secret_name", "renew_before_days", "enabled", "preferred_chain", "hosted_zone_id",
    "challenge_alias",
)  # fmt: skip
NAMES_WIDTH = 40
ERROR_WIDTH = 60
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OperatorError(Exception):
    """Ends the command with one line on stderr and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        command: Callable[[argparse.Namespace], int] = args.command_function
        with cli_logging(args.verbose):
            return command(args)
    except OperatorError as error:
        return fail(str(error), error.exit_code)
    except ItemValidationError as invalid:
        return fail(str(invalid), EXIT_USAGE)
    except ConfigurationError as error:
        return fail(str(error), EXIT_USAGE)
    except (NoCredentialsError, PartialCredentialsError) as error:
        return fail(f"{error}: configure AWS credentials (environment, profile or SSO)")
    except ClientError as error:
        return fail(describe_client_error(error, args))
    except BotoCoreError as error:  # EndpointConnectionError, a bad profile, ...
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as error:
        if args.verbose:
            logging.getLogger(__name__).exception("unexpected error")
        return fail(f"unexpected {type(error).__name__}: {error} (run with --verbose for the traceback)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acme-renewer",
        description="Manage the certificates that acme-renewer keeps renewed. AWS access is configured as for the "
        "AWS CLI (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).",
    )
    add_common_options(parser, default_table=None, default_verbose=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The common options are accepted after the command too; SUPPRESS keeps an absent one there from
    # overwriting the value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, default_table=argparse.SUPPRESS, default_verbose=argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

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
    add.set_defaults(command_function=cmd_add)

    listing = commands.add_parser("list", parents=[common], help="all certificates, the soonest to expire first")
    listing.add_argument("--json", action="store_true", help="the items as a JSON array")
    listing.set_defaults(command_function=cmd_list)

    show = commands.add_parser("show", parents=[common], help="everything about one certificate")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the item as a JSON object")
    show.set_defaults(command_function=cmd_show)

    renew = commands.add_parser(
        "renew",
        parents=[common],
        help="renew now, from this machine",
        description="Renew the given certificates now, whatever their expiry and failure backoff, or (with "
        "--all-due) run the scheduled renewal once.",
    )
    renew.add_argument("ids", nargs="*", metavar="ID")
    renew.add_argument("--all-due", action="store_true", help="renew what the scheduled run would renew")
    renew.set_defaults(command_function=cmd_renew)

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
    check.set_defaults(command_function=cmd_check)

    remove = commands.add_parser(
        "remove", parents=[common], help="delete a certificate's item (its ACM certificates and secret stay)"
    )
    remove.add_argument("id")
    remove.set_defaults(command_function=cmd_remove)
    return parser


def add_common_options(parser: argparse.ArgumentParser, *, default_table: Any, default_verbose: Any) -> None:
    parser.add_argument("--table", default=default_table, help="certificates table (default: $TABLE_NAME)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default_verbose, help="show the renewer's JSON logs"
    )


# --- commands ------------------------------------------------------------------------------------


def cmd_add(args: argparse.Namespace) -> int:
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
    # Due at once in the `due` index, so that a due-only scheduled run acts on it even without the stream.
    item |= {"schedule": SCHEDULED, "due_at": iso(datetime.now(UTC))}
    table = open_table(settings)
    if args.replace and table.replace_request(item):
        out(f"replaced the request of {request.id}: {describe(request)}")
        out("  what the renewer wrote stays on the item (ACM ARNs, secret, expiry): a re-issue renews in place")
    elif args.replace or table.create(item):
        out(f"added {request.id}: {describe(request)}")
    else:
        raise OperatorError(
            f"a certificate with id {args.id!r} already exists in {settings.table_name}; "
            "use `add --replace` to change it"
        )
    # The stream function (or else the next scheduled run) acts on the write; `renew` does it from here.
    out(f"  the renewer picks it up by itself; to renew it from here now: acme-renewer renew {request.id}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
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


def cmd_show(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    item = open_table(settings).get(args.id)
    if item is None:
        raise OperatorError(not_found(args.id, settings))
    if args.json:
        out(to_json(item))
        return EXIT_OK
    for label, value in describe_item(item, settings, datetime.now(UTC)):
        out(f"{label:<20} {value}")
    return EXIT_OK


def cmd_renew(args: argparse.Namespace) -> int:
    if bool(args.ids) == args.all_due:
        raise OperatorError("give the ids to renew, or --all-due for a scheduled run, not both", EXIT_USAGE)
    settings = load_settings(args)
    table = open_table(settings)
    if args.ids:
        missing = [item_id for item_id in args.ids if table.get(item_id) is None]
        if missing:
            raise OperatorError(f"{not_found(', '.join(missing), settings)}; nothing renewed")
        total = len(args.ids)
    else:
        total = table.count()
    renewer = runtime.build_renewer(settings)
    progress = Progress(total)
    renewer.on_outcome = progress
    started = time.monotonic()
    # An operator's explicit renew ignores the renewal window and the failure backoff.
    report = renewer.renew(args.ids, force=True) if args.ids else renewer.run()
    counts = [f"{report.count(result)} {label(result)}" for result in Result if report.count(result) or is_key(result)]
    out(f"{', '.join(counts)} ({plural(len(report.outcomes), 'certificate')} in {time.monotonic() - started:.1f} s)")
    return EXIT_FAILED if report.count(Result.FAILED) else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
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
            continue
        out(f"{request.id}{'' if request.enabled else ' (disabled)'}")
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


def cmd_remove(args: argparse.Namespace) -> int:
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


# --- the table, as the operator edits it ---------------------------------------------------------


class OperatorTable:
    """The certificates table for the CLI: reads through the renewer's adapter, writes marked as the operator's."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._reader = CertificateTable(client, table_name)
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    def items(self) -> list[dict[str, Any]]:
        return list(self._reader.items())

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._reader.get(item_id)

    def count(self) -> int:
        pages = self._client.get_paginator("scan").paginate(TableName=self._table, Select="COUNT")
        return sum(page["Count"] for page in pages)

    def create(self, item: Mapping[str, Any]) -> bool:
        """PutItem only when the id is new; False when it exists."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: self._serializer.serialize(v) for k, v in {**item, "written_by": WRITTEN_BY}.items()},
                ConditionExpression="attribute_not_exists(id)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def replace_request(self, item: Mapping[str, Any]) -> bool:
        """Set the request fields given and remove the others, keeping what the renewer wrote; True if it existed.

        A PutItem would drop `acm_arns`, and the next renewal would import a new ACM certificate
        instead of renewing the one that load balancers and distributions use. (CertificateTable's own
        update marks its writes as the renewer's, which the stream filter ignores, so it is not reused.)
        """
        fields = {k: v for k, v in item.items() if k != "id"} | {"written_by": WRITTEN_BY}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": self._serializer.serialize(value) for i, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        dropped = [name for name in OPTIONAL_REQUEST_FIELDS if name not in item]
        if dropped:
            names.update({f"#r{i}": name for i, name in enumerate(dropped)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(dropped)))
        response = self._client.update_item(
            TableName=self._table,
            Key={"id": {"S": str(item["id"])}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def delete(self, item_id: str) -> dict[str, Any] | None:
        """Delete the item; return it as it was, or None when there was none."""
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key={"id": {"S": item_id}},
                ConditionExpression="attribute_exists(id)",
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return {k: self._deserializer.deserialize(v) for k, v in response.get("Attributes", {}).items()}


# --- configuration -------------------------------------------------------------------------------


def load_settings(args: argparse.Namespace) -> Settings:
    """The function's settings from the environment, with --table and a profile's region filled in."""
    env = dict(os.environ)
    if args.table:
        env["TABLE_NAME"] = args.table
    if not env.get("TABLE_NAME", "").strip():
        raise OperatorError(
            "no table: pass --table or set TABLE_NAME (the stack output CertificatesTableName)", EXIT_USAGE
        )
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        region = boto3.session.Session().region_name  # from the profile, as the AWS CLI does
        if region:
            env["AWS_REGION"] = region
    return Settings.from_env(env)


def open_table(settings: Settings) -> OperatorTable:
    return OperatorTable(runtime.client("dynamodb", settings.region), settings.table_name)


@contextmanager
def cli_logging(verbose: bool) -> Iterator[None]:
    """The package logs through Powertools child loggers `<service>.<module>`; the CLI owns their parent for
    the command's duration, and gives it back as it was (the CLI may run inside another program, a test).

    Quiet by default, as the progress lines carry each outcome (a handler that drops everything also keeps
    Python's last-resort handler from printing plain-text copies); --verbose shows the JSON logs on stderr.
    Never stdout: that is for the command's output.
    """
    parent = logging.getLogger(renewal.logger.service)
    previous = list(parent.handlers)
    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    handler.setFormatter(LambdaPowertoolsFormatter())
    for old in previous:
        parent.removeHandler(old)
    parent.addHandler(handler)
    try:
        yield
    finally:
        parent.removeHandler(handler)
        for old in previous:
            parent.addHandler(old)


def describe_client_error(error: ClientError, args: argparse.Namespace) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    dynamodb_operations = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan"}
    if code == "ResourceNotFoundException" and error.operation_name in dynamodb_operations:
        table = args.table or os.environ.get("TABLE_NAME")
        return f"table {table!r} not found in this account and region; check --table / TABLE_NAME and AWS_REGION"
    return str(error)


# --- output --------------------------------------------------------------------------------------


class Progress:
    """`[3/10] www: renewed (not_after 2027-02-23)` on stderr as each certificate finishes."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def __call__(self, outcome: Outcome) -> None:
        self.done += 1
        total = max(self.total, self.done)
        if outcome.result is Result.RENEWED and outcome.not_after is not None:
            detail = f"not_after {outcome.not_after:%Y-%m-%d}"
        else:
            detail = outcome.reason
        err(f"[{self.done}/{total}] {outcome.id}: {label(outcome.result)} ({detail})")


def label(result: Result) -> str:
    return result.value.replace("_", " ")


def is_key(result: Result) -> bool:
    """The summary always shows these two, zero or not."""
    return result in (Result.RENEWED, Result.FAILED)


def describe(request: CertificateRequest) -> str:
    regions = ", ".join(request.acm_regions) or "none (secret only)"
    state = "" if request.enabled else ", disabled"
    details = f"{request.key_type.value}, ACM: {regions}, secret {request.secret_name}{state}"
    return f"{', '.join(request.domains)} ({details})"


def describe_item(item: Mapping[str, Any], settings: Settings, now: datetime) -> list[tuple[str, str]]:
    """Label/value rows for `show`: the request with its defaults made visible, then what the renewer wrote."""
    rows: list[tuple[str, str]] = [("id", str(item.get("id")))]
    try:
        request: CertificateRequest | None = parse_item(item, settings)
    except ItemValidationError as invalid:
        request = None
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
            ("renews", f"{renew_rule}{default('renew_before_days')}"),
            ("preferred chain", request.preferred_chain or "the CA's default"),
            ("hosted zone", request.hosted_zone_id or "the longest matching public zone"),
            ("challenge alias", request.challenge_alias or "none (CNAMEs are followed)"),
        ]
        rows += [("warning", warning) for warning in request.warnings]
    else:
        rows += [(name, show_value(item[name])) for name in ("domains", *OPTIONAL_REQUEST_FIELDS) if name in item]

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
        "next_attempt_at", "last_error",
    }  # fmt: skip
    rows += [(name, show_value(item[name])) for name in sorted(item) if name not in shown]
    return rows


def status_of(item: Mapping[str, Any]) -> str:
    status = str(item.get("status") or "-")
    return f"{status} (disabled)" if item.get("enabled") is False else status


def expiry_order(item: Mapping[str, Any], now: datetime) -> tuple[bool, float, str]:
    """Never-issued first, then by days left."""
    not_after = parse_time(item.get("not_after"))
    return (not_after is not None, days_left(not_after, now) if not_after else 0.0, str(item.get("id")))


def days_left(moment: datetime, now: datetime) -> float:
    return (moment - now).total_seconds() / 86400


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def shorten_names(names: list[str], width: int) -> str:
    """As many whole names as fit, then `+N more`."""
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = ", ".join([*shown, name]) + (f", +{rest} more" if rest else "")
        if shown and len(candidate) > width:
            return ", ".join(shown) + f", +{len(names) - index} more"
        shown.append(name)
    return ", ".join(shown) or "-"


def show_value(value: Any) -> str:
    plain = plain_json(value)
    return plain if isinstance(plain, str) else json.dumps(plain)


def plain_json(value: Any) -> Any:
    """DynamoDB values as JSON values: numbers as int or float, sets as sorted lists, binary as base64."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain_json(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, Binary):
        value = bytes(cast(Any, value))  # boto3-stubs type Binary.__bytes__ as returning str
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def to_json(value: Any) -> str:
    return json.dumps(plain_json(value), indent=2, sort_keys=True)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def not_found(item_id: str, settings: Settings) -> str:
    return f"no certificate with id {item_id} in {settings.table_name}"


def out(line: str) -> None:
    print(line, file=sys.stdout)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fail(message: str, exit_code: int = EXIT_FAILED) -> int:
    err(f"acme-renewer: error: {message}")
    return exit_code

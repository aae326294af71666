"""Operator CLI, shared by the commands: exit codes, the one error type, settings and logging for a command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from botocore.exceptions import ClientError

from acme_renewer import SERVICE, runtime
from acme_renewer.cli.output import err, out, to_json
from acme_renewer.cli.table import OperatorTable
from acme_renewer.dns.preflight import Resolver, parse_resolver_address
from acme_renewer.settings import Settings

if TYPE_CHECKING:
    # What `add_subparsers` returns; each command module registers its parser on it.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OperatorError(Exception):
    """Ends the command with one line on stderr and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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


def build_resolver(text: str | None) -> Resolver:
    """The DNS server for check's lookups: --resolver, else $ACME_RENEWER_RESOLVER, else the system resolver."""
    chosen = text or os.environ.get("ACME_RENEWER_RESOLVER", "").strip()
    return Resolver(parse_resolver_address(chosen) if chosen else None)


def not_found(item_id: str, settings: Settings) -> str:
    return f"no certificate with id {item_id} in {settings.table_name}"


@contextmanager
def cli_logging(verbose: bool) -> Iterator[None]:
    """The package logs through Powertools child loggers `<service>.<module>`; the CLI owns their parent for
    the command's duration, and gives it back as it was (the CLI may run inside another program, a test).

    Quiet by default, as the progress lines carry each outcome (a handler that drops everything also keeps
    Python's last-resort handler from printing plain-text copies); --verbose shows the JSON logs on stderr.
    Never stdout: that is for the command's output.
    """
    parent = logging.getLogger(SERVICE)
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


def fail(message: str, exit_code: int = EXIT_FAILED, *, json_output: bool = False) -> int:
    """One line on stderr; with --json, also the one document on stdout, so that a script always has one."""
    err(f"acme-renewer: error: {message}")
    if json_output:
        out(to_json({"error": message, "exit_code": exit_code}))
    return exit_code

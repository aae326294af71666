"""Operator CLI, entry point: parse the command line, run the command, turn any failure into one line and a code.

It runs the same package as the function, configured the same way (boto3's usual environment and
profiles, plus `--table` or TABLE_NAME), so `renew` here is a renewal run on the operator's machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from acme_renewer import __version__
from acme_renewer.cli import add, check, install, listing, remove, renew, show, status
from acme_renewer.cli.common import EXIT_USAGE, OperatorError, cli_logging, describe_client_error, fail
from acme_renewer.errors import ConfigurationError, ItemValidationError

COMMANDS = (add, listing, show, status, renew, check, remove, install)


class UsageError(Exception):
    """argparse's complaint, raised rather than printed, so that --json can say it on stdout too."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(self.format_usage(), message)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help or --version (0), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except UsageError as usage:
        print(usage.usage, end="", file=sys.stderr)
        # Parsing failed, so --json is known only as a word of the command line.
        return fail(str(usage), EXIT_USAGE, json_output="--json" in argv)
    json_output = bool(getattr(args, "json", False))
    try:
        command: Callable[[argparse.Namespace], int] = args.command_function
        with cli_logging(args.verbose):
            return command(args)
    except OperatorError as error:
        return fail(str(error), error.exit_code, json_output=json_output)
    except ItemValidationError as invalid:
        return fail(str(invalid), EXIT_USAGE, json_output=json_output)
    except ConfigurationError as error:
        return fail(str(error), EXIT_USAGE, json_output=json_output)
    except (NoCredentialsError, PartialCredentialsError) as error:
        return fail(f"{error}: configure AWS credentials (environment, profile or SSO)", json_output=json_output)
    except ClientError as error:
        return fail(describe_client_error(error, args), json_output=json_output)
    except BotoCoreError as error:  # EndpointConnectionError, a bad profile, ...
        return fail(str(error), json_output=json_output)
    except KeyboardInterrupt:
        return fail("interrupted", 130, json_output=json_output)
    except Exception as error:
        if args.verbose:
            logging.getLogger(__name__).exception("unexpected error")
        return fail(
            f"unexpected {type(error).__name__}: {error} (run with --verbose for the traceback)",
            json_output=json_output,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="acme-renewer",
        description="Manage the certificates that acme-renewer keeps renewed. AWS access is configured as for the "
        "AWS CLI (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).",
    )
    add_common_options(parser, default_table=None, default_flag=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The common options are accepted after the command too; SUPPRESS keeps an absent one there from
    # overwriting the value given before the command.
    common = Parser(add_help=False)
    add_common_options(common, default_table=argparse.SUPPRESS, default_flag=argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands, common)
    return parser


def add_common_options(parser: argparse.ArgumentParser, *, default_table: Any, default_flag: Any) -> None:
    parser.add_argument("--table", default=default_table, help="certificates table (default: $TABLE_NAME)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default_flag, help="show the renewer's JSON logs"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default_flag,
        help='print one JSON document on stdout (an error too: {"error": ..., "exit_code": ...})',
    )

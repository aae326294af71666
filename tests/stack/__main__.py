"""The local stack as a tool: `python -m tests.stack up --zone example.test` (or `make stack`).

It starts the stack, creates the hosted zones and the table, prints `export` lines for the operator CLI and the
handler (also written to `--env-file`, `.stack/env` by default, to `source` in another shell), and serves until
Ctrl-C, SIGTERM or SIGHUP; then it stops every process it started.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tests.stack import LocalStack
from tests.stack.table import REPO_ROOT

DEFAULT_ENV_FILE = REPO_ROOT / ".stack" / "env"
# pebble issues 5-year certificates unless told; 90 days, as Let's Encrypt, so the renewal window means something.
LIFETIME_DAYS = 90
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Variables of the operator's shell that would send boto3 elsewhere: a profile (its credentials or region
# override nothing we export, but a profile missing from this machine's config fails every call) and a
# session token, which belongs to real credentials, not to the stack's dummy ones.
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "ACME_CAA_IDENTITIES")
READY = "# local stack ready"


class Stopped(Exception):
    """A stop signal arrived while the stack was starting."""


def stack_environment(stack: LocalStack) -> dict[str, str]:
    """What the CLI (`acme-renewer add/renew/list/show/check/remove`) and the handlers need to use this stack:
    the AWS endpoint, credentials and region, the table, pebble and the CA of its HTTPS listener
    (`REQUESTS_CA_BUNDLE`), the secret prefix, and our DNS server for `check` (`ACME_RENEWER_RESOLVER`), for the
    challenge lookup and for the propagation check should you turn it on (`PROPAGATION_CHECK_NAMESERVERS`)."""
    host, port = stack.dns_address
    return {
        **stack.env,
        "SECRET_PREFIX": "acme-renewer/",
        "ACME_RENEWER_RESOLVER": f"{host}:{port}",
    }


def shell_lines(environment: Mapping[str, str]) -> list[str]:
    """`unset` and `export` lines that a POSIX shell can `source` or `eval`, each value quoted."""
    lines = ["unset " + " ".join(UNSET)]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
    return lines


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the stack starts, a stop signal unwinds (so LocalStack stops what already runs), as Ctrl-C does."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def block_stop_signals() -> None:
    """From now on a stop signal waits for `sigwait` and interrupts nothing, the shutdown above all. Only once
    every server runs: children inherit the signal mask, and must not."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def up(args: argparse.Namespace) -> int:
    env_file: Path | None = args.env_file
    keep_workdir = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="acme-renewer-stack-"))
    try:
        with stop_signals_raise():
            stack = LocalStack.start(workdir, certificate_validity_seconds=LIFETIME_DAYS * 86400, table_name=args.table)
            try:
                zones = {zone: stack.create_hosted_zone(zone) for zone in args.zone}
                stack.create_table()
                lines = shell_lines(stack_environment(stack))
                if env_file is not None:
                    env_file.parent.mkdir(parents=True, exist_ok=True)
                    env_file.write_text("\n".join(lines) + "\n")
                print("\n".join(lines + [f"# {line}" for line in summary(stack, zones, workdir, env_file)]))
                print(f"{READY} (pid {os.getpid()}); Ctrl-C or SIGTERM stops it", flush=True)
                block_stop_signals()
                received = signal.Signals(signal.sigwait(STOP_SIGNALS))
                print(f"# {received.name}: stopping the local stack", file=sys.stderr, flush=True)
            finally:
                block_stop_signals()
                stack.stop()
    except (Stopped, KeyboardInterrupt) as stopped:
        print(f"# interrupted while starting ({stopped or 'SIGINT'})", file=sys.stderr)
    finally:
        if env_file is not None:
            env_file.unlink(missing_ok=True)  # its endpoints are gone
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("# local stack stopped", file=sys.stderr, flush=True)
    return 0


def summary(stack: LocalStack, zones: Mapping[str, str], workdir: Path, env_file: Path | None) -> list[str]:
    lines = [
        f"moto {stack.moto_endpoint}, pebble {stack.pebble.directory_url}, "
        f"DNS {stack.dns_address[0]}:{stack.dns_address[1]}, up in {stack.startup_seconds:.1f} s",
        f"table {stack.table_name}; hosted zones: "
        + (", ".join(f"{name} ({zone_id})" for name, zone_id in zones.items()) or "none (add --zone NAME)"),
        f"servers' logs in {workdir}",
    ]
    if env_file is not None:
        lines.append(f"in another shell: source {env_file}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    command = commands.add_parser("up", help="start the local stack and serve until Ctrl-C or SIGTERM")
    command.add_argument(
        "--zone",
        action="append",
        default=[],
        metavar="NAME",
        help="create this public hosted zone (repeatable), e.g. --zone example.test",
    )
    command.add_argument(
        "--table", default="certificates", help="name of the certificates table (default: %(default)s)"
    )
    command.add_argument(
        "--env-file",
        type=lambda text: Path(text) if text else None,
        default=DEFAULT_ENV_FILE,
        help="also write the export lines here, removed on stop; '' for none (default: %(default)s)",
    )
    command.add_argument(
        "--workdir", help="folder for the servers' files and logs, kept afterwards (default: a temporary one)"
    )
    command.set_defaults(run=up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

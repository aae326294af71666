"""Operator CLI, `renew`: a renewal run on the operator's machine, for given certificates or what is due."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from acme_renewer import runtime
from acme_renewer.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OperatorError,
    load_settings,
    not_found,
    open_table,
)
from acme_renewer.cli.output import err, is_key, label, out, plural
from acme_renewer.report.outcomes import Outcome, Result

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    renew = commands.add_parser(
        "renew",
        parents=[common],
        help="renew now, from this machine",
        description="Renew the given certificates now, whatever their expiry and failure backoff, or (with "
        "--all-due) run the scheduled renewal once.",
    )
    renew.add_argument("ids", nargs="*", metavar="ID")
    renew.add_argument("--all-due", action="store_true", help="renew what the scheduled run would renew")
    renew.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
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

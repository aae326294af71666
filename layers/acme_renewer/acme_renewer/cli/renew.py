"""Operator CLI, `renew`: a renewal run on the operator's machine, for given certificates or what is due."""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

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
from acme_renewer.cli.output import err, is_key, label, out, plural, to_json
from acme_renewer.inventory.table import iso
from acme_renewer.models import Phase, Step
from acme_renewer.report.outcomes import Outcome, Result

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    renew = commands.add_parser(
        "renew",
        parents=[common],
        help="renew now, from this machine",
        description="Renew the given certificates now, whatever their expiry and failure backoff; or run the "
        "scheduled renewal once: --all-due as the regular schedule does (the due items only), --all as the daily "
        "full run (every item, with the drift and endpoint checks). What it is doing goes to stderr as it happens.",
    )
    renew.add_argument("ids", nargs="*", metavar="ID")
    which = renew.add_mutually_exclusive_group()
    which.add_argument("--all-due", action="store_true", help="renew the due items, as the regular schedule does")
    which.add_argument("--all", action="store_true", help="the full run: every item considered, as the daily run")
    renew.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    renew.set_defaults(command_function=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.ids) == (args.all_due or args.all):
        raise OperatorError("give the ids to renew, or --all-due or --all for a scheduled run, not both", EXIT_USAGE)
    settings = load_settings(args)
    if args.ids:
        table = open_table(settings)
        missing = [item_id for item_id in args.ids if table.get(item_id) is None]
        if missing:
            raise OperatorError(f"{not_found(', '.join(missing), settings)}; nothing renewed")
    progress = Progress(len(args.ids) or None, style="quiet" if args.quiet else "json" if args.json else "text")
    renewer = runtime.build_renewer(settings, on_phase=progress.phase)
    renewer.on_outcome = progress
    started = time.monotonic()
    # An operator's explicit renew ignores the renewal window and the failure backoff.
    report = renewer.renew(args.ids, force=True) if args.ids else renewer.run(due_only=args.all_due)
    seconds = time.monotonic() - started
    code = EXIT_FAILED if report.count(Result.FAILED) else EXIT_OK
    if args.json:
        document: dict[str, Any] = {result.value: report.count(result) for result in Result}
        document |= {
            "run": "ids" if args.ids else "due" if args.all_due else "full",
            "certificates": len(report.outcomes),
            "seconds": round(seconds, 1),
            "outcomes": [outcome_json(outcome) for outcome in report.outcomes],
        }
        out(to_json(document))
        return code
    counts = [f"{report.count(result)} {label(result)}" for result in Result if report.count(result) or is_key(result)]
    out(f"{', '.join(counts)} ({plural(len(report.outcomes), 'certificate')} in {seconds:.1f} s)")
    return code


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": outcome.id,
        "result": outcome.result.value,
        "reason": outcome.reason,
        "not_after": iso(outcome.not_after) if outcome.not_after else None,
    }
    if outcome.failure is not None:
        document["failure_count"] = outcome.failure.failure_count
        document["next_attempt_at"] = iso(outcome.failure.next_attempt_at)
    if outcome.published is not None:
        document["acm_arns"] = outcome.published.acm_arns
        document["secret_arn"] = outcome.published.secret_arn
    return document


Style = Literal["text", "json", "quiet"]

# A line for the Route53 wait at most this often; the adapter polls more often early on.
WAIT_LINE_SECONDS = 5.0


class Progress:
    """What a run is doing, on stderr as it happens: its phases, then `[3/10] www: renewed (not_after 2027-02-23)`
    as each certificate finishes. `json`: the same as one JSON object a line; `quiet`: nothing.

    Called from the pipeline's threads (the stores of several certificates, the Route53 of several accounts)."""

    def __init__(self, total: int | None, *, style: Style = "text") -> None:
        self.total = total
        self.done = 0
        self.style = style
        self._lock = threading.Lock()
        self._waited: float | None = None  # seconds of the last Route53 wait line

    def phase(self, phase: Phase) -> None:
        with self._lock:
            if phase.step is Step.CONSIDERED and self.total is None:
                self.total = phase.certificates
            if self.style == "json":
                fields = {"certificates": phase.certificates, "records": phase.records, "zones": phase.zones}
                fields |= {"changes": phase.changes}
                line: dict[str, Any] = {"phase": phase.step.value, **{k: v for k, v in fields.items() if v}}
                if phase.seconds is not None:
                    line["seconds"] = round(phase.seconds, 1)
                self._emit(json.dumps(line))
            elif self.style == "text":
                text = self._describe(phase)
                if text is not None:
                    self._emit(text)

    def __call__(self, outcome: Outcome) -> None:
        with self._lock:
            self.done += 1
            total = max(self.total or 0, self.done)
            if outcome.result is Result.RENEWED and outcome.not_after is not None:
                detail = f"not_after {outcome.not_after:%Y-%m-%d}"
            else:
                detail = outcome.reason
            if self.style == "json":
                line = {"phase": "done", "done": self.done, "total": total, "id": outcome.id}
                self._emit(json.dumps(line | {"result": outcome.result.value, "detail": detail}))
            elif self.style == "text":
                self._emit(f"[{self.done}/{total}] {outcome.id}: {label(outcome.result)} ({detail})")

    def _describe(self, phase: Phase) -> str | None:
        seconds = phase.seconds or 0.0
        match phase.step:
            case Step.CONSIDERED:
                return f"considering {plural(phase.certificates, 'certificate')}"
            case Step.ORDERING:
                return f"ordering {plural(phase.certificates, 'certificate')} from the CA"
            case Step.PUBLISHING:
                self._waited = None
                return f"publishing {plural(phase.records, 'TXT record')} in {plural(phase.zones, 'hosted zone')}"
            case Step.WAITING:
                if self._waited is None:
                    self._waited = seconds
                    return f"waiting for Route53 to apply {plural(phase.changes, 'change')}"
                if seconds - self._waited < WAIT_LINE_SECONDS:
                    return None
                self._waited = seconds
                return f"waiting for Route53: {seconds:.0f} s so far, {plural(phase.changes, 'change')} pending"
            case Step.CHECKING:
                return f"Route53 in sync; asking the authoritative servers of {plural(phase.zones, 'zone')}"
            case Step.LIVE:
                return f"{plural(phase.records, 'TXT record')} live after {seconds:.1f} s"
            case Step.VALIDATING:
                return f"the CA is validating {plural(phase.certificates, 'order')}"
        return None

    def _emit(self, line: str) -> None:
        err(line)

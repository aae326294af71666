"""Operator CLI, `status`: the fleet on one screen: how many certificates, due, failing and paused, the soonest
expiry and the renewer's last attempt."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from acme_renewer.cli.common import EXIT_OK, load_settings, open_table
from acme_renewer.cli.output import Column, days_left, out, render_table, shorten_error, to_json
from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.policy import REQUEST_FIELDS, FailurePolicy, fingerprint, held_back
from acme_renewer.inventory.table import parse_time, state_from_item
from acme_renewer.inventory.validation import account_directory, parse_item
from acme_renewer.models import Status
from acme_renewer.settings import Settings

if TYPE_CHECKING:
    from acme_renewer.cli.common import Commands


def register(commands: Commands, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="the fleet on one screen: due, failing, paused, the soonest expiry, the last attempt",
    )
    status.set_defaults(command_function=run)


@dataclass
class Fleet:
    """What `status` shows, counted over the merged items as the renewer reads them."""

    certificates: int = 0
    disabled: int = 0
    invalid: int = 0
    never_issued: int = 0
    due: int = 0  # in the due index with due_at passed: what the next scheduled (due-only) run renews
    failing: int = 0  # the last attempt failed (paused ones included)
    paused: int = 0  # failed too often; waits for the request to change or an operator's `renew`
    soonest: tuple[str, datetime] | None = None  # (id, not_after) over enabled, issued certificates
    last_attempt: tuple[str, datetime, str] | None = None  # (id, last_attempt_at, its status)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, now: datetime) -> dict[str, Any]:
        soonest = last = None
        if self.soonest is not None:
            item_id, not_after = self.soonest
            soonest = {"id": item_id, "not_after": _iso(not_after), "days_left": round(days_left(not_after, now), 1)}
        if self.last_attempt is not None:
            item_id, at, status = self.last_attempt
            last = {"id": item_id, "at": _iso(at), "status": status}
        return {
            "certificates": self.certificates,
            "disabled": self.disabled,
            "invalid": self.invalid,
            "never_issued": self.never_issued,
            "due": self.due,
            "failing": self.failing,
            "paused": self.paused,
            "soonest_expiry": soonest,
            "last_attempt": last,
            "failures": self.failures,
        }


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    now = datetime.now(UTC)
    fleet = survey(open_table(settings).items(), settings, now)
    if args.json:
        out(to_json(fleet.as_json(now)))
        return EXIT_OK
    for line in describe(fleet, now, settings.table_name):
        out(line)
    return EXIT_OK


def survey(items: Sequence[Mapping[str, Any]], settings: Settings, now: datetime) -> Fleet:
    policy = FailurePolicy(max_consecutive_failures=settings.max_consecutive_failures)
    fleet = Fleet()
    for item in items:
        item_id = str(item.get("id"))
        fleet.certificates += 1
        enabled = item.get("enabled") is not False
        try:
            parse_item(item, settings)
        except ItemValidationError:
            fleet.invalid += 1
        if not enabled:
            fleet.disabled += 1
        state = state_from_item(item)
        due_at = parse_time(item.get("due_at"))
        if enabled and due_at is not None and due_at <= now:
            fleet.due += 1
        if state.not_after is None:
            fleet.never_issued += 1
        elif enabled and (fleet.soonest is None or state.not_after < fleet.soonest[1]):
            fleet.soonest = (item_id, state.not_after)
        attempted = parse_time(item.get("last_attempt_at"))
        if attempted is not None and (fleet.last_attempt is None or attempted > fleet.last_attempt[1]):
            fleet.last_attempt = (item_id, attempted, str(item.get("status") or "-"))
        if item.get("status") == Status.FAILED.value:
            fleet.failing += 1
            # As the renewer decides it: the same request failed too often (an edited one starts again).
            request_fp = fingerprint(item, REQUEST_FIELDS, account_directory(item, settings))
            held = held_back(state, request_fp, now, policy, item_id)
            paused = held is not None and held.held == "paused"
            fleet.paused += paused
            next_attempt = state.next_attempt_at
            fleet.failures.append(
                {
                    "id": item_id,
                    "failure_count": state.failure_count,
                    "paused": paused,
                    "next_attempt_at": None if paused or next_attempt is None else _iso(next_attempt),
                    "last_error": str(item.get("last_error") or ""),
                }
            )
    fleet.failures.sort(key=lambda failure: failure["id"])
    return fleet


def describe(fleet: Fleet, now: datetime, table_name: str) -> list[str]:
    if not fleet.certificates:
        return [f"no certificates in {table_name}; add one with `acme-renewer add ID DOMAIN...`"]
    extra = [
        f"{count} {what}"
        for count, what in ((fleet.disabled, "disabled"), (fleet.invalid, "invalid"), (fleet.never_issued, "new"))
        if count
    ]
    lines = [
        f"certificates  {fleet.certificates}" + (f" ({', '.join(extra)})" if extra else ""),
        f"due now       {fleet.due}",
        f"failing       {fleet.failing}" + (f" ({fleet.paused} paused)" if fleet.paused else ""),
    ]
    if fleet.soonest is not None:
        item_id, not_after = fleet.soonest
        left = days_left(not_after, now)
        when = f"{left:.1f} days left" if left >= 0 else f"EXPIRED {-left:.1f} days ago"
        lines.append(f"soonest       {item_id}, {not_after:%Y-%m-%d} ({when})")
    else:
        lines.append("soonest       - (none issued)")
    if fleet.last_attempt is not None:
        item_id, at, status = fleet.last_attempt
        lines.append(f"last attempt  {_iso(at)} ({item_id}: {status})")
    else:
        lines.append("last attempt  - (the renewer has not tried any yet)")
    if fleet.failures:
        columns = [
            Column("FAILING", minimum=8),
            Column("FAILURES"),
            Column("NEXT ATTEMPT"),
            Column("LAST ERROR", minimum=24, cut=shorten_error, weight=3),
        ]
        rows = [
            [
                failure["id"],
                str(failure["failure_count"]),
                "paused" if failure["paused"] else _minutes(failure["next_attempt_at"]),
                failure["last_error"] or "-",
            ]
            for failure in fleet.failures
        ]
        lines += ["", *render_table(columns, rows)]
    return lines


def _minutes(text: str | None) -> str:
    moment = parse_time(text)
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "-"


def _iso(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"

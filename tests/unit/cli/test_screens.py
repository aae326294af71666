"""The operator CLI's screens without AWS: tables within 80 columns, `status`, progress lines, JSON, and which run
`renew` asks for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from acme_renewer import cli, runtime
from acme_renewer.cli import listing, output, renew, status
from acme_renewer.models import Phase, Step
from acme_renewer.report.outcomes import Outcome, Result, RunReport
from acme_renewer.settings import Settings

NOW = datetime(2026, 11, 25, tzinfo=UTC)
SETTINGS = Settings(table_name="certificates", region="eu-west-1")
LONG_ZONE = "payments.eu-west.example-corp.test"
ZONE_ERROR = (
    f"no public Route53 hosted zone contains '_acme-challenge.www.{LONG_ZONE}'; "
    "create one or delegate the name to a zone this account owns"
)


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(service: str, region: str) -> Any:
        raise AssertionError(f"unexpected AWS client {service} in {region}")

    monkeypatch.setattr(runtime, "client", refuse)
    monkeypatch.setenv("TABLE_NAME", "certificates")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")


def at(days: float) -> str:
    return f"{NOW + timedelta(days=days):%Y-%m-%dT%H:%M:%SZ}"


FLEET: list[dict[str, Any]] = [
    {
        "id": "customer-portal-production-eu",
        "domains": [f"www.{LONG_ZONE}", f"api.{LONG_ZONE}", "static.example.test"],
        "status": "FAILED",
        "enabled": False,
        "last_error": ZONE_ERROR,
        "not_after": at(3),
        "last_attempt_at": at(-1),
        "failure_count": Decimal(2),
        "next_attempt_at": at(0.5),
    },
    {"id": "www", "domains": ["example.test"], "status": "ISSUED", "not_after": at(60), "last_attempt_at": at(-30)},
    {"id": "new", "domains": ["new.example.test"], "due_at": at(-0.1)},
]


# --- tables ---------------------------------------------------------------------------------------


def test_list_fits_80_columns_and_an_error_keeps_the_name_it_is_about() -> None:
    lines = output.render_table(listing.COLUMNS, [listing.row(item, NOW) for item in FLEET], width=80)
    assert max(map(len, lines)) <= 80
    assert lines[0].split() == ["ID", "NAMES", "STATUS", "EXPIRES", "DAYS", "LAST", "ERROR"]
    [failed] = [line for line in lines if "FAILED (disabled)" in line]
    # The id cut in its middle, the names down to their count, the status and dates whole.
    assert failed.startswith("cus…eu  3 names     FAILED (disabled)  ")
    assert f"{NOW + timedelta(days=3):%Y-%m-%d}  3.0" in failed
    # The error cut to the end of the name it is about, where its zone is.
    assert failed.endswith("…est.example-corp.test'")
    # A shorter status leaves the error more room.
    alone = output.render_table(listing.COLUMNS, [listing.row({**FLEET[0], "enabled": True}, NOW)], width=80)
    assert max(map(len, alone)) <= 80
    assert alone[1].endswith("…ents.eu-west.example-corp.test'")
    www = next(line for line in lines if line.startswith("www "))
    assert www.split() == ["www", "examp…test", "ISSUED", f"{NOW + timedelta(days=60):%Y-%m-%d}", "60.0", "-"]


def test_a_wide_terminal_shows_everything() -> None:
    lines = output.render_table(listing.COLUMNS, [listing.row(item, NOW) for item in FLEET], width=1000)
    assert ZONE_ERROR in lines[1]


def test_an_error_is_cut_around_the_name_it_names() -> None:
    error = "no public Route53 hosted zone contains '_acme-challenge.www.nowhere.invalid'; create one or delegate"
    for width in (40, 50, 60, 70):
        cut = output.shorten_error(error, width)
        assert len(cut) == width
        assert "'_acme-challenge.www.nowhere.invalid'" in cut
    assert output.shorten_error(error, 60).startswith("no public Route53 host")
    # Too narrow for the whole name: its end, where the zone is.
    assert output.shorten_error(error, 20) == "…ww.nowhere.invalid'"
    assert output.shorten_error("short", 20) == "short"
    assert output.shorten_error("no name in this long message at all, none", 20) == "no name in…all, none"


def test_wrapped_values_break_at_spaces_only() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:acme-renewer/certificates/www-PceWyM"
    lines = output.wrap(f"{arn} (version 312c0367-7cf1-55b5-924b-5fc03015a732)", f"{'secret ARN':<20} ", width=80)
    assert lines == [f"{'secret ARN':<20} {arn}", f"{'':<20} (version 312c0367-7cf1-55b5-924b-5fc03015a732)"]


# --- status ---------------------------------------------------------------------------------------


def test_status_counts_the_fleet() -> None:
    fleet = status.survey(FLEET, SETTINGS, NOW)
    document = fleet.as_json(NOW)
    assert {k: document[k] for k in ("certificates", "disabled", "invalid", "never_issued", "due", "failing")} == {
        "certificates": 3,
        "disabled": 1,
        "invalid": 0,
        "never_issued": 1,
        "due": 1,
        "failing": 1,
    }
    assert document["paused"] == 0
    # The soonest expiry of the enabled certificates; the disabled one, sooner, is not renewed.
    assert document["soonest_expiry"] == {"id": "www", "not_after": at(60), "days_left": 60.0}
    assert document["last_attempt"] == {"id": "customer-portal-production-eu", "at": at(-1), "status": "FAILED"}
    assert document["failures"][0]["next_attempt_at"] == at(0.5)
    lines = status.describe(fleet, NOW, "certificates")
    assert lines[:5] == [
        "certificates  3 (1 disabled, 1 new)",
        "due now       1",
        "failing       1",
        f"soonest       www, {NOW + timedelta(days=60):%Y-%m-%d} (60.0 days left)",
        f"last attempt  {at(-1)} (customer-portal-production-eu: FAILED)",
    ]
    assert max(map(len, lines)) <= 80
    assert lines[-1].endswith(f"…w.{LONG_ZONE}'")


def test_status_says_paused_as_the_renewer_decides_it() -> None:
    item = {**FLEET[0], "enabled": True, "failure_count": Decimal(8)}
    from acme_renewer.inventory.policy import REQUEST_FIELDS, fingerprint

    item["attempt_fingerprint"] = fingerprint(item, REQUEST_FIELDS, SETTINGS.acme_directory_url)
    fleet = status.survey([item], SETTINGS, NOW)
    assert (fleet.failing, fleet.paused) == (1, 1)
    assert fleet.failures[0]["next_attempt_at"] is None
    # An edited request starts again from one: no longer paused.
    edited = {**item, "domains": ["other.example.test"]}
    assert status.survey([edited], SETTINGS, NOW).paused == 0


# --- progress -------------------------------------------------------------------------------------

PHASES = [
    Phase(Step.CONSIDERED, certificates=2),
    Phase(Step.ORDERING, certificates=2),
    Phase(Step.PUBLISHING, records=3, zones=2),
    Phase(Step.WAITING, changes=2, seconds=0.0),
    Phase(Step.WAITING, changes=2, seconds=1.0),
    Phase(Step.WAITING, changes=1, seconds=6.0),
    Phase(Step.WAITING, changes=1, seconds=8.0),
    Phase(Step.LIVE, certificates=2, records=3, seconds=9.1),
    Phase(Step.VALIDATING, certificates=2),
]


def test_phase_lines_then_each_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    progress = renew.Progress(None)
    for phase in PHASES:
        progress.phase(phase)
    progress(Outcome("www", Result.RENEWED, "never issued", datetime(2027, 2, 23, tzinfo=UTC)))
    assert capsys.readouterr().err.splitlines() == [
        "considering 2 certificates",
        "ordering 2 certificates from the CA",
        "publishing 3 TXT records in 2 hosted zones",
        "waiting for Route53 to apply 2 changes",
        "waiting for Route53: 6 s so far, 1 change pending",
        "3 TXT records live after 9.1 s",
        "the CA is validating 2 orders",
        "[1/2] www: renewed (not_after 2027-02-23)",
    ]


def test_phase_lines_as_json_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    progress = renew.Progress(None, style="json")
    for phase in PHASES:
        progress.phase(phase)
    progress(Outcome("api", Result.FAILED, "boom"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == len(PHASES) + 1  # every wait poll, unthrottled
    assert lines[2] == {"phase": "publishing", "records": 3, "zones": 2}
    assert lines[5] == {"phase": "waiting", "changes": 1, "seconds": 6.0}
    assert lines[-1] == {"phase": "done", "done": 1, "total": 2, "id": "api", "result": "failed", "detail": "boom"}

    quiet = renew.Progress(1, style="quiet")
    for phase in PHASES:
        quiet.phase(phase)
    quiet(Outcome("api", Result.FAILED, "boom"))
    assert capsys.readouterr().err == ""


# --- renew: which run -----------------------------------------------------------------------------


@dataclass
class FakeRenewer:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    on_outcome: Any = None

    def run(self, *, due_only: bool = False) -> RunReport:
        self.calls.append(("run", due_only))
        report = RunReport(now=NOW, outcomes=[Outcome("www", Result.RENEWED, "due", datetime(2027, 2, 23, tzinfo=UTC))])
        self.on_outcome(report.outcomes[0])
        return report


@pytest.fixture
def fake_renewer(monkeypatch: pytest.MonkeyPatch) -> FakeRenewer:
    fake = FakeRenewer()
    monkeypatch.setattr(runtime, "build_renewer", lambda settings, on_phase=None: fake)
    return fake


@pytest.mark.parametrize(("option", "due_only"), [("--all-due", True), ("--all", False)])
def test_all_due_is_the_due_only_run_and_all_the_full_run(
    option: str, due_only: bool, fake_renewer: FakeRenewer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["renew", option]) == 0
    assert fake_renewer.calls == [("run", due_only)]
    captured = capsys.readouterr()
    assert captured.err == "[1/1] www: renewed (not_after 2027-02-23)\n"
    assert captured.out.startswith("1 renewed, 0 failed (1 certificate in ")


def test_renew_json_is_one_document_and_quiet_prints_no_progress(
    fake_renewer: FakeRenewer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["renew", "--all-due", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    document = json.loads(captured.out)
    assert (document["run"], document["renewed"], document["failed"], document["certificates"]) == ("due", 1, 0, 1)
    assert document["outcomes"] == [
        {"id": "www", "result": "renewed", "reason": "due", "not_after": "2027-02-23T00:00:00Z"}
    ]


# --- JSON errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["show", "www", "--json"], 2, "no table: pass --table"),
        (["--json", "list", "--tabel", "x"], 2, "unrecognized arguments: --tabel"),
        (["renew", "--json"], 2, "give the ids to renew"),
    ],
)
def test_with_json_an_error_is_one_document_on_stdout_too(
    argv: list[str], code: int, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TABLE_NAME")
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["exit_code"] == code
    assert message in document["error"]
    assert f"acme-renewer: error: {document['error']}\n" in captured.err


def test_without_json_an_error_leaves_stdout_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--tabel", "x"]) == 2
    assert capsys.readouterr().out == ""

"""The operator CLI without AWS: arguments, refusals before any call, and how items are shown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from acme_renewer import cli, runtime
from acme_renewer.cli import add, entry, output, renew, show
from acme_renewer.report.outcomes import Outcome, Result
from acme_renewer.settings import Settings

NOW = datetime(2026, 11, 25, tzinfo=UTC)
SETTINGS = Settings(table_name="certificates", region="eu-west-1")


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests must be decided before any AWS call."""

    def refuse(service: str, region: str) -> Any:
        raise AssertionError(f"unexpected AWS client {service} in {region}")

    monkeypatch.setattr(runtime, "client", refuse)
    monkeypatch.setenv("TABLE_NAME", "certificates")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for name in ("ACME_DIRECTORY_URL", "SECRET_PREFIX"):
        monkeypatch.delenv(name, raising=False)


def test_a_bad_item_is_refused_with_every_reason_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["add", "www", "ex ample.com", "--key-type", "dsa", "--regions", "mars-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "domain 'ex ample.com' has an invalid label" in err
    assert "key_type 'dsa' is not one of" in err
    assert "acm_regions has 'mars-1'" in err


def test_a_secret_outside_the_prefix_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["add", "www", "example.com", "--secret-name", "elsewhere/www"]) == 2
    assert "must start with 'acme-renewer/'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["renew"], "give the ids to renew, or --all-due or --all"),
        (["renew", "www", "--all-due"], "give the ids to renew, or --all-due or --all"),
        (["renew", "www", "--all"], "give the ids to renew, or --all-due or --all"),
        (["renew", "--all", "--all-due"], "not allowed with argument"),
    ],
)
def test_renew_needs_ids_or_all_due(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_no_table_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TABLE_NAME")
    assert cli.main(["list"]) == 2
    assert capsys.readouterr().err == (
        "acme-renewer: error: no table: pass --table or set TABLE_NAME (the stack output CertificatesTableName)\n"
    )


def test_unknown_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--tabel", "x"]) == 2
    assert "unrecognized arguments: --tabel" in capsys.readouterr().err
    assert cli.main(["add", "www", "example.com", "--renew-before-days", "soon"]) == 2


def test_common_options_go_before_or_after_the_command() -> None:
    parser = entry.build_parser()
    assert parser.parse_args(["--table", "a", "list"]).table == "a"
    assert parser.parse_args(["list", "--table", "b"]).table == "b"
    assert parser.parse_args(["-v", "list"]).verbose is True
    assert parser.parse_args(["list"]).table is None


def regions_of(*argv: str) -> list[str] | None:
    return add.acm_regions(entry.build_parser().parse_args(["add", *argv]))


def test_regions_alone_or_empty_or_no_acm_means_no_acm_import() -> None:
    assert regions_of("www", "example.com", "--regions") == []
    assert regions_of("www", "example.com", "--regions", "") == []
    assert regions_of("www", "example.com", "--no-acm") == []
    assert regions_of("www", "example.com") is None


def test_regions_repeat_or_come_comma_separated_and_never_swallow_the_domains() -> None:
    parser = entry.build_parser()
    args = parser.parse_args(["add", "r1", "--regions", "us-west-2", "r1.example.test"])
    assert (args.id, args.domains, add.acm_regions(args)) == ("r1", ["r1.example.test"], ["us-west-2"])
    args = parser.parse_args(["add", "r1", "--region", "us-west-2", "--region", "eu-west-1", "r1.example.test"])
    assert (args.domains, add.acm_regions(args)) == (["r1.example.test"], ["us-west-2", "eu-west-1"])
    assert regions_of("www", "example.com", "--regions", "us-east-1, eu-west-1", "--region", "us-east-1") == [
        "us-east-1",
        "eu-west-1",
    ]


def test_options_before_the_domains_reach_validation(capsys: pytest.CaptureFixture[str]) -> None:
    """Parsed as id, regions, domain: validation (before any AWS call) is what refuses the key type."""
    assert cli.main(["add", "r1", "--regions", "us-west-2", "r1.example.test", "--key-type", "dsa"]) == 2
    err = capsys.readouterr().err
    assert "the following arguments are required" not in err
    assert "key_type 'dsa' is not one of" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "www", "--regions", "us-east-1", "eu-west-1", "example.com"], "eu-west-1 looks like an AWS region"),
        (["add", "www", "example.com", "--no-acm", "--region", "us-east-1"], "--no-acm cannot go with ACM regions"),
    ],
)
def test_regions_that_cannot_be_meant_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_names_are_cut_at_whole_names() -> None:
    names = ["example.com", "*.example.com", "www.example.org", "api.example.org"]
    assert output.shorten_names(names, 40) == "example.com, *.example.com, +2 more"
    assert output.shorten_names(names[:2], 40) == "example.com, *.example.com"
    # One name longer than the room keeps both its ends: the zone stays visible.
    assert output.shorten_names(["a-very-long-name." * 4 + "com"], 20) == "a-very-lon…-name.com"
    assert output.shorten_names([], 20) == "-"


def test_never_issued_first_then_the_soonest_to_expire() -> None:
    items = [
        {"id": "later", "not_after": "2027-02-01T00:00:00Z"},
        {"id": "new"},
        {"id": "soon", "not_after": "2026-12-01T00:00:00Z"},
        {"id": "expired", "not_after": "2026-11-01T00:00:00Z"},
    ]
    assert [i["id"] for i in sorted(items, key=lambda i: output.expiry_order(i, NOW))] == [
        "new",
        "expired",
        "soon",
        "later",
    ]


def test_dynamodb_values_become_plain_json() -> None:
    item = {"n": Decimal("20"), "f": Decimal("1.5"), "s": {"b", "a"}, "m": {"k": [Decimal(1)]}}
    assert output.plain_json(item) == {"n": 20, "f": 1.5, "s": ["a", "b"], "m": {"k": [1]}}
    assert isinstance(output.plain_json(Decimal("20")), int)


def test_show_makes_defaults_visible() -> None:
    rows = dict(show.describe_item({"id": "www", "domains": ["Example.com"], "written_by": "operator"}, SETTINGS, NOW))
    assert rows["domains"] == "example.com"
    assert rows["key type"] == "ec-p256 (default)"
    assert rows["ACM regions"] == "eu-west-1 (default)"
    assert rows["secret name"] == "acme-renewer/certificates/www (default)"
    assert rows["status"] == "-"
    assert rows["written_by"] == "operator"


def test_show_of_an_issued_item() -> None:
    item = {
        "id": "www",
        "domains": ["example.com"],
        "acm_regions": [],
        "renew_before_days": Decimal(20),
        "status": "ISSUED",
        "not_after": "2026-12-05T12:00:00Z",
        "acm_arns": {"us-east-1": "arn:aws:acm:us-east-1:1:certificate/a", "eu-west-1": "arn:aws:acm:eu-west-1:1:c/b"},
        "secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:acme-renewer/certificates/www-Ab12",
        "failure_count": Decimal(0),
    }
    rows = show.describe_item(item, SETTINGS, NOW)
    shown = dict(rows)
    assert shown["ACM regions"] == "none (secret only)"
    assert shown["renews"] == "20 days before expiry"
    assert shown["not after"] == "2026-12-05T12:00:00Z (10.5 days left)"
    assert shown["failure count"] == "0"
    assert [label for label, _ in rows if label.startswith("ACM ARN")] == ["ACM ARN eu-west-1", "ACM ARN us-east-1"]


def test_show_of_an_invalid_item_says_what_is_wrong() -> None:
    rows = dict(show.describe_item({"id": "bad", "domains": "example.com"}, SETTINGS, NOW))
    assert "domains must be a non-empty list" in rows["INVALID"]
    assert rows["domains"] == "example.com"


def test_show_says_the_warnings_of_valid_and_invalid_items_as_validation_says_them_now() -> None:
    recorded = {"warnings": ["unknown attribute 'old' ignored"]}  # from the last attempt, since fixed
    valid = show.describe_item({"id": "www", "domains": ["example.com"], "key_tpye": "x", **recorded}, SETTINGS, NOW)
    assert [value for label, value in valid if label == "warning"] == [
        "unknown attribute 'key_tpye' ignored; did you mean 'key_type'?"
    ]
    assert "warnings" not in dict(valid)
    invalid = show.describe_item({"id": "bad", "domain": ["example.com"]}, SETTINGS, NOW)
    assert [value for label, value in invalid if label == "warning"] == [
        "unknown attribute 'domain' ignored; did you mean 'domains'?"
    ]


def test_progress_lines(capsys: pytest.CaptureFixture[str]) -> None:
    progress = renew.Progress(total=2)
    progress(Outcome("www", Result.RENEWED, "never issued", datetime(2027, 2, 23, 19, 11, tzinfo=UTC)))
    progress(Outcome("api", Result.FAILED, "no public Route53 hosted zone contains 'x'"))
    assert capsys.readouterr().err.splitlines() == [
        "[1/2] www: renewed (not_after 2027-02-23)",
        "[2/2] api: failed (no public Route53 hosted zone contains 'x')",
    ]


def test_acm_accounts_come_from_their_flags_each_with_its_external_id(capsys: pytest.CaptureFixture[str]) -> None:
    role, other = "arn:aws:iam::444455556666:role/acme-acm", "arn:aws:iam::777788889999:role/acme-acm"
    parser = entry.build_parser()
    argv = [
        "add",
        "www",
        "--acm-account",
        role,
        "eu-west-1, us-east-1",
        "example.com",
        "--acm-account",
        other,
        "eu-west-1",
    ]
    args = parser.parse_args([*argv, "--acm-external-id", role, "ext-1234"])
    assert args.domains == ["example.com"]
    assert add.acm_accounts(args) == [
        {"role_arn": role, "regions": ["eu-west-1", "us-east-1"], "external_id": "ext-1234"},
        {"role_arn": other, "regions": ["eu-west-1"]},
    ]
    assert add.acm_accounts(parser.parse_args(["add", "www", "example.com"])) is None
    assert cli.main(["add", "www", "example.com", "--acm-external-id", role, "ext-1234"]) == 2
    assert f"--acm-external-id names {role}, which no --acm-account names" in capsys.readouterr().err


def test_formats_and_secret_regions_come_from_their_flags_and_show_says_them() -> None:
    parser = entry.build_parser()
    args = parser.parse_args(
        ["add", "www", "example.com", "--formats", "pkcs12, bundle", "--secret-regions", "eu-central-1"]
    )
    assert (add.comma_list(args.formats), add.comma_list(args.secret_regions)) == (
        ["pkcs12", "bundle"],
        ["eu-central-1"],
    )
    bare = parser.parse_args(["add", "www", "example.com"])
    assert (add.comma_list(bare.formats), add.comma_list(bare.secret_regions)) == (None, None)

    item = {"id": "www", "domains": ["example.com"], "formats": ["pkcs12", "bundle"], "secret_regions": ["us-west-2"]}
    rows = dict(show.describe_item(item, SETTINGS, NOW))
    assert (rows["secret formats"], rows["secret regions"]) == ("pem, pkcs12, bundle", "us-west-2")
    assert "formats" not in rows and "secret_regions" not in rows  # said once, not again as raw attributes
    defaults = dict(show.describe_item({"id": "www", "domains": ["example.com"]}, SETTINGS, NOW))
    assert (defaults["secret formats"], defaults["secret regions"]) == ("pem (default)", "none (default)")


def test_add_refuses_an_unknown_format_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["add", "www", "example.com", "--formats", "pkcs12,jks"]) == 2
    assert "jks" in capsys.readouterr().err

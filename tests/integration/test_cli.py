"""The operator CLI on the local stack: it edits the table, renews through pebble and checks DNS through our
DNS server, driven through its entry point (and once through the installed console script) as an operator would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from acme_renewer import cli, renewal
from acme_renewer.inventory.table import SCHEDULED, CertificateTable, parse_time, status_id
from tests.integration.test_renewal import put_item, run
from tests.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_route53.literals import RRTypeType

CONSOLE_SCRIPT = Path(sys.executable).parent / "acme-renewer"
PEBBLE_CAA_IDENTITY = "pebble.letsencrypt.org"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def operator_env(env: dict[str, str], stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The stack's environment with a fresh table (conftest's `env`), and our DNS server as the resolver."""
    host, port = stack.dns_address
    monkeypatch.setenv("ACME_RENEWER_RESOLVER", f"{host}:{port}")
    monkeypatch.delenv("ACME_CAA_IDENTITIES", raising=False)
    return {**env, "ACME_RENEWER_RESOLVER": f"{host}:{port}"}


@pytest.fixture(autouse=True)
def restore_log_handlers() -> Iterator[None]:
    """main() sets up the package's log handler as a CLI process would; later tests get the old set back, and
    keep the handler of a Powertools Logger a handler module made meanwhile (Powertools marks the logger as
    configured once, and a later Logger of the service then expects that handler to be there)."""
    parent = logging.getLogger(renewal.logger.service)
    before = list(parent.handlers)
    yield
    powertools = getattr(parent, "powertools_handler", None)
    parent.handlers[:] = before + [h for h in parent.handlers if h is powertools and h not in before]


def acme_renewer(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "PRIVATE KEY" not in captured.out + captured.err
    return Run(code, captured.out, captured.err)


def new_zone(stack: LocalStack, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}.test"
    return name, stack.create_hosted_zone(name)


def upsert(stack: LocalStack, zone_id: str, name: str, rtype: RRTypeType, *values: str) -> None:
    stack.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": rtype,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": value} for value in values],
                    },
                }
            ]
        },
    )


def table_items(stack: LocalStack, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every item as stored: requests by id, status items by `<id>#status`."""
    deserializer = TypeDeserializer()
    raw = stack.client("dynamodb").scan(TableName=env["TABLE_NAME"], ConsistentRead=True)["Items"]
    items = [{k: deserializer.deserialize(v) for k, v in item.items()} for item in raw]
    return {item["id"]: item for item in items}


def certificates(stack: LocalStack, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every certificate as the renewer reads it: request and status merged."""
    return {item["id"]: item for item in CertificateTable(stack.client("dynamodb"), env["TABLE_NAME"]).items()}


def rows(listing: str) -> dict[str, list[str]]:
    """`list` output -> id: cells, split on the runs of two or more spaces between columns."""
    lines = listing.splitlines()
    assert lines[0].split() == ["ID", "NAMES", "STATUS", "EXPIRES", "DAYS", "LAST", "ERROR"]
    assert max(map(len, lines)) <= 80
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line) for line in lines[1:])}


def show_rows(output: str) -> dict[str, str]:
    """`show` output -> label: value (labels are padded to 20 characters; a value wrapped at 80 columns goes on
    under its label)."""
    shown: dict[str, str] = {}
    label = ""
    for line in output.splitlines():
        if line[:20].strip():
            label = line[:20].rstrip()
            shown[label] = line[21:]
        else:
            shown[label] += " " + line[21:]
    return shown


def unwrapped_show(output: str) -> list[str]:
    """`show` lines with the wrapped values joined again."""
    lines: list[str] = []
    for line in output.splitlines():
        if lines and not line[:20].strip():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def unwrapped(output: str) -> list[str]:
    """`check` lines with the wrapped details joined again (a continuation is indented past the check name)."""
    lines: list[str] = []
    for line in output.splitlines():
        if lines and line.startswith(" " * 16) and line.strip():
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def check_lines(output: str, level: str, check: str) -> list[str]:
    return [line.strip() for line in unwrapped(output) if line.strip().startswith(f"{level} ") and f" {check} " in line]


# --- add, list, renew, show, remove --------------------------------------------------------------


def test_add_list_renew_show_remove(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "cli")
    added = acme_renewer(capsys, "add", "www", zone, f"*.{zone}")
    assert added.code == 0, added.err
    assert added.out.startswith(f"added www: {zone}, *.{zone} (ec-p256, ACM: us-east-1, secret ")
    # Only what was given is stored in the request, and the certificate's status item holds its place in the
    # due index (due now).
    stored = table_items(stack, operator_env)
    assert stored["www"] == {"id": "www", "domains": [zone, f"*.{zone}"]}
    status = stored[status_id("www")]
    due_at = parse_time(status.pop("due_at"))
    assert due_at is not None and due_at <= datetime.now(UTC)
    assert status == {"id": status_id("www"), "status_of": "www", "schedule": SCHEDULED}
    assert acme_renewer(capsys, "add", "api", f"api.{zone}", "--regions", "--renew-before-days", "20").code == 0

    before = rows(acme_renewer(capsys, "list").out)
    assert before["www"][1:5] == [f"{zone}, *.{zone}", "-", "-", "-"]

    renewed = acme_renewer(capsys, "renew", "www")
    assert renewed.code == 0, renewed.err
    item = certificates(stack, operator_env)["www"]
    assert renewed.err.splitlines()[-1] == f"[1/1] www: renewed (not_after {item['not_after'][:10]})"
    assert renewed.out.startswith("1 renewed, 0 failed (1 certificate in ")

    # The certificate is in ACM with the requested names, and `show` says where it is.
    arn = item["acm_arns"][stack.region]
    certificate = stack.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    assert sorted(certificate["SubjectAlternativeNames"]) == sorted([zone, f"*.{zone}"])
    shown = acme_renewer(capsys, "show", "www")
    assert shown.code == 0
    show = show_rows(shown.out)
    assert show["ACM ARN us-east-1"] == arn
    assert show["secret name"] == "acme-renewer/certificates/www (default)"
    assert show["secret ARN"] == f"{item['secret_arn']} (version {item['secret_version_id']})"
    assert (show["status"], show["failure count"], show["last error"]) == ("ISSUED", "0", "-")

    after = rows(acme_renewer(capsys, "list").out)
    assert list(after) == ["api", "www"]  # never issued first
    assert after["www"][2:5] == ["ISSUED", item["not_after"][:10], "90.0"]

    removed = acme_renewer(capsys, "remove", "www")
    assert removed.code == 0
    assert f"aws acm delete-certificate --region us-east-1 --certificate-arn {arn}" in removed.out
    assert (
        "aws secretsmanager delete-secret --region us-east-1 --secret-id acme-renewer/certificates/www "
        "--recovery-window-in-days 7" in removed.out
    )
    assert "www" not in table_items(stack, operator_env)
    # Removing the item never deletes the certificate or the secret.
    assert stack.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]["CertificateArn"] == arn
    assert stack.client("secretsmanager").describe_secret(SecretId=item["secret_arn"])["Name"].endswith("/www")

    again = acme_renewer(capsys, "remove", "www")
    assert (again.code, again.err) == (
        1,
        f"acme-renewer: error: no certificate with id www in {operator_env['TABLE_NAME']}\n",
    )


def test_remove_names_the_replicas_first_and_a_legacy_pending_secret_only_while_it_exists(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS refuses to delete a secret that still has replicas, so their removal comes first; the `.pending` secret of
    versions before one secret per certificate is named only while it is there."""
    zone, _ = new_zone(stack, "replicated")
    item_id = f"replicated-{uuid.uuid4().hex[:8]}"
    put_item(stack, operator_env, {"id": item_id, "domains": [zone], "secret_regions": ["us-west-2"]})
    assert acme_renewer(capsys, "renew", item_id).code == 0
    name = f"acme-renewer/certificates/{item_id}"
    stack.client("secretsmanager").create_secret(Name=f"{name}.pending", SecretString="{}")  # left by an old version

    removed = json.loads(acme_renewer(capsys, "remove", item_id, "--json").out)

    assert removed["kept"]["secrets"] == [name, f"{name}.pending"]
    secret_commands = [c for c in removed["commands"] if c.startswith("aws secretsmanager")]
    assert secret_commands == [
        f"aws secretsmanager remove-regions-from-replication --region us-east-1 --secret-id {name}"
        " --remove-replica-regions us-west-2",
        f"aws secretsmanager delete-secret --region us-east-1 --secret-id {name} --recovery-window-in-days 7",
        f"aws secretsmanager delete-secret --region us-east-1 --secret-id {name}.pending --recovery-window-in-days 7",
    ]
    stack.client("secretsmanager").delete_secret(SecretId=f"{name}.pending", RecoveryWindowInDays=7)
    put_item(stack, operator_env, {"id": item_id, "domains": [zone]})
    assert acme_renewer(capsys, "renew", item_id).code == 0
    again = json.loads(acme_renewer(capsys, "remove", item_id, "--json").out)
    assert again["kept"]["secrets"] == [name]  # scheduled for deletion: not named


def test_a_bad_item_is_refused_with_the_reason_and_nothing_is_written(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    refused = acme_renewer(capsys, "add", "www", "example.test", "*.*.example.test", "--renew-before-days", "400")
    assert refused.code == 2
    assert refused.err.startswith("acme-renewer: error: invalid item: domain '*.*.example.test' may only have")
    assert "renew_before_days must be a whole number from 1 to 365, got 400" in refused.err
    assert table_items(stack, operator_env) == {}


def test_add_takes_the_hosted_zone_and_the_challenge_alias(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--hosted-zone-id", "/hostedzone/Z0123456789ABC", "--challenge-alias", "Validation.Example.NET"]
    assert acme_renewer(capsys, "add", "www", "a.example.test", *options).code == 0
    item = certificates(stack, operator_env)["www"]
    assert (item["hosted_zone_id"], item["challenge_alias"]) == ("/hostedzone/Z0123456789ABC", "Validation.Example.NET")
    refused = acme_renewer(capsys, "add", "api", "b.example.test", "--challenge-alias", "_acme-challenge.x.test")
    assert (refused.code, "without '_acme-challenge.'" in refused.err) == (2, True)


def test_add_takes_the_ca_profile_and_zone_role(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    role = "arn:aws:iam::111122223333:role/acme-dns"
    options = ["--ca", "zerossl", "--eab-secret", "acme-renewer/eab/zerossl", "--profile", "tlsserver"]
    options += ["--profile-fallback", "--zone-role-arn", role, "--zone-external-id", "renewer-42"]
    assert acme_renewer(capsys, "add", "www", "a.example.test", *options).code == 0
    item = certificates(stack, operator_env)["www"]
    fields = ("acme_directory", "eab_secret", "profile", "profile_fallback", "zone_role_arn", "zone_external_id")
    assert tuple(item[name] for name in fields) == (
        "zerossl", "acme-renewer/eab/zerossl", "tlsserver", True, role, "renewer-42"
    )  # fmt: skip
    refused = acme_renewer(capsys, "add", "api", "b.example.test", "--ca", "http://ca.test/dir")
    assert (refused.code, "acme_directory must be an https URL" in refused.err) == (2, True)


def test_an_existing_id_is_not_overwritten_without_replace(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert acme_renewer(capsys, "add", "www", "a.example.test").code == 0
    second = acme_renewer(capsys, "add", "www", "b.example.test")
    assert second.code == 1
    assert second.err.count("\n") == 1
    assert "a certificate with id 'www' already exists" in second.err
    assert table_items(stack, operator_env)["www"]["domains"] == ["a.example.test"]


def test_replace_keeps_the_acm_certificate_that_is_in_use(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A new request for an issued certificate renews into the same ACM ARN, so attached listeners follow. (With
    the same key type: ACM refuses a re-import that changes it, and the certificate then goes into a new ARN,
    tests/integration/test_acm_rules.py.)"""
    zone, _ = new_zone(stack, "replace")
    assert acme_renewer(capsys, "add", "www", zone, "--renew-before-days", "25").code == 0
    assert acme_renewer(capsys, "renew", "www").code == 0
    arn = certificates(stack, operator_env)["www"]["acm_arns"][stack.region]

    replaced = acme_renewer(capsys, "add", "www", zone, f"www.{zone}", "--replace")
    assert replaced.code == 0
    assert replaced.out.startswith(f"replaced the request of www: {zone}, www.{zone} (ec-p256,")
    request = table_items(stack, operator_env)["www"]
    assert request == {"id": "www", "domains": [zone, f"www.{zone}"]}  # renew_before_days not given: the default
    assert certificates(stack, operator_env)["www"]["acm_arns"] == {stack.region: arn}

    assert acme_renewer(capsys, "renew", "www").code == 0
    assert certificates(stack, operator_env)["www"]["acm_arns"] == {stack.region: arn}
    certificate = stack.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    assert sorted(certificate["SubjectAlternativeNames"]) == sorted([zone, f"www.{zone}"])
    assert certificate["KeyAlgorithm"] == "EC_prime256v1"


def test_json_output_parses_with_numbers_as_numbers(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert acme_renewer(capsys, "add", "api", "api.example.test", "--regions", "--renew-before-days", "20").code == 0
    assert acme_renewer(capsys, "add", "old", "old.example.test", "--disabled").code == 0

    listed = json.loads(acme_renewer(capsys, "list", "--json").out)
    assert [item["id"] for item in listed] == ["api", "old"]
    assert isinstance(listed[0].pop("due_at"), str)
    assert listed[0] == {
        "id": "api",
        "domains": ["api.example.test"],
        "acm_regions": [],
        "renew_before_days": 20,
        "schedule": SCHEDULED,
    }
    assert type(listed[0]["renew_before_days"]) is int
    assert listed[1]["enabled"] is False
    assert json.loads(acme_renewer(capsys, "show", "old", "--json").out)["enabled"] is False


def test_remove_of_a_certificate_never_renewed(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert acme_renewer(capsys, "add", "new", "new.example.test").code == 0
    removed = acme_renewer(capsys, "remove", "new")
    assert removed.code == 0
    assert (
        removed.out == f"removed new from {operator_env['TABLE_NAME']}; it was never renewed, so nothing else is left\n"
    )
    assert table_items(stack, operator_env) == {}


# --- renew ---------------------------------------------------------------------------------------


def test_renew_all_due_shows_progress_and_exits_1_when_one_fails(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "due")
    assert acme_renewer(capsys, "add", "good", zone).code == 0
    assert acme_renewer(capsys, "add", "no-zone", "www.nowhere.invalid").code == 0

    result = acme_renewer(capsys, "renew", "--all-due")

    assert result.code == 1
    done = [line for line in result.err.splitlines() if line.startswith("[")]
    progress = sorted(done, key=lambda line: line.split("] ", 1)[1])
    not_after = certificates(stack, operator_env)["good"]["not_after"][:10]
    assert progress[0].endswith(f"] good: renewed (not_after {not_after})")
    assert progress[1].endswith(
        "] no-zone: failed (no public Route53 hosted zone contains '_acme-challenge.www.nowhere.invalid'; "
        "create one or delegate the name to a zone this account owns)"
    )
    assert sorted(line[:5] for line in progress) == ["[1/2]", "[2/2]"]
    assert result.out.startswith("1 renewed, 1 failed (2 certificates in ")


def test_renew_of_an_unknown_id_renews_nothing(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "unknown")
    assert acme_renewer(capsys, "add", "www", zone).code == 0
    result = acme_renewer(capsys, "renew", "www", "wwx")
    assert result.code == 1
    assert (
        result.err
        == f"acme-renewer: error: no certificate with id wwx in {operator_env['TABLE_NAME']}; nothing renewed\n"
    )
    assert "status" not in certificates(stack, operator_env)["www"]


# --- check ---------------------------------------------------------------------------------------


def test_check_of_a_clean_zone_is_all_ok(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, zone_id = new_zone(stack, "clean")
    assert acme_renewer(capsys, "add", "www", zone, f"*.{zone}").code == 0

    result = acme_renewer(capsys, "check")

    assert result.code == 0, result.out
    assert result.out.splitlines()[-1] == "1 certificate, 2 names: 8 OK, 0 WARN, 0 FAIL"
    lines = "\n".join(unwrapped(result.out))
    assert f"OK    zone      Route53 hosted zone {zone} ({zone_id})" in lines
    assert f"OK    NS        {zone} is delegated to the hosted zone's 4 name servers" in lines
    assert f"OK    CAA       no CAA record at {zone}, test: any CA may issue" in lines
    assert f"OK    challenge _acme-challenge.{zone} is not a CNAME" in lines
    assert max(map(len, result.out.splitlines())) <= 80


def test_check_finds_a_caa_record_that_forbids_the_ca(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    zone, zone_id = new_zone(stack, "caa")
    upsert(stack, zone_id, f"{zone}.", "CAA", '0 issue "other-ca.example"')
    assert acme_renewer(capsys, "add", "www", f"www.{zone}").code == 0

    # pebble's directory lists no caaIdentities: told the CA's identity, the check fails ...
    told = acme_renewer(capsys, "check", "www", "--ca-identity", PEBBLE_CAA_IDENTITY)
    assert told.code == 1
    [caa] = check_lines(told.out, "FAIL", "CAA")
    assert f'CAA at {zone} allows only other-ca.example (0 issue "other-ca.example")' in caa
    assert f"this CA is {PEBBLE_CAA_IDENTITY}" in caa
    monkeypatch.setenv("ACME_CAA_IDENTITIES", f"{PEBBLE_CAA_IDENTITY}, other.example")
    assert acme_renewer(capsys, "check", "www").code == 1

    # ... and not told, it warns that it cannot tell.
    monkeypatch.delenv("ACME_CAA_IDENTITIES")
    untold = acme_renewer(capsys, "check", "www")
    assert untold.code == 0
    [warning] = check_lines(untold.out, "WARN", "CAA")
    assert "allows only other-ca.example (issue); the CA's identities are unknown" in warning


def test_check_reports_an_acme_challenge_cname_with_its_target(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, zone_id = new_zone(stack, "cname")
    upsert(stack, zone_id, f"_acme-challenge.www.{zone}.", "CNAME", "_acme-challenge.www.validation.example.net")
    assert acme_renewer(capsys, "add", "www", f"www.{zone}").code == 0

    result = acme_renewer(capsys, "check", "www")

    assert result.code == 1
    [cname] = check_lines(result.out, "FAIL", "challenge")
    assert f"_acme-challenge.www.{zone} is a CNAME to _acme-challenge.www.validation.example.net" in cname


def test_check_finds_a_zone_delegated_elsewhere(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, zone_id = new_zone(stack, "ns")
    upsert(stack, zone_id, f"{zone}.", "NS", "ns1.old-provider.example.", "ns2.old-provider.example.")
    assert acme_renewer(capsys, "add", "www", zone).code == 0

    result = acme_renewer(capsys, "check", "www")

    assert result.code == 1
    [ns] = check_lines(result.out, "FAIL", "NS")
    assert f"{zone} is delegated to ns1.old-provider.example, ns2.old-provider.example, not to this hosted zone" in ns


def test_a_typo_on_an_item_shows_up_on_the_item_and_in_check(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An item written by hand with `acm_region` (for acm_regions) and an ec-p384 key, imported into us-east-1
    (the stack's region, the default): issued as asked, with both warnings recorded on the item and shown by
    `check` and `show`."""
    zone, _ = new_zone(stack, "typo")
    put_item(stack, operator_env, {"id": "www", "domains": [zone], "key_type": "ec-p384", "acm_region": ["eu-west-1"]})

    report = run()

    assert report["renewed"] == 1, report
    item = certificates(stack, operator_env)["www"]
    typo = "unknown attribute 'acm_region' ignored; did you mean 'acm_regions'?"
    cloudfront = item["warnings"][0]
    assert item["warnings"] == [cloudfront, typo]
    assert cloudfront.startswith("key_type 'ec-p384' cannot be used by CloudFront")
    assert list(item["acm_arns"]) == ["us-east-1"]  # the default: the typo was not read

    result = acme_renewer(capsys, "check", "www")
    assert result.code == 0, result.out  # warnings do not fail the check
    assert check_lines(result.out, "WARN", "item") == [f"WARN  item      {cloudfront}", f"WARN  item      {typo}"]
    assert result.out.splitlines()[-1] == "1 certificate, 1 name: 4 OK, 2 WARN, 0 FAIL"
    shown = acme_renewer(capsys, "show", "www").out
    warnings = [" ".join(line.split()) for line in unwrapped_show(shown) if line.startswith("warning ")]
    assert warnings == [f"warning {cloudfront}", f"warning {typo}"]
    assert "\nwarnings " not in shown  # the item's attribute is not shown a second time


def test_check_of_an_unknown_id(operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    result = acme_renewer(capsys, "check", "nope")
    assert (result.code, result.out) == (1, "")
    assert result.err == f"acme-renewer: error: no certificate with id nope in {operator_env['TABLE_NAME']}\n"


# --- the installed console script ----------------------------------------------------------------


def test_the_console_script(stack: LocalStack, operator_env: dict[str, str]) -> None:
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is missing: pip install -e . installs it"
    process_env = {**os.environ, **operator_env}

    def script(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CONSOLE_SCRIPT), *argv], env=process_env, capture_output=True, text=True, timeout=60, check=False
        )

    zone, _ = new_zone(stack, "script")
    added = script("add", "www", zone)
    assert added.returncode == 0, added.stderr
    [item] = json.loads(script("list", "--json").stdout)
    assert (item["id"], item["domains"]) == ("www", [zone])
    checked = script("check", "www")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    missing = script("--table", "no-such-table", "list")
    assert missing.returncode == 1
    assert missing.stderr == (
        "acme-renewer: error: table 'no-such-table' not found in this account and region; "
        "check --table / TABLE_NAME and AWS_REGION\n"
    )


# --- phases, add's zone checks, status, JSON --------------------------------------------------------

WAIT = 6.0  # past WAIT_LINE_SECONDS: the wait is long enough for a line with the seconds so far


def test_renew_prints_its_phases_as_they_happen(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """With Route53 changes PENDING for a while, the lines say what the run is waiting for, in order."""
    zone, _ = new_zone(stack, "phases")
    assert acme_renewer(capsys, "add", "www", zone, f"*.{zone}").code == 0
    stack.set_route53_delay(WAIT)
    try:
        result = acme_renewer(capsys, "renew", "www")
    finally:
        stack.set_route53_delay(0)
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    not_after = certificates(stack, operator_env)["www"]["not_after"][:10]
    # The apex and the wildcard share one record set: two values on one name, one change.
    assert lines[:4] == [
        "considering 1 certificate",
        "ordering 1 certificate from the CA",
        "publishing 2 TXT records in 1 hosted zone",
        "waiting for Route53 to apply 1 change",
    ]
    waits = [line for line in lines[4:] if line.startswith("waiting for Route53: ")]
    assert waits and all(re.fullmatch(r"waiting for Route53: \d+ s so far, 1 change pending", w) for w in waits)
    rest = [line for line in lines[4:] if line not in waits]
    assert re.fullmatch(r"2 TXT records live after \d+\.\d s", rest[0])
    assert rest[1:] == ["the CA is validating 1 order", f"[1/1] www: renewed (not_after {not_after})"]

    # --quiet: nothing on stderr; --json: one JSON object a line there, one document on stdout.
    quiet = acme_renewer(capsys, "renew", "www", "--quiet")
    assert (quiet.code, quiet.err) == (0, "")
    as_json = acme_renewer(capsys, "renew", "www", "--json")
    phases = [json.loads(line)["phase"] for line in as_json.err.splitlines()]
    assert phases[:3] == ["considered", "ordering", "publishing"]
    assert phases[-2:] == ["validating", "done"]
    document = json.loads(as_json.out)
    assert (document["renewed"], document["failed"], document["run"]) == (1, 0, "ids")
    [outcome] = document["outcomes"]
    item = certificates(stack, operator_env)["www"]
    assert (outcome["id"], outcome["result"], outcome["secret_arn"]) == ("www", "renewed", item["secret_arn"])
    assert outcome["acm_arns"] == item["acm_arns"]


def test_renew_all_due_renews_the_due_items_only_and_all_considers_every_item(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "alldue")
    assert acme_renewer(capsys, "add", "done", zone).code == 0
    assert acme_renewer(capsys, "renew", "done", "--quiet").code == 0
    assert acme_renewer(capsys, "add", "new", f"new.{zone}").code == 0

    due = acme_renewer(capsys, "renew", "--all-due", "--json", "--quiet")
    assert due.code == 0, due.out
    document = json.loads(due.out)
    assert document["run"] == "due"
    assert [(o["id"], o["result"]) for o in document["outcomes"]] == [("new", "renewed")]

    full = json.loads(acme_renewer(capsys, "renew", "--all", "--json", "--quiet").out)
    assert full["run"] == "full"
    assert sorted((o["id"], o["result"]) for o in full["outcomes"]) == [("done", "not_due"), ("new", "not_due")]


def test_add_warns_of_a_name_without_hosted_zone_and_strict_writes_nothing(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "addcheck")
    added = acme_renewer(capsys, "add", "mixed", zone, "www.nowhere.invalid")
    assert added.code == 0
    [warning] = [line for line in added.out.splitlines() if line.startswith("  warning: ")]
    assert warning.startswith("  warning: www.nowhere.invalid: no public Route53 hosted zone contains")
    assert "mixed" in certificates(stack, operator_env)

    strict = acme_renewer(capsys, "add", "strict", "www.nowhere.invalid", "--strict")
    assert strict.code == 1
    assert strict.err.startswith("acme-renewer: error: www.nowhere.invalid: no public Route53 hosted zone contains")
    assert strict.err.endswith("; nothing written (--strict)\n")
    assert "strict" not in table_items(stack, operator_env)
    # A zone that is there and delegated to it passes --strict.
    assert acme_renewer(capsys, "add", "clean", f"api.{zone}", "--strict").code == 0


def test_add_warns_of_a_zone_delegated_elsewhere(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, zone_id = new_zone(stack, "addns")
    upsert(stack, zone_id, f"{zone}.", "NS", "ns1.old-provider.example.", "ns2.old-provider.example.")
    added = acme_renewer(capsys, "add", "www", zone, "--json")
    assert added.code == 0
    document = json.loads(added.out)
    assert document["action"] == "added"
    assert document["request"] == {"id": "www", "domains": [zone]}
    [ns] = [check for check in document["zone_checks"] if check["check"] == "NS"]
    assert ns["level"] == "FAIL"
    assert "delegated to ns1.old-provider.example, ns2.old-provider.example, not to this hosted zone" in ns["detail"]
    assert document["warnings"] == [f"{zone}: {ns['detail']}"]
    assert acme_renewer(capsys, "add", "api", f"api.{zone}", "--strict").code == 1


def test_status_and_the_json_of_every_command(
    stack: LocalStack, operator_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    zone, _ = new_zone(stack, "status")
    assert acme_renewer(capsys, "add", "www", zone, "--no-acm", "--json").code == 0
    assert acme_renewer(capsys, "add", "bad", "www.nowhere.invalid", "--regions", "us-east-1,us-west-2").code == 0
    assert table_items(stack, operator_env)["bad"]["acm_regions"] == ["us-east-1", "us-west-2"]
    assert acme_renewer(capsys, "renew", "www", "bad", "--quiet").code == 1

    shown = acme_renewer(capsys, "status")
    assert shown.code == 0
    lines = shown.out.splitlines()
    assert lines[:3] == ["certificates  2 (1 new)", "due now       0", "failing       1"]
    not_after = certificates(stack, operator_env)["www"]["not_after"]
    assert lines[3].startswith(f"soonest       www, {not_after[:10]} (")
    assert lines[4].startswith("last attempt  ")
    assert lines[-1].startswith("bad ") and "'_acme-challenge.www.nowhere.invalid'" in lines[-1]
    assert max(map(len, lines)) <= 80

    status = json.loads(acme_renewer(capsys, "status", "--json").out)
    assert (status["certificates"], status["failing"], status["paused"]) == (2, 1, 0)
    assert status["soonest_expiry"]["id"] == "www"
    assert [failure["id"] for failure in status["failures"]] == ["bad"]

    listed = json.loads(acme_renewer(capsys, "list", "--json").out)
    assert [item["id"] for item in listed] == ["bad", "www"]
    assert json.loads(acme_renewer(capsys, "show", "www", "--json").out)["acm_regions"] == []
    checked = acme_renewer(capsys, "check", "--json")
    assert checked.code == 1  # bad has no hosted zone
    document = json.loads(checked.out)
    assert [certificate["id"] for certificate in document["certificates"]] == ["bad", "www"]
    assert document["summary"]["FAIL"] >= 1
    assert document["certificates"][1]["names"][0]["name"] == zone

    removed = json.loads(acme_renewer(capsys, "remove", "www", "--json").out)
    assert (removed["id"], removed["removed"], removed["never_renewed"]) == ("www", True, False)
    assert removed["kept"]["acm_arns"] == {}
    assert removed["kept"]["secrets"] == ["acme-renewer/certificates/www"]  # one secret per certificate
    # An error with --json: the code stays, stdout holds one document saying it.
    missing = acme_renewer(capsys, "remove", "www", "--json")
    assert missing.code == 1
    assert json.loads(missing.out) == {
        "error": f"no certificate with id www in {operator_env['TABLE_NAME']}",
        "exit_code": 1,
    }

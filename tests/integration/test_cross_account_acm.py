"""ACM in other accounts, on the local stack: an item's acm_accounts names a role in a second moto account, the
renewer assumes it (its trust policy and external id checked as AWS does, moto_server.StackApp._assume_role) and
imports there, by ACM's own rules (StrictAcm: re-imports, tags, the import quota of that account and region)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509

from acme_renewer.report.outcomes import Result
from acme_renewer.settings import Settings
from tests.integration.invariants import make_due
from tests.integration.test_cli import acme_renewer, operator_env, restore_log_handlers  # noqa: F401 - fixtures
from tests.integration.test_cross_account_zones import new_account
from tests.integration.test_renewal import check_certificate, get_item, put_item, run, unique
from tests.stack import LocalStack


def leaf_of_secret(stack: LocalStack, item: dict[str, Any]) -> x509.Certificate:
    """The certificate in the item's secret (named by default: a failed store records no secret_arn)."""
    name = Settings.from_env().default_secret_name(item["id"])
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    return x509.load_pem_x509_certificate(secret["certificate"].encode())


def acm_arns_in(stack: LocalStack, account: str) -> list[str]:
    acm = stack.client("acm", account)
    listed = acm.list_certificates(Includes={"keyTypes": ["EC_prime256v1", "RSA_2048"]})["CertificateSummaryList"]
    return sorted(summary["CertificateArn"] for summary in listed)


def leaf_in(stack: LocalStack, account: str, arn: str) -> x509.Certificate:
    answer = stack.client("acm", account).get_certificate(CertificateArn=arn)
    return x509.load_pem_x509_certificate(answer["Certificate"].encode())


def test_a_certificate_goes_to_acm_of_another_account_and_is_reimported_there(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "acme-acm", external_id="acm-ext-1")
    monkeypatch.setenv("ACM_ROLE_ARNS", arn)  # as the stack sets it from AcmRoleArns
    zone = unique("theirs-acm") + ".test"
    stack.create_hosted_zone(zone)
    target = {"role_arn": arn, "external_id": "acm-ext-1", "regions": [stack.region]}
    put_item(stack, env, {"id": "org", "domains": [zone], "acm_accounts": [target]})

    run()

    first = get_item(stack, env, "org")
    assert first["status"] == "ISSUED", first.get("last_error")
    check_certificate(stack, first, [zone])  # this account's ACM and the secret, as without acm_accounts
    theirs = first["acm_account_arns"][account][stack.region]
    assert theirs.split(":")[4] == account and theirs not in first["acm_arns"].values()
    assert acm_arns_in(stack, account) == [theirs]
    assert leaf_in(stack, account, theirs) == leaf_of_secret(stack, first)
    tags = stack.client("acm", account).list_tags_for_certificate(CertificateArn=theirs)["Tags"]
    assert {"Key": "acme-renewer:id", "Value": "org"} in tags
    assert theirs not in acm_arns_in(stack, "123456789012")  # never in the function's own account
    make_due(stack, env["TABLE_NAME"], "org")

    run()

    second = get_item(stack, env, "org")
    assert second["status"] == "ISSUED", second.get("last_error")
    assert second["serial"] != first["serial"]
    # Re-imported into the same ARN there (StrictAcm refuses a re-import with tags, as ACM does).
    assert second["acm_account_arns"] == first["acm_account_arns"]
    assert acm_arns_in(stack, account) == [theirs]
    assert leaf_in(stack, account, theirs) == leaf_of_secret(stack, second)
    assert "superseded_arns" not in second


def test_a_role_refusing_the_external_id_fails_only_its_certificate_and_says_what_to_fix(
    stack: LocalStack, env: dict[str, str]
) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "acme-acm-guarded", external_id="the-right-one")
    denied_zone, fine_zone = unique("acm-denied") + ".test", unique("acm-fine") + ".test"
    for zone in (denied_zone, fine_zone):
        stack.create_hosted_zone(zone)
    target = {"role_arn": arn, "external_id": "wrong", "regions": [stack.region]}
    put_item(stack, env, {"id": "denied", "domains": [denied_zone], "acm_accounts": [target]})
    put_item(stack, env, {"id": "fine", "domains": [fine_zone]})

    result = run()

    outcomes = {c["id"]: c for c in result["certificates"]}
    fine = get_item(stack, env, "fine")
    assert outcomes["fine"]["result"] == Result.RENEWED.value, fine.get("last_error")
    check_certificate(stack, fine, [fine_zone])
    denied = get_item(stack, env, "denied")
    assert outcomes["denied"]["result"] == Result.FAILED.value
    error = denied["last_error"]
    assert error.startswith(f"ACM import into account {account}, region {stack.region}, with role {arn} failed:")
    assert f"could not assume role {arn}: AccessDenied" in error
    assert "trust policy" in error and "external_id" in error and "AcmRoleArns" in error
    assert acm_arns_in(stack, account) == []
    # The import into this account went first and is kept, so the next attempt re-imports into it.
    own = denied["acm_arns"][stack.region]
    assert leaf_in(stack, "123456789012", own) == leaf_of_secret(stack, denied)
    assert "acm_account_arns" not in denied


def test_imports_into_one_account_are_paced_by_its_quota_whichever_role_makes_them(
    stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three certificates, each imported only into the other account through a role of its own: ACM's quota is the
    account's (StrictAcm keys it so), and three imports at once would go beyond its burst."""
    account = new_account()
    stack.acm.reset_refusals()
    ids = [f"team-{n}" for n in range(3)]
    for item_id in ids:
        arn = stack.create_zone_role(account, f"acme-acm-{item_id}")
        zone = unique(item_id) + ".test"
        stack.create_hosted_zone(zone)
        target = {"role_arn": arn, "regions": [stack.region]}
        put_item(stack, env, {"id": item_id, "domains": [zone], "acm_regions": [], "acm_accounts": [target]})

    run()

    items = [get_item(stack, env, item_id) for item_id in ids]
    assert [item["status"] for item in items] == ["ISSUED"] * 3, [item.get("last_error") for item in items]
    arns = sorted(item["acm_account_arns"][account][stack.region] for item in items)
    assert acm_arns_in(stack, account) == arns
    assert stack.acm.refusals().get("ThrottlingException", 0) == 0


@pytest.mark.usefixtures("operator_env", "restore_log_handlers")
def test_the_cli_adds_shows_and_removes_a_certificate_of_other_accounts(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    account = new_account()
    arn = stack.create_zone_role(account, "acme-acm-cli", external_id="ext-cli-1")
    zone = unique("acm-cli") + ".test"
    stack.create_hosted_zone(zone)
    options = ["--acm-account", arn, stack.region, "--acm-external-id", arn, "ext-cli-1"]

    added = acme_renewer(capsys, "add", "org", zone, *options)

    assert added.code == 0, added.err
    assert f"ACM: {stack.region}; account {account}: {stack.region}," in added.out
    assert acme_renewer(capsys, "renew", "org").code == 0
    theirs = get_item(stack, env, "org")["acm_account_arns"][account][stack.region]
    shown = acme_renewer(capsys, "show", "org").out.splitlines()
    at = shown.index(f"{'ACM in ' + account:<20} {stack.region} with role")
    assert shown[at + 1].strip() == arn  # a word is never cut: the ARN on a line of its own at 80 columns
    assert f"ACM ARN {stack.region}    {theirs}" in shown
    removed = acme_renewer(capsys, "remove", "org")
    assert removed.code == 0
    assert (
        f"  aws acm delete-certificate --region {stack.region} --certificate-arn {theirs}   # in account {account}"
        f" (not as {arn}, which may only import), once nothing uses it"
    ) in removed.out.splitlines()
    assert acm_arns_in(stack, account) == [theirs]  # kept until deleted by hand

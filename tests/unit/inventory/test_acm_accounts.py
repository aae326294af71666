"""An item's acm_accounts: ACM of other accounts, each a role and its regions; every rejection says what to fix."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from acme_renewer.errors import ConfigurationError, ItemValidationError
from acme_renewer.inventory.policy import ISSUANCE_FIELDS, REQUEST_FIELDS, fingerprint
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import AcmTarget, ZoneRole
from acme_renewer.settings import Settings

SETTINGS = Settings(table_name="certificates", region="eu-west-1")
ROLE = "arn:aws:iam::444455556666:role/acme-acm"
OTHER_ROLE = "arn:aws:iam::777788889999:role/team/acme-acm"


def item(accounts: Any) -> dict[str, Any]:
    return {"id": "org", "domains": ["example.com"], "acm_accounts": accounts}


def problems(accounts: Any, settings: Settings = SETTINGS) -> list[str]:
    with pytest.raises(ItemValidationError) as invalid:
        parse_item(item(accounts), settings)
    return invalid.value.problems


def test_each_entry_is_a_role_with_its_external_id_and_regions() -> None:
    request = parse_item(
        item(
            [
                {"role_arn": ROLE, "external_id": "ext-1234", "regions": ["eu-west-1", "us-east-1", "eu-west-1"]},
                {"role_arn": OTHER_ROLE, "regions": ["ap-southeast-2"]},
            ]
        ),
        SETTINGS,
    )
    assert request.acm_accounts == (
        AcmTarget(ZoneRole(ROLE, "ext-1234"), ("eu-west-1", "us-east-1")),
        AcmTarget(ZoneRole(OTHER_ROLE), ("ap-southeast-2",)),
    )
    assert [target.account for target in request.acm_accounts] == ["444455556666", "777788889999"]
    assert request.acm_regions == (SETTINGS.region,)  # the own account's regions are unchanged
    assert parse_item({"id": "org", "domains": ["example.com"]}, SETTINGS).acm_accounts == ()


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        ("arn:aws:iam::444455556666:role/acme-acm", "acm_accounts must be a list of maps such as"),
        ([ROLE], "acm_accounts[0] must be a map such as"),
        ([{"role_arn": "acme-acm", "regions": ["eu-west-1"]}], "acm_accounts[0].role_arn 'acme-acm' must be the ARN"),
        ([{"regions": ["eu-west-1"]}], "acm_accounts[0].role_arn null must be the ARN of an IAM role"),
        ([{"role_arn": ROLE}], "acm_accounts[0].regions must be a list of region names, got null"),
        ([{"role_arn": ROLE, "regions": []}], "acm_accounts[0].regions must name at least one region"),
        ([{"role_arn": ROLE, "regions": ["eu-west-9"]}], "acm_accounts[0].regions has 'eu-west-9', which is not"),
        ([{"role_arn": ROLE, "regions": "eu-west-1"}], "acm_accounts[0].regions must be a list of region names"),
        ([{"role_arn": ROLE, "external_id": "x", "regions": ["eu-west-1"]}], "acm_accounts[0].external_id 'x' must"),
        (
            [{"role_arn": ROLE, "externalId": "ext-1234", "regions": ["eu-west-1"]}],
            "acm_accounts[0] has the unknown key 'externalId' (it takes role_arn, external_id, regions); did you mean"
            " 'external_id'?",
        ),
        (
            [{"role_arn": ROLE, "regions": ["eu-west-1"]}, {"role_arn": ROLE + "-2", "regions": ["us-east-1"]}],
            "acm_accounts[1] names account 444455556666 again (as acm_accounts[0]); list all of the account's"
            " regions in one entry",
        ),
    ],
)
def test_a_bad_entry_is_refused_saying_what_to_write(accounts: Any, expected: str) -> None:
    found = problems(accounts)
    assert any(problem.startswith(expected) for problem in found), found


def test_an_empty_list_is_only_a_warning() -> None:
    request = parse_item(item([]), SETTINGS)
    assert request.acm_accounts == ()
    assert any(w.startswith("acm_accounts is an empty list") for w in request.warnings)


def test_a_role_outside_acm_role_arns_is_refused_before_anything_is_tried() -> None:
    """The function may assume only the roles of AcmRoleArns: an item naming another would fail at AssumeRole
    with AccessDenied on every attempt; it is refused at once, saying where to add it."""
    granted = replace(SETTINGS, acm_role_arns=frozenset({OTHER_ROLE}))
    [problem] = problems([{"role_arn": ROLE, "regions": ["eu-west-1"]}], granted)
    assert problem == (
        f"acm_accounts[0].role_arn {ROLE!r} is not in the stack parameter AcmRoleArns (ACM_ROLE_ARNS), so the"
        " function may not assume it: add it there and update the stack"
    )
    assert parse_item(item([{"role_arn": OTHER_ROLE, "regions": ["eu-west-1"]}]), granted).acm_accounts
    # Unset (the CLI with the operator's credentials): not checked.
    assert parse_item(item([{"role_arn": ROLE, "regions": ["eu-west-1"]}]), SETTINGS).acm_accounts


def test_acm_role_arns_is_read_from_the_environment() -> None:
    env = {"TABLE_NAME": "t", "AWS_REGION": "eu-west-1"}
    assert Settings.from_env(env).acm_role_arns is None
    assert Settings.from_env(env | {"ACM_ROLE_ARNS": ""}).acm_role_arns == frozenset()
    both = Settings.from_env(env | {"ACM_ROLE_ARNS": f"{ROLE}, {OTHER_ROLE}"}).acm_role_arns
    assert both == {ROLE, OTHER_ROLE}
    with pytest.raises(ConfigurationError, match="ACM_ROLE_ARNS has 'acme-acm', which is not an IAM role ARN"):
        Settings.from_env(env | {"ACM_ROLE_ARNS": f"{ROLE},acme-acm"})


def test_a_cloudfront_region_of_another_account_warns_of_a_key_cloudfront_cannot_use() -> None:
    raw = item([{"role_arn": ROLE, "regions": ["us-east-1"]}]) | {"key_type": "ec-p384", "acm_regions": []}
    assert any("cannot be used by CloudFront" in w for w in parse_item(raw, SETTINGS).warnings)


def test_adding_an_account_re_issues_and_items_without_it_keep_their_fingerprints() -> None:
    bare = {"id": "org", "domains": ["example.com"]}
    directory = "https://acme.example/dir"
    with_accounts = item([{"role_arn": ROLE, "regions": ["eu-west-1"]}])
    for fields in (ISSUANCE_FIELDS, REQUEST_FIELDS):
        assert fingerprint(bare | {"acm_accounts": None}, fields, directory) == fingerprint(bare, fields, directory)
        assert fingerprint(with_accounts, fields, directory) != fingerprint(bare, fields, directory)

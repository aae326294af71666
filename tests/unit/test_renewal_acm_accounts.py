"""The pipeline with acm_accounts (fake CA over moto's mock): what a partial import in another account leaves on the
status item is what the next run re-imports into."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from acme_renewer.errors import ZoneRoleError
from acme_renewer.models import ZoneRole
from acme_renewer.report.outcomes import Result
from acme_renewer.stores.acm import AcmStore
from tests.unit.fakes import FakeCa
from tests.unit.test_renewal import REGION, SETTINGS, get, put, renewer, two_months_later

ACCOUNT = "444455556666"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/acme-acm"
OTHER_REGION = "us-east-1"


@pytest.fixture
def aws(mocked_aws: None) -> None:
    from tests.stack.table import create_table

    create_table(boto3.client("dynamodb", region_name=REGION), SETTINGS.table_name)


class RoleClients:
    """ACM of the role's account through moto's STS; `unreachable` regions fail as an unusable role would."""

    def __init__(self) -> None:
        self.unreachable: set[str] = set()

    def __call__(self, role: ZoneRole, region: str) -> Any:
        if region in self.unreachable:
            raise ZoneRoleError(f"could not assume role {role.arn}: AccessDenied: not now")
        credentials = boto3.client("sts", region_name=region).assume_role(
            RoleArn=role.arn, RoleSessionName="acme-renewer"
        )["Credentials"]
        return boto3.client(
            "acm",
            region_name=region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )


def with_roles(ca: FakeCa, clients: RoleClients, **kwargs: Any) -> Any:
    run = renewer(ca, **kwargs)
    run.acm = AcmStore(lambda region: boto3.client("acm", region_name=region), client_for_role=clients)
    return run


def test_a_partial_import_keeps_the_other_accounts_arns_and_the_next_run_reimports_into_them(aws: None) -> None:
    target = {"role_arn": ROLE_ARN, "external_id": "ext-1234", "regions": [REGION, OTHER_REGION]}
    put({"id": "org", "domains": ["example.com"], "acm_accounts": [target]})
    clients, ca = RoleClients(), FakeCa()
    clients.unreachable = {OTHER_REGION}

    [failed] = with_roles(ca, clients).run().outcomes

    assert failed.result is Result.FAILED
    item = get("org")
    assert f"ACM import into account {ACCOUNT}, region {OTHER_REGION}, with role {ROLE_ARN}" in item["last_error"]
    kept = item["acm_account_arns"]
    assert set(kept) == {ACCOUNT} and set(kept[ACCOUNT]) == {REGION}
    assert kept[ACCOUNT][REGION].startswith(f"arn:aws:acm:{REGION}:{ACCOUNT}:")
    own = item["acm_arns"][REGION]
    clients.unreachable = set()

    [renewed] = with_roles(ca, clients, clock=two_months_later()).run().outcomes

    assert renewed.result is Result.RENEWED
    item = get("org")
    assert item["acm_arns"] == {REGION: own}
    assert item["acm_account_arns"][ACCOUNT][REGION] == kept[ACCOUNT][REGION]  # re-imported in place
    assert set(item["acm_account_arns"][ACCOUNT]) == {REGION, OTHER_REGION}
    assert renewed.published is not None and renewed.published.acm_account_arns == item["acm_account_arns"]

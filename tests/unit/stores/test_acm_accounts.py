"""ACM of other accounts: the same store, the same re-import rules, with clients acting in the role's account
(AssumeRole credentials of moto's STS, in this process, behind StrictAcm)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from acme_renewer.errors import StoreError, ZoneRoleError
from acme_renewer.models import AcmTarget, SupersededArn, ZoneRole
from acme_renewer.stores.acm import AcmStore, PartialImportError
from tests.unit.acm_stack import InProcessAcm, crafted_certificate
from tests.unit.stores.test_acm import NOW, OTHER_REGION, REGION, issued, request

ACCOUNT = "444455556666"
ROLE = ZoneRole(f"arn:aws:iam::{ACCOUNT}:role/acme-acm", "ext-1234")


@pytest.fixture
def acm() -> InProcessAcm:
    return InProcessAcm.start(imports_per_second=1000)


class Clients:
    """One client per (role, region), as runtime.py keeps them; the role's through AssumeRole."""

    def __init__(self, acm: InProcessAcm) -> None:
        self.acm = acm
        self.made: dict[tuple[ZoneRole | None, str], Any] = {}
        self.assumed: list[ZoneRole] = []

    def own(self, region: str) -> Any:
        return self.made.setdefault((None, region), self.acm.client(region))

    def of_role(self, role: ZoneRole, region: str) -> Any:
        if (role, region) not in self.made:
            self.assumed.append(role)
            answer = self.acm.sts().assume_role(RoleArn=role.arn, RoleSessionName="acme-renewer")
            self.made[role, region] = self.acm.client(region, answer["Credentials"])
        return self.made[role, region]

    def leaf(self, role: ZoneRole, region: str, arn: str) -> str:
        return str(self.of_role(role, region).get_certificate(CertificateArn=arn)["Certificate"])


@pytest.fixture
def clients(acm: InProcessAcm) -> Clients:
    return Clients(acm)


@pytest.fixture
def store(clients: Clients) -> AcmStore:
    return AcmStore(clients.own, clock=lambda: NOW, client_for_role=clients.of_role)


def across(*regions: str) -> Any:
    return replace(request(REGION), acm_accounts=(AcmTarget(ROLE, regions or (REGION,)),))


def test_the_certificate_goes_into_each_region_of_the_other_account_and_is_reimported_there(
    store: AcmStore, clients: Clients
) -> None:
    first_certificate = crafted_certificate("rsa-2048")
    first = store.import_all(across(REGION, OTHER_REGION), issued(first_certificate), {})
    theirs = first.account_arns[ACCOUNT]
    assert set(theirs) == {REGION, OTHER_REGION} and set(first.arns) == {REGION}
    for region, arn in theirs.items():
        assert arn.startswith(f"arn:aws:acm:{region}:{ACCOUNT}:certificate/")
        assert clients.leaf(ROLE, region, arn) == first_certificate.certificate_pem
    renewal = crafted_certificate("rsa-2048")

    second = store.import_all(across(REGION, OTHER_REGION), issued(renewal), first.arns, (), first.account_arns)

    assert second.account_arns == first.account_arns and second.arns == first.arns
    assert second.replacements == ()
    assert all(clients.leaf(ROLE, region, arn) == renewal.certificate_pem for region, arn in theirs.items())


def test_a_reimport_refused_in_the_other_account_supersedes_its_arn_there_with_the_role(store: AcmStore) -> None:
    first = store.import_all(across(), issued(crafted_certificate("ec-p256")), {})
    second = store.import_all(across(), issued(crafted_certificate("rsa-2048")), first.arns, (), first.account_arns)
    old = first.account_arns[ACCOUNT][REGION]
    assert second.account_arns[ACCOUNT][REGION] != old
    assert SupersededArn(REGION, old, NOW, ROLE) in second.superseded
    [theirs] = [r for r in second.replacements if r.superseded.account == ACCOUNT]
    assert theirs.new_arn == second.account_arns[ACCOUNT][REGION]


def test_a_role_that_cannot_be_assumed_fails_keeping_this_accounts_arns_and_says_what_to_fix(
    clients: Clients,
) -> None:
    def refused(role: ZoneRole, region: str) -> Any:
        raise ZoneRoleError(f"could not assume role {role.arn}: AccessDenied: not authorized")

    store = AcmStore(clients.own, clock=lambda: NOW, client_for_role=refused)
    with pytest.raises(PartialImportError) as failed:
        store.import_all(across(), issued(crafted_certificate()), {})
    assert set(failed.value.imported) == {REGION} and failed.value.imported_accounts == {}
    message = str(failed.value)
    assert message.startswith(f"ACM import into account {ACCOUNT}, region {REGION}, with role {ROLE.arn} failed:")
    assert f"the trust policy of {ROLE.arn} must allow sts:AssumeRole" in message
    assert "the item's external_id as sts:ExternalId" in message


def test_an_import_the_other_account_denies_names_the_permissions_the_role_needs(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The regions done in that account are kept too, so that the next attempt re-imports into them."""

    def denied_in(region: str) -> Any:
        def deny(**_: Any) -> None:
            error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized: acm:ImportCertificate"}}
            raise ClientError(error, "ImportCertificate")  # type: ignore[arg-type]

        client = clients.of_role(ROLE, region)
        if region == OTHER_REGION:
            monkeypatch.setattr(client, "import_certificate", deny)
        return client

    store = AcmStore(clients.own, clock=lambda: NOW, client_for_role=lambda role, region: denied_in(region))
    with pytest.raises(PartialImportError) as failed:
        store.import_all(across(REGION, OTHER_REGION), issued(crafted_certificate()), {})
    assert set(failed.value.imported_accounts[ACCOUNT]) == {REGION}
    assert (
        f"the permissions policy of {ROLE.arn} must allow acm:ImportCertificate, acm:AddTagsToCertificate,"
        f" acm:DescribeCertificate on arn:aws:acm:{OTHER_REGION}:{ACCOUNT}:certificate/*"
    ) in str(failed.value)


def test_a_store_without_clients_for_other_accounts_says_so(clients: Clients) -> None:
    with pytest.raises(PartialImportError) as failed:
        AcmStore(clients.own, clock=lambda: NOW).import_all(across(), issued(crafted_certificate()), {})
    assert isinstance(failed.value.__cause__, StoreError)


def test_a_quota_full_in_the_other_account_names_that_account_and_keeps_this_ones_import(
    clients: Clients, store: AcmStore
) -> None:
    """Each account has its own ACM quotas: the refusal is that account's, and so is the fix."""
    crafted = crafted_certificate()
    clients.of_role(ROLE, REGION).import_certificate(**crafted.material)  # that account's only place
    clients.acm.app.set_quotas(imported=1)
    with pytest.raises(PartialImportError) as failed:
        store.import_all(across(), issued(crafted), {})
    assert set(failed.value.imported) == {REGION}  # this account had room
    message = str(failed.value)
    assert message.startswith(f"ACM import into account {ACCOUNT}, region {REGION}, with role {ROLE.arn} failed:")
    assert (
        f'ACM\'s quota "Imported certificates" (default 2,500 per account and region) is reached in account {ACCOUNT}'
        in message
    )
    assert f'"Imported certificates", in {REGION} of account {ACCOUNT}' in message and "acm_regions: []" in message

"""Superseded ARNs in other accounts (acm_accounts): kept on the status item with their role, described by the
daily run in their account with that role, and never lost because their account cannot be reached."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from acme_renewer.errors import ZoneRoleError
from acme_renewer.inventory.table import (
    account_arns_from_item,
    state_from_item,
    superseded_from_item,
    superseded_to_item,
)
from acme_renewer.models import SupersededArn, ZoneRole
from acme_renewer.report.fleet import FleetChecks
from acme_renewer.report.outcomes import Outcome, Result, RunReport
from tests.unit.acm_stack import InProcessAcm, crafted_certificate
from tests.unit.stores.test_acm import NOW, REGION

ACCOUNT = "444455556666"
ROLE = ZoneRole(f"arn:aws:iam::{ACCOUNT}:role/acme-acm", "ext-1234")
BALANCER = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/web/50dc6c495c0c9188"


def test_a_superseded_arn_of_another_account_keeps_its_role_on_the_item() -> None:
    entries = (
        SupersededArn(REGION, "arn:aws:acm:eu-west-1:123456789012:certificate/own", NOW),
        SupersededArn(REGION, f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/theirs", NOW, ROLE),
    )
    written = superseded_to_item(entries)
    assert written[0] == {"region": REGION, "arn": entries[0].arn, "replaced_at": "2026-05-01T12:00:00Z"}
    assert written[1]["account"] == ACCOUNT and written[1]["role_arn"] == ROLE.arn
    assert superseded_from_item(written) == entries


def test_the_arns_of_other_accounts_are_read_back_and_what_is_unreadable_is_left_out() -> None:
    raw = {ACCOUNT: {REGION: "arn:aws:acm:x"}, "777788889999": "not a map", "111122223333": {REGION: 7}}
    assert account_arns_from_item(raw) == {ACCOUNT: {REGION: "arn:aws:acm:x"}}
    assert state_from_item({"acm_account_arns": raw}).acm_account_arns == {ACCOUNT: {REGION: "arn:aws:acm:x"}}
    assert state_from_item({}).acm_account_arns == {}


def fleet(acm: InProcessAcm, client_for_role: Any, recorded: list[Any]) -> FleetChecks:
    return FleetChecks(
        acm_client_for_region=acm.client,
        default_region=REGION,
        expiry_warning=timedelta(days=14),
        endpoint_grace=timedelta(minutes=60),
        record_superseded=lambda item_id, kept, read: recorded.append((item_id, kept)) or True,
        acm_client_for_role=client_for_role,
    )


def test_the_daily_run_describes_it_in_its_account_and_reports_it_while_in_use() -> None:
    acm = InProcessAcm.start(imports_per_second=1000)
    credentials = acm.sts().assume_role(RoleArn=ROLE.arn, RoleSessionName="acme-renewer")["Credentials"]
    roles: list[ZoneRole] = []

    def client_for_role(role: ZoneRole, region: str) -> Any:
        roles.append(role)
        return acm.client(region, credentials)

    theirs = client_for_role(ROLE, REGION)
    old = theirs.import_certificate(**crafted_certificate().material)["CertificateArn"]
    new = theirs.import_certificate(**crafted_certificate("rsa-2048").material)["CertificateArn"]
    acm.app._in_use[old] = (BALANCER,)
    entry = SupersededArn(REGION, old, NOW, ROLE)
    item = {"id": "org", "superseded_arns": superseded_to_item([entry]), "acm_account_arns": {ACCOUNT: {REGION: new}}}
    outcome = Outcome("org", Result.NOT_DUE, "not due", enabled=True)
    recorded: list[Any] = []

    [in_use] = fleet(acm, client_for_role, recorded)._superseded([(item, outcome)], NOW)

    assert (in_use.account, in_use.arn, in_use.new_arn, in_use.in_use_by) == (ACCOUNT, old, new, (BALANCER,))
    assert roles[-1] == ROLE and recorded == []
    [summary] = RunReport(NOW, superseded_in_use=[in_use]).as_dict()["superseded_in_use"]
    assert (summary["account"], summary["arn"]) == (ACCOUNT, old)
    acm.app._in_use[old] = ()
    assert fleet(acm, client_for_role, recorded)._superseded([(item, outcome)], NOW) == []
    assert recorded == [("org", [])]  # unused now: forgotten (not deleted)


def test_an_account_that_cannot_be_reached_keeps_its_superseded_arns() -> None:
    acm = InProcessAcm.start(imports_per_second=1000)
    entry = SupersededArn(REGION, f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/theirs", NOW, ROLE)
    item = {"id": "org", "superseded_arns": superseded_to_item([entry])}
    outcome = Outcome("org", Result.NOT_DUE, "not due", enabled=True)

    def refused(role: ZoneRole, region: str) -> Any:
        raise ZoneRoleError(f"could not assume role {role.arn}: AccessDenied")

    for client_for_role in (refused, None):
        recorded: list[Any] = []
        assert fleet(acm, client_for_role, recorded)._superseded([(item, outcome)], NOW) == []
        # Asked in the function's own account it would be "gone" and forgotten; it is kept instead.
        assert recorded == []


def test_events_carry_the_arns_of_other_accounts_and_the_account_of_a_replacement() -> None:
    from acme_renewer.models import Replacement
    from acme_renewer.report.events import outcome_event, replaced_events
    from acme_renewer.report.outcomes import Published

    old, new = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/old", f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/new"
    published = Published(
        ("example.com",), "0a", NOW, {REGION: "arn:own"}, "arn:secret", False,
        replacements=(Replacement(SupersededArn(REGION, old, NOW, ROLE), new, "the key changes"),),
        acm_account_arns={ACCOUNT: {REGION: new}},
    )  # fmt: skip
    outcome = Outcome("org", Result.RENEWED, "due", published=published)
    event = outcome_event(outcome)
    assert event is not None and event[1]["acm_account_certificate_arns"] == {ACCOUNT: {REGION: new}}
    [(_, replaced)] = replaced_events(outcome)
    assert (replaced["account"], replaced["old_acm_certificate_arn"], replaced["new_acm_certificate_arn"]) == (
        ACCOUNT, old, new,
    )  # fmt: skip
    plain = outcome_event(Outcome("org", Result.RENEWED, "due", published=Published(
        ("example.com",), "0a", NOW, {REGION: "arn:own"}, "arn:secret", False)))  # fmt: skip
    assert plain is not None and "acm_account_certificate_arns" not in plain[1]  # other items' events unchanged

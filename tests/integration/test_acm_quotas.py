"""ACM's quotas per account and region on the local stack, whose strict layer refuses imports beyond them as ACM does
(tests/stack/strict_acm.py, https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html): the certificate that
meets the quota fails with a last_error naming it and the fix, the others of the run renew, its secret is stored;
and the daily run's count of the renewer's own records agrees with what ACM holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from acme_renewer import runtime
from acme_renewer.report.outcomes import AcmUsage, Result, RunReport
from acme_renewer.settings import Settings
from tests.integration.invariants import assert_nothing_lost, make_due, read_item
from tests.integration.test_renewal import put_item, unique
from tests.stack import LocalStack

# A region no other test imports into: its usage in the session's ACM is this test's alone.
QUOTA_REGION = "ap-southeast-2"


@pytest.fixture(autouse=True)
def no_quota_left(stack: LocalStack) -> Iterator[None]:
    """The stack is the session's: a quota set here must not outlive the test."""
    yield
    stack.acm.set_quotas()


def full_run() -> RunReport:
    return runtime.build_renewer(Settings.from_env()).run()


def certificate(stack: LocalStack, env: dict[str, str], prefix: str, **fields: Any) -> tuple[str, str]:
    item_id = unique(prefix)
    zone = item_id + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": item_id, "domains": [zone], **fields})
    return item_id, zone_id


def test_the_import_that_meets_the_quota_fails_with_its_name_and_the_others_renew(
    stack: LocalStack, env: dict[str, str]
) -> None:
    account = stack.client("sts").get_caller_identity()["Account"]
    first, first_zone = certificate(stack, env, "quota-first", acm_regions=[QUOTA_REGION])
    report = full_run()
    assert {o.id: o.result for o in report.outcomes} == {first: Result.RENEWED}
    held, imports = stack.acm.usage(QUOTA_REGION, account)
    assert (held, imports) >= (1, 1)
    # The renewer's count, from its own records, is what ACM holds: this region is the test's alone.
    assert AcmUsage(QUOTA_REGION, held, imports) in (report.acm_usage or [])

    stack.acm.set_quotas(imported=held)  # full: the next new certificate in QUOTA_REGION is refused
    blocked, blocked_zone = certificate(stack, env, "quota-blocked", acm_regions=[QUOTA_REGION])
    elsewhere, elsewhere_zone = certificate(stack, env, "quota-elsewhere")  # the function's own region
    make_due(stack, env["TABLE_NAME"], first)  # a re-import into its ARN holds no more certificates
    outcomes = {o.id: o for o in full_run().outcomes}

    assert outcomes[first].result is Result.RENEWED, outcomes[first].reason
    assert outcomes[elsewhere].result is Result.RENEWED, outcomes[elsewhere].reason
    assert outcomes[blocked].result is Result.FAILED
    error = read_item(stack, env["TABLE_NAME"], blocked)["last_error"]
    assert error.startswith(f"ACM import into {QUOTA_REGION} failed: LimitExceededException")
    assert 'ACM\'s quota "Imported certificates"' in error
    assert f'Service Quotas console, AWS Certificate Manager (ACM), "Imported certificates", in {QUOTA_REGION}' in error
    assert "acm_regions: []" in error
    # Its secret holds the new certificate: the secret is written before ACM.
    secret_name = Settings.from_env().default_secret_name(blocked)
    assert stack.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"]
    assert stack.acm.usage(QUOTA_REGION, account)[0] == held
    assert_nothing_lost(stack, env["TABLE_NAME"], first, [first_zone])
    assert_nothing_lost(stack, env["TABLE_NAME"], elsewhere, [elsewhere_zone])
    assert_nothing_lost(stack, env["TABLE_NAME"], blocked, [blocked_zone])

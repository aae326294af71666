"""Faults of Secrets Manager (and of KMS behind it) during a run, on the local stack: each fails the certificates
concerned and never the run, and nothing is lost (tests/integration/invariants.py).

The faults are real answers of the stack: its strict layer refuses a secret scheduled for deletion as AWS does,
and makes one secret answer AccessDenied or KMS's DecryptionFailure to every process (tests/stack/strict.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acme_renewer.report.outcomes import Result
from acme_renewer.settings import Settings
from tests.integration.conftest import Calls
from tests.integration.invariants import assert_nothing_lost, make_due, read_item
from tests.integration.test_faults_aws import retry_now, run
from tests.integration.test_renewal import put_item, unique
from tests.stack import LocalStack


@pytest.fixture(autouse=True)
def no_faults_left(stack: LocalStack) -> Iterator[None]:
    """The stack is the session's: a fault set here must not outlive the test."""
    yield
    stack.clear_secret_faults()


def certificate(stack: LocalStack, env: dict[str, str], prefix: str) -> tuple[str, str]:
    """A new item (apex and wildcard) in a hosted zone of its own: (id, zone id)."""
    item_id = unique(prefix)
    zone = item_id + ".test"
    zone_id = stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": item_id, "domains": [zone, f"*.{zone}"]})
    return item_id, zone_id


def test_an_id_added_again_within_its_secrets_recovery_window_is_issued_into_the_restored_secret(
    stack: LocalStack, env: dict[str, str]
) -> None:
    """The README's clean-up deletes the secret with a recovery window; the id added again within it found its
    secret refused by every store: AWS refuses PutSecretValue and GetSecretValue on a secret scheduled for deletion
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html) until RestoreSecret
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RestoreSecret.html)."""
    item_id, zone_id = certificate(stack, env, "readded")
    assert run()[item_id].result is Result.RENEWED
    first, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    secrets = stack.client("secretsmanager")
    secret_name = Settings.from_env().default_secret_name(item_id)
    stack.client("dynamodb").delete_item(TableName=env["TABLE_NAME"], Key={"id": {"S": item_id}})
    assert item_id not in run()  # retired (the stream function would do it at once)
    secrets.delete_secret(SecretId=secret_name, RecoveryWindowInDays=7)  # its only secret
    put_item(stack, env, {"id": item_id, "domains": [f"{item_id}.test", f"*.{item_id}.test"]})

    outcome = run()[item_id]

    assert outcome.result is Result.RENEWED, outcome.reason
    item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])
    assert stored is not None and item["secret_arn"] == first["secret_arn"]  # the same secret, restored
    assert "DeletedDate" not in secrets.describe_secret(SecretId=secret_name)


def test_an_unreadable_pending_order_fails_that_certificate_and_the_others_of_the_run_renew(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    """Reading the pending order's key happened outside the per-certificate handling: an error other than
    ResourceNotFound there aborted the whole run, every other leased certificate undone."""
    stuck, stuck_zone = certificate(stack, env, "stuck")
    assert run()[stuck].result is Result.RENEWED
    make_due(stack, env["TABLE_NAME"], stuck)
    secret_name = Settings.from_env().default_secret_name(stuck)
    # Issued, then the certificate's write refused: the order stays pending on the item, its key the AWSPENDING
    # version of the secret.
    stack.fail_secret(secret_name, "AccessDeniedException", "not authorized", ["PutSecretValue"], "AWSCURRENT")
    assert run()[stuck].result is Result.FAILED
    assert "pending_order" in read_item(stack, env["TABLE_NAME"], stuck)
    stack.clear_secret_faults()
    message = "Access to KMS is not allowed"
    stack.fail_secret(secret_name, "DecryptionFailure", message, ["GetSecretValue"], "AWSPENDING")
    retry_now(stack, env, stuck)
    others = [certificate(stack, env, "other") for _ in range(2)]
    orders = len(calls.new_orders)

    outcomes = run()

    assert {item_id: outcomes[item_id].result for item_id in (stuck, *(o for o, _ in others))} == {
        stuck: Result.FAILED,
        **{item_id: Result.RENEWED for item_id, _ in others},
    }
    assert len(calls.new_orders) == orders + 2  # the others' only: the pending one is not ordered again
    zones = [stuck_zone, *(zone_id for _, zone_id in others)]
    for item_id, _ in others:
        item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, zones)
        assert item["status"] == "ISSUED" and stored is not None
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], stuck, zones)
    assert item["last_error"] == f"Secrets Manager refused reading {secret_name}: DecryptionFailure: {message}"
    assert "pending_order" in item and "lease_owner" not in item

    stack.clear_secret_faults()
    retry_now(stack, env, stuck)
    assert run()[stuck].result is Result.RENEWED
    assert len(calls.new_orders) == orders + 2  # recovered from the pending order, still no new order
    assert_nothing_lost(stack, env["TABLE_NAME"], stuck, zones)


def test_an_unreadable_account_key_fails_the_certificates_of_that_account_and_the_run_ends(
    stack: LocalStack, env: dict[str, str], calls: Calls
) -> None:
    """The ACME account key's secret is read when the first certificate needs the account, for a pending order
    before any other: refused there, its error escaped the run. Every certificate of the account fails with it,
    each recorded on its item, its lease given back."""
    settings = Settings.from_env()
    account_secret = settings.account_secret_name_for(settings.acme_directory_url)
    pending, pending_zone = certificate(stack, env, "account")
    assert run()[pending].result is Result.RENEWED
    make_due(stack, env["TABLE_NAME"], pending)
    # Issued, then its secret refused, as in the test above: the account key is then first read to recover it.
    stack.fail_secret(
        settings.default_secret_name(pending), "AccessDeniedException", "no", ["PutSecretValue"], "AWSCURRENT"
    )
    assert run()[pending].result is Result.FAILED
    stack.clear_secret_faults()
    retry_now(stack, env, pending)
    items = [(pending, pending_zone), certificate(stack, env, "account")]
    stack.fail_secret(account_secret, "DecryptionFailure", "Access to KMS is not allowed", ["GetSecretValue"])
    orders = len(calls.new_orders)

    outcomes = run()

    zones = [zone_id for _, zone_id in items]
    for item_id, _ in items:
        assert outcomes[item_id].result is Result.FAILED
        item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, zones)
        assert item["last_error"].startswith(
            f"Secrets Manager refused reading or creating {account_secret} (the ACME account key): DecryptionFailure"
        )
        assert "lease_owner" not in item
    assert len(calls.new_orders) == orders

    stack.clear_secret_faults()
    for item_id, _ in items:
        retry_now(stack, env, item_id)
    outcomes = run()
    for item_id, _ in items:
        assert outcomes[item_id].result is Result.RENEWED, outcomes[item_id].reason
        assert_nothing_lost(stack, env["TABLE_NAME"], item_id, zones)
    assert len(calls.new_orders) == orders + 1  # the pending order recovered, the new item ordered

"""Every Secrets Manager (or KMS) refusal of a read or a write of our secrets is the StoreError of one certificate; a
secret of ours scheduled for deletion is restored, as the renewer needs it again.

Against the local stack's AWS side in this process (tests/stack/in_process.py): its strict layer refuses, as AWS
does, what moto accepts on a secret scheduled for deletion, and answers faults set on one secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from acme_renewer.errors import StoreError
from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.order.account import AccountKeyStore, EabError, load_eab
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore, legacy_pending_name
from tests.stack.in_process import InProcessStack
from tests.unit.fakes import FakeCa

REQUEST = CertificateRequest("web", ("web.example",), KeyType.EC_P256, (), "acme-renewer/certificates/web", None, True)
LEGACY = legacy_pending_name(REQUEST)
ACCOUNT = "acme-renewer/accounts/ca.test/directory"
EAB = "acme-renewer/eab/ca"
ORDER = "https://ca.test/order/1"


def schedule_deletion(secrets: Any, name: str) -> None:
    secrets.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert "DeletedDate" in secrets.describe_secret(SecretId=name)


def account_store(secrets: Any) -> AccountKeyStore:
    return AccountKeyStore(secrets, ACCOUNT, "https://ca.test/directory")


def test_a_certificate_secret_scheduled_for_deletion_is_restored_and_written(
    strict_aws: InProcessStack, caplog: pytest.LogCaptureFixture
) -> None:
    """The id was removed, its secret deleted with a recovery window as the README says, and the id added again
    within the window. AWS refuses PutSecretValue on a secret scheduled for deletion with InvalidRequestException
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html) until RestoreSecret
    cancels the deletion (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RestoreSecret.html);
    the secret keeps its versions."""
    secrets = strict_aws.client("secretsmanager")
    ca = FakeCa()
    first = ca.sign(REQUEST)
    arn, _ = SecretStore(secrets).put(REQUEST, first)
    schedule_deletion(secrets, REQUEST.secret_name)

    second = ca.sign(REQUEST)
    with caplog.at_level(logging.WARNING):
        assert SecretStore(secrets).put(REQUEST, second)[0] == arn

    assert "DeletedDate" not in secrets.describe_secret(SecretId=REQUEST.secret_name)
    current = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    previous = json.loads(secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"])
    assert (current["serial"], previous["serial"]) == (second.serial, first.serial)
    restored = next(r for r in caplog.records if "restored a secret that was scheduled for deletion" in r.getMessage())
    assert restored.levelno == logging.WARNING and restored.__dict__["secret_name"] == REQUEST.secret_name


def test_a_pending_order_secret_scheduled_for_deletion_is_restored_read_and_written(strict_aws: InProcessStack) -> None:
    """As the certificate's secret: GetSecretValue is refused too until the secret is restored
    (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html)."""
    secrets = strict_aws.client("secretsmanager")
    store = PendingOrderStore(secrets)
    store.save(REQUEST, ORDER, "the order's key")
    schedule_deletion(secrets, REQUEST.secret_name)
    assert store.load(REQUEST, ORDER) == "the order's key"

    schedule_deletion(secrets, REQUEST.secret_name)
    store.save(REQUEST, "https://ca.test/order/2", "the next order's key")
    assert store.load(REQUEST, "https://ca.test/order/2") == "the next order's key"
    secrets.create_secret(Name=LEGACY, SecretString=json.dumps({"order_url": ORDER, "private_key": "legacy key"}))
    schedule_deletion(secrets, LEGACY)  # the legacy secret of a version before one secret per certificate
    assert store.load(REQUEST, ORDER) == "legacy key"


def test_an_account_key_secret_scheduled_for_deletion_is_restored_and_the_account_kept(
    strict_aws: InProcessStack,
) -> None:
    secrets = strict_aws.client("secretsmanager")
    key = account_store(secrets).load_or_create()
    schedule_deletion(secrets, ACCOUNT)
    assert account_store(secrets).load_or_create().thumbprint() == key.thumbprint()


def test_a_refused_restore_fails_the_certificate_naming_the_deletion_and_the_fix(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    SecretStore(secrets).put(REQUEST, FakeCa().sign(REQUEST))
    schedule_deletion(secrets, REQUEST.secret_name)
    strict_aws.fail_secret(REQUEST.secret_name, "AccessDeniedException", "not authorized", ["RestoreSecret"])

    with pytest.raises(StoreError) as failed:
        SecretStore(secrets).put(REQUEST, FakeCa().sign(REQUEST))

    message = str(failed.value)
    assert f"secret {REQUEST.secret_name} is scheduled for deletion, and restoring it was refused" in message
    assert "AccessDeniedException: not authorized" in message
    assert f"aws secretsmanager restore-secret --secret-id {REQUEST.secret_name}" in message
    assert "--force-delete-without-recovery" in message


def test_an_eab_secret_scheduled_for_deletion_is_the_operators_to_restore(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=EAB, SecretString=json.dumps({"key_id": "k", "hmac_key": "aG1hYy1rZXktZm9yLXVuaXQ"}))
    schedule_deletion(secrets, EAB)
    with pytest.raises(EabError, match=f"restore-secret --secret-id {EAB}"):
        load_eab(secrets, EAB)
    assert "DeletedDate" in secrets.describe_secret(SecretId=EAB)


# (what is called, the secret it touches, the operation the fault answers, what the error says)
CALLS = {
    "certificate put": (
        lambda secrets: SecretStore(secrets).put(REQUEST, FakeCa().sign(REQUEST)),
        REQUEST.secret_name,
        "PutSecretValue",
        f"Secrets Manager refused writing {REQUEST.secret_name}: ",
    ),
    "pending save": (
        lambda secrets: PendingOrderStore(secrets).save(REQUEST, ORDER, "key"),
        REQUEST.secret_name,
        "PutSecretValue",
        f"Secrets Manager refused writing {REQUEST.secret_name}: ",
    ),
    "pending load": (
        lambda secrets: PendingOrderStore(secrets).load(REQUEST, ORDER),
        REQUEST.secret_name,
        "GetSecretValue",
        f"Secrets Manager refused reading {REQUEST.secret_name}: ",
    ),
    "legacy pending load": (
        lambda secrets: PendingOrderStore(secrets).load(REQUEST, ORDER),
        LEGACY,
        "GetSecretValue",
        f"Secrets Manager refused reading {LEGACY}: ",
    ),
    "pending clear": (
        lambda secrets: PendingOrderStore(secrets).clear(REQUEST),
        REQUEST.secret_name,
        "UpdateSecretVersionStage",
        f"Secrets Manager refused cleaning up the pending order of {REQUEST.secret_name}: ",
    ),
    "legacy pending delete": (
        lambda secrets: PendingOrderStore(secrets).clear(REQUEST),
        LEGACY,
        "DeleteSecret",
        f"Secrets Manager refused deleting {LEGACY}: ",
    ),
    "account key load": (
        lambda secrets: account_store(secrets).load_or_create(),
        ACCOUNT,
        "GetSecretValue",
        f"Secrets Manager refused reading or creating {ACCOUNT} (the ACME account key): ",
    ),
    "account key create": (
        lambda secrets: account_store(secrets).load_or_create(),
        ACCOUNT,
        "CreateSecret",
        f"Secrets Manager refused reading or creating {ACCOUNT} (the ACME account key): ",
    ),
    "EAB load": (
        lambda secrets: load_eab(secrets, EAB),
        EAB,
        "GetSecretValue",
        f"Secrets Manager refused reading EAB secret {EAB!r}: ",
    ),
}


@pytest.mark.parametrize("fault", ["AccessDeniedException", "DecryptionFailure", "EncryptionFailure"])
@pytest.mark.parametrize("path", list(CALLS))
def test_any_refusal_of_a_read_or_a_write_is_the_certificates_error(
    strict_aws: InProcessStack, path: str, fault: str
) -> None:
    """AccessDenied (IAM, or a KMS key policy), KMS's DecryptionFailure and EncryptionFailure: each is a RenewalError
    with the secret's name and AWS's code, which fails the certificate (the ones of that ACME account for its key)
    and never the run."""
    call, secret, operation, message = CALLS[path]
    secrets = strict_aws.client("secretsmanager")
    if operation != "CreateSecret":
        secrets.create_secret(Name=secret, SecretString=json.dumps({"order_url": ORDER, "private_key": "key"}))
    if secret == LEGACY:  # the certificate's own secret is there too
        secrets.create_secret(Name=REQUEST.secret_name, SecretString="{}")
    if operation == "UpdateSecretVersionStage":
        secrets.put_secret_value(SecretId=secret, SecretString="pending", VersionStages=["AWSPENDING"])
    strict_aws.fail_secret(secret, fault, "refused by the test", [operation])

    with pytest.raises((StoreError, EabError)) as failed:
        call(secrets)

    assert str(failed.value).startswith(message)
    assert f"{fault}: refused by the test" in str(failed.value)


@pytest.mark.parametrize("path", ["certificate put", "pending load", "account key load"])
def test_an_unreachable_secrets_manager_is_the_certificates_error_too(strict_aws: InProcessStack, path: str) -> None:
    call, secret, _, message = CALLS[path]
    secrets = strict_aws.client("secretsmanager", config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def unreachable(request: Any, **_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=request.url)

    secrets.meta.events.register_first("before-send", unreachable)
    with pytest.raises(StoreError, match="EndpointConnectionError") as failed:
        call(secrets)
    if path == "certificate put":  # its first call reads the current version (its password, its formats)
        message = message.replace("writing", "reading")
    assert str(failed.value).startswith(message)
    assert secret in str(failed.value)


def test_a_pending_secret_without_an_order_key_orders_anew(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=REQUEST.secret_name, SecretString="{}")
    secrets.put_secret_value(SecretId=REQUEST.secret_name, SecretString="not json", VersionStages=["AWSPENDING"])
    secrets.create_secret(Name=LEGACY, SecretString="not json")
    assert PendingOrderStore(secrets).load(REQUEST, ORDER) is None


def test_an_account_secret_without_a_key_is_not_overwritten(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=ACCOUNT, SecretString=json.dumps({"directory_url": "https://ca.test/directory"}))
    with pytest.raises(StoreError, match=f"secret {ACCOUNT} does not hold an ACME account key"):
        account_store(secrets).load_or_create()
    assert len(secrets.list_secret_version_ids(SecretId=ACCOUNT)["Versions"]) == 1

"""The strict layer refuses, as Secrets Manager does, what moto accepts on a secret scheduled for deletion; and faults
set on one secret answer only that secret's calls."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.stack.in_process import InProcessStack
from tests.stack.strict_secrets import CREATE_OVER_DELETION, MARKED_FOR_DELETION

NAME = "acme-renewer/certificates/www"


def refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call()
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_secret_scheduled_for_deletion_is_neither_written_nor_read_nor_created_until_restored(
    strict_aws: InProcessStack,
) -> None:
    """AWS refuses PutSecretValue and GetSecretValue on a secret scheduled for deletion, and CreateSecret of its name,
    with InvalidRequestException ("The secret is scheduled for deletion"); RestoreSecret cancels the deletion:
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html,
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html,
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html,
    https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RestoreSecret.html. moto accepts the put."""
    secrets = strict_aws.client("secretsmanager")
    arn = secrets.create_secret(Name=NAME, SecretString="first")["ARN"]
    secrets.delete_secret(SecretId=NAME, RecoveryWindowInDays=7)

    for secret_id in (NAME, arn):
        put = refusal(lambda: secrets.put_secret_value(SecretId=secret_id, SecretString="second"))  # noqa: B023
        assert put == ("InvalidRequestException", MARKED_FOR_DELETION)
        got = refusal(lambda: secrets.get_secret_value(SecretId=secret_id))  # noqa: B023
        assert got == ("InvalidRequestException", MARKED_FOR_DELETION)
    created = refusal(lambda: secrets.create_secret(Name=NAME, SecretString="third"))
    assert created == ("InvalidRequestException", CREATE_OVER_DELETION)
    assert "DeletedDate" in secrets.describe_secret(SecretId=NAME)  # still there, and nothing was written to it

    secrets.restore_secret(SecretId=NAME)
    secrets.put_secret_value(SecretId=NAME, SecretString="second")
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "second"
    assert secrets.get_secret_value(SecretId=NAME, VersionStage="AWSPREVIOUS")["SecretString"] == "first"


def test_secrets_that_are_not_scheduled_for_deletion_are_left_to_moto(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=NAME, SecretString="first")
    secrets.put_secret_value(SecretId=NAME, SecretString="second")
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "second"
    code, _ = refusal(lambda: secrets.get_secret_value(SecretId="acme-renewer/missing"))
    assert code == "ResourceNotFoundException"  # moto's answer, as AWS's
    code, _ = refusal(lambda: secrets.create_secret(Name=NAME, SecretString="again"))
    assert code == "ResourceExistsException"


def test_a_fault_answers_the_calls_on_its_secret_only(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    for name in (NAME, NAME + ".pending"):
        secrets.create_secret(Name=name, SecretString="value")
    strict_aws.fail_secret(NAME + ".pending", "DecryptionFailure", "KMS refused", operations=["GetSecretValue"])

    assert refusal(lambda: secrets.get_secret_value(SecretId=NAME + ".pending")) == ("DecryptionFailure", "KMS refused")
    secrets.put_secret_value(SecretId=NAME + ".pending", SecretString="written")  # not one of the operations
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "value"

    strict_aws.fail_secret(NAME, "AccessDeniedException", "not authorized")  # every operation
    assert refusal(lambda: secrets.put_secret_value(SecretId=NAME, SecretString="x"))[0] == "AccessDeniedException"
    arn = secrets.describe_secret(SecretId=NAME + ".pending")["ARN"]
    assert refusal(lambda: secrets.get_secret_value(SecretId=arn))[0] == "DecryptionFailure"  # by ARN as well
    secrets.create_secret(Name=NAME + "-other", SecretString="value")  # a name the fault's is a prefix of
    assert secrets.get_secret_value(SecretId=NAME + "-other")["SecretString"] == "value"
    strict_aws.clear_secret_faults()
    assert secrets.get_secret_value(SecretId=NAME + ".pending")["SecretString"] == "written"

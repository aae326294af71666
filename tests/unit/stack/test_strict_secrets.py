"""The strict layer refuses, as Secrets Manager does, what moto accepts on a secret scheduled for deletion; and faults
set on one secret answer only that secret's calls; a version, once written, never changes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.stack.in_process import InProcessStack
from tests.stack.strict_secrets import CREATE_OVER_DELETION, MARKED_FOR_DELETION, VERSION_EXISTS

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


TOKEN = "00000000-0000-4000-8000-000000000001"


def test_a_known_client_request_token_with_other_data_is_refused_and_with_the_same_data_changes_nothing(
    strict_aws: InProcessStack,
) -> None:
    """PutSecretValue with the ClientRequestToken of an existing version: "the operation succeeds but does nothing"
    when the data is the same, and fails when it differs, since a version cannot be modified, with
    ResourceExistsException (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html).
    moto overwrote nothing but accepted the second body, and moved the labels on the first."""
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=NAME, SecretString="first")
    written = secrets.put_secret_value(
        SecretId=NAME, SecretString="pending", VersionStages=["AWSPENDING"], ClientRequestToken=TOKEN
    )
    assert written["VersionStages"] == ["AWSPENDING"]

    again = secrets.put_secret_value(SecretId=NAME, SecretString="pending", ClientRequestToken=TOKEN)
    assert (again["VersionId"], again["VersionStages"]) == (TOKEN, ["AWSPENDING"])  # no AWSCURRENT moved
    assert refusal(lambda: secrets.put_secret_value(SecretId=NAME, SecretString="other", ClientRequestToken=TOKEN)) == (
        "ResourceExistsException",
        VERSION_EXISTS,
    )
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "first"
    assert secrets.get_secret_value(SecretId=NAME, VersionId=TOKEN)["SecretString"] == "pending"
    secrets.put_secret_value(SecretId=NAME, SecretString="new", ClientRequestToken=TOKEN.replace("1", "2"))
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "new"  # a new token is a new version


def test_the_first_version_is_awscurrent_whatever_its_labels_and_a_secret_without_one_has_no_current_value(
    strict_aws: InProcessStack,
) -> None:
    """What the certificate's secret relies on, as the API reference says and moto does: CreateSecret without a value
    makes a secret with no version, whose AWSCURRENT GetSecretValue cannot find (ResourceNotFoundException); the first
    version PutSecretValue creates gets AWSCURRENT even when VersionStages names only AWSPENDING ("If this operation
    creates the first version for the secret, then Secrets Manager automatically attaches the staging label
    AWSCURRENT to it"); later ones get only their labels; UpdateSecretVersionStage with RemoveFromVersionId takes a
    label off (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html,
    API_CreateSecret.html, API_GetSecretValue.html, API_UpdateSecretVersionStage.html)."""
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=NAME)
    assert refusal(lambda: secrets.get_secret_value(SecretId=NAME))[0] == "ResourceNotFoundException"
    first = secrets.put_secret_value(SecretId=NAME, SecretString="key", VersionStages=["AWSPENDING"])
    assert set(first["VersionStages"]) == {"AWSPENDING", "AWSCURRENT"}
    second = secrets.put_secret_value(SecretId=NAME, SecretString="next key", VersionStages=["AWSPENDING"])
    assert second["VersionStages"] == ["AWSPENDING"]
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "key"
    secrets.update_secret_version_stage(
        SecretId=NAME, VersionStage="AWSPENDING", RemoveFromVersionId=second["VersionId"]
    )
    code, _ = refusal(lambda: secrets.get_secret_value(SecretId=NAME, VersionStage="AWSPENDING"))
    assert code == "ResourceNotFoundException"


def test_a_fault_on_one_stage_answers_the_calls_on_that_version_only(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    secrets.create_secret(Name=NAME, SecretString="current")
    strict_aws.fail_secret(NAME, "AccessDeniedException", "no", ["PutSecretValue", "GetSecretValue"], "AWSPENDING")

    code, _ = refusal(lambda: secrets.put_secret_value(SecretId=NAME, SecretString="k", VersionStages=["AWSPENDING"]))
    assert code == "AccessDeniedException"
    assert refusal(lambda: secrets.get_secret_value(SecretId=NAME, VersionStage="AWSPENDING"))[0] == code
    secrets.put_secret_value(SecretId=NAME, SecretString="certificate")  # AWSCURRENT: not the fault's
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "certificate"
    strict_aws.clear_secret_faults()
    strict_aws.fail_secret(NAME, "AccessDeniedException", "no", ["PutSecretValue"], "AWSCURRENT")
    secrets.put_secret_value(SecretId=NAME, SecretString="k", VersionStages=["AWSPENDING"])
    assert refusal(lambda: secrets.put_secret_value(SecretId=NAME, SecretString="certificate 2"))[0] == code

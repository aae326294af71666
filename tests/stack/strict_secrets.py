"""Strict layer, Secrets Manager: a secret scheduled for deletion can be neither read nor written, nor created anew.

AWS keeps a secret deleted with a recovery window (DeleteSecret without ForceDeleteWithoutRecovery) until the window
ends, and refuses GetSecretValue and PutSecretValue on it with InvalidRequestException ("The secret is scheduled
for deletion"), and CreateSecret of its name too, until it is restored (RestoreSecret) or gone:
- https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html (Errors)
- https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html (Errors)
- https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html (Errors)
- https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RestoreSecret.html
moto 5 accepts PutSecretValue (and answers CreateSecret with ResourceExistsException); it refuses GetSecretValue
in words of its own. The messages below are AWS's.

A version cannot change: PutSecretValue with the ClientRequestToken of an existing version succeeds and does nothing
when the secret data is the same, and fails when it differs ("you cannot modify an existing secret version"), with
ResourceExistsException: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html
(ClientRequestToken, Errors). moto 5 accepts a different body under a known token, and on the same body moves the
version's staging labels; `same_version` answers both as AWS does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from werkzeug.test import EnvironBuilder

from tests.stack.aws_calls import AwsCall
from tests.stack.strict import Moto, Refusal

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."
CREATE_OVER_DELETION = "You can't create this secret because a secret with this name is already scheduled for deletion."
# The operations refused on a secret scheduled for deletion, and the request field naming the secret.
_GUARDED = {"GetSecretValue": "SecretId", "PutSecretValue": "SecretId", "CreateSecret": "Name"}


VERSION_EXISTS = "A resource with the ID you requested already exists."


def same_version(call: AwsCall, environ: WSGIEnvironment, body: bytes, moto: Moto) -> Refusal | None:
    """PutSecretValue under the ClientRequestToken of an existing version: ResourceExistsException when the data
    differs, and AWS's do-nothing success when it is the same."""
    if call.service != "secretsmanager" or call.operation != "PutSecretValue":
        return None
    try:
        fields = json.loads(body)
        secret_id, token = fields["SecretId"], fields["ClientRequestToken"]
    except (ValueError, KeyError, TypeError):
        return None
    answer = moto(_secretsmanager(environ, "GetSecretValue", {"SecretId": secret_id, "VersionId": token}))
    if answer.code != 200:
        return None  # a new version (or no such secret): moto's to answer
    try:
        existing = json.loads(answer.body)
    except ValueError:
        return None
    if any(existing.get(name) != fields.get(name) for name in ("SecretString", "SecretBinary")):
        return Refusal.json("ResourceExistsException", VERSION_EXISTS)
    kept = {name: existing[name] for name in ("ARN", "Name", "VersionId", "VersionStages") if name in existing}
    return Refusal("200 OK", "application/x-amz-json-1.1", json.dumps(kept).encode())


def refuse(call: AwsCall, environ: WSGIEnvironment, body: bytes, moto: Moto) -> Refusal | None:
    """InvalidRequestException for a read, a write or a create of a secret scheduled for deletion."""
    if call.service != "secretsmanager" or call.operation not in _GUARDED:
        return None
    try:
        secret_id = json.loads(body)[_GUARDED[call.operation]]
    except (ValueError, KeyError, TypeError):
        return None  # malformed: moto says what is wrong with it
    if not isinstance(secret_id, str) or not scheduled_for_deletion(secret_id, environ, moto):
        return None
    message = CREATE_OVER_DELETION if call.operation == "CreateSecret" else MARKED_FOR_DELETION
    return Refusal.json("InvalidRequestException", message)


def scheduled_for_deletion(secret_id: str, environ: WSGIEnvironment, moto: Moto) -> bool:
    """Whether moto holds the secret with a DeletedDate, asked in the caller's account and region."""
    answer = moto(_secretsmanager(environ, "DescribeSecret", {"SecretId": secret_id}))
    if answer.code != 200:
        return False  # no such secret: not this rule's business
    try:
        return json.loads(answer.body).get("DeletedDate") is not None
    except (ValueError, AttributeError):
        return False


def _secretsmanager(environ: WSGIEnvironment, operation: str, payload: dict[str, str]) -> WSGIEnvironment:
    """A Secrets Manager request with the caller's headers (its credential scope and account pick moto's backend)."""
    headers = [
        (key[len("HTTP_") :].replace("_", "-"), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_") and key not in ("HTTP_X_AMZ_TARGET", "HTTP_CONTENT_LENGTH")
    ]
    headers.append(("X-Amz-Target", f"secretsmanager.{operation}"))
    builder = EnvironBuilder(
        method="POST",
        path="/",
        headers=headers,
        data=json.dumps(payload),
        content_type="application/x-amz-json-1.1",
    )
    return builder.get_environ()

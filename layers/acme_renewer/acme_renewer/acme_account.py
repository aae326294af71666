"""Order stage, transport: the ACME connection and its account, whose key lives in Secrets Manager.

Everything that speaks HTTP to the CA is built here; order.py only drives the protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import requests
from acme import client, errors, messages
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwa, jwk

from acme_renewer import SERVICE, __version__
from acme_renewer.errors import CaRetryLaterError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger(service=SERVICE, child=True)
USER_AGENT = f"acme-renewer/{__version__}"


@dataclass(frozen=True)
class AcmeSession:
    client: client.ClientV2
    account_key: jwk.JWK
    account_uri: str


class AccountKeyStore:
    """Keeps one ACME account key per directory in a Secrets Manager secret, created on first use."""

    def __init__(self, client: SecretsManagerClient, secret_name: str, directory_url: str) -> None:
        self._client = client
        self._name = secret_name
        self._directory = directory_url

    def load_or_create(self) -> jwk.JWK:
        existing = self._load()
        if existing is not None:
            return existing
        key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        body = json.dumps({"directory_url": self._directory, "account_key": key.to_partial_json()})
        try:
            self._client.create_secret(
                Name=self._name,
                SecretString=body,
                Description=f"ACME account key for {self._directory} (acme-renewer)",
                Tags=[{"Key": "managed-by", "Value": "acme-renewer"}],
            )
        except self._client.exceptions.ResourceExistsException:
            # Another invocation created it first; use theirs so there is only one account.
            stored = self._load()
            if stored is None:
                raise
            return stored
        logger.info("created ACME account key", extra={"secret_name": self._name})
        return key

    def _load(self) -> jwk.JWK | None:
        try:
            secret = self._client.get_secret_value(SecretId=self._name)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        key = jwk.JWK.from_json(json.loads(secret["SecretString"])["account_key"])
        if not isinstance(key, jwk.JWK):
            raise TypeError(f"secret {self._name} does not hold a JWK account key")
        return key


class RenewerNetwork(client.ClientNetwork):
    """The acme library's transport, keeping the CA's Retry-After when it refuses a request.

    RFC 8555 §6.6: a rateLimited (429) or overloaded (503) answer may say when to come back; acme drops
    the headers with the response, so the failure policy could not honour it otherwise.
    """

    @classmethod
    def _check_response(cls, response: requests.Response, content_type: str | None = None) -> requests.Response:
        try:
            return super()._check_response(response, content_type=content_type)
        except (messages.Error, errors.ClientError) as refused:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            # badNonce is retried by acme itself and must stay a messages.Error.
            if retry_after is None or getattr(refused, "code", None) == "badNonce":
                raise
            detail = str(refused) if isinstance(refused, messages.Error) else f"HTTP {response.status_code}"
            raise CaRetryLaterError(f"the CA refused the request: {detail}", retry_after) from refused


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def connect(directory_url: str, account_key: jwk.JWK, contact_email: str | None, timeout_seconds: int) -> AcmeSession:
    """Open a client on the directory and make sure the account exists.

    newAccount is sent on every run: for a known key the CA answers with the existing account
    (RFC 8555 §7.3.1), and a CA that forgot the account (a test CA restart) gets it back.
    """
    alg = jwa.ES256 if isinstance(account_key, jwk.JWKEC) else jwa.RS256
    net = RenewerNetwork(account_key, alg=alg, user_agent=USER_AGENT, timeout=timeout_seconds)
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(email=contact_email, terms_of_service_agreed=True)
    try:
        account = acme.new_account(registration)
    except errors.ConflictError as existing:
        account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        net.account = account
    logger.info("ACME account ready", extra={"directory": directory_url, "account_uri": account.uri})
    return AcmeSession(client=acme, account_key=account_key, account_uri=account.uri or "")

"""Order stage, account: the ACME account, whose key lives in Secrets Manager, its EAB binding, and the client.

The HTTP to the CA is transport.py's; orders.py drives the protocol through the client opened here.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from acme import client, crypto_util, errors, messages
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import json_util, jwa, jwk
from josepy.errors import DeserializationError

from acme_renewer import SERVICE
from acme_renewer.errors import AcmeOrderError, StoreError
from acme_renewer.order.transport import USER_AGENT, RenewerNetwork
from acme_renewer.stores.secrets import (
    create_secret,
    refusal,
    restoring,
    scheduled_for_deletion,
    secrets_manager_errors,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger(service=SERVICE, child=True)

# An EAB HMAC key as CAs hand it out (RFC 8555 §7.3.4 uses base64url; some add padding).
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{16,}={0,2}")


@dataclass(frozen=True)
class EabCredentials:
    """External Account Binding (RFC 8555 §7.3.4): the CA's key id and base64url HMAC key. Never logged."""

    key_id: str
    hmac_key: str = field(repr=False)


class EabError(AcmeOrderError):
    """The EAB credentials could not be read, or the CA needs them and none were given."""


def load_eab(client: SecretsManagerClient, secret_name: str) -> EabCredentials:
    """EAB credentials from a secret whose SecretString is {"key_id": "...", "hmac_key": "..."}.

    The secret is the operator's: one scheduled for deletion is not restored here, the message says how.
    """
    expected = 'a JSON SecretString {"key_id": "<the CA\'s EAB key id>", "hmac_key": "<its base64url HMAC key>"}'
    try:
        secret = client.get_secret_value(SecretId=secret_name)
    except client.exceptions.ResourceNotFoundException:
        raise EabError(f"EAB secret {secret_name!r} does not exist; create it with {expected}") from None
    except (ClientError, BotoCoreError) as refused:
        hint = ""
        if isinstance(refused, ClientError) and scheduled_for_deletion(refused):
            hint = f"; restore it (aws secretsmanager restore-secret --secret-id {secret_name}) or name another secret"
        raise EabError(
            f"Secrets Manager refused reading EAB secret {secret_name!r}: {refusal(refused)}{hint}"
        ) from None
    try:
        document = json.loads(secret.get("SecretString") or "")
        key_id, hmac_key = document["key_id"], document["hmac_key"]
        if not (isinstance(key_id, str) and key_id and isinstance(hmac_key, str) and _BASE64URL.fullmatch(hmac_key)):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        # The secret's content is not quoted: it may hold the HMAC key.
        raise EabError(f"EAB secret {secret_name!r} must hold {expected}") from None
    return EabCredentials(key_id, hmac_key)


class NewOrder(messages.NewOrder):
    """newOrder with ARI's `replaces` (RFC 9773 §5): the ARI id of the certificate this order replaces.

    acme 5.9's NewOrder has `profile` (draft-aaron-acme-profiles) but not `replaces`; omitted when None, so an
    order without it is byte for byte what acme sends.
    """

    replaces: str | None = json_util.field("replaces", omitempty=True)


class AcmeClient(client.ClientV2):
    """acme's ClientV2 whose newOrder can carry `replaces`: the one place the library's protocol is extended."""

    def new_order(
        self, csr_pem: bytes, profile: str | None = None, replaces: str | None = None
    ) -> messages.OrderResource:
        """RFC 8555 §7.4 newOrder, with `profile` (draft-aaron-acme-profiles) and `replaces` (RFC 9773 §5).

        Mirrors acme 5.9's ClientV2.new_order, which builds its NewOrder inline and so cannot be given a field
        it does not know; keep the two in step when acme is upgraded.
        """
        csr = x509.load_pem_x509_csr(csr_pem)
        dns_names, ip_addresses = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name) for name in dns_names] + [
            messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(address)) for address in ip_addresses
        ]
        order = NewOrder(identifiers=identifiers, profile=profile, replaces=replaces)
        response = self._post(self.directory["newOrder"], order)
        body = messages.Order.from_json(response.json())
        authorizations = [self._authzr_from_response(self._post_as_get(url), uri=url) for url in body.authorizations]
        return messages.OrderResource(
            body=body, uri=response.headers.get("Location"), authorizations=authorizations, csr_pem=csr_pem
        )


@dataclass(frozen=True)
class AcmeSession:
    client: AcmeClient
    account_key: jwk.JWK
    account_uri: str
    directory_url: str = ""


class AccountKeyStore:
    """Keeps one ACME account key per (directory, EAB key) in a Secrets Manager secret, created on first use.

    A secret that cannot be read or written fails the certificates of that account with a StoreError; one scheduled
    for deletion is restored, so that the account stays the same (stores/secrets.py, `restoring`).
    """

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_name: str,
        directory_url: str,
        kms_key_id: str | None = None,
        eab_key_id: str | None = None,
    ) -> None:
        self._client = client
        self._name = secret_name
        self._directory = directory_url
        self._kms_key_id = kms_key_id
        self._eab_key_id = eab_key_id

    def load_or_create(self) -> jwk.JWK:
        with secrets_manager_errors(f"{self._name} (the ACME account key)", "reading or creating"):
            return self._load_or_create()

    def _load_or_create(self) -> jwk.JWK:
        existing = self._load()
        if existing is not None:
            return existing
        key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        document = {"directory_url": self._directory, "account_key": key.to_partial_json()}
        if self._eab_key_id is not None:
            document["eab_key_id"] = self._eab_key_id  # which binding the account has; never the HMAC key
        body = json.dumps(document)
        try:
            create_secret(
                self._client,
                {
                    "Name": self._name,
                    "SecretString": body,
                    "Description": f"ACME account key for {self._directory}"
                    + (f" bound to EAB key {self._eab_key_id}" if self._eab_key_id else "")
                    + " (acme-renewer)",
                    "Tags": [{"Key": "managed-by", "Value": "acme-renewer"}],
                },
                self._kms_key_id,
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
            secret = restoring(self._client, self._name, lambda: self._client.get_secret_value(SecretId=self._name))
        except self._client.exceptions.ResourceNotFoundException:
            return None
        try:
            key = jwk.JWK.from_json(json.loads(secret["SecretString"])["account_key"])
        except (KeyError, ValueError, TypeError, DeserializationError):
            key = None
        if not isinstance(key, jwk.JWK):
            # Not overwritten: the key of an existing ACME account may be all that is left of it.
            raise StoreError(
                f"secret {self._name} does not hold an ACME account key (a JSON SecretString with the account's JWK);"
                " restore its previous version or delete it"
            )
        return key


def connect(
    directory_url: str,
    account_key: jwk.JWK,
    contact_email: str | None,
    timeout_seconds: int,
    eab: EabCredentials | None = None,
) -> AcmeSession:
    """Open a client on the directory and make sure the account exists, bound to the EAB key when given.

    newAccount is sent once on every run (AccountSessions): for a known key the CA answers with the existing
    account (RFC 8555 §7.3.1), and a CA that forgot the account (a test CA restart) gets it back.
    """
    net = RenewerNetwork(account_key, alg=_alg(account_key), user_agent=USER_AGENT, timeout=timeout_seconds)
    directory = client.ClientV2.get_directory(directory_url, net)
    acme = AcmeClient(directory, net)
    binding = None
    if eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=account_key.public_key(), kid=eab.key_id, hmac_key=eab.hmac_key, directory=directory
        )
    elif acme.external_account_required():
        raise EabError(
            f"the CA at {directory_url} requires External Account Binding: name the secret holding its EAB credentials"
            " in the item's eab_secret (or ACME_EAB_SECRET for the function's directory)"
        )
    registration = messages.NewRegistration.from_data(
        email=contact_email, terms_of_service_agreed=True, external_account_binding=binding
    )
    try:
        account = acme.new_account(registration)
    except errors.ConflictError as existing:
        account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        net.account = account
    except messages.Error as refused:
        binding_note = f" with EAB key id {eab.key_id!r}" if eab is not None else ""
        raise AcmeOrderError(f"the CA refused the account{binding_note} (newAccount): {refused}") from None
    logger.info(
        "ACME account ready",
        extra={"directory": directory_url, "account_uri": account.uri, "eab_key_id": eab and eab.key_id},
    )
    return AcmeSession(client=acme, account_key=account_key, account_uri=account.uri or "", directory_url=directory_url)


def resume(registered: AcmeSession, timeout_seconds: int) -> AcmeSession:
    """Another session of an account registered in this run (connect): a transport of its own, since nonces and
    the HTTP session are not thread-safe, with the directory already read and the account URL as the JWS `kid`
    (RFC 8555 §6.2). It sends neither newAccount nor a directory GET."""
    key = registered.account_key
    net = RenewerNetwork(key, alg=_alg(key), user_agent=USER_AGENT, timeout=timeout_seconds)
    net.account = messages.RegistrationResource(uri=registered.account_uri, body=messages.Registration())
    return replace(registered, client=AcmeClient(registered.client.directory, net))


class AccountSessions:
    """Opens the sessions of one ACME account (one CA and EAB key) for one run, as orders.AcmeOrders asks for them.

    The first session registers the account (`register`, which is connect) and every later one resumes it, so
    a run sends one newAccount per account, however many worker threads open sessions at once. The CA need not
    answer concurrent newAccount calls for one key: pebble once answered them 500 and failed a whole batch. The
    other threads wait for that one registration. When it fails, every session asked for afterwards gets the
    same error at once: the CA is not asked again in this run.
    """

    def __init__(self, register: Callable[[], AcmeSession], timeout_seconds: int) -> None:
        self._register = register
        self._timeout = timeout_seconds
        self._registered: AcmeSession | None = None
        self._failure: Exception | None = None
        self._lock = threading.Lock()

    def __call__(self) -> AcmeSession:
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._registered is None:
                try:
                    self._registered = self._register()
                except Exception as failed:
                    self._failure = failed
                    raise
                return self._registered
            registered = self._registered
        return resume(registered, self._timeout)


def _alg(account_key: jwk.JWK) -> jwa.JWASignature:
    return jwa.ES256 if isinstance(account_key, jwk.JWKEC) else jwa.RS256

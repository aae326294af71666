"""Order stage, transport: the ACME connection and its account, whose key lives in Secrets Manager.

Everything that speaks HTTP to the CA is built here; order.py only drives the protocol.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from acme import client, crypto_util, errors, messages
from aws_lambda_powertools import Logger
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import errors as jose_errors
from josepy import json_util, jwa, jwk
from josepy.interfaces import JSONDeSerializable

from acme_renewer import SERVICE, __version__
from acme_renewer.errors import AcmeOrderError, CaRetryLaterError
from acme_renewer.stores import create_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger(service=SERVICE, child=True)
USER_AGENT = f"acme-renewer/{__version__}"

# Transport retries (see RenewerNetwork). acme itself retries badNonce once only, and pebble's or a busy CA's
# nonce rejections come in runs longer than that.
BAD_NONCE_RETRIES = 5
TRANSIENT_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.5  # doubles on each retry: at most 0.5 + 1 + 2 s of waiting per request
MAX_RETRY_AFTER_SECONDS = 10.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
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
    """EAB credentials from a secret whose SecretString is {"key_id": "...", "hmac_key": "..."}."""
    expected = 'a JSON SecretString {"key_id": "<the CA\'s EAB key id>", "hmac_key": "<its base64url HMAC key>"}'
    try:
        secret = client.get_secret_value(SecretId=secret_name)
    except client.exceptions.ResourceNotFoundException:
        raise EabError(f"EAB secret {secret_name!r} does not exist; create it with {expected}") from None
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
    """Keeps one ACME account key per (directory, EAB key) in a Secrets Manager secret, created on first use."""

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
            secret = self._client.get_secret_value(SecretId=self._name)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        key = jwk.JWK.from_json(json.loads(secret["SecretString"])["account_key"])
        if not isinstance(key, jwk.JWK):
            raise TypeError(f"secret {self._name} does not hold a JWK account key")
        return key


class CaUnavailableError(AcmeOrderError):
    """The CA answered 5xx without Retry-After: it failed, and whether a POST took effect is unknown."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class RenewerNetwork(client.ClientNetwork):
    """The acme library's transport, with bounded retries, keeping the CA's Retry-After when it refuses a request.

    Retry rules:
    - badNonce (RFC 8555 §6.5) is retried on every POST, BAD_NONCE_RETRIES times at most: the CA refused the
      request before acting on it, so not even newOrder or finalize can take effect twice.
    - 429, 5xx and connection errors are retried, TRANSIENT_RETRIES times at most with backoff, and never sooner
      than the CA's Retry-After, only on requests that change nothing: GET (directory), HEAD (newNonce) and
      POST-as-GET (§6.3). A 5xx on newAccount, newOrder, a challenge answer or finalize may have taken effect,
      so it fails the certificate, and the item's backoff starts again with a new order.
    - A Retry-After longer than MAX_RETRY_AFTER_SECONDS is not waited for here: it becomes CaRetryLaterError and
      the failure policy honours it (§6.6; acme drops the headers with the response, so it is kept here).
    """

    def __init__(
        self,
        key: jwk.JWK,
        *,
        alg: jwa.JWASignature,
        user_agent: str,
        timeout: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(key, alg=alg, user_agent=user_agent, timeout=timeout)
        self._sleep = sleep

    @classmethod
    def _check_response(cls, response: requests.Response, content_type: str | None = None) -> requests.Response:
        try:
            try:
                return super()._check_response(response, content_type=content_type)
            except errors.ConflictError as conflict:
                # acme turns every 409 into ConflictError and drops the body. A 409 with a problem document and no
                # Location is a refusal to read like any other: alreadyReplaced is sent as 409 (RFC 9773 §5).
                problem = _problem_document(response)
                if problem is None or "Location" in response.headers:
                    raise
                raise problem from conflict
        except (messages.Error, errors.ClientError) as refused:
            # post() retries badNonce, and connect() needs the ConflictError of a known account: both unchanged.
            if getattr(refused, "code", None) == "badNonce" or isinstance(refused, errors.ConflictError):
                raise
            detail = str(refused) if isinstance(refused, messages.Error) else f"HTTP {response.status_code}"
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise CaRetryLaterError(f"the CA refused the request: {detail}", retry_after) from refused
            if response.status_code >= 500:
                request = f" to {response.request.method} {response.url}" if response.request is not None else ""
                message = f"the CA failed{request} with HTTP {response.status_code}: {detail}"
                raise CaUnavailableError(message, response.status_code) from refused
            raise

    def post(
        self,
        url: str,
        obj: JSONDeSerializable | None,
        content_type: str = client.ClientNetwork.JOSE_CONTENT_TYPE,
        **kwargs: Any,
    ) -> requests.Response:
        """A signed POST; every attempt signs again with a fresh nonce (the CA accepts each nonce once)."""
        reads_only = obj is None  # POST-as-GET, RFC 8555 §6.3
        bad_nonces = failures = 0
        while True:
            try:
                return self._post_once(url, obj, content_type=content_type, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or bad_nonces >= BAD_NONCE_RETRIES:
                    raise
                bad_nonces += 1
                logger.info("the CA rejected the nonce; signing again", extra={"url": url, "retry": bad_nonces})
            except (CaUnavailableError, CaRetryLaterError, requests.ConnectionError) as error:
                retry_after = error.retry_after if isinstance(error, CaRetryLaterError) else None
                if not reads_only or not self._pause_before_retry(failures, retry_after, f"POST-as-GET {url}", error):
                    raise
                failures += 1

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        """GET and HEAD are retried here; a POST cannot be sent again as it is (its nonce is spent), see post()."""
        if method not in ("GET", "HEAD"):
            response = super()._send_request(method, url, *args, **kwargs)
            self._keep_nonce_of_refusal(response)
            return response
        failures = 0
        while True:
            try:
                response = super()._send_request(method, url, *args, **kwargs)
            except requests.ConnectionError as error:
                if not self._pause_before_retry(failures, None, f"{method} {url}", error):
                    raise
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if not self._pause_before_retry(failures, retry_after, f"{method} {url}", response.status_code):
                    return response
            failures += 1

    def _pause_before_retry(self, failures: int, retry_after: float | None, request: str, reason: object) -> bool:
        """Sleep before the next attempt of a request that changes nothing; False: give up and let it fail."""
        if failures >= TRANSIENT_RETRIES or (retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS):
            return False
        delay = max(RETRY_BACKOFF_SECONDS * 2**failures, retry_after or 0.0)
        logger.warning(
            "the CA did not answer a read; retrying",
            extra={"request": request, "reason": str(reason), "retry": failures + 1, "delay_seconds": delay},
        )
        self._sleep(delay)
        return True

    def _keep_nonce_of_refusal(self, response: requests.Response) -> None:
        """A refusal carries a fresh nonce too (RFC 8555 §6.5); keeping it saves a newNonce round trip."""
        if response.ok or self.REPLAY_NONCE_HEADER not in response.headers:
            return
        with contextlib.suppress(errors.BadNonce):
            self._add_nonce(response)


def anonymous_network(timeout_seconds: int) -> RenewerNetwork:
    """A transport for the requests that need no account (the directory, renewalInfo): it cannot sign."""
    # acme types the key as required, but only POST uses it (and refuses without one).
    return RenewerNetwork(None, alg=jwa.ES256, user_agent=USER_AGENT, timeout=timeout_seconds)  # type: ignore[arg-type]


def _problem_document(response: requests.Response) -> messages.Error | None:
    """The RFC 7807 problem a response carries, or None when its body is not one."""
    try:
        body = response.json()
        return messages.Error.from_json(body) if isinstance(body, dict) and "type" in body else None
    except (ValueError, jose_errors.DeserializationError):
        return None


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


def connect(
    directory_url: str,
    account_key: jwk.JWK,
    contact_email: str | None,
    timeout_seconds: int,
    eab: EabCredentials | None = None,
) -> AcmeSession:
    """Open a client on the directory and make sure the account exists, bound to the EAB key when given.

    newAccount is sent on every run: for a known key the CA answers with the existing account
    (RFC 8555 §7.3.1), and a CA that forgot the account (a test CA restart) gets it back.
    """
    alg = jwa.ES256 if isinstance(account_key, jwk.JWKEC) else jwa.RS256
    net = RenewerNetwork(account_key, alg=alg, user_agent=USER_AGENT, timeout=timeout_seconds)
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

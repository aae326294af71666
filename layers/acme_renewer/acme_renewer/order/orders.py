"""Order stage: one ACME order in three steps (begin, validate, finish), so that many orders share one DNS wait.

batch.py runs the steps for all the certificates of a run; the records to publish come out of `begin`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from acme import challenges, errors, messages
from aws_lambda_powertools import Logger
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from acme_renewer import SERVICE
from acme_renewer.dns.challenge import challenge_record
from acme_renewer.errors import AcmeOrderError
from acme_renewer.inventory.ari import certificate_id, has_renewal_info
from acme_renewer.models import AcmeAccount, CertificateRequest, IssuedCertificate, TxtRecord
from acme_renewer.order.account import AcmeSession
from acme_renewer.order.keys import build_csr, generate_key, issued_certificate, private_key_pem

logger = Logger(service=SERVICE, child=True)


# Seconds between polls of an authorization or an order: a CA usually finishes within a second.
POLL_DELAYS = (0.2, 0.3, 0.5, 1.0, 1.0, 2.0)
POLL_MAX_DELAY = 3.0

# Called with (order URL, new private key PEM) once the names are validated and before the CSR is sent:
# from then on the CA may issue, and a run that dies before storing must be able to pick the result up.
Checkpoint = Callable[[str, str], None]


@dataclass
class OpenOrder:
    """An order between newOrder and finalization: the new key, and the TXT values its challenges need.

    Plain data, so that any session of the same account can carry it on (see AcmeOrders).
    """

    request: CertificateRequest
    resource: messages.OrderResource
    key: CertificateIssuerPrivateKeyTypes
    challenges: list[tuple[str, messages.ChallengeBody]]
    records: list[TxtRecord] = field(default_factory=list)


def begin(session: AcmeSession, request: CertificateRequest, replaces: str | None = None) -> OpenOrder:
    """newOrder with a new key; the records to publish are on the result. Nothing is published here.

    `replaces` is the ARI id (RFC 9773 §4.1) of the certificate this one renews; it is sent only to a CA with
    ARI, and dropped once if the CA refuses it (see replaces_refused).
    """
    profile = profile_to_order(session, request)
    if replaces is not None and not has_renewal_info(session.client.directory):
        logger.info("the CA has no renewalInfo (ARI); ordering without replaces", extra={"replaces": replaces})
        replaces = None
    key = generate_key(request.key_type)
    csr_pem = build_csr(key, request.domains)
    with acme_errors("newOrder"):
        try:
            resource = session.client.new_order(csr_pem, profile=profile, replaces=replaces)
        except messages.Error as problem:
            if replaces is None or not replaces_refused(problem):
                raise
            logger.warning(
                "the CA refused replaces; ordering once more without it",
                extra={"replaces": replaces, "error": str(problem)},
            )
            resource = session.client.new_order(csr_pem, profile=profile)
    pending = _pending_dns_challenges(resource)
    records = [
        challenge_record(
            domain,
            challenge.chall.validation(session.account_key),
            alias=request.challenge_alias,
            zone_id=request.hosted_zone_id,
            role=request.zone_role,
        )
        for domain, challenge in pending
    ]
    logger.info("order created", extra={"order_uri": resource.uri, "challenges": len(pending)})
    return OpenOrder(request, resource, key, pending, records)


def profile_to_order(session: AcmeSession, request: CertificateRequest) -> str | None:
    """The item's profile if the CA offers it (directory meta.profiles, draft-aaron-acme-profiles); None to order
    the CA's default when the item allows that fallback; AcmeOrderError, before any newOrder, otherwise."""
    if request.profile is None:
        return None
    offered = sorted(session.client.directory.meta.profiles or {})
    if request.profile in offered:
        return request.profile
    offers = f"it offers: {', '.join(offered)}" if offered else "it offers no profiles"
    if request.profile_fallback:
        logger.warning(
            "the CA does not offer the profile; ordering its default (profile_fallback)",
            extra={"profile": request.profile, "offered": offered},
        )
        return None
    where = session.directory_url or "this directory"
    raise AcmeOrderError(
        f"the CA at {where} does not offer profile {request.profile!r} ({offers}); set profile_fallback true to"
        " order its default, or change profile"
    )


# RFC 9773 §5: a CA refuses `replaces` with alreadyReplaced (the certificate was replaced by another order), or
# with unauthorized or malformed when the certificate is not this account's or the id is not one it knows.
# Those two types also mean other things, so they count only when the CA's detail names the field or ARI.
_ALREADY_REPLACED = messages.ERROR_PREFIX + "alreadyReplaced"
_REPLACES_REFUSALS = frozenset({messages.ERROR_PREFIX + "unauthorized", messages.ERROR_PREFIX + "malformed"})
_ABOUT_REPLACES = re.compile(r"replac|\bARI\b|renewal ?info", re.IGNORECASE)


def replaces_refused(problem: messages.Error) -> bool:
    """Whether newOrder failed because of `replaces`, so that the same order without it may succeed.

    Never for badNonce (the transport signs again) or rateLimited (another request only makes it worse).
    """
    if problem.typ == _ALREADY_REPLACED:
        return True
    return problem.typ in _REPLACES_REFUSALS and bool(_ABOUT_REPLACES.search(problem.detail or ""))


def answer(session: AcmeSession, opened: OpenOrder) -> None:
    """Tell the CA that the challenges' records are live: it starts validating."""
    with acme_errors("challenge"):
        for _, challenge in opened.challenges:
            session.client.answer_challenge(challenge, challenge.chall.response(session.account_key))


def validate(session: AcmeSession, opened: OpenOrder, timeout_seconds: float) -> None:
    """Wait until the answered order is ready, every authorization valid.

    The order is polled, not each authorization: one request per poll whatever the number of names (RFC 8555
    §7.1.6: an order is "ready" once all its authorizations are valid, "invalid" once one of them is). Only an
    order that failed has its authorizations fetched, each until decided, for the reasons. Polled here rather than
    with acme's poll_authorizations, which sleeps a whole second after each pending answer: in a batch, most orders
    are ready by the time they are polled, the rest soon after.
    """
    deadline = time.monotonic() + timeout_seconds
    with acme_errors("validation", timeout_seconds):
        polls = 0
        while True:
            body = messages.Order.from_json(session.client._post_as_get(opened.resource.uri).json())
            if body.status in (messages.STATUS_READY, messages.STATUS_PROCESSING, messages.STATUS_VALID):
                return
            if body.status != messages.STATUS_PENDING:
                break
            polls = _wait(polls, deadline)
        # The order is invalid as soon as one authorization is; the others may still be validating. Each is polled
        # until decided, so that every name that failed is reported with its reason.
        authorizations = []
        for authorization in opened.resource.authorizations:
            authorization, _ = session.client.poll(authorization)
            while authorization.body.status == messages.STATUS_PENDING:
                polls = _wait(polls, deadline)
                authorization, _ = session.client.poll(authorization)
            authorizations.append(authorization)
        failed = [a for a in authorizations if a.body.status != messages.STATUS_VALID]
        if not failed:
            raise errors.Error(f"the CA marked the order {body.status}, every authorization valid")
        raise errors.ValidationError(failed)


def finish(
    session: AcmeSession, opened: OpenOrder, timeout_seconds: float, checkpoint: Checkpoint | None = None
) -> IssuedCertificate:
    """Finalize a validated order and download the chain; the checkpoint runs before the CSR goes out.

    Polled here rather than with acme's finalize_order, which sleeps a second before its first look.
    """
    if checkpoint is not None:
        checkpoint(opened.resource.uri, private_key_pem(opened.key))
    deadline = time.monotonic() + timeout_seconds
    with acme_errors("finalization", timeout_seconds):
        resource = session.client.begin_finalization(opened.resource)
        polls = 0
        while True:
            body = messages.Order.from_json(session.client._post_as_get(resource.uri).json())
            if body.status == messages.STATUS_INVALID:
                raise (
                    errors.IssuanceError(body.error) if body.error else errors.Error("the CA marked the order invalid")
                )
            if body.status == messages.STATUS_VALID and body.certificate is not None:
                fullchain = download_chain(session, body.certificate, opened.request.preferred_chain)
                break
            polls = _wait(polls, deadline)
    if not fullchain:
        raise AcmeOrderError("the order finished without a certificate")
    return _with_ari_id(session, issued_certificate(fullchain, opened.key, opened.request.domains))


def _with_ari_id(session: AcmeSession, certificate: IssuedCertificate) -> IssuedCertificate:
    """Note the certificate's ARI id when its CA offers renewalInfo: later runs ask for its suggested window."""
    if not has_renewal_info(session.client.directory):
        return certificate
    return replace(certificate, ari_id=certificate_id(certificate.certificate_pem))


def download_chain(session: AcmeSession, certificate_url: str, preferred_chain: str | None) -> str:
    """The certificate with its default chain, or with the preferred one among the CA's alternates.

    RFC 8555 §7.4.2: the download links alternate chains as `Link: <url>;rel="alternate"`. They are fetched only
    when a chain is preferred, as acme's poll_finalization(fetch_alternative_chains=True) does (its link parsing is
    reused; its polling is not, see finish).
    """
    response = session.client._post_as_get(certificate_url)
    if preferred_chain is None:
        return response.text
    alternates = [session.client._post_as_get(url).text for url in session.client._get_links(response, "alternate")]
    return choose_chain([response.text, *alternates], preferred_chain)


def choose_chain(fullchains: list[str], issuer_cn: str) -> str:
    """The first chain whose topmost certificate (the one closest to the root) was issued by `issuer_cn`, else
    the first (the CA's default): certbot's rule for --preferred-chain (crypto_util.find_chain_with_issuer)."""
    offered = []
    for fullchain in fullchains:
        top_issuer = _top_issuer_cn(fullchain)
        if top_issuer == issuer_cn:
            if fullchain is not fullchains[0]:
                logger.info("using an alternate chain", extra={"preferred_chain": issuer_cn})
            return fullchain
        offered.append(top_issuer)
    logger.warning(
        "the CA offers no chain to the preferred issuer; using its default chain",
        extra={"preferred_chain": issuer_cn, "offered": offered},
    )
    return fullchains[0]


def _top_issuer_cn(fullchain: str) -> str | None:
    try:
        top = x509.load_pem_x509_certificates(fullchain.encode())[-1]
    except ValueError:  # an unreadable alternate is not a candidate; the default one is checked when parsed
        return None
    names = top.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def _wait(polls: int, deadline: float) -> int:
    """Sleep before the next poll of the CA: quick at first, then slower; TimeoutError past the deadline."""
    delay = POLL_DELAYS[polls] if polls < len(POLL_DELAYS) else POLL_MAX_DELAY
    if time.monotonic() + delay > deadline:
        raise errors.TimeoutError()
    time.sleep(delay)
    return polls + 1


@contextmanager
def acme_errors(step: str, timeout_seconds: float | None = None) -> Iterator[None]:
    """The acme library's exceptions as AcmeOrderError with a message for the item's last_error."""
    try:
        yield
    except errors.ValidationError as failed:
        raise AcmeOrderError(_describe_validation_failure(failed)) from None
    except errors.TimeoutError:
        raise AcmeOrderError(f"the order was not ready within {timeout_seconds or 0:.0f} s ({step})") from None
    except messages.Error as problem:
        raise AcmeOrderError(f"the CA refused the request ({step}): {problem}") from None
    except errors.Error as other:
        raise AcmeOrderError(f"ACME error ({step}): {type(other).__name__}: {other}") from None


def recover(
    session: AcmeSession, request: CertificateRequest, order_url: str, key_pem: str
) -> IssuedCertificate | None:
    """The certificate of an order a dead run finalized, if the CA issued it; None when it must be ordered anew.

    RFC 8555 §7.1.3: a valid order carries the certificate URL; any other state (or an order the CA has
    forgotten) means starting over.
    """
    try:
        body = messages.Order.from_json(session.client._post_as_get(order_url).json())
        if body.status != messages.STATUS_VALID or body.certificate is None:
            logger.info(
                "pending order not usable; ordering anew", extra={"order_uri": order_url, "status": str(body.status)}
            )
            return None
        fullchain = download_chain(session, body.certificate, request.preferred_chain)
    except (messages.Error, errors.Error) as problem:
        logger.info("pending order not usable; ordering anew", extra={"order_uri": order_url, "error": str(problem)})
        return None
    key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return None
    logger.info("recovered the certificate of an interrupted run", extra={"order_uri": order_url})
    return _with_ari_id(session, issued_certificate(fullchain, key, request.domains))


def _pending_dns_challenges(order: messages.OrderResource) -> list[tuple[str, messages.ChallengeBody]]:
    """The dns-01 challenge of every authorization that is not already valid (the CA may reuse some)."""
    pending = []
    for authorization in order.authorizations:
        body = authorization.body
        if body.status == messages.STATUS_VALID:
            continue
        name = body.identifier.value
        challenge = next((c for c in body.challenges if isinstance(c.chall, challenges.DNS01)), None)
        if challenge is None:
            raise AcmeOrderError(f"the CA offers no dns-01 challenge for {name!r}")
        pending.append((name, challenge))
    return pending


def _describe_validation_failure(failed: errors.ValidationError) -> str:
    parts = []
    for authorization in failed.failed_authzrs:
        name = authorization.body.identifier.value
        details = [str(c.error) for c in authorization.body.challenges if c.error is not None]
        parts.append(f"{name}: {'; '.join(details) or 'authorization ' + str(authorization.body.status)}")
    return "DNS-01 validation failed for " + " | ".join(parts)


class AcmeOrders:
    """The order steps over a pool of ACME sessions of one account, for use from several threads.

    acme's ClientNetwork keeps a nonce and an HTTP session and is not thread-safe, so each session is
    lent to one thread at a time; a new one is opened only when every other is in use. Opening happens
    at the first step of the first due certificate: a run with nothing due never contacts the CA. When
    opening fails (CA down, account refused), every later step fails at once with the same error.
    """

    def __init__(self, open_session: Callable[[], AcmeSession], timeout_seconds: float) -> None:
        self._open = open_session
        self._timeout = timeout_seconds
        self._free: list[AcmeSession] = []
        self._opened = 0
        self._failure: Exception | None = None
        self._lock = threading.Lock()

    @property
    def sessions_opened(self) -> int:
        return self._opened

    def begin(self, request: CertificateRequest, replaces: str | None = None) -> OpenOrder:
        with self._session() as session:
            return begin(session, request, replaces)

    def answer(self, opened: OpenOrder) -> None:
        with self._session() as session:
            answer(session, opened)

    def validate(self, opened: OpenOrder) -> None:
        with self._session() as session:
            validate(session, opened, self._timeout)

    def finish(self, opened: OpenOrder, checkpoint: Checkpoint | None = None) -> IssuedCertificate:
        with self._session() as session:
            return finish(session, opened, self._timeout, checkpoint)

    def recover(self, request: CertificateRequest, order_url: str, key_pem: str) -> IssuedCertificate | None:
        with self._session() as session:
            return recover(session, request, order_url, key_pem)

    @contextmanager
    def _session(self) -> Iterator[AcmeSession]:
        with self._lock:
            if self._failure is not None:
                raise self._failure
            session = self._free.pop() if self._free else None
        if session is None:
            try:
                session = self._open()
            except Exception as failure:
                with self._lock:
                    self._failure = failure
                raise
            with self._lock:
                self._opened += 1
        try:
            yield session
        finally:
            with self._lock:
                self._free.append(session)


class AccountOrders:
    """The order steps routed to the ACME account each certificate orders from (its CA and EAB key).

    One AcmeOrders, with its own session pool, per account, created on the first certificate that needs it:
    certificates of several CAs still share one batch and one DNS wait, and a CA that is down, or an account
    it refuses, fails only the certificates ordered through it.
    """

    def __init__(self, orders_for: Callable[[AcmeAccount], AcmeOrders], default: AcmeAccount) -> None:
        self._orders_for = orders_for
        self._default = default
        self._orders: dict[AcmeAccount, AcmeOrders] = {}
        self._lock = threading.Lock()

    @property
    def sessions_opened(self) -> int:
        with self._lock:
            return sum(orders.sessions_opened for orders in self._orders.values())

    def begin(self, request: CertificateRequest, replaces: str | None = None) -> OpenOrder:
        return self._for(request).begin(request, replaces)

    def answer(self, opened: OpenOrder) -> None:
        self._for(opened.request).answer(opened)

    def validate(self, opened: OpenOrder) -> None:
        self._for(opened.request).validate(opened)

    def finish(self, opened: OpenOrder, checkpoint: Checkpoint | None = None) -> IssuedCertificate:
        return self._for(opened.request).finish(opened, checkpoint)

    def recover(self, request: CertificateRequest, order_url: str, key_pem: str) -> IssuedCertificate | None:
        return self._for(request).recover(request, order_url, key_pem)

    def _for(self, request: CertificateRequest) -> AcmeOrders:
        account = request.account or self._default
        with self._lock:
            if account not in self._orders:
                self._orders[account] = self._orders_for(account)
            return self._orders[account]

"""Order stage: one ACME order from newOrder to the downloaded chain, with DNS-01 published meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from acme import challenges, errors, messages
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_renewer import SERVICE
from acme_renewer.acme_account import AcmeSession
from acme_renewer.dns_challenge import ChallengeDns, TxtRecord, challenge_record_name, published
from acme_renewer.errors import AcmeOrderError
from acme_renewer.keys import build_csr, generate_key, issued_certificate, private_key_pem
from acme_renewer.models import CertificateRequest, IssuedCertificate

logger = Logger(service=SERVICE, child=True)


# Called with (order URL, new private key PEM) once the names are validated and before the CSR is sent:
# from then on the CA may issue, and a run that dies before storing must be able to pick the result up.
Checkpoint = Callable[[str, str], None]


def issue(
    session: AcmeSession,
    request: CertificateRequest,
    dns: ChallengeDns,
    timeout_seconds: float,
    checkpoint: Checkpoint | None = None,
) -> IssuedCertificate:
    """Order a certificate for the request with a new key; the TXT records are gone when this returns."""
    key = generate_key(request.key_type)
    csr_pem = build_csr(key, request.domains)
    try:
        order = session.client.new_order(csr_pem)
        pending = _pending_dns_challenges(order)
        records = [
            TxtRecord(challenge_record_name(domain), challenge.chall.validation(session.account_key))
            for domain, challenge in pending
        ]
        logger.info("order created", extra={"order_uri": order.uri, "challenges": len(pending)})
        with published(dns, records) as publication:
            for _, challenge in pending:
                session.client.answer_challenge(challenge, challenge.chall.response(session.account_key))
            # acme compares deadlines with the naive local datetime.now().
            deadline = datetime.now() + timedelta(seconds=timeout_seconds)
            order = session.client.poll_authorizations(order, deadline)
        # Validated: the records can go before finalization.
        if checkpoint is not None:
            checkpoint(order.uri, private_key_pem(key))
        order = session.client.finalize_order(order, deadline)
    except errors.ValidationError as failed:
        raise AcmeOrderError(_describe_validation_failure(failed)) from None
    except errors.TimeoutError:
        raise AcmeOrderError(f"the order was not ready within {timeout_seconds:.0f} s") from None
    except messages.Error as problem:
        raise AcmeOrderError(f"the CA refused the request: {problem}") from None
    except errors.Error as other:
        raise AcmeOrderError(f"ACME error: {type(other).__name__}: {other}") from None
    if not order.fullchain_pem:
        raise AcmeOrderError("the order finished without a certificate")
    certificate = issued_certificate(order.fullchain_pem, key, request.domains)
    return replace(certificate, propagation_seconds=publication.seconds)


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
        fullchain = session.client._post_as_get(body.certificate).text
    except (messages.Error, errors.Error) as problem:
        logger.info("pending order not usable; ordering anew", extra={"order_uri": order_url, "error": str(problem)})
        return None
    key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return None
    logger.info("recovered the certificate of an interrupted run", extra={"order_uri": order_url})
    return issued_certificate(fullchain, key, request.domains)


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

"""Order stage: one ACME order from newOrder to the downloaded chain, with DNS-01 published meanwhile."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from acme import challenges, errors, messages
from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.acme_account import AcmeSession
from acme_renewer.dns_challenge import ChallengeDns, TxtRecord, challenge_record_name, published
from acme_renewer.errors import AcmeOrderError
from acme_renewer.keys import build_csr, generate_key, issued_certificate
from acme_renewer.models import CertificateRequest, IssuedCertificate

logger = Logger(service=SERVICE, child=True)


def issue(
    session: AcmeSession, request: CertificateRequest, dns: ChallengeDns, timeout_seconds: float
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
            order = session.client.poll_and_finalize(order, deadline=deadline)
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

"""Order and DNS challenge stages for many certificates at once: one DNS wait per run, not one per certificate.

The slow part of DNS-01 is waiting for DNS to propagate (Route53: 30-60 s until INSYNC). So the orders
of every due certificate are opened first, all their TXT values go out together (one change per hosted
zone), the wait happens once, and then every order is validated and finalized concurrently:

    begin all -> resolve CNAMEs -> journal + publish all -> answer all -> validate all -> remove all -> finish all

(each step but publish and remove on worker threads)

One certificate's failure (newOrder refused, validation failed, journal write lost to another run) is
that certificate's result only; the others go on. A failed publish fails the certificates that needed it,
each with an error naming only its own names and reasons.
The records are removed whatever happens, once, for the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.dns.challenge import ChallengeDns, Journal
from acme_renewer.errors import DnsPublishError, RenewalError
from acme_renewer.models import CertificateRequest, IssuedCertificate, Phase, PhaseObserver, Step, TxtRecord

logger = Logger(service=SERVICE, child=True)

T = TypeVar("T")
R = TypeVar("R")


class OpenOrderLike(Protocol):
    """What the batch needs to know of an order in progress: the TXT values to publish for it."""

    @property
    def records(self) -> list[TxtRecord]: ...


OrderT = TypeVar("OrderT", bound=OpenOrderLike)


class Orders(Protocol[OrderT]):
    """The order stage in steps; order.AcmeOrders is the real one. Every method may run on any thread."""

    def begin(self, request: CertificateRequest, replaces: str | None = None) -> OrderT:
        """newOrder; `replaces` is the ARI id of the certificate being renewed (see order.begin)."""
        ...

    def answer(self, opened: OrderT) -> None:
        """Tell the CA the records are live."""

    def validate(self, opened: OrderT) -> None:
        """Wait until the answered order is validated."""

    def finish(self, opened: OrderT, checkpoint: Callable[[str, str], None] | None = None) -> IssuedCertificate: ...

    def recover(self, request: CertificateRequest, order_url: str, key_pem: str) -> IssuedCertificate | None:
        """The certificate of an order a dead run finalized (see order.recover); not used by the batch itself."""


@dataclass(frozen=True)
class Job:
    """One certificate of the batch: what to order, where its challenge values are journaled, the checkpoint to
    call before finalization (see order.Checkpoint), and the ARI id of the certificate it replaces, if known."""

    request: CertificateRequest
    journal: Journal
    checkpoint: Callable[[str, str], None] | None = None
    replaces: str | None = None


# Per-job result: the certificate, or the exception that ended this job.
Result = IssuedCertificate | Exception


@dataclass
class BatchIssuer(Generic[OrderT]):
    orders: Orders[OrderT]
    dns: ChallengeDns
    workers: int = 8
    # Entered around each job's work on its worker thread, e.g. to put the certificate id on log lines.
    scope: Callable[[Job], AbstractContextManager[object]] = lambda job: nullcontext()
    # Told of each step as the batch reaches it, for a progress display (the CLI); never needed to issue.
    on_phase: PhaseObserver | None = None

    def issue(
        self, jobs: Sequence[Job], on_issued: Callable[[int, IssuedCertificate], None] | None = None
    ) -> list[Result]:
        """Issue every job's certificate; one result per job, in order. Only BaseException escapes.

        `on_issued(index, certificate)` is called on the finishing thread as soon as a job's certificate is
        downloaded, before the rest of the batch is: storing it need not wait for the slowest order (with ACM's
        import rate binding, a batch's imports then start with its first certificate, not its last).
        """
        if not jobs:
            return []
        results: list[Result | None] = [None] * len(jobs)
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(jobs))), thread_name_prefix="order") as pool:

            def each(indexes: Sequence[int], step: Callable[[Job, T], R], args: Sequence[T]) -> list[R | Exception]:
                def run(pair: tuple[int, T]) -> R | Exception:
                    index, arg = pair
                    with self.scope(jobs[index]):
                        try:
                            return step(jobs[index], arg)
                        except Exception as failed:
                            _log_failure(failed)
                            return failed

                return list(pool.map(run, zip(indexes, args, strict=True)))

            everyone = list(range(len(jobs)))
            self._phase(Phase(Step.ORDERING, certificates=len(jobs)))
            opened = each(everyone, lambda job, _: self.orders.begin(job.request, job.replaces), [None] * len(jobs))
            live = _keep(everyone, opened, results)
            orders: dict[int, OrderT] = {
                i: o for i, o in zip(everyone, opened, strict=True) if not isinstance(o, Exception)
            }

            # Where each value is written is settled once, before the journal: publish, remove and a later
            # sweep of the journal must all agree on it even if a CNAME changes meanwhile.
            to_write: dict[int, list[TxtRecord]] = {}
            try:
                resolved = iter(self.dns.resolve([record for i in live for record in orders[i].records]))
                to_write = {i: [next(resolved) for _ in orders[i].records] for i in live}
            except Exception as failed:
                logger.exception("looking up the challenge names' CNAMEs failed", extra={"certificates": len(live)})
                live = _fail_all(live, failed, results)

            journaled = each(live, lambda job, i: job.journal.write(to_write[i]), live)
            live = _keep(live, journaled, results)
            in_journal = list(live)

            records = [record for i in live for record in to_write[i]]
            propagation: float | None = None
            try:
                try:
                    started = time.monotonic()
                    self.dns.publish(records)
                    propagation = time.monotonic() - started
                    logger.info(
                        "challenge records live",
                        extra={"certificates": len(live), "records": len(records), "seconds": round(propagation, 2)},
                    )
                    if records:
                        self._phase(Phase(Step.LIVE, certificates=len(live), records=len(records), seconds=propagation))
                except DnsPublishError as partial:
                    # The names that failed take down the certificates needing them, each with the reasons of
                    # its own names only; the others were published.
                    propagation = time.monotonic() - started
                    logger.error("some challenge records could not be published", extra={"error": str(partial)})
                    own = {i: partial.about(to_write[i]) for i in live}
                    for i, error in own.items():
                        if error is not None:
                            results[i] = error
                    live = [i for i in live if own[i] is None]
                except Exception as failed:
                    logger.exception("publishing the challenge records failed", extra={"certificates": len(live)})
                    live = _fail_all(live, failed, results)
                # Every order is answered before any is polled: by then the CA has validated most of them.
                answered = each(live, lambda job, i: self.orders.answer(orders[i]), live)
                live = _keep(live, answered, results)
                if live:
                    self._phase(Phase(Step.VALIDATING, certificates=len(live)))
                validated = each(live, lambda job, i: self.orders.validate(orders[i]), live)
                live = _keep(live, validated, results)
            finally:
                # Also after a failed publish: part of the batch may have been written before the failure.
                self._remove(records, [jobs[i] for i in in_journal])

            def finish(job: Job, i: int) -> IssuedCertificate:
                certificate = replace(self.orders.finish(orders[i], job.checkpoint), propagation_seconds=propagation)
                if on_issued is not None:
                    on_issued(i, certificate)
                return certificate

            finished = each(live, finish, live)
            for i, certificate in zip(live, finished, strict=True):
                results[i] = certificate
        return [r if r is not None else RenewalError("the batch ended without a result") for r in results]

    def _phase(self, phase: Phase) -> None:
        if self.on_phase is not None:
            self.on_phase(phase)

    def _remove(self, records: list[TxtRecord], journaled: list[Job]) -> None:
        """Take every value of the batch away; a failure is logged, not raised: it must not turn issued
        certificates into failures. The journals stay then, and the next run sweeps what is left."""
        try:
            if records:
                self.dns.remove(records)
        except Exception:
            logger.exception(
                "could not remove challenge TXT records", extra={"names": sorted({r.name for r in records})[:20]}
            )
            return
        for job in journaled:
            try:
                job.journal.clear()
            except Exception:
                logger.exception("could not clear the challenge journal", extra={"certificate_id": job.request.id})


def _fail_all(indexes: Sequence[int], failed: Exception, results: list[Result | None]) -> list[int]:
    """A step that failed for the whole batch: each of these certificates gets its error; none is left live."""
    for index in indexes:
        results[index] = failed
    return []


def _keep(indexes: Sequence[int], outcomes: Sequence[object], results: list[Result | None]) -> list[int]:
    """The indexes whose step succeeded; the others get their exception as their result."""
    kept = []
    for index, outcome in zip(indexes, outcomes, strict=True):
        if isinstance(outcome, Exception):
            results[index] = outcome
        else:
            kept.append(index)
    return kept


def _log_failure(failed: Exception) -> None:
    if isinstance(failed, RenewalError):
        logger.warning("certificate left the batch", extra={"error": str(failed)})
    else:
        logger.exception("certificate left the batch unexpectedly")

"""The pipeline for one run: inventory -> order -> DNS challenge -> stores -> report.

Each item is decided and leased first; the due ones then go through the order and DNS challenge stages
together (batch.py: one DNS wait for the whole run), and each certificate is stored and recorded.
Each certificate's failure is caught here, once, written to its item, and the run goes on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.exceptions import OrphanedChildLoggerError

from acme_renewer import SERVICE
from acme_renewer.batch import BatchIssuer, Job, Orders
from acme_renewer.dns.challenge import ChallengeDns
from acme_renewer.errors import CaRetryLaterError, ItemValidationError, RenewalError
from acme_renewer.inventory.ari import RenewalInfoError, SuggestedWindow, check_due, failed_check, refreshed
from acme_renewer.inventory.batching import plan as plan_batches
from acme_renewer.inventory.policy import (
    ISSUANCE_FIELDS,
    REQUEST_FIELDS,
    Decision,
    FailurePolicy,
    fingerprint,
    held_back,
    renewal_decision,
    renewal_time,
)
from acme_renewer.inventory.table import (
    SCHEDULED,
    CertificateTable,
    ari_from_item,
    ari_to_item,
    iso,
    state_from_item,
    superseded_from_item,
)
from acme_renewer.inventory.validation import account_directory, check_against_lifetime, parse_item
from acme_renewer.models import (
    CertificateRequest,
    CertificateState,
    IssuedCertificate,
    Phase,
    PhaseObserver,
    Step,
    StoredCertificate,
    TxtRecord,
)
from acme_renewer.report.events import EventPublisher, outcome_event, replaced_events, stale_endpoint_event
from acme_renewer.report.fleet import FleetChecks
from acme_renewer.report.outcomes import Failure, Outcome, Published, Result, RunReport
from acme_renewer.report.quotas import acm_usage
from acme_renewer.settings import Settings
from acme_renewer.stores.acm import AcmStore, PartialImportError
from acme_renewer.stores.formats import from_document
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore

logger = Logger(service=SERVICE, child=True)


@contextmanager
def log_keys(*, thread_safe: bool = False, **keys: str) -> Iterator[None]:
    """Add keys to every log line of the service for the block; `thread_safe` keeps them to this thread
    (the batch's worker threads). Without a handler's parent logger (the CLI, tests) there is nothing to
    add them to, and the lines go out plain."""
    add, remove = (
        (logger.thread_safe_append_keys, logger.thread_safe_remove_keys)
        if thread_safe
        else (logger.append_keys, logger.remove_keys)
    )
    try:
        add(**keys)
    except OrphanedChildLoggerError:
        yield
        return
    try:
        yield
    finally:
        remove(list(keys))


class RenewalInfo(Protocol):
    """The CAs' suggested renewal windows; ari.RenewalInfoClient is the real one. Called from several threads."""

    def suggested_window(self, directory_url: str, cert_id: str) -> SuggestedWindow | None:
        """None: the CA offers no renewalInfo; RenewalInfoError: no answer this time."""


@dataclass
class _Planned:
    """A due certificate, leased by this run, waiting for the batch."""

    item: Mapping[str, Any]  # as the lease returned it
    request: CertificateRequest
    state: CertificateState
    request_fp: str
    reason: str
    # No order: the secret is written again from its current certificate (formats, replicas), ACM left alone.
    rerender: bool = False


@dataclass
class Renewer:
    settings: Settings
    table: CertificateTable
    # The order stage in steps (order/orders.py's AcmeOrders); batch.py drives them for all due certificates at once.
    orders: Orders[Any]
    # The run's DNS; each certificate's values are journaled on its item, so that a dead run's records
    # are swept by the next one.
    dns: ChallengeDns
    pending: PendingOrderStore
    secrets: SecretStore
    acm: AcmStore
    policy: FailurePolicy = field(default_factory=FailurePolicy)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Identifies this run in leases; unique per Renewer.
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Called after each certificate, for progress displays.
    on_outcome: Callable[[Outcome], None] | None = None
    # Called as the run reaches each phase (how many certificates, the DNS wait, the CA validating), for the same
    # displays; the DNS adapter reports its own phases to the observer runtime.build_renewer gives it.
    on_phase: PhaseObserver | None = None
    # Report stage: events for consumers, and the whole-table checks (drift, served certificates).
    events: EventPublisher | None = None
    fleet: FleetChecks | None = None
    # Seconds until the function's deadline (Lambda's context); None outside Lambda: no deadline.
    time_left: Callable[[], float] | None = None
    # The CAs' suggested renewal windows (ARI, inventory/ari.py); None: the local window alone decides.
    renewal_info: RenewalInfo | None = None

    def run(self, *, due_only: bool = False) -> RunReport:
        """A scheduled run. Full: every item is considered (new items the stream missed, drift, served
        certificates). Due only: just the items the `due` index lists, so the cost follows what is due."""
        if not due_only:
            report = self._process(self.table.items(), force=False, whole_table=True)
            self._retire_orphans(report.now)
        else:
            report = self._process(self.table.due(self.clock()), force=False)
            report.managed_certificates = self.table.approximate_count()
            report.soonest_not_after = self.table.soonest_expiry()
        report.items_read = self.table.items_read
        return report

    def plan(self) -> tuple[list[list[str]], RunReport]:
        """The planner of the fan-out: what the `due` index lists, cut into batches for the worker function
        (inventory/batching.py). Nothing is decided, leased or ordered here; the report has the fleet figures only."""
        now = self.clock()
        batches = plan_batches(self.table.due(now), self.settings, now)
        report = RunReport(now=now, managed_certificates=self.table.approximate_count())
        report.soonest_not_after = self.table.soonest_expiry()
        report.items_read = self.table.items_read
        return batches, report

    def renew(self, ids: Sequence[str], *, force: bool = False, missing_ok: bool = False) -> RunReport:
        """Just these items. `force` ignores the renewal window, the backoff and the pause, never the lease.
        An id with no item is a failure (the operator named it), or with `missing_ok` skipped: a queued batch's
        request deleted since it was planned (the stream retires it)."""
        items = []
        for item_id in ids:
            item = self.table.get(item_id)
            if item is None and missing_ok:
                with log_keys(certificate_id=item_id):
                    logger.info("no item any more; its request was deleted after the batch was planned")
                continue
            items.append(item if item is not None else {"id": item_id, "_missing": True})
        return self._process(items, force=force)

    def retire(self, item_id: str) -> bool:
        """The certificate's request was deleted: stop renewing it and stop counting its expiry (see
        CertificateTable.retire). Its ACM certificates and secret are left alone, and known as retired."""
        retired = self.table.retire(item_id, self.clock())
        if retired:
            with log_keys(certificate_id=item_id):
                logger.info("certificate retired: its request was deleted; its ACM certificates and secret stay")
        return retired

    def adopt_state(self, item_id: str, old_image: Mapping[str, Any]) -> None:
        """A request item from before status items was overwritten; keep the state its old image held."""
        if self.table.adopt_state(item_id, old_image):
            with log_keys(certificate_id=item_id):
                logger.info("kept the renewer's state of an overwritten item on its status item")

    def _retire_orphans(self, now: datetime) -> None:
        """Status items whose request is gone, found by the full scan: retire those the stream did not."""
        for orphan in self.table.orphans:
            if "retired_at" not in orphan and isinstance(orphan.get("status_of"), str):
                try:
                    self.retire(orphan["status_of"])
                except Exception:
                    logger.exception("could not retire a deleted certificate", extra={"id": orphan["status_of"]})

    def _process(self, items: Iterable[Mapping[str, Any]], *, force: bool, whole_table: bool = False) -> RunReport:
        report = RunReport(now=self.clock())
        processed: list[tuple[int, Mapping[str, Any], Outcome]] = []
        planned: list[tuple[int, Mapping[str, Any], _Planned]] = []
        with log_keys(run_id=self.owner):
            if self.renewal_info is not None and not force:
                items = self._ask_for_renewal_info(list(items), report.now)
            if self.on_phase is not None:
                items = list(items)
                self.on_phase(Phase(Step.CONSIDERED, certificates=len(items)))
            for index, item in enumerate(items):
                # Every log line of the pipeline below carries the certificate's id and the run's.
                with log_keys(certificate_id=str(item.get("id"))):
                    step = self._plan(item, report.now, force, already=len(planned))
                    if isinstance(step, Outcome):
                        self._done(step)
                        processed.append((index, item, step))
                    else:
                        planned.append((index, item, step))
            outcomes = self._renew_all([plan for _, _, plan in planned])
            processed += [(index, item, outcome) for (index, item, _), outcome in zip(planned, outcomes, strict=True)]
        # The report keeps the table's order, whatever order the certificates finished in.
        processed.sort(key=lambda entry: entry[0])
        report.outcomes = [outcome for _, _, outcome in processed]
        if whole_table and self.fleet is not None:
            checked = [(item, outcome) for _, item, outcome in processed]
            # Items are consumed by now, so the scan has listed the deleted certificates, whose ARNs are not drift.
            retired = [
                arn
                for orphan in self.table.orphans
                for arn in [
                    *(orphan.get("acm_arns") or {}).values(),
                    *(s.arn for s in superseded_from_item(orphan.get("superseded_arns"))),
                ]
            ]
            report.unmanaged_expiring, report.stale_endpoints, report.superseded_in_use = self.fleet.inspect(
                checked, self.clock(), known_arns=retired
            )
            report.acm_usage = acm_usage(checked, self.clock())
        if self.events is not None:
            events = [e for e in map(outcome_event, report.outcomes) if e is not None]
            events += [e for outcome in report.outcomes for e in replaced_events(outcome)]
            events += [stale_endpoint_event(s) for s in report.stale_endpoints or []]
            self.events.publish(events)
        return report

    def _ask_for_renewal_info(self, items: list[Mapping[str, Any]], now: datetime) -> list[Mapping[str, Any]]:
        """Ask the CAs for the suggested window (ARI) of every issued certificate whose last answer's Retry-After
        has passed, concurrently, and write each answer on its item; the items come back with their new `ari`."""
        wanted = [
            index
            for index, item in enumerate(items)
            if item.get("enabled") is not False
            and "not_after" in item
            and check_due(ari_from_item(item.get("ari")), now)
        ]
        if not wanted or self.renewal_info is None:
            return items
        source = self.renewal_info

        def ask(index: int) -> Mapping[str, Any]:
            item = items[index]
            state = ari_from_item(item.get("ari"))
            assert state is not None  # selected above
            with log_keys(thread_safe=True, run_id=self.owner, certificate_id=str(item.get("id"))):
                try:
                    try:
                        window = source.suggested_window(account_directory(item, self.settings), state.cert_id)
                        updated = refreshed(state, window, now)
                    except RenewalInfoError as failed:
                        logger.warning(
                            "could not read the CA's renewal information; the local window applies",
                            extra={"error": str(failed)},
                        )
                        updated = failed_check(state, now)
                    if updated.window_end is not None and updated.window_end <= now:
                        logger.warning(
                            "the CA suggests renewing now (ARI)", extra={"explanation_url": updated.explanation_url}
                        )
                    if self.table.record_ari(str(item.get("id")), updated, now):
                        return {**item, "ari": ari_to_item(updated)}
                except Exception:
                    logger.exception("could not record the CA's renewal information")
            return item

        refreshed_items = list(items)
        workers = max(1, min(self.settings.acme_workers, len(wanted)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ari") as pool:
            for index, item in zip(wanted, pool.map(ask, wanted), strict=True):
                refreshed_items[index] = item
        return refreshed_items

    def _done(self, outcome: Outcome) -> None:
        logger.info("certificate processed", extra={"result": outcome.result.value, "reason": outcome.reason})
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _plan(self, item: Mapping[str, Any], now: datetime, force: bool, already: int) -> Outcome | _Planned:
        """Decide one item; a due one is leased and returned for the batch, anything else is its outcome."""
        item_id = str(item.get("id"))
        if item.get("_missing"):
            return Outcome(item_id, Result.FAILED, f"no item with id {item_id!r} in the table")
        state = state_from_item(item)
        if state.pending_txt:
            self._sweep(item_id, state, now)
        enabled = item.get("enabled") is not False
        request_fp = self._fingerprint(item, REQUEST_FIELDS)
        try:
            request = self._parse(item, state)
        except ItemValidationError as invalid:
            held = held_back(state, request_fp, now, self.policy, item_id)
            if held is not None and not force:
                self._reschedule(item, held.next_due, now)
                return Outcome(item_id, _result_for(held), f"invalid item: {held.reason}", state.not_after, enabled)
            return self._fail(item_id, invalid, state, request_fp, now, enabled, owner=None, warnings=invalid.warnings)
        for warning in request.warnings:
            logger.warning(warning)
        if not request.enabled:
            self._reschedule(item, None, now, scheduled=False)
            return Outcome(request.id, Result.DISABLED, "enabled is false", state.not_after, enabled=False)
        decision = self._decide(item, request, state, request_fp, now, force)
        if not decision.due:
            self._reschedule(item, decision.next_due, now)
            return Outcome(request.id, _result_for(decision), decision.reason, state.not_after)

        deferral = None
        if already >= self.settings.batch_size:
            deferral = f"not started: this run already has {already} certificates (BATCH_SIZE)"
        elif self.time_left is not None and self.time_left() < self.settings.renewal_budget_seconds:
            deferral = f"not started: less than {self.settings.renewal_budget_seconds:.0f} s left in this run"
        if deferral is not None:
            if item.get("due_at") is None:
                self._reschedule(item, now, now)  # into the due index, where the next run (or planner) finds it
            return Outcome(request.id, Result.DEFERRED, deferral, state.not_after, due=True)
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        fresh = self.table.acquire_lease(request.id, self.owner, now, lease_until, request=item)
        if fresh is None:
            return Outcome(request.id, Result.LEASED, "another run holds the lease", state.not_after, due=True)
        # Decide again on the item as it is now: an overlapping run may have just renewed it.
        try:
            request = self._parse(fresh, state_from_item(fresh))
        except ItemValidationError as invalid:
            return self._fail(
                request.id, invalid, state, request_fp, now, enabled, owner=self.owner, warnings=invalid.warnings
            )
        state = state_from_item(fresh)
        request_fp = self._fingerprint(fresh, REQUEST_FIELDS)
        decision = self._decide(fresh, request, state, request_fp, now, force)
        if not decision.due:
            self.table.release_lease(request.id, self.owner)
            self._reschedule(fresh, decision.next_due, now)
            return Outcome(request.id, _result_for(decision), decision.reason, state.not_after)
        logger.info("renewing", extra={"reason": decision.reason})
        return _Planned(fresh, request, state, request_fp, decision.reason, decision.rerender)

    def _reschedule(
        self, item: Mapping[str, Any], due_at: datetime | None, now: datetime, *, scheduled: bool = True
    ) -> None:
        """Keep the item's place in the due and expiry indexes true, writing only when it changed."""
        wanted = (SCHEDULED if scheduled else None, iso(due_at) if scheduled and due_at is not None else None)
        if (item.get("schedule"), item.get("due_at")) == wanted:
            return
        try:
            if self.table.set_schedule(str(item.get("id")), due_at, scheduled=scheduled, now=now):
                logger.info("rescheduled", extra={"due_at": wanted[1], "scheduled": scheduled})
        except Exception:
            logger.exception("could not update the item's schedule")

    def _renew_all(self, planned: list[_Planned]) -> list[Outcome]:
        """Order, validate and store every planned certificate; one outcome each, in order."""
        if not planned:
            return []
        started = time.monotonic()
        outcomes: list[Outcome | None] = [None] * len(planned)
        try:
            issued: list[IssuedCertificate | Exception | None] = [None] * len(planned)
            for index, plan in enumerate(planned):
                with log_keys(certificate_id=plan.request.id):
                    try:
                        if plan.rerender:
                            issued[index] = self._current_certificate(plan)
                            # Without it, a new certificate is ordered, and goes to ACM as well.
                            plan.rerender = issued[index] is not None
                        else:
                            issued[index] = self._recover(plan.request, plan.state, plan.request_fp)
                    except Exception as unreadable:  # its pending key's secret (StoreError): this certificate only
                        issued[index] = unreadable
            fresh = [index for index, certificate in enumerate(issued) if certificate is None]
            issuer = BatchIssuer(
                self.orders,
                self.dns,
                workers=self.settings.acme_workers,
                scope=_certificate_scope(self.owner),
                on_phase=self.on_phase,
            )

            def conclude(index: int) -> None:
                plan = planned[index]
                with log_keys(thread_safe=True, run_id=self.owner, certificate_id=plan.request.id):
                    outcome = self._conclude(plan, issued[index], started)
                    outcomes[index] = outcome
                    self._done(outcome)

            # Storing is network-bound too (Secrets Manager, ACM, DynamoDB): as many at once as orders. Each
            # certificate is stored as soon as it is downloaded, while the batch's other orders finish.
            workers = max(1, min(self.settings.acme_workers, len(planned)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store") as pool:
                concluding = [pool.submit(conclude, i) for i in range(len(planned)) if issued[i] is not None]
                submitted: set[int] = set()

                def store_now(job: int, certificate: IssuedCertificate) -> None:
                    index = fresh[job]
                    issued[index] = certificate
                    submitted.add(index)
                    concluding.append(pool.submit(conclude, index))

                results = issuer.issue([self._job(planned[i]) for i in fresh], on_issued=store_now)
                for index, result in zip(fresh, results, strict=True):
                    if index not in submitted:
                        issued[index] = result
                        concluding.append(pool.submit(conclude, index))
                for future in concluding:
                    future.result()
        except KeyboardInterrupt:
            # Ctrl-C in the CLI: give the leases back rather than block other runs for their lifetime.
            for index, plan in enumerate(planned):
                if outcomes[index] is None:
                    self.table.release_lease(plan.request.id, self.owner)
            raise
        return [o for o in outcomes if o is not None]

    def _job(self, plan: _Planned) -> Job:
        request, request_fp = plan.request, plan.request_fp

        def checkpoint(order_url: str, key_pem: str) -> None:
            self.pending.save(request, order_url, key_pem)
            self.table.mark_pending_order(request.id, self.owner, order_url, request_fp)

        # ARI's `replaces` (RFC 9773 §5): the certificate this order renews, when its CA offers ARI.
        replaces = plan.state.ari.cert_id if plan.state.ari is not None else None
        return Job(request, _ItemJournal(self.table, request.id, self.owner), checkpoint, replaces)

    def _conclude(self, plan: _Planned, result: IssuedCertificate | Exception | None, started: float) -> Outcome:
        """Store an issued certificate and record the outcome; or record the failure."""
        request, state = plan.request, plan.state
        try:
            if not isinstance(result, IssuedCertificate):
                raise result or RenewalError("no certificate came out of the order")
            certificate, stored = self._store(plan, result)
        except Exception as error:
            enabled = plan.item.get("enabled") is not False
            failed = self._fail(
                request.id,
                error,
                state,
                plan.request_fp,
                self.clock(),
                enabled,
                owner=self.owner,
                warnings=request.warnings,
            )
            return replace(failed, due=True, domains=request.domains)
        published = Published(
            domains=certificate.domains,
            serial=certificate.serial,
            not_after=certificate.not_after,
            acm_arns=stored.acm_arns,
            secret_arn=stored.secret_arn,
            first_issuance=state.not_after is None,
            superseded=stored.superseded,
            replacements=stored.replacements,
            acm_account_arns=stored.acm_account_arns,
            acm_imports=stored.acm_imports,
        )
        return Outcome(
            request.id,
            Result.RENEWED,
            plan.reason,
            certificate.not_after,
            due=True,
            duration_seconds=time.monotonic() - started,
            propagation_seconds=certificate.propagation_seconds,
            published=published,
            domains=request.domains,
        )

    def _recover(
        self, request: CertificateRequest, state: CertificateState, request_fp: str
    ) -> IssuedCertificate | None:
        """No second order when the last run got the certificate issued but did not store it (crash, store error)."""
        if state.pending_order is None:
            return None
        order_url, fingerprint_then = state.pending_order
        if fingerprint_then != request_fp:
            return None  # the request changed since: that certificate is not the one wanted now
        key_pem = self.pending.load(request, order_url)
        if key_pem is None:
            return None
        try:
            return self.orders.recover(request, order_url, key_pem)
        except RenewalError as unusable:
            logger.info("pending order not usable; ordering anew", extra={"error": str(unusable)})
            return None

    def _current_certificate(self, plan: _Planned) -> IssuedCertificate | None:
        """The certificate the secret holds, to render it again in the request's formats; None (then it is ordered
        anew) when AWSCURRENT does not hold the certificate the item names."""
        document = self.secrets.current_document(plan.request)
        certificate = None if document is None else from_document(document)
        if certificate is None or certificate.serial != plan.item.get("serial"):
            logger.warning("the secret does not hold the item's certificate; ordering anew")
            return None
        # The certificate's ARI id stays the item's (the window is asked for again).
        return replace(certificate, ari_id=plan.state.ari.cert_id if plan.state.ari is not None else None)

    def _parse(self, item: Mapping[str, Any], state: CertificateState) -> CertificateRequest:
        """The item contract, plus what only the current certificate reveals (its lifetime)."""
        request = parse_item(item, self.settings)
        if state.not_before is not None and state.not_after is not None:
            problems = check_against_lifetime(request, state.not_before, state.not_after)
            if problems:
                raise ItemValidationError(problems)
        return request

    def _sweep(self, item_id: str, state: CertificateState, now: datetime) -> None:
        """Remove the challenge values a dead run left behind, under the lease so as not to race a live one."""
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        if self.table.acquire_lease(item_id, self.owner, now, lease_until) is None:
            return  # a live run holds it and will clean up after itself
        try:
            self.dns.remove(list(state.pending_txt))
            self.table.clear_txt_journal(item_id, self.owner)
            logger.warning(
                "removed challenge records left by an interrupted run", extra={"records": len(state.pending_txt)}
            )
        except Exception:
            logger.exception("could not remove challenge records left by an interrupted run")
        finally:
            self.table.release_lease(item_id, self.owner)

    def _decide(
        self,
        item: Mapping[str, Any],
        request: CertificateRequest,
        state: CertificateState,
        request_fp: str,
        now: datetime,
        force: bool,
    ) -> Decision:
        if force:
            return Decision(True, "renewal requested by the operator")
        decision = renewal_decision(
            request,
            state,
            now,
            request_fingerprint=request_fp,
            issuance_fingerprint=self._fingerprint(item, ISSUANCE_FIELDS),
            policy=self.policy,
        )
        if not decision.due and decision.held is None and "retired_at" in item:
            # Deleted, then added again: its secret may be scheduled for deletion and its ACM certificate in use
            # elsewhere; a new certificate into the same ARNs and secret makes every store whole again.
            return Decision(True, "added again after its request was deleted")
        if not decision.due and decision.held is None:
            # A format or a replica is not a new certificate: no order, the secret is written again (README, "formats").
            if request.formats != state.secret_formats:
                return Decision(True, "the secret's formats changed; rendering it again", rerender=True)
            if set(request.secret_regions) != set(state.secret_replicas):
                return Decision(True, "the secret's regions changed; replicating it again", rerender=True)
        return decision

    def _fingerprint(self, item: Mapping[str, Any], fields: tuple[str, ...]) -> str:
        return fingerprint(item, fields, account_directory(item, self.settings))

    def _store(self, plan: _Planned, certificate: IssuedCertificate) -> tuple[IssuedCertificate, StoredCertificate]:
        request = plan.request
        logger.info(
            "certificate issued",
            extra={
                "serial": certificate.serial,
                "not_after": certificate.not_after.isoformat(),
            },
        )
        secret_arn, version_id = self.secrets.put(request, certificate)
        warnings = list(request.warnings)
        if request.secret_regions or plan.state.secret_replicas:
            warnings += self.secrets.replicate(request)
        if plan.rerender:  # ACM already holds this very certificate
            stored = StoredCertificate(
                dict(plan.state.acm_arns),
                secret_arn,
                version_id,
                plan.state.superseded,
                acm_account_arns=plan.state.acm_account_arns,
                acm_imports=plan.state.acm_imports,
            )
        else:
            acm = self.acm.import_all(
                request,
                certificate,
                plan.state.acm_arns,
                plan.state.superseded,
                plan.state.acm_account_arns,
                history=plan.state.acm_imports,
            )
            stored = StoredCertificate(
                acm.arns, secret_arn, version_id, acm.superseded, acm.replacements, acm.account_arns, acm.imports
            )
        self.table.record_success(
            request.id,
            certificate,
            stored,
            self.clock(),  # the time of the result, not of the run's start
            fingerprints=(self._fingerprint(plan.item, ISSUANCE_FIELDS), plan.request_fp),
            owner=self.owner,
            due_at=renewal_time(request, certificate.not_before, certificate.not_after)[0],
            warnings=warnings,
            secret_formats=request.formats,
            secret_replicas=request.secret_regions,
        )
        try:
            known_gone = plan.state.legacy_pending_gone
            if self.pending.clear(request, legacy_gone=known_gone) and not known_gone:
                self.table.mark_legacy_pending_gone(request.id)  # once: later renewals send no DeleteSecret
        except Exception:
            # The certificate is stored and recorded; a pending label left over is replaced by the next order's.
            logger.exception("could not clear the stored order's pending version")
        return certificate, stored

    def _fail(
        self,
        item_id: str,
        error: Exception,
        state: CertificateState,
        request_fp: str,
        now: datetime,
        enabled: bool,
        owner: str | None,
        warnings: Sequence[str] = (),
    ) -> Outcome:
        if isinstance(error, RenewalError):
            message = str(error)
            logger.error("renewal failed", extra={"error": message})
        else:
            message = f"unexpected {type(error).__name__}: {error}"
            logger.exception("renewal failed unexpectedly")
        # Failures count per request: an edited item starts again from one.
        count = state.failure_count + 1 if state.attempt_fingerprint == request_fp else 1
        retry_after = error.retry_after if isinstance(error, CaRetryLaterError) else None
        next_attempt = self.policy.next_attempt(count, now, retry_after)
        paused = count >= self.policy.max_consecutive_failures
        arns = {**state.acm_arns, **error.imported} if isinstance(error, PartialImportError) else None
        superseded = error.superseded if isinstance(error, PartialImportError) else ()
        account_arns = (
            {
                account: {**state.acm_account_arns.get(account, {}), **error.imported_accounts.get(account, {})}
                for account in {*state.acm_account_arns, *error.imported_accounts}
            }
            if isinstance(error, PartialImportError)
            else None
        )
        try:
            self.table.record_failure(
                item_id,
                message,
                now,
                attempt_fingerprint=request_fp,
                failure_count=count,
                next_attempt_at=next_attempt,
                owner=owner,
                due_at=None if paused else next_attempt,
                acm_arns=arns,
                warnings=warnings,
                superseded=superseded,
                acm_account_arns=account_arns,
                acm_imports=error.imports if isinstance(error, PartialImportError) else None,
            )
        except Exception:
            logger.exception("could not record the failure on the item")
        return Outcome(
            item_id, Result.FAILED, message, state.not_after, enabled=enabled, failure=Failure(count, next_attempt)
        )


@dataclass
class _ItemJournal:
    table: CertificateTable
    item_id: str
    owner: str

    def write(self, records: list[TxtRecord]) -> None:
        self.table.journal_txt(self.item_id, self.owner, records)

    def clear(self) -> None:
        self.table.clear_txt_journal(self.item_id, self.owner)


def _result_for(decision: Decision) -> Result:
    return {"backoff": Result.BACKING_OFF, "paused": Result.PAUSED}.get(decision.held or "", Result.NOT_DUE)


def _certificate_scope(run_id: str) -> Callable[[Job], AbstractContextManager[None]]:
    """Log keys for a batch worker thread: the certificate it is working on, and the run."""

    def scope(job: Job) -> AbstractContextManager[None]:
        return log_keys(thread_safe=True, run_id=run_id, certificate_id=job.request.id)

    return scope

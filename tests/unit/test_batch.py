"""The batch engine: many orders, one publish and one removal, failures kept to their own certificate."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from acme_renewer.batch import BatchIssuer, Job
from acme_renewer.errors import AcmeOrderError, DnsPublishError
from acme_renewer.models import CertificateRequest, IssuedCertificate, KeyType, TxtRecord
from acme_renewer.order.orders import AcmeOrders
from tests.unit.fakes import FakeCa, FakeDns, FakeOrder


def request(item_id: str, *names: str) -> CertificateRequest:
    domains = names or (f"{item_id}.example.com", f"*.{item_id}.example.com")
    return CertificateRequest(
        id=item_id,
        domains=tuple(domains),
        key_type=KeyType.EC_P256,
        acm_regions=("eu-west-1",),
        secret_name=f"acme-renewer/certificates/{item_id}",
        renew_before_days=None,
        enabled=True,
    )


class Journal:
    def __init__(self, fail: bool = False) -> None:
        self.written: list[TxtRecord] = []
        self.cleared = False
        self.fail = fail

    def write(self, records: list[TxtRecord]) -> None:
        if self.fail:
            raise RuntimeError("lease lost")
        self.written = list(records)

    def clear(self) -> None:
        self.cleared = True


def jobs(*ids: str) -> list[Job]:
    return [Job(request(i), Journal()) for i in ids]


def test_every_certificate_shares_one_publish_and_one_removal() -> None:
    dns = FakeDns()
    ca = FakeCa(dns=dns)
    batch = jobs(*(f"site{i}" for i in range(12)))
    results = BatchIssuer(ca, dns, workers=4).issue(batch)
    assert all(isinstance(r, IssuedCertificate) for r in results)
    assert [r.domains for r in results if isinstance(r, IssuedCertificate)] == [j.request.domains for j in batch]
    assert dns.publishes == 1
    assert dns.records == {}
    for job in batch:
        assert isinstance(job.journal, Journal)
        assert job.journal.written and job.journal.cleared
    assert all(isinstance(r, IssuedCertificate) and r.propagation_seconds is not None for r in results)


def test_a_failed_validation_fails_only_its_certificate() -> None:
    dns = FakeDns()
    ca = FakeCa(dns=dns, fail_for=frozenset({"bad"}))
    results = BatchIssuer(ca, dns).issue(jobs("good", "bad", "fine"))
    assert isinstance(results[0], IssuedCertificate) and isinstance(results[2], IssuedCertificate)
    assert isinstance(results[1], AcmeOrderError)
    assert dns.records == {}


class RefusingCa(FakeCa):
    """newOrder fails for some ids."""

    def __init__(self, refuse: set[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refuse = refuse

    def begin(self, request: CertificateRequest, replaces: str | None = None) -> FakeOrder:
        if request.id in self.refuse:
            raise AcmeOrderError("the CA refused the request (newOrder): rejectedIdentifier")
        return super().begin(request, replaces)


def test_a_refused_order_publishes_nothing_for_it() -> None:
    dns = FakeDns()
    published: list[TxtRecord] = []
    original = dns.publish
    dns.publish = lambda records: (published.extend(records), original(records))[-1]  # type: ignore[method-assign]
    ca = RefusingCa({"refused"}, dns=dns)
    batch = jobs("ok", "refused")
    results = BatchIssuer(ca, dns).issue(batch)
    assert isinstance(results[0], IssuedCertificate)
    assert isinstance(results[1], AcmeOrderError)
    assert {r.name for r in published} == {"_acme-challenge.ok.example.com"}
    assert isinstance(batch[1].journal, Journal) and batch[1].journal.written == []


def test_a_lost_journal_write_keeps_that_certificate_out() -> None:
    dns = FakeDns()
    ca = FakeCa(dns=dns)
    batch = [Job(request("ours"), Journal()), Job(request("stolen"), Journal(fail=True))]
    results = BatchIssuer(ca, dns).issue(batch)
    assert isinstance(results[0], IssuedCertificate)
    assert isinstance(results[1], RuntimeError)
    assert ca.orders == ["ours", "stolen"]  # ordered, but never published nor validated


class PartlyPublishingDns(FakeDns):
    """Publishes everything except the names under one domain, as Route53Dns does for a zone it lacks."""

    def __init__(self, broken_suffix: str) -> None:
        super().__init__()
        self.broken_suffix = broken_suffix

    def publish(self, records: list[TxtRecord]) -> None:
        broken = frozenset(r.name for r in records if r.name.endswith(self.broken_suffix))
        super().publish([r for r in records if r.name not in broken])
        if broken:
            raise DnsPublishError(f"no zone for {sorted(broken)}", broken)


def test_a_partly_failed_publish_fails_only_the_certificates_needing_it() -> None:
    dns = PartlyPublishingDns(".orphan.test")
    ca = FakeCa(dns=dns)
    batch = [Job(request("a"), Journal()), Job(request("b", "b.orphan.test", "ok.b.example.com"), Journal())]
    results = BatchIssuer(ca, dns).issue(batch)
    assert isinstance(results[0], IssuedCertificate)
    assert isinstance(results[1], DnsPublishError)
    assert dns.records == {}  # what went out came back down


def test_a_failed_publish_fails_the_batch_and_still_cleans_up() -> None:
    class DownDns(FakeDns):
        def publish(self, records: list[TxtRecord]) -> None:
            super().publish(records[:1])  # part of it went out before the failure
            raise RuntimeError("Route53 unavailable")

    dns = DownDns()
    results = BatchIssuer(FakeCa(dns=dns), dns).issue(jobs("a", "b"))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert dns.records == {}


def test_a_failed_cleanup_keeps_the_certificates_and_the_journals() -> None:
    dns = FakeDns()
    ca = FakeCa(dns=dns)

    def remove(records: list[TxtRecord]) -> None:
        raise RuntimeError("Route53 throttled")

    dns.remove = remove  # type: ignore[method-assign]
    batch = jobs("a")
    results = BatchIssuer(ca, dns).issue(batch)
    assert isinstance(results[0], IssuedCertificate)
    assert isinstance(batch[0].journal, Journal) and not batch[0].journal.cleared  # the next run sweeps


def test_orders_are_answered_concurrently() -> None:
    """Every answer waits at a barrier sized to the worker count: this only finishes if they overlap."""
    workers = 4
    barrier = threading.Barrier(workers, timeout=10)
    dns = FakeDns()

    class SlowCa(FakeCa):
        def answer(self, opened: FakeOrder) -> None:
            barrier.wait()
            super().answer(opened)

    results = BatchIssuer(SlowCa(dns=dns), dns, workers=workers).issue(jobs(*"abcd"))
    assert all(isinstance(r, IssuedCertificate) for r in results)


def test_an_interrupt_still_removes_the_records() -> None:
    dns = FakeDns()
    ca = FakeCa(dns=dns, fail_for=frozenset({"b"}), error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        BatchIssuer(ca, dns).issue(jobs("a", "b"))
    assert dns.records == {}


def test_each_acme_session_serves_one_thread_at_a_time() -> None:
    """AcmeOrders lends a session to one thread at a time, opening more only when all are busy."""
    in_use: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=10)

    class Session:
        pass

    def use(session: Any) -> None:
        with lock:
            if id(session) in in_use:
                overlaps.append(id(session))
            in_use.add(id(session))
        barrier.wait()
        with lock:
            in_use.discard(id(session))

    opened: list[Session] = []

    def open_session() -> Any:
        opened.append(Session())
        return opened[-1]

    orders = AcmeOrders(open_session, timeout_seconds=1)
    threads = []
    for _ in range(3):
        threads.append(threading.Thread(target=lambda: _with_session(orders, use)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert overlaps == []
    assert len(opened) == 3
    _with_session(orders, lambda session: None)
    assert len(opened) == 3  # a free session is reused


def _with_session(orders: AcmeOrders, use: Callable[[Any], None]) -> None:
    with orders._session() as session:
        use(session)


def test_a_ca_that_cannot_be_reached_fails_every_step_at_once() -> None:
    attempts: list[int] = []

    def open_session() -> Any:
        attempts.append(1)
        raise AcmeOrderError("the CA is down")

    orders = AcmeOrders(open_session, timeout_seconds=1)
    for item_id in ("a", "b", "c"):
        with pytest.raises(AcmeOrderError, match="the CA is down"):
            orders.begin(request(item_id))
    assert len(attempts) == 1


def test_every_order_is_answered_before_any_is_polled() -> None:
    """The CA validates while the other answers go out, so the polls mostly find valid authorizations."""
    steps: list[str] = []
    lock = threading.Lock()
    dns = FakeDns()

    class RecordingCa(FakeCa):
        def answer(self, opened: FakeOrder) -> None:
            with lock:
                steps.append("answer")
            super().answer(opened)

        def validate(self, opened: FakeOrder) -> None:
            with lock:
                steps.append("validate")
            super().validate(opened)

    results = BatchIssuer(RecordingCa(dns=dns), dns, workers=3).issue(jobs(*"abcdef"))
    assert all(isinstance(r, IssuedCertificate) for r in results)
    assert steps == ["answer"] * 6 + ["validate"] * 6


def test_each_order_gets_the_replaces_of_its_job() -> None:
    """Job.replaces (the ARI id of the certificate being renewed) reaches newOrder; see order.begin."""
    dns = FakeDns()
    ca = FakeCa(dns=dns)
    batch = [Job(request("renewal"), Journal(), replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"), *jobs("first")]
    results = BatchIssuer(ca, dns).issue(batch)
    assert all(isinstance(result, IssuedCertificate) for result in results), results
    assert ca.replaces == {"renewal": "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", "first": None}


def test_a_certificate_is_handed_on_while_the_batch_still_finishes_others() -> None:
    """The slow order's finish waits until the fast one was handed to on_issued: this only ends if the hand-over
    comes before the batch is done, not after."""
    handed = threading.Event()
    dns = FakeDns()
    seen: list[tuple[int, str]] = []

    class OneSlowCa(FakeCa):
        def finish(self, opened: FakeOrder, checkpoint: Callable[[str, str], None] | None = None) -> IssuedCertificate:
            if opened.request.id == "slow":
                assert handed.wait(timeout=10), "the fast certificate was not handed on before the batch ended"
            return super().finish(opened, checkpoint)

    def on_issued(index: int, certificate: IssuedCertificate) -> None:
        seen.append((index, certificate.domains[0]))
        handed.set()

    results = BatchIssuer(OneSlowCa(dns=dns), dns, workers=2).issue(jobs("slow", "fast"), on_issued=on_issued)
    assert all(isinstance(r, IssuedCertificate) for r in results)
    assert seen == [(1, "fast.example.com"), (0, "slow.example.com")]
    assert all(isinstance(r, IssuedCertificate) and r.propagation_seconds is not None for r in results)


def test_a_failed_order_is_not_handed_on() -> None:
    dns = FakeDns()
    seen: list[int] = []
    results = BatchIssuer(FakeCa(dns=dns, fail_for=frozenset({"bad"})), dns).issue(
        jobs("good", "bad"), on_issued=lambda index, _: seen.append(index)
    )
    assert isinstance(results[1], AcmeOrderError)
    assert seen == [0]

"""Hand-on: a run that deferred due certificates invokes a new run, within limits, and never loses them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from acme_renewer.report.handoff import HANDOFF, MAX_GENERATIONS, Continuation
from acme_renewer.report.outcomes import Outcome, Result, RunReport


def report(*results: Result) -> RunReport:
    return RunReport(now=datetime.now(UTC), outcomes=[Outcome(f"c{i}", r, "") for i, r in enumerate(results)])


class Invoker:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, payload: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("Lambda refused the invocation")
        self.sent.append(payload)


def test_deferred_certificates_are_handed_on_to_a_due_only_run() -> None:
    invoker = Invoker()
    sent = Continuation(invoker).after({"source": "schedule", "scan": "due"}, report(Result.RENEWED, Result.DEFERRED))
    assert sent == {"source": HANDOFF, "scan": "due", "generation": 1}
    assert invoker.sent == [sent]
    again = Continuation(invoker).after(sent, report(Result.FAILED, Result.DEFERRED))
    assert again is not None and again["generation"] == 2


def test_nothing_deferred_hands_nothing_on() -> None:
    invoker = Invoker()
    assert Continuation(invoker).after({}, report(Result.RENEWED, Result.NOT_DUE)) is None
    assert invoker.sent == []


def test_a_run_without_progress_does_not_hand_on() -> None:
    invoker = Invoker()
    assert Continuation(invoker).after({}, report(Result.DEFERRED, Result.LEASED)) is None
    assert invoker.sent == []


def test_a_chain_of_hand_ons_is_bounded() -> None:
    invoker = Invoker()
    continuation = Continuation(invoker, max_generations=3)
    event: dict[str, Any] = {"source": "schedule"}
    generations = []
    while (sent := continuation.after(event, report(Result.RENEWED, Result.DEFERRED))) is not None:
        generations.append(sent["generation"])
        event = sent
    assert generations == [1, 2, 3]


def test_a_generation_in_a_foreign_event_is_ignored() -> None:
    sent = Continuation(Invoker()).after(
        {"source": "schedule", "generation": 99}, report(Result.RENEWED, Result.DEFERRED)
    )
    assert sent is not None and sent["generation"] == 1


def test_a_failed_invocation_leaves_them_to_the_next_scheduled_run() -> None:
    assert Continuation(Invoker(fail=True)).after({}, report(Result.RENEWED, Result.DEFERRED)) is None


def test_a_chain_stops_by_default_after_twelve_hand_ons() -> None:
    """Thirteen runs in all, clear of Lambda's recursive loop detection, which drops the event of a chain of about
    16 invocations (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html): the last word is ours,
    logged, and what is left waits in the `due` index for the next scheduled run."""
    invoker = Invoker()
    continuation = Continuation(invoker)
    event: dict[str, Any] = {"source": "schedule", "scan": "due"}
    while (sent := continuation.after(event, report(Result.RENEWED, Result.DEFERRED))) is not None:
        event = sent
    assert [payload["generation"] for payload in invoker.sent] == list(range(1, MAX_GENERATIONS + 1))
    assert MAX_GENERATIONS == 12

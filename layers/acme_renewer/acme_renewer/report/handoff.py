"""Report stage, beyond one invocation: when a run leaves due certificates for lack of room, it hands them on.

A Lambda run stops at 15 minutes, and one run renews at most MAX_CERTIFICATES_PER_RUN certificates
together. The certificates a run did not start are DEFERRED: they keep their place in the `due` index, so
nothing is dropped even if the hand-on fails (the next scheduled run reads them). To finish sooner, the
run invokes its own function again, asynchronously, for a due-only run. Nothing is done twice: each
certificate is leased before anything is ordered. A chain of hand-ons stops after `max_generations`, and
when a run made no progress at all (then another run would not either).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.report.outcomes import Result, RunReport

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

logger = Logger(service=SERVICE, child=True)

HANDOFF = "handoff"
# Lambda's recursive loop detection stops a chain of invocations of one request chain after about 16 and drops
# the event (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html); the Lambda Invoke API is one
# of the links it follows. A chain is the scheduled run and its hand-ons: at most MAX_GENERATIONS + 1 runs, kept
# clear of 16, so that the last hand-on is ours to refuse (and to log) rather than Lambda's to drop.
MAX_GENERATIONS = 12


@dataclass
class Continuation:
    # Sends the event to a new, asynchronous invocation of this function.
    invoke: Callable[[dict[str, Any]], None]
    max_generations: int = MAX_GENERATIONS

    def after(self, event: Mapping[str, Any], report: RunReport) -> dict[str, Any] | None:
        """Hand on what this run deferred; returns the event sent, or None when nothing was sent."""
        deferred = report.count(Result.DEFERRED)
        if not deferred:
            return None
        generation = _generation(event)
        progress = report.count(Result.RENEWED) + report.count(Result.FAILED)
        if generation >= self.max_generations:
            logger.warning(
                "deferred certificates left to the next scheduled run: too many hand-ons in a row",
                extra={"deferred": deferred, "generation": generation},
            )
            return None
        if not progress:
            logger.warning(
                "deferred certificates left to the next scheduled run: this run renewed nothing",
                extra={"deferred": deferred},
            )
            return None
        payload = {"source": HANDOFF, "scan": "due", "generation": generation + 1}
        try:
            self.invoke(payload)
        except Exception:
            logger.exception("could not hand on; the next scheduled run takes the deferred certificates")
            return None
        logger.info("handed on to a new run", extra={"deferred": deferred, "generation": generation + 1})
        return payload


def _generation(event: Mapping[str, Any]) -> int:
    raw = event.get("generation", 0) if event.get("source") == HANDOFF else 0
    return raw if isinstance(raw, int) and raw >= 0 else 0


def lambda_invoker(client: LambdaClient, function_arn: str) -> Callable[[dict[str, Any]], None]:
    """An asynchronous invocation of the function (InvocationType Event: Lambda queues it and retries)."""

    def invoke(payload: dict[str, Any]) -> None:
        client.invoke(FunctionName=function_arn, InvocationType="Event", Payload=json.dumps(payload).encode())

    return invoke

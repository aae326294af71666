"""Scheduled renewal handler: the planner of the fan-out, and the daily run over the whole table.

The event's `scan` says what the run reads: "due" (the `due` index: the regular schedule) or "full" (every
item: the daily run, and the default for an invocation by hand). With RENEWAL_QUEUE_URL (the deployed stack),
what is due goes to the queue in batches for the worker function: all of it for "due"; for "full", what the
whole-table run did not renew in place (at most BATCH_SIZE certificates, as one batch). Without it, the run
renews what is due in process, at most BATCH_SIZE; the rest waits in the `due` index for the next run.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from acme_renewer import SERVICE
from acme_renewer.settings import Settings

# The defaults match template.yaml, so a local run logs and measures like the deployed function.
logger = Logger(service=SERVICE)
# X-Ray's patching imports botocore, and the runtime imports boto3 and acme: both wait for the first
# invocation, which keeps the module's import (the cold start before the first event) light.
tracer = Tracer(service=SERVICE, auto_patch=False)
TRACED_MODULES = ("botocore", "requests")
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AcmeRenewer"))


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tracer.patch(TRACED_MODULES)  # once per container: X-Ray skips what it has patched
    from acme_renewer.runtime import build_queue, build_renewer

    # Settings are read per invocation so that a local run can change the environment between calls.
    scan = event.get("scan", "full")
    if scan not in ("due", "full"):
        raise ValueError(f'the event\'s "scan" must be "due" or "full", got {scan!r}')
    settings = Settings.from_env()
    renewer = build_renewer(settings, time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    queue = build_queue(settings)
    if queue is None:
        report = renewer.run(due_only=scan == "due")
        report.emit(metrics)
        return report.as_dict() | {"scan": scan}
    # The full run renews in place at most BATCH_SIZE (one batch); what it deferred is in the `due` index by now.
    whole_table = renewer.run(due_only=False) if scan == "full" else None
    batches, planned = renewer.plan()
    report = whole_table or planned
    queued = queue.send(batches, scan)
    report.emit(metrics)
    metrics.add_metric(name="CertificatesQueued", unit=MetricUnit.Count, value=queued.certificates)
    return report.as_dict() | {
        "scan": scan,
        "queued": {"messages": queued.messages, "certificates": queued.certificates, "refused": queued.failed_messages},
    }

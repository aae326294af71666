"""Scheduled renewal handler: run the renewal pipeline once over the certificates table and report.

The event's `scan` says what the run reads: "due" (the `due` index: the regular schedule, and hand-ons)
or "full" (every item: the daily run, and the default for an invocation by hand).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
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
    from acme_renewer.runtime import build_continuation, build_renewer

    # Settings are read per invocation so that a local run can change the environment between calls.
    scan = event.get("scan", "full")
    if scan not in ("due", "full"):
        raise ValueError(f'the event\'s "scan" must be "due" or "full", got {scan!r}')
    settings = Settings.from_env()
    renewer = build_renewer(settings, time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    report = renewer.run(due_only=scan == "due")
    report.emit(metrics)
    handed_on = build_continuation(settings, context.invoked_function_arn).after(event, report)
    return report.as_dict() | {"scan": scan, "handed_on": handed_on}

"""Worker handler: renew one queued batch (the planner's SQS message: item ids) as one run of the pipeline.

The event source mapping delivers one message per invocation (BatchSize 1). A renewal failure is written to the
item and is not a message failure. Only an exception is: the message then comes back after the queue's
visibility timeout (partial batch response), and goes to the dead-letter queue after maxReceiveCount. A
certificate the run had no time left for is DEFERRED: it stays in the `due` index, unleased, and the next
planner run queues it again; its message succeeds, so it is never counted as a failure.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from acme_renewer import SERVICE
from acme_renewer.report.outcomes import RunReport
from acme_renewer.settings import Settings

logger = Logger(service=SERVICE)
# X-Ray's patching imports botocore, and the runtime imports boto3 and acme: both wait for the first
# invocation, which keeps the module's import (the cold start before the first event) light.
tracer = Tracer(service=SERVICE, auto_patch=False)
TRACED_MODULES = ("botocore", "requests")
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AcmeRenewer"))
# A message whose run raised is reported failed (partial batch response) rather than failing the invocation: with
# BatchSize 1 every failure is a whole batch's, and Powertools would otherwise raise BatchProcessingError for it.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tracer.patch(TRACED_MODULES)  # once per container: X-Ray skips what it has patched
    from acme_renewer.inventory.batching import ids_of
    from acme_renewer.runtime import build_renewer

    renewer = build_renewer(Settings.from_env(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    report = RunReport(now=renewer.clock())

    def record_handler(record: SQSRecord) -> None:
        nonlocal report
        ids = ids_of(record.body)
        logger.info(
            "renewing a queued batch",
            extra={"message_id": record.message_id, "certificates": len(ids), "receive_count": _receives(record)},
        )
        report = report.merge(renewer.renew(ids, missing_ok=True))

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Only the counts: the fleet figures (managed, smallest days-to-expiry) are the planner's.
    report.emit(metrics, whole_table=False)
    return dict(response)


def _receives(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (TypeError, ValueError):
        return 0

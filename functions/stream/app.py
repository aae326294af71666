"""Stream handler: issue at once when a request is inserted or its fields change; retire it when it is deleted."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from acme_renewer import SERVICE
from acme_renewer.inventory.policy import request_changed
from acme_renewer.report.outcomes import RunReport
from acme_renewer.settings import Settings

logger = Logger(service=SERVICE)
# X-Ray's patching imports botocore, and the runtime imports boto3 and acme: both wait for the first
# invocation, which keeps the module's import (the cold start before the first event) light.
tracer = Tracer(service=SERVICE, auto_patch=False)
TRACED_MODULES = ("botocore", "requests")
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "AcmeRenewer"))
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tracer.patch(TRACED_MODULES)  # once per container: X-Ray skips what it has patched
    from acme_renewer.inventory.table import is_status
    from acme_renewer.runtime import build_renewer

    renewer = build_renewer(Settings.from_env(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    report = RunReport(now=renewer.clock())

    def record_handler(record: DynamoDBRecord) -> None:
        """A renewal failure is written to the item and is not a batch failure; only an exception is.

        The template's filter lets through every write to a request item, and none to a status item."""
        nonlocal report
        stream = record.dynamodb
        old, new = (stream.old_image, stream.new_image) if stream else (None, None)
        item_id = str((new or old or {}).get("id"))
        if is_status(new or old or {}):  # the filter drops these; a record delivered anyway orders nothing
            logger.info("a status item's record; nothing to do", extra={"event_id": record.event_id})
            return
        if not new:  # REMOVE (Powertools gives an empty image for it)
            renewer.retire(item_id)  # deleted on purpose: no renewal, no expiry page; ACM and the secret stay
            return
        if old:
            renewer.adopt_state(item_id, old)  # an item from before status items, overwritten: keep its state
        if not request_changed(old, new):
            logger.info("no request field changed; nothing to do", extra={"event_id": record.event_id})
            return
        report = report.merge(renewer.renew([item_id]))

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Only the counts: the smallest days-to-expiry is a property of the whole table, left to the schedule.
    report.emit(metrics, whole_table=False)
    return dict(response)

"""One worker process of the mass-renewal benchmark: what Lambda's SQS event source mapping does for one
concurrent worker, in a loop: `python -m bench.queue_worker --queue-url URL --out F`.

Receive one message, build the event the mapping builds (BatchSize 1), call the worker handler (loaded once, as a
warm Lambda container keeps it), delete the message unless the response lists it as failed. A failed message is made
visible again at once (Lambda would wait for the visibility timeout) and dropped after MAX_RECEIVES receives, as the
queue's redrive policy sends it to the dead-letter queue. The process ends when the queue holds nothing, visible or
in flight. The environment (stack endpoints, TABLE_NAME, WORKER_CONCURRENCY, ...) comes from the parent.
Writes {"messages", "failed", "dead_lettered", "seconds_per_message", "peak_rss_mb", "package"} as JSON to F.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

# The template's Lambda timeout and the queue's maxReceiveCount.
LAMBDA_TIMEOUT_SECONDS = 900.0
MAX_RECEIVES = 3
# How long one ReceiveMessage waits for a message (long polling, as the mapping polls).
WAIT_SECONDS = 1


def queue_is_empty(sqs: Any, url: str) -> bool:
    names = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return all(int(attributes.get(name, "0")) == 0 for name in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args()

    import boto3

    import acme_renewer
    from tests.stack.handler import FakeLambdaContext, load_function, sqs_event

    worker = load_function("worker")
    sqs = boto3.client("sqs")
    region = sqs.meta.region_name
    queue_arn = sqs.get_queue_attributes(QueueUrl=args.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    seconds: list[float] = []
    failed = dead_lettered = 0
    while True:
        received = sqs.receive_message(
            QueueUrl=args.queue_url,
            MaxNumberOfMessages=1,
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=WAIT_SECONDS,
        ).get("Messages", [])
        if not received:
            if queue_is_empty(sqs, args.queue_url):
                break
            continue
        (message,) = received
        started = time.monotonic()
        context = FakeLambdaContext(timeout_seconds=LAMBDA_TIMEOUT_SECONDS)
        response = worker.lambda_handler(sqs_event(message, queue_arn, region), context)
        seconds.append(time.monotonic() - started)
        if message["MessageId"] not in {f["itemIdentifier"] for f in response["batchItemFailures"]}:
            sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
            continue
        failed += 1
        if int(message["Attributes"].get("ApproximateReceiveCount", "1")) >= MAX_RECEIVES:
            dead_lettered += 1
            sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
        else:
            sqs.change_message_visibility(
                QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "messages": len(seconds),
        "failed": failed,
        "dead_lettered": dead_lettered,
        "seconds_per_message": seconds,
        "peak_rss_mb": peak_kib / 1024,
        "package": str(Path(acme_renewer.__file__).parent),
    }
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

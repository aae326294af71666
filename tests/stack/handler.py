"""Run a Lambda handler from functions/ in this process, as Lambda would call it."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from acme_renewer import SERVICE
from tests.stack.table import REPO_ROOT

EVENTS = REPO_ROOT / "events"


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context, with a deadline like the real one."""

    function_name: str = "acme-renewer-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_seconds - (time.monotonic() - self._started)) * 1000)


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name (every handler file is called app.py)."""
    path = REPO_ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{name}_app", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    follow_stdout()
    return module


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def invoke(function: str, event_file: str) -> Any:
    return invoke_with(function, event(event_file))


def invoke_with(function: str, payload: dict[str, Any], context: FakeLambdaContext | None = None) -> Any:
    return load_function(function).lambda_handler(payload, context or FakeLambdaContext())


class _CurrentStdout:
    """Whatever sys.stdout is when a line is written."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def follow_stdout() -> None:
    """Point the service's log handlers at stdout as it is at each write.

    Powertools configures the service's logger once per process and keeps the stream of that moment. A Lambda
    process has one stdout for its life; pytest and the demo swap sys.stdout, so the handlers follow it.
    """
    for handler in logging.getLogger(SERVICE).handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, _CurrentStdout):
            handler.setStream(_CurrentStdout())


def emf_documents(output: str) -> list[dict[str, Any]]:
    """The EMF JSON documents in captured stdout (Powertools Metrics prints one per flush)."""
    documents = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def emitted_metrics(output: str) -> dict[str, list[Any]]:
    """Metric name -> list of values, over all EMF documents in the output (EMF may hold one or an array)."""
    values: dict[str, list[Any]] = {}
    for document in emf_documents(output):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def sqs_event(message: Any, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping gives a function for one received message (BatchSize 1)."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    return {"Records": [record]}

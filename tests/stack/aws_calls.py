"""Server-side call counters for the local stack: which AWS operation an HTTP request to moto is, and how many
DynamoDB items its answer hands back. Counted in front of moto, so calls from every process are seen."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qs

from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader
from botocore.model import ServiceModel

# SigV4: `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/route53/aws4_request, ...`
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class AwsCall:
    """One API call: the service by its signing name (`route53`, `dynamodb`, `acm`, ...) and the operation."""

    service: str
    operation: str
    # Path parameters of a REST operation, e.g. {"Id": "Z1"} for GetHostedZone.
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)


def identify(environ: Mapping[str, Any], body: bytes) -> AwsCall | None:
    """The AWS call a WSGI request to moto makes; None for requests that are not signed AWS calls (moto's own API).

    JSON protocols name the operation in X-Amz-Target, query protocols in Action; REST protocols only by method
    and path, which botocore's service model maps back to the operation.
    """
    service = _signing_service(environ)
    if service is None:
        return None
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        # DynamoDB Streams signs as `dynamodb`; keep its reads apart from the table's.
        service = "dynamodbstreams" if target.startswith("DynamoDBStreams") else service
        return AwsCall(service, target.rpartition(".")[2])
    if action := _action(environ, body):
        return AwsCall(service, action)
    method, path = str(environ.get("REQUEST_METHOD", "GET")), str(environ.get("PATH_INFO", "/"))
    matched = _rest_operations(service).match(method, path, _query(str(environ.get("QUERY_STRING", ""))))
    return matched or AwsCall(service, f"{method} {path}")


def dynamodb_items_read(body: bytes) -> int:
    """Items a successful DynamoDB answer hands to the client: Scan/Query `Items`, BatchGetItem and
    TransactGetItems `Responses`, GetItem `Item`, and the `Attributes` of a write asked to return values."""
    try:
        answer = json.loads(body)
    except ValueError:
        return 0
    if not isinstance(answer, dict):
        return 0
    if isinstance(answer.get("Items"), list):
        return len(answer["Items"])
    responses = answer.get("Responses")
    if isinstance(responses, dict):
        return sum(len(items) for items in responses.values())
    if isinstance(responses, list):
        return sum(1 for response in responses if isinstance(response, dict) and response.get("Item"))
    return int(bool(answer.get("Item")) or bool(answer.get("Attributes")))


class CallCounts:
    """Calls per service and operation, and DynamoDB items read; shared by the server's request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Counter[str]] = {}
        self._items_read = 0

    def record(self, call: AwsCall, *, items_read: int = 0) -> None:
        with self._lock:
            self._calls.setdefault(call.service, Counter())[call.operation] += 1
            self._items_read += items_read

    def snapshot(self) -> dict[str, Any]:
        """`{"calls": {"route53": {"GetChange": 3}, ...}, "dynamodb_items_read": 7}`"""
        with self._lock:
            calls = {service: dict(counts) for service, counts in self._calls.items()}
            return {"calls": calls, "dynamodb_items_read": self._items_read}

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._items_read = 0


@cache
def service_model(service: str) -> ServiceModel | None:
    """botocore's model of a service by signing name (loaded once, ~15 ms); None when botocore has none by it."""
    try:
        return ServiceModel(Loader().load_service_model(service, "service-2"), service_name=service)
    except DataNotFoundError:
        return None


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]  # required query parameters (and values) from the requestUri
    specificity: int


@dataclass(frozen=True)
class _RestOperations:
    routes: tuple[_Route, ...]
    service: str

    def match(self, method: str, path: str, query: Mapping[str, str]) -> AwsCall | None:
        """The most specific operation whose method, path and required query parameters fit."""
        best: tuple[_Route, Mapping[str, str]] | None = None
        for route in self.routes:
            if route.method != method or not all(
                key in query and (value is None or query[key] == value) for key, value in route.query
            ):
                continue
            found = route.path.fullmatch(path)
            if found and (best is None or route.specificity > best[0].specificity):
                best = route, found.groupdict()
        return AwsCall(self.service, best[0].operation, best[1]) if best else None


@cache
def _rest_operations(service: str) -> _RestOperations:
    model = service_model(service)
    if model is None:
        return _RestOperations((), service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        if "requestUri" in http:
            routes.append(_route(name, str(http.get("method", "POST")), str(http["requestUri"])))
    return _RestOperations(tuple(routes), service)


def _route(operation: str, method: str, request_uri: str) -> _Route:
    """`/2013-04-01/hostedzone/{Id}/rrset/` -> a pattern with an `Id` group; `{Key+}` may span slashes.
    A trailing slash is optional, as clients and moto treat it."""
    path, _, query = request_uri.partition("?")
    pieces = re.split(r"\{([^}]+)\}", path)
    regex = ""
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            regex += re.escape(piece)
        else:
            label = re.sub(r"\W", "_", piece.removesuffix("+"))
            regex += f"(?P<{label}>.+)" if piece.endswith("+") else f"(?P<{label}>[^/]+)"
    required = tuple(
        (key, value if separator else None)
        for key, separator, value in (part.partition("=") for part in query.split("&") if part)
    )
    literal_length = sum(len(piece) for piece in pieces[::2])
    return _Route(
        operation=operation,
        method=method.upper(),
        path=re.compile(regex.rstrip("/") + "/?"),
        query=required,
        specificity=literal_length + 1000 * len(required),
    )


def _signing_service(environ: Mapping[str, Any]) -> str | None:
    """From the Authorization header, or from a presigned URL's X-Amz-Credential parameter."""
    presigned = _query(str(environ.get("QUERY_STRING", ""))).get("X-Amz-Credential", "")
    for text in (str(environ.get("HTTP_AUTHORIZATION", "")), f"Credential={presigned}"):
        if found := _CREDENTIAL_SCOPE.search(text):
            return found.group(1).lower()
    return None


def _action(environ: Mapping[str, Any], body: bytes) -> str | None:
    if action := _query(str(environ.get("QUERY_STRING", ""))).get("Action"):
        return action
    if str(environ.get("CONTENT_TYPE", "")).startswith(_FORM):
        return _query(body.decode("utf-8", errors="replace")).get("Action")
    return None


def _query(text: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}

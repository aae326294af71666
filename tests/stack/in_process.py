"""StackApp in front of moto's server app in this very process: the local stack's AWS side, strict layer included,
for unit tests (no socket, no child process).

boto3 clients reach it through a `before-send` handler that hands each request to the WSGI app and botocore the
answer, so every byte is serialized and parsed as with the server. moto keeps its backends per process: the stack
resets them when it starts and when it stops; do not use it inside moto's `mock_aws`, which answers first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.stack.moto_server import StackApp
from tests.stack.strict import SECRET_FAULTS_PATH
from tests.stack.strict_rates import OFF, RequestRates

ENDPOINT = "http://moto.in-process"
REGION = "us-east-1"
CREDENTIAL = "testing"


@dataclass
class _Body:
    """The `raw` of an AWSResponse: botocore reads the body through `stream()`."""

    content: bytes

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.content


class InProcessStack:
    def __init__(self, rates: RequestRates | None = None) -> None:
        """`rates`: the request rates the stack throttles at (strict_rates.py); none by default, as unit tests of the
        other rules are not about rates."""
        # Imported here: moto's server apps are heavy, and only these tests need them.
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        rates = RequestRates(OFF) if rates is None else rates
        self.app = StackApp(DomainDispatcherApplication(create_backend_app), rates=rates)
        self.reset()

    def reset(self) -> None:
        """Forget everything moto holds (moto's own API, as `python -m moto.server` serves it), and every fault."""
        self._request("POST", "/moto-api/reset")
        self.clear_secret_faults()

    def fail_secret(
        self, secret: str, code: str, message: str, operations: Sequence[str] = (), stage: str | None = None
    ) -> None:
        """As LocalStack.fail_secret: the calls `operations` (all when empty) on that secret (its version `stage`
        only, when given) answer `code`."""
        fault = {"secret": secret, "code": code, "message": message, "operations": list(operations), "stage": stage}
        self._request("PUT", SECRET_FAULTS_PATH, fault)

    def clear_secret_faults(self) -> None:
        self._request("DELETE", SECRET_FAULTS_PATH)

    def client(self, service: str, region: str = REGION, config: Config | None = None) -> Any:
        made = boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=ENDPOINT,
            region_name=region,
            aws_access_key_id=CREDENTIAL,
            aws_secret_access_key=CREDENTIAL,
            config=config,
        )
        made.meta.events.register("before-send", self._send)
        return made

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        headers = [
            (key, value.decode() if isinstance(value, bytes) else value) for key, value in request.headers.items()
        ]
        environ = EnvironBuilder(
            method=request.method,
            path=url.path,
            query_string=url.query,
            headers=headers,
            data=body.encode() if isinstance(body, str) else body,
            base_url=f"{url.scheme}://{url.netloc}",
        ).get_environ()
        app_iter, status, response_headers = run_wsgi_app(self.app, environ, buffered=True)
        return AWSResponse(request.url, int(status.split()[0]), dict(response_headers), _Body(b"".join(app_iter)))

    def _request(self, method: str, path: str, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        environ = EnvironBuilder(method=method, path=path, base_url=ENDPOINT, data=data).get_environ()
        app_iter, status, _ = run_wsgi_app(self.app, environ, buffered=True)
        b"".join(app_iter)
        if not status.startswith("200"):
            raise RuntimeError(f"{method} {path} gave {status}")

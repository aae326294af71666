"""An HTTPS reverse proxy in front of pebble, run in-process by fault tests: it answers chosen requests with 5xx or
429 + Retry-After instead of forwarding them, rewrites the directory, and logs every exchange.

URLs are consistent without rewriting anything. pebble 2.4 builds every absolute URL it returns (the directory,
`Location`, `Link`, order, authorization, challenge, finalize and certificate URLs) from the request's `Host` header
and the connection's TLS (wfe `relativeEndpoint`), and it accepts a JWS only if its protected `url` equals
`https://<Host><RequestURI>` (wfe `validPOSTURL`). So the proxy forwards with the client's `Host` (the proxy's own
127.0.0.1:port): pebble then speaks in proxy URLs and accepts the signatures the client made for them. Rewriting the
upstream base in bodies would also work for responses, but rewriting request bodies would break the JWS signatures.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests import RequestException, Session

from tests.stack.tls import TlsFiles

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"
UPSTREAM_TIMEOUT_SECONDS = 30.0
CLIENT_IDLE_TIMEOUT_SECONDS = 30.0

# RFC 9110 section 7.6.1: connection-specific fields are never forwarded.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "proxy-connection"}
)
# requests sets Host (we set it explicitly), Content-Length and Accept-Encoding itself.
_NOT_FORWARDED_UPSTREAM = _HOP_BY_HOP | {"host", "content-length", "accept-encoding"}
# requests has already decoded the body; the proxy frames what it sends with its own Content-Length.
_NOT_FORWARDED_DOWNSTREAM = _HOP_BY_HOP | {"content-length", "content-encoding"}

JsonObject = dict[str, Any]


@dataclass
class Rule:
    """A canned answer for matching requests, sent instead of forwarding them to pebble.

    `path` matches the request path exactly, `path_prefix` by prefix (neither: every path); `method` is optional.
    `body` None gives an RFC 7807 problem document (rateLimited for 429, serverInternal otherwise); bytes are sent
    as they are. `times` None never runs out. `hits` counts the answers given; mutable on purpose, so that a test
    can read it from the rule object it added.
    """

    path: str | None = None
    path_prefix: str | None = None
    method: str | None = None
    status: int = 503
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | bytes | None = None
    times: int | None = 1
    hits: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.path is not None and self.path_prefix is not None:
            raise ValueError(f"a rule takes path or path_prefix, not both (got {self.path!r} and {self.path_prefix!r})")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1, or None for always (got {self.times})")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code (got {self.status})")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        return _matches(method, path, method=self.method, path=self.path, path_prefix=self.path_prefix)

    def encoded_body(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body if self.body is not None else default_problem(self.status)).encode()


def default_problem(status: int) -> JsonObject:
    """The problem document an injected `status` carries when its rule gives no body."""
    kind = "rateLimited" if status == 429 else "serverInternal"
    return {"type": ACME_ERROR_PREFIX + kind, "detail": f"injected by the test proxy: HTTP {status}", "status": status}


class Exchange(NamedTuple):
    """One request the proxy answered and the status it answered with (injected or pebble's)."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class ProxiedRequest:
    """A request as the proxy received it; `path` has no query string, `target` is the full request target."""

    method: str
    path: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    def jws_payload(self) -> Any:
        """The decoded JSON payload of a flattened JWS body; None for POST-as-GET, a non-JWS body or no body."""
        try:
            payload = json.loads(self.body)["payload"]
            if not payload:
                return None
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None


RequestHook = Callable[[ProxiedRequest], Rule | None]
DirectoryHook = Callable[[JsonObject], JsonObject]


@dataclass(frozen=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class AcmeProxy:
    """The proxy's handles. Build it with `AcmeProxy.start(...)`; it stops on exit from its `with` block.

    `request_hook` sees every request first and may answer it by returning a Rule (its `times` is ignored);
    otherwise the first matching rule that has not run out answers; otherwise pebble does. `directory_hook`
    rewrites pebble's directory JSON on its way to the client.
    """

    def __init__(self, upstream_directory_url: str, tls: TlsFiles) -> None:
        upstream = urlsplit(upstream_directory_url)
        self.upstream_base = f"{upstream.scheme}://{upstream.netloc}"
        self.directory_path = upstream.path or "/"
        self.tls = tls
        self.request_hook: RequestHook | None = None
        self.directory_hook: DirectoryHook | None = None
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[Exchange] = []
        self._connections: set[socket.socket] = set()
        self._nonce_path: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, *, upstream_directory_url: str, tls: TlsFiles) -> AcmeProxy:
        """Listen on a free loopback port with the stack's localhost certificate and serve in a daemon thread."""
        proxy = cls(upstream_directory_url, tls)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
        server = _Server(proxy)
        # The handshake happens in the connection's own thread (see _Handler.handle), not in the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        proxy._server = server
        proxy._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"acme-proxy-{proxy.port}", daemon=True
        )
        proxy._thread.start()
        try:
            proxy._nonce_path = proxy._fetch_nonce_path()
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def __enter__(self) -> AcmeProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, close the clients' open keep-alive connections and join the thread; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- handles -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        """Give this to the ACME client instead of pebble's directory URL."""
        return self.base_url + self.directory_path

    # --- rules and the log ---------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        """Append `rule` (rules are tried in the order added); returns it, to read `hits` later."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def requests(self) -> list[Exchange]:
        """A copy of the exchanges so far, in the order they were answered."""
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = None, path: str | None = None, *, path_prefix: str | None = None) -> int:
        """How many exchanges match (same matching as Rule), injected answers included."""
        return sum(_matches(e.method, e.path, method=method, path=path, path_prefix=path_prefix) for e in self.requests)

    # --- serving (called from handler threads) -------------------------------------------------

    def _respond(self, request: ProxiedRequest, session: Session) -> _Response:
        rule = self._answering_rule(request)
        response = self._forward(request, session) if rule is None else self._injected(rule, session)
        with self._lock:
            self._log.append(Exchange(request.method, request.path, response.status))
        return response

    def _answering_rule(self, request: ProxiedRequest) -> Rule | None:
        hook = self.request_hook
        hooked = hook(request) if hook is not None else None
        with self._lock:
            if hooked is not None:
                hooked.hits += 1
                return hooked
            for rule in self._rules:
                if not rule.exhausted and rule.matches(request.method, request.path):
                    rule.hits += 1
                    return rule
        return None

    def _injected(self, rule: Rule, session: Session) -> _Response:
        headers = {"Content-Type": PROBLEM_CONTENT_TYPE, "Cache-Control": "no-store", **rule.headers}
        # RFC 8555 section 6.5: error responses carry a fresh nonce too, so the client's bookkeeping goes on.
        if not any(name.lower() == "replay-nonce" for name in headers):
            headers["Replay-Nonce"] = self._fresh_nonce(session)
        return _Response(rule.status, list(headers.items()), rule.encoded_body())

    def _forward(self, request: ProxiedRequest, session: Session) -> _Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED_UPSTREAM}
        # The client's Host, so pebble builds proxy URLs and checks the JWS url against them (module docstring).
        headers["Host"] = request.headers.get("Host") or urlsplit(self.base_url).netloc
        try:
            upstream = session.request(
                request.method,
                self.upstream_base + request.target,
                data=request.body or None,
                headers=headers,
                verify=str(self.tls.ca),  # requests ignores a Path here
                timeout=UPSTREAM_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except RequestException as error:
            problem = {"type": ACME_ERROR_PREFIX + "serverInternal", "detail": f"proxy: pebble unreachable: {error}"}
            return _Response(502, [("Content-Type", PROBLEM_CONTENT_TYPE)], json.dumps(problem).encode())
        body = upstream.content
        if (hook := self.directory_hook) is not None and self._is_directory(request) and upstream.status_code == 200:
            body = json.dumps(hook(json.loads(body)), indent=2).encode()
        # raw.headers keeps repeated fields (several Link headers) apart; response.headers would join them.
        forwarded = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in _NOT_FORWARDED_DOWNSTREAM]
        return _Response(upstream.status_code, forwarded, body)

    def _is_directory(self, request: ProxiedRequest) -> bool:
        return request.method == "GET" and request.path == self.directory_path

    def _fresh_nonce(self, session: Session) -> str:
        response = session.head(
            self.upstream_base + (self._nonce_path or "/nonce-plz"),
            verify=str(self.tls.ca),
            timeout=UPSTREAM_TIMEOUT_SECONDS,
        )
        nonce = response.headers.get("Replay-Nonce")
        if nonce is None:
            raise RuntimeError(f"pebble's newNonce answered {response.status_code} without a Replay-Nonce")
        return str(nonce)

    def _fetch_nonce_path(self) -> str:
        response = requests.get(
            self.upstream_base + self.directory_path, verify=str(self.tls.ca), timeout=UPSTREAM_TIMEOUT_SECONDS
        )
        response.raise_for_status()
        return urlsplit(str(response.json()["newNonce"])).path

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


def _matches(
    request_method: str, request_path: str, *, method: str | None, path: str | None, path_prefix: str | None
) -> bool:
    if method is not None and method.upper() != request_method.upper():
        return False
    if path is not None:
        return request_path == path
    return path_prefix is None or request_path.startswith(path_prefix)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: AcmeProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away (or a stop() that closed its connection) is not news
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1 keep-alive), with its own upstream session."""

    protocol_version = "HTTP/1.1"
    timeout = CLIENT_IDLE_TIMEOUT_SECONDS
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.upstream = Session()
        self.server.proxy._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()
            self.server.proxy._closed(self.connection)

    def handle(self) -> None:
        connection = self.connection
        if isinstance(connection, ssl.SSLSocket):
            try:
                connection.do_handshake()
            except (ssl.SSLError, OSError) as error:
                logger.debug("TLS handshake with %s failed: %s", self.client_address, error)
                return
        super().handle()

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ProxiedRequest(
            method=self.command,
            path=urlsplit(self.path).path,
            target=self.path,
            headers=dict(self.headers.items()),
            body=body,
        )
        response = self.server.proxy._respond(request, self.upstream)
        self.send_response_only(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.client_address[0], *args)

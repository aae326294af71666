"""moto in server mode as a child process: the stand-in for Route53, DynamoDB, ACM and Secrets Manager.

moto runs behind StackApp, a WSGI layer that counts every AWS call (from any process) and emulates Route53's
propagation delay, which moto lacks. Both are read and set over private paths under `/_stack/` (MotoControl).
It also refuses AssumeRole as AWS would, which moto never does: see StackApp._assume_role; its strict layer
(strict.py) refuses, as AWS does, other calls that moto accepts, and throttles Route53 and Secrets Manager writes
past AWS's rates per account (strict_rates.py); and ACM calls go through strict_acm.py, the layer between StackApp
and moto (re-import rules, ImportCertificate's rate).
Run as `python -m tests.stack.moto_server --port P [--route53-delay SECONDS]`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

import requests
from botocore.parsers import create_parser
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.stack import strict_route53, strict_secrets
from tests.stack.aws_calls import AwsCall, CallCounts, dynamodb_items_read, identify, service_model
from tests.stack.processes import Process, StackError, free_port, start_process, wait_until_ready
from tests.stack.route53_emulation import (
    Propagation,
    RecordSet,
    change_info_xml,
    check_delay,
    parse_change_batch,
    record_key,
    zone_id_of,
)
from tests.stack.strict import StrictLayer
from tests.stack.strict_acm import CONTROL_PREFIX as ACM_CONTROL_PREFIX
from tests.stack.strict_acm import StrictAcm
from tests.stack.strict_rates import RequestRates
from tests.stack.table import REPO_ROOT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CALLS_PATH = "/_stack/calls"
ROUTE53_DELAY_PATH = "/_stack/route53/delay"
SERVED_ZONES_PATH = "/_stack/route53/zones"
_PRIVATE_PREFIX = "/_stack/"
_SERVED_RECORD_SETS = re.compile(re.escape(SERVED_ZONES_PATH) + r"/(?P<zone_id>[^/]+)/record-sets")
# moto accepts any signature; the scope is what routes a request to its Route53 backend.
_INTERNAL_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0"
)
# moto keeps one set of backends per account; this header picks one (else the caller's access key does).
ACCOUNT_HEADER = "x-moto-account-id"
DEFAULT_ACCOUNT = "123456789012"  # moto's, for requests that name no other account
# Writes whose condition DynamoDB checks and applies as one step.
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_ROLE_ARN_ACCOUNT = re.compile(r"arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)")


# --- the parent's side: start the server, talk to its private paths ---------------------------------------------


class MotoControl:
    """Client of the private paths StackApp serves next to the AWS APIs; usable from any process."""

    def __init__(self, endpoint_url: str, *, timeout: float = 5.0) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout

    def aws_calls(self) -> dict[str, dict[str, int]]:
        """Calls since start or the last reset, by service and operation: `{"route53": {"GetChange": 3}, ...}`."""
        calls: dict[str, dict[str, int]] = self._request("GET", CALLS_PATH)["calls"]
        return calls

    def dynamodb_items_read(self) -> int:
        """Items DynamoDB answers handed to clients since start or the last reset (see aws_calls.py)."""
        return int(self._request("GET", CALLS_PATH)["dynamodb_items_read"])

    def reset_aws_calls(self) -> None:
        self._request("DELETE", CALLS_PATH)

    def route53_delay_seconds(self) -> float:
        return float(self._request("GET", ROUTE53_DELAY_PATH)["seconds"])

    def set_route53_delay(self, seconds: float) -> None:
        """Propagation delay for changes submitted from now on; pending ones keep theirs."""
        self._request("PUT", ROUTE53_DELAY_PATH, {"seconds": check_delay(seconds)})

    def served_zones(self) -> list[dict[str, str]]:
        """Hosted zones of every account as `{"Name": "example.test.", "Id": "Z1", "Account": "123456789012"}`,
        moto's default account first, each account's in moto's order."""
        zones: list[dict[str, str]] = self._request("GET", SERVED_ZONES_PATH)
        return zones

    def served_record_sets(self, zone_id: str) -> list[dict[str, Any]]:
        """A zone's record sets as Route53's name servers serve them now (pending changes not yet applied)."""
        record_sets: list[dict[str, Any]] = self._request(
            "GET", f"{SERVED_ZONES_PATH}/{zone_id_of(zone_id)}/record-sets"
        )
        return record_sets

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.endpoint_url + path, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise StackError(
                f"moto at {self.endpoint_url}: {method} {path} gave {response.status_code}: {response.text}"
            )
        return response.json()


@dataclass
class MotoServer:
    process: Process
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> MotoControl:
        return MotoControl(self.endpoint_url)

    def stop(self) -> None:
        self.process.stop()


def start_moto(
    workdir: Path,
    *,
    python: str = sys.executable,
    timeout: float = 20.0,
    route53_delay_seconds: float = 0.0,
    dns_port: int | None = None,
) -> MotoServer:
    """Start moto behind StackApp on a free loopback port (and the DNS server on `dns_port`, if given) and wait
    until it answers HTTP."""
    port = free_port()
    argv = [python, "-u", "-m", "tests.stack.moto_server", "--port", str(port)]
    argv += ["--route53-delay", repr(check_delay(route53_delay_seconds))]
    if dns_port is not None:
        argv += ["--dns-port", str(dns_port)]
    process = start_process("moto", argv, workdir, env={**os.environ, "PYTHONPATH": repo_pythonpath()}, cwd=REPO_ROOT)
    server = MotoServer(process=process, port=port)
    wait_until_ready(process, lambda: _answers_http(server.control), timeout=timeout)
    return server


def repo_pythonpath() -> str:
    """The repo root first, so `python -m tests.stack.<module>` imports this package from any cwd."""
    existing = os.environ.get("PYTHONPATH")
    return f"{REPO_ROOT}{os.pathsep}{existing}" if existing else str(REPO_ROOT)


def _answers_http(control: MotoControl) -> bool:
    try:
        control.route53_delay_seconds()
    except (requests.RequestException, StackError):
        return False
    return True


# --- the child's side: moto behind StackApp ---------------------------------------------------------------------


class MotoCallError(RuntimeError):
    """moto refused a read StackApp made on its own behalf."""


@dataclass(frozen=True)
class _Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(None, 1)[0])

    @classmethod
    def of(cls, body: bytes, content_type: str, status: str = "200 OK") -> _Reply:
        return cls(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], body)

    @classmethod
    def json(cls, value: Any, status: str = "200 OK") -> _Reply:
        return cls.of(json.dumps(value).encode(), "application/json", status)


class StackApp:
    """WSGI layer in front of moto: counts AWS calls and emulates Route53 propagation (see route53_emulation.py).

    With no delay and nothing pending, every request reaches moto unchanged and its answer comes back unchanged.
    """

    def __init__(
        self,
        moto: WSGIApplication,
        propagation: Propagation | None = None,
        calls: CallCounts | None = None,
        rates: RequestRates | None = None,
    ) -> None:
        self._moto = StrictAcm(moto)  # ACM's rules; its private paths are under /_stack/acm/
        self.propagation = propagation or Propagation()
        self.calls = calls or CallCounts()
        # Held while a change is applied and while the served view is read, so neither sees half of the other.
        self._lock = threading.Lock()
        self._dynamodb_writes = threading.Lock()
        # Bumped by every Route53 call that may write; the served view read from moto is kept until it moves.
        # pebble validating a batch asks the DNS server a hundred questions at once, and reading moto's XML
        # for each of them took long enough for pebble's 2-second DNS timeouts to fire.
        self._generation = 0
        # Bumped by a ChangeResourceRecordSets of that zone only (the others bump _generation, which covers every
        # zone): a batch writing its zones must not make every other zone's served view be read from moto again.
        self._zone_generations: dict[str, int] = {}
        self._writes = 0  # every Route53 write: the DNS server's answers hold while it stays
        self._zones_cache: tuple[int, list[dict[str, str]]] | None = None
        self._record_sets_cache: dict[str, tuple[tuple[int, int], list[RecordSet]]] = {}
        # Accounts that may hold zones: moto's default, any named by the account header, any entered by
        # AssumeRole. The served view covers the zones of all of them.
        self._accounts: dict[str, None] = {DEFAULT_ACCOUNT: None}
        self._zone_accounts: dict[str, str] = {}
        # AWS's request rates (strict_rates.py) by default; a throttled call is refused before any other rule.
        self.rates = RequestRates() if rates is None else rates
        self.strict = StrictLayer(
            self._forward,
            (
                self.rates,
                strict_secrets.refuse,
                strict_secrets.same_version,
                strict_route53.refuse,
                strict_route53.conditional_changes,
            ),
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        reply = self._private(environ, path) if path.startswith(_PRIVATE_PREFIX) else self._aws(environ)
        start_response(reply.status, reply.headers)
        return [reply.body]

    # --- AWS calls ---

    def _aws(self, environ: WSGIEnvironment) -> _Reply:
        body = _read_body(environ)
        call = identify(environ, body)
        if call is None:  # moto's own API, a browser: not an AWS call
            return self._forward(environ)
        if account := environ.get(_ACCOUNT_ENVIRON):
            self._seen_account(str(account))
        if refused := self.strict.refuse(call, environ, body):
            reply = _Reply.of(refused.body, refused.content_type, refused.status)
        elif call.service == "route53":
            reply = self._route53(call, environ, body)
        elif call.service == "sts" and call.operation == "AssumeRole":
            reply = self._assume_role(environ, body)
        elif call.service == "dynamodb" and call.operation in DYNAMODB_WRITES:
            # DynamoDB applies a conditional write atomically ("a conditional write succeeds only if the item
            # attributes meet one or more expected conditions", serialized per item:
            # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate);
            # moto reads, checks and writes without a lock, so two threads could both take one lease.
            with self._dynamodb_writes:
                reply = self._forward(environ)
        else:
            reply = self._forward(environ)
        if call.service == "route53" and not call.operation.startswith(("Get", "List")):
            with self._lock:
                self._writes += 1
                if call.operation == "ChangeResourceRecordSets":
                    zone = zone_id_of(call.labels.get("Id", ""))
                    self._zone_generations[zone] = self._zone_generations.get(zone, 0) + 1
                else:
                    self._generation += 1
        items = dynamodb_items_read(reply.body) if call.service == "dynamodb" and reply.code == 200 else 0
        self.calls.record(call, items_read=items)
        return reply

    def _route53(self, call: AwsCall, environ: WSGIEnvironment, body: bytes) -> _Reply:
        if call.operation == "ChangeResourceRecordSets":
            with self._lock:
                if self.propagation.active:
                    return self._change_record_sets(zone_id_of(call.labels.get("Id", "")), environ, body)
        elif call.operation == "GetChange":
            with self._lock:
                change = self.propagation.change(call.labels.get("Id", ""))
                xml = change_info_xml("GetChangeResponse", change, self.propagation.status(change)) if change else None
            if xml is not None:
                return _Reply.of(xml, "text/xml")
            # An id from before the delay was set (moto's one fixed id): moto answers INSYNC, as it always did.
        return self._forward(environ)

    def _change_record_sets(self, zone_id: str, environ: WSGIEnvironment, body: bytes) -> _Reply:
        """Snapshot what the change touches, let moto apply it, and answer with a change of our own."""
        try:
            batch = parse_change_batch(body)
            account = environ.get(_ACCOUNT_ENVIRON)
            current = self._moto_record_sets(
                zone_id, str(environ.get("HTTP_AUTHORIZATION", "")), str(account) if account else None
            )
        except (ValueError, MotoCallError):
            return self._forward(environ)  # a malformed batch or an unknown zone: moto gives Route53's error
        reply = self._forward(environ)
        if reply.code != 200:
            return reply
        before = {key: [rs for rs in current if record_key(rs) == key] for key in batch.keys}
        change = self.propagation.submit(zone_id, before, batch.comment)
        xml = change_info_xml("ChangeResourceRecordSetsResponse", change, self.propagation.status(change))
        return _Reply.of(xml, "text/xml")

    def _assume_role(self, environ: WSGIEnvironment, body: bytes) -> _Reply:
        """AssumeRole as AWS answers it for a caller its trust policies allow: moto hands out credentials for
        any role, existing or not, so here the role must exist in its account's IAM and, when an allowing
        statement of its trust policy has the condition StringEquals sts:ExternalId, the ExternalId must match.
        Principals are not checked: every caller of the stack is the same user. AccessDenied otherwise, as AWS
        says it (the same words whichever check failed)."""
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", errors="replace")).items()}
        arn = form.get("RoleArn", "")
        found = _ROLE_ARN_ACCOUNT.fullmatch(arn)
        if found is None or not _trusts(self._moto_trust_policy(found[1], found[2]), form.get("ExternalId")):
            caller = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/moto"
            message = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {arn}"
            return _Reply.of(_sts_error("AccessDenied", message), "text/xml", "403 Forbidden")
        reply = self._forward(environ)
        if reply.code == 200:
            self._seen_account(found[1])
        return reply

    def _seen_account(self, account: str) -> None:
        with self._lock:
            if account not in self._accounts:
                self._accounts[account] = None
                self._generation += 1
                self._writes += 1

    # --- private paths ---

    def _private(self, environ: WSGIEnvironment, path: str) -> _Reply:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        try:
            if path == CALLS_PATH and method == "GET":
                return _Reply.json(self.calls.snapshot())
            if path == CALLS_PATH and method == "DELETE":
                self.calls.reset()
                return _Reply.json({})
            if path == ROUTE53_DELAY_PATH and method in ("GET", "PUT"):
                return _Reply.json({"seconds": self._delay(environ, method)})
            if path == SERVED_ZONES_PATH and method == "GET":
                return _Reply.json(self.served_zones())
            if (found := _SERVED_RECORD_SETS.fullmatch(path)) and method == "GET":
                return _Reply.json(self.served_record_sets(found["zone_id"]))
            if (answer := self.rates.control(method, path, _read_body(environ))) is not None:
                return _Reply.json(answer)
            if (answer := self.strict.control(method, path, _read_body(environ))) is not None:
                return _Reply.json(answer)
            if path.startswith(ACM_CONTROL_PREFIX):
                return self._forward(environ)
        except ValueError as error:
            return _Reply.json({"error": str(error)}, "400 Bad Request")
        except MotoCallError as error:
            return _Reply.json({"error": str(error)}, "502 Bad Gateway")
        return _Reply.json({"error": f"nothing at {method} {path}"}, "404 Not Found")

    def _delay(self, environ: WSGIEnvironment, method: str) -> float:
        """Read, or set from a `{"seconds": D}` body; a body that is not one raises ValueError."""
        with self._lock:
            if method == "PUT":
                try:
                    seconds = float(json.loads(_read_body(environ))["seconds"])
                except (KeyError, TypeError) as error:
                    raise ValueError(f'expected {{"seconds": <number>}}, got {error!r}') from error
                self.propagation.delay_seconds = seconds
            return self.propagation.delay_seconds

    def served_zones(self) -> list[dict[str, str]]:
        """What the DNS server serves (dns_server.ServedZones): every account's zones, as MotoControl.served_zones."""
        with self._lock:
            generation = self._generation
            if self._zones_cache is not None and self._zones_cache[0] == generation:
                return self._zones_cache[1]
        zones = self._list_zones()
        with self._lock:
            self._zones_cache = (generation, zones)
        return zones

    def _list_zones(self) -> list[dict[str, str]]:
        """The zones of every account, the default account's first (the DNS server serves the first zone of a
        name), each with the account holding it."""
        zones: list[dict[str, str]] = []
        with self._lock:
            accounts = list(self._accounts)
        for account in accounts:
            query: dict[str, str] = {}
            while True:
                page = self._moto_route53(
                    "ListHostedZones", "/2013-04-01/hostedzone", query, _INTERNAL_AUTHORIZATION, account
                )
                zones += [
                    {"Name": zone["Name"], "Id": zone_id_of(zone["Id"]), "Account": account}
                    for zone in page["HostedZones"]
                ]
                if not page.get("IsTruncated"):
                    break
                query = {"marker": page["NextMarker"]}
        with self._lock:
            self._zone_accounts.update({zone["Id"]: zone["Account"] for zone in zones})
        return zones

    def served_version(self) -> tuple[int, float, float]:
        """(writes so far, now, until when the served view stays as it is): a DNS answer computed now holds while
        no Route53 write happened and no pending change came in sync (dns_server.Route53Resolver's cache)."""
        with self._lock:
            return self._writes, self.propagation.now(), self.propagation.settled_until()

    def served_record_sets(self, zone_id: str) -> list[RecordSet]:
        """moto's record sets (read again only after a write) with the pending changes overlaid (time-dependent)."""
        with self._lock:
            cached = self._record_sets_cache.get(zone_id)
            version = (self._generation, self._zone_generations.get(zone_id_of(zone_id), 0))
            if cached is None or cached[0] != version:
                account = self._zone_accounts.get(zone_id_of(zone_id))
                cached = (version, self._moto_record_sets(zone_id, _INTERNAL_AUTHORIZATION, account))
                self._record_sets_cache[zone_id] = cached
            return self.propagation.served(zone_id, cached[1])

    # --- moto ---

    def _moto_record_sets(self, zone_id: str, authorization: str, account: str | None = None) -> list[RecordSet]:
        """All of a zone's record sets as moto holds them (the API view: changes apply at once); the zone is
        looked up in `account`, else in the account of the authorization's access key."""
        path = f"/2013-04-01/hostedzone/{zone_id}/rrset"
        record_sets: list[RecordSet] = []
        query: dict[str, str] = {}
        while True:
            page = self._moto_route53(
                "ListResourceRecordSets", path, query, authorization or _INTERNAL_AUTHORIZATION, account
            )
            record_sets += page["ResourceRecordSets"]
            if not page.get("IsTruncated"):
                return record_sets
            query = {"name": page["NextRecordName"], "type": page["NextRecordType"]}

    def _moto_route53(
        self, operation: str, path: str, query: Mapping[str, str], authorization: str, account: str | None = None
    ) -> dict[str, Any]:
        """A Route53 read straight to moto (not counted), parsed into boto3's shape by botocore."""
        return self._moto_read("route53", "rest-xml", operation, path, query, authorization, account)

    def _moto_trust_policy(self, account: str, role_name: str) -> dict[str, Any] | None:
        """The trust policy of a role in moto's IAM of that account; None when there is no such role."""
        authorization = _INTERNAL_AUTHORIZATION.replace("/route53/", "/iam/")
        query = {"Action": "GetRole", "Version": "2010-05-08", "RoleName": role_name}
        try:
            role = self._moto_read("iam", "query", "GetRole", "/", query, authorization, account)["Role"]
        except MotoCallError:
            return None
        document = str(role.get("AssumeRolePolicyDocument", ""))
        try:
            policy: dict[str, Any] = json.loads(document)
        except ValueError:
            policy = json.loads(unquote(document))  # AWS, and so botocore's raw answer, URL-encode it
        return policy

    def _moto_read(
        self,
        service: str,
        protocol: str,
        operation: str,
        path: str,
        query: Mapping[str, str],
        authorization: str,
        account: str | None,
    ) -> dict[str, Any]:
        headers = [("Authorization", authorization)] + ([(ACCOUNT_HEADER, account)] if account else [])
        builder = EnvironBuilder(path=path, query_string=dict(query), headers=headers)
        reply = self._forward(builder.get_environ())
        model = service_model(service)
        shape = model.operation_model(operation).output_shape if model else None
        if shape is None:
            raise MotoCallError(f"botocore has no model of {service} {operation}")
        response = {"body": reply.body, "headers": {}, "status_code": reply.code}
        parsed: dict[str, Any] = create_parser(protocol).parse(response, shape)
        if reply.code != 200:
            raise MotoCallError(f"{operation} {path} gave {reply.status}: {parsed.get('Error')}")
        return parsed

    def _forward(self, environ: WSGIEnvironment) -> _Reply:
        app_iter, status, headers = run_wsgi_app(self._moto, environ, buffered=True)
        return _Reply(status, headers.to_wsgi_list(), b"".join(app_iter))


_ACCOUNT_ENVIRON = "HTTP_" + ACCOUNT_HEADER.upper().replace("-", "_")


def _trusts(policy: Mapping[str, Any] | None, external_id: str | None) -> bool:
    """Whether an Allow statement for sts:AssumeRole lets this ExternalId in (StringEquals sts:ExternalId only)."""
    if policy is None:
        return False
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or not {"sts:AssumeRole", "sts:*", "*"} & set(actions):
            continue
        required = statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if required is None or external_id in ([required] if isinstance(required, str) else required):
            return True
    return False


def _sts_error(code: str, message: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def _read_body(environ: WSGIEnvironment) -> bytes:
    """Read the request body and put it back, so moto still finds it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length > 0:
        body: bytes = stream.read(length)
    else:
        body = stream.read() if environ.get("wsgi.input_terminated") else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def serve(
    port: int, *, host: str = "127.0.0.1", route53_delay_seconds: float = 0.0, dns_port: int | None = None
) -> None:
    """Serve moto behind StackApp until SIGTERM or SIGINT, as `python -m moto.server` would serve moto alone; with
    `dns_port`, also the DNS server (dns_server.py) on that port, reading the served zones from StackApp directly.

    In this process a DNS question costs no HTTP request to moto: pebble validating a batch of 100 certificates
    asks about 600 at once (3 validations per name), and a separate DNS server reading moto over HTTP answered
    them in about 0.8 s each on an idle machine and past pebble's 2-second timeout under load."""
    # Imported here: processes that only use MotoControl (the DNS server, tests) need neither Flask nor moto's apps.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))  # moto writes it into URLs it hands out (SQS queues, ...)
    app = StackApp(DomainDispatcherApplication(create_backend_app), Propagation(route53_delay_seconds))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if dns_port is not None:
        from tests.stack.dns_server import start_servers

        # The DNS server's threads share this process's GIL with moto's request handlers; a shorter switch interval
        # (Python's default is 5 ms) lets a question in sooner while moto is busy, within pebble's 2 s timeout.
        sys.setswitchinterval(0.001)

        start_servers(app, dns_port, address=host)
        print(f"dns server on {host}:{dns_port} (udp+tcp), zones from this moto", flush=True)
    print(f"moto on {host}:{port}, Route53 propagation delay {route53_delay_seconds} s", flush=True)
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--route53-delay", type=float, default=0.0, help="seconds a Route53 change stays PENDING (0: INSYNC at once)"
    )
    parser.add_argument("--dns-port", type=int, help="also serve DNS (UDP and TCP) on this port from moto's zones")
    args = parser.parse_args(argv)
    serve(args.port, host=args.host, route53_delay_seconds=args.route53_delay, dns_port=args.dns_port)


if __name__ == "__main__":
    main()

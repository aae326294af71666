"""The local stack's strict layer: AWS rules that moto does not enforce, checked in front of moto, as AWS answers.

StackApp (moto_server.py) asks it about every AWS call before moto sees it; a rule that applies answers with the
error AWS gives, and moto never sees the call. Each rule lives in a module of its own that names AWS's page for it
(strict_secrets.py, strict_route53.py). Faults that a test sets on purpose (one secret answering AccessDenied, say)
are set over a private path (`StrictControl`), from any process.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from xml.sax.saxutils import escape

import requests

from tests.stack.aws_calls import AwsCall
from tests.stack.processes import StackError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

SECRET_FAULTS_PATH = "/_stack/strict/secret-faults"


@dataclass(frozen=True)
class Refusal:
    """An AWS error answer: HTTP status line, content type and body, as the service's protocol writes them."""

    status: str
    content_type: str
    body: bytes

    @classmethod
    def json(cls, code: str, message: str, status: str = "400 Bad Request") -> Refusal:
        """JSON 1.1 services (Secrets Manager, ACM, KMS): botocore reads the code from `__type`."""
        body = json.dumps({"__type": code, "message": message}).encode()
        return cls(status, "application/x-amz-json-1.1", body)

    @classmethod
    def xml(cls, code: str, message: str, xmlns: str, status: str = "400 Bad Request") -> Refusal:
        """rest-xml and query services (Route53, STS): an ErrorResponse."""
        body = (
            f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{escape(xmlns)}"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        return cls(status, "text/xml", body)


class Answer(Protocol):
    """What moto answered a request the strict layer made on its own behalf."""

    @property
    def code(self) -> int: ...

    @property
    def body(self) -> bytes: ...


# Sends a request straight to moto (not counted, not checked) and returns its answer.
Moto = Callable[["WSGIEnvironment"], Answer]
# A rule: the call, its WSGI environ and body, and a way to ask moto about the state it applies to.
Rule = Callable[[AwsCall, "WSGIEnvironment", bytes, Moto], Refusal | None]


@dataclass(frozen=True)
class SecretFault:
    """Every call of `operations` (all of them when empty) on one secret answers `code`: `message`; with `stage`,
    only the calls on the version of that staging label (a PutSecretValue's VersionStages, AWSCURRENT without them;
    a GetSecretValue's VersionStage), so that one version of a secret can be refused and not the others."""

    secret: str  # the secret's name
    code: str
    message: str
    operations: frozenset[str] = frozenset()
    stage: str | None = None

    def applies(self, call: AwsCall, secret_id: str | None, body: bytes = b"") -> bool:
        if call.service != "secretsmanager" or secret_id is None:
            return False
        if self.operations and call.operation not in self.operations:
            return False
        if self.stage is not None and self.stage not in _stages(body):
            return False
        if not secret_id.startswith("arn:"):
            return secret_id == self.secret
        # arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
        return secret_id.rpartition(":secret:")[2].rsplit("-", 1)[0] == self.secret


class StrictLayer:
    """The rules, then the faults set on purpose; thread-safe (the server answers requests on many threads)."""

    def __init__(self, moto: Moto, rules: Sequence[Rule]) -> None:
        self._moto = moto
        self._rules = tuple(rules)
        self._lock = threading.Lock()
        self._secret_faults: list[SecretFault] = []

    def refuse(self, call: AwsCall, environ: WSGIEnvironment, body: bytes) -> Refusal | None:
        """AWS's error for this call, or None to let moto answer it."""
        with self._lock:
            faults = list(self._secret_faults)
        if faults and call.service == "secretsmanager":
            secret_id = _json_field(body, "SecretId") or _json_field(body, "Name")
            for fault in faults:
                if fault.applies(call, secret_id, body):
                    return Refusal.json(fault.code, fault.message)
        for rule in self._rules:
            refused = rule(call, environ, body, self._moto)
            if refused is not None:
                return refused
        return None

    def control(self, method: str, path: str, body: bytes) -> Any | None:
        """Answer a private path of the strict layer (a JSON value), or None when the path is not one of its own.
        ValueError for a body that is not what the path expects."""
        if path != SECRET_FAULTS_PATH:
            return None
        with self._lock:
            if method == "PUT":
                self._secret_faults.append(_secret_fault(body))
            elif method == "DELETE":
                self._secret_faults.clear()
            elif method != "GET":
                raise ValueError(f"{SECRET_FAULTS_PATH} takes GET, PUT or DELETE, not {method}")
            return [
                {
                    "secret": f.secret,
                    "code": f.code,
                    "message": f.message,
                    "operations": sorted(f.operations),
                    "stage": f.stage,
                }
                for f in self._secret_faults
            ]


def _secret_fault(body: bytes) -> SecretFault:
    try:
        fields = json.loads(body)
        return SecretFault(
            secret=str(fields["secret"]),
            code=str(fields["code"]),
            message=str(fields.get("message", "")),
            operations=frozenset(str(op) for op in fields.get("operations", ())),
            stage=str(fields["stage"]) if fields.get("stage") is not None else None,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f'expected {{"secret": <name>, "code": <error code>, "message": ..., "operations": [...]}}: {error!r}'
        ) from error


def _stages(body: bytes) -> set[str]:
    """The staging labels a Secrets Manager call is about: VersionStages or VersionStage, else AWSCURRENT."""
    try:
        fields = json.loads(body)
    except ValueError:
        return set()
    if not isinstance(fields, dict):
        return set()
    stages = fields.get("VersionStages", fields.get("VersionStage"))
    if stages is None:
        return set() if "VersionId" in fields else {"AWSCURRENT"}
    return {str(s) for s in stages} if isinstance(stages, list) else {str(stages)}


def _json_field(body: bytes, name: str) -> str | None:
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class StrictControl:
    """Client of the strict layer's private paths; usable from any process."""

    def __init__(self, endpoint_url: str, *, timeout: float = 5.0) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout

    def fail_secret(
        self, secret: str, code: str, message: str, operations: Sequence[str] = (), stage: str | None = None
    ) -> None:
        """From now on, the calls `operations` (every call when empty) on the secret named `secret` (on its version
        `stage` only, when given) answer `code` with `message`, whoever makes them, until `clear_secret_faults`."""
        fault = {"secret": secret, "code": code, "message": message, "operations": list(operations), "stage": stage}
        self._request("PUT", SECRET_FAULTS_PATH, fault)

    def clear_secret_faults(self) -> None:
        self._request("DELETE", SECRET_FAULTS_PATH)

    def secret_faults(self) -> list[Mapping[str, Any]]:
        faults: list[Mapping[str, Any]] = self._request("GET", SECRET_FAULTS_PATH)
        return faults

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.endpoint_url + path, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise StackError(f"{self.endpoint_url}: {method} {path} gave {response.status_code}: {response.text}")
        return response.json()

"""ACM as AWS enforces it, in front of moto's ACM, which accepts all of this (LOCAL-STACK-NOTES, "Where moto is
kinder than AWS"). A WSGI layer that StackApp puts around moto; every refusal is the error AWS answers.

- A re-import (ImportCertificate with CertificateArn) is refused when it carries Tags, changes the key algorithm or
  size, drops a Key Usage or Extended Key Usage value of the certificate in place (keyEncipherment on ECDSA and
  the clientAuth EKU excepted), or adds either extension where the certificate in place has none
  (https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html,
  https://docs.aws.amazon.com/acm/latest/userguide/import-certificate-prerequisites.html).
- ImportCertificate is throttled beyond its rate quota per account and region, 1 request per second
  (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits), with ThrottlingException;
  the account of credentials from AssumeRole is the role's, so two roles (or two sessions) of one account share it.
- ImportCertificate is refused with LimitExceededException beyond ACM's quotas per account and region
  (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html): "Imported certificates" (2,500 held; a
  re-import into an ARN adds none, DeleteCertificate gives one back) and "Imported certificates in last 365 days"
  (5,000; every import counts here, re-imports too: AWS does not say, and this is the stricter reading). Both are
  off until `/_stack/acm/quotas` sets them, as moto has no quota and the tests share one stack.
- DescribeCertificate answers KeyUsages and ExtendedKeyUsages from the certificate, as ACM does (moto: none), and
  InUseBy as the private path `/_stack/acm/in-use` says ("a load balancer uses it"; moto: always empty). Marks
  stay on the ARN across re-imports, as ACM keeps a certificate's associations.

The certificates are parsed here with cryptography, independently of the renewer's own comparison
(acme_renewer/stores/acm.py): an emulator that shared the code under test would agree with its bugs.
Private paths (AcmControl): `/_stack/acm/import-rate` (GET, PUT `{"per_second": R}`, which also refills the
buckets), `/_stack/acm/in-use` (PUT `{"arn": A, "in_use_by": [...]}`), `/_stack/acm/refusals` (GET, DELETE),
`/_stack/acm/quotas` (GET: the quotas and the usage per account and region; PUT `{"imported": N,
"imported_per_year": M}`, null for no quota).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.stack.processes import StackError
from tests.stack.strict_rates import TokenBucket, account_of, region_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CONTROL_PREFIX = "/_stack/acm/"
IMPORT_RATE_PATH = CONTROL_PREFIX + "import-rate"
IN_USE_PATH = CONTROL_PREFIX + "in-use"
REFUSALS_PATH = CONTROL_PREFIX + "refusals"
QUOTAS_PATH = CONTROL_PREFIX + "quotas"
YEAR_SECONDS = 365 * 86400
# ImportCertificate's quota in requests per second per account and region (ACM guide, "API rate quotas").
IMPORT_QUOTA_PER_SECOND = 1.0
# AWS does not publish the burst of ACM's token buckets. Two requests is the least that lets a client paced
# exactly at the quota through when its requests arrive a little early or late; the sustained rate is the quota.
MIN_BURST = 2.0
_TARGET = "CertificateManager."
_JSON = "application/x-amz-json-1.1"

# As AWS words them where its answers were seen (issue trackers quoting ACM); the key algorithm's and the added
# extension's are ours, in the same style: no quote of those was found.
TAGS_ON_REIMPORT = "Tagging is not permitted on re-import."
KEY_USAGES_MISSING = "New certificate is missing one or more Key Usages supported by the currently imported certificate"
EXTENDED_KEY_USAGES_MISSING = (
    "New certificate is missing one or more Extended Key Usages supported by the currently imported certificate"
)
RATE_EXCEEDED = "Rate exceeded"
# AWS's answer beyond the 365-day quota, as quoted in pulumi/pulumi-aws#3290; no quote of the one beyond the quota of
# certificates held was found, so that one is ours, in the same style.
IMPORTS_PER_YEAR_EXCEEDED = "You have imported the maximum number of {quota} certificates in the last year."
IMPORTED_EXCEEDED = "You have reached the maximum number of {quota} imported certificates."

_KEY_USAGES = {
    "digital_signature": "DIGITAL_SIGNATURE",
    "content_commitment": "NON_REPUDIATION",
    "key_encipherment": "KEY_ENCIPHERMENT",
    "data_encipherment": "DATA_ENCIPHERMENT",
    "key_agreement": "KEY_AGREEMENT",
    "key_cert_sign": "CERTIFICATE_SIGNING",
    "crl_sign": "CRL_SIGNING",
}
_EXTENDED_KEY_USAGES = {
    "1.3.6.1.5.5.7.3.1": "TLS_WEB_SERVER_AUTHENTICATION",
    "1.3.6.1.5.5.7.3.2": "TLS_WEB_CLIENT_AUTHENTICATION",
    "1.3.6.1.5.5.7.3.3": "CODE_SIGNING",
    "1.3.6.1.5.5.7.3.4": "EMAIL_PROTECTION",
    "1.3.6.1.5.5.7.3.5": "IPSEC_END_SYSTEM",
    "1.3.6.1.5.5.7.3.6": "IPSEC_TUNNEL",
    "1.3.6.1.5.5.7.3.7": "IPSEC_USER",
    "1.3.6.1.5.5.7.3.8": "TIME_STAMPING",
    "1.3.6.1.5.5.7.3.9": "OCSP_SIGNING",
}
_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"


@dataclass(frozen=True)
class Usages:
    """What ACM compares on a re-import, read from a certificate."""

    key_algorithm: str  # ACM's name: RSA_2048, EC_prime256v1
    key_usages: frozenset[str] | None  # None: no Key Usage extension
    extended_key_usages: frozenset[str] | None  # OIDs; None: no Extended Key Usage extension

    @classmethod
    def of(cls, pem: bytes) -> Usages:
        certificate = x509.load_pem_x509_certificate(pem)
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            algorithm = f"RSA_{key.key_size}"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = "EC_" + {"secp256r1": "prime256v1"}.get(key.curve.name, key.curve.name)
        else:
            algorithm = type(key).__name__
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
            key_usages: frozenset[str] | None = frozenset(n for a, n in _KEY_USAGES.items() if getattr(usage, a))
        except x509.ExtensionNotFound:
            key_usages = None
        try:
            extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            extended_usages: frozenset[str] | None = frozenset(oid.dotted_string for oid in extended)
        except x509.ExtensionNotFound:
            extended_usages = None
        return cls(algorithm, key_usages, extended_usages)

    def refusal(self, new: Usages) -> str | None:
        """ACM's ValidationException message for re-importing `new` over this certificate; None: allowed."""
        if new.key_algorithm != self.key_algorithm:
            return (
                f"The key algorithm of the new certificate ({new.key_algorithm}) does not match the key algorithm"
                f" of the currently imported certificate ({self.key_algorithm})"
            )
        for what, mine, theirs, droppable, missing in (
            ("Key Usage", self.key_usages, new.key_usages, _ec_exception(new), KEY_USAGES_MISSING),
            ("Extended Key Usage", self.extended_key_usages, new.extended_key_usages, {_CLIENT_AUTH},
             EXTENDED_KEY_USAGES_MISSING),
        ):  # fmt: skip
            if mine is None and theirs is not None:
                return f"New certificate has a {what} extension, which the currently imported certificate does not have"
            if mine is not None and mine - (theirs or frozenset()) - droppable:
                return missing
        return None


def _ec_exception(new: Usages) -> set[str]:
    return {"KEY_ENCIPHERMENT"} if new.key_algorithm.startswith("EC_") else set()


_Answer = tuple[str, list[tuple[str, str]], bytes]


class StrictAcm:
    """WSGI layer in front of moto: ACM requests it has no rule for, and every other request, pass unchanged."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        imports_per_second: float = IMPORT_QUOTA_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._clock = clock
        self._wall_clock = wall_clock
        # ACM's quotas per account and region (None: none), and what each account and region used of them.
        self._quotas: dict[str, int | None] = {"imported": None, "imported_per_year": None}
        self._held: Counter[tuple[str, str]] = Counter()
        self._imports: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()
        self._rate = imports_per_second
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._in_use: dict[str, tuple[str, ...]] = {}
        self.refusals: Counter[str] = Counter()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if path.startswith(CONTROL_PREFIX):
            answer = self._control(environ, path)
        elif target.startswith(_TARGET) and target.endswith(
            (".ImportCertificate", ".DescribeCertificate", ".DeleteCertificate")
        ):
            answer = self._acm(environ, target.removeprefix(_TARGET))
        else:
            return self._app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    # --- ACM ---

    def _acm(self, environ: WSGIEnvironment, operation: str) -> _Answer:
        body = _read_body(environ)
        request = json.loads(body or b"{}")
        if operation == "DescribeCertificate":
            return self._describe(environ, str(request.get("CertificateArn", "")))
        key = self._key(environ)
        if operation == "DeleteCertificate":
            answer = self._forward(environ)
            if answer[0].startswith("200"):
                with self._lock:
                    self._held[key] = max(0, self._held[key] - 1)
            return answer
        if not self._admit_import(key):
            return self._error("ThrottlingException", RATE_EXCEEDED)
        arn = request.get("CertificateArn")
        if arn:
            if request.get("Tags"):
                return self._error("ValidationException", TAGS_ON_REIMPORT)
            current = self._certificate_pem(environ, str(arn))
            if current is not None:  # else moto answers ResourceNotFoundException, as ACM does
                try:
                    refusal = Usages.of(current).refusal(Usages.of(base64.b64decode(request["Certificate"])))
                except (KeyError, ValueError):
                    refusal = None  # not a certificate: moto refuses it as ACM would
                if refusal is not None:
                    return self._error("ValidationException", refusal)
        if refusal := self._over_quota(key, new=not arn):
            return self._error("LimitExceededException", refusal)
        answer = self._forward(environ)
        if answer[0].startswith("200"):
            with self._lock:
                self._imports.setdefault(key, []).append(self._wall_clock())
                if not arn:
                    self._held[key] += 1
        return answer

    def set_quotas(self, *, imported: int | None = None, imported_per_year: int | None = None) -> None:
        """ACM's quotas per account and region from now on (None: none); what was used so far still counts."""
        with self._lock:
            self._quotas = {"imported": _quota(imported), "imported_per_year": _quota(imported_per_year)}

    def _over_quota(self, key: tuple[str, str], *, new: bool) -> str | None:
        """AWS's LimitExceededException message when this import would pass a quota; None: within them."""
        with self._lock:
            yearly, held = self._quotas["imported_per_year"], self._quotas["imported"]
            if yearly is not None and self._imports_in_year(key) >= yearly:
                return IMPORTS_PER_YEAR_EXCEEDED.format(quota=yearly)
            if new and held is not None and self._held[key] >= held:
                return IMPORTED_EXCEEDED.format(quota=held)
        return None

    def _imports_in_year(self, key: tuple[str, str]) -> int:
        """Imports of the account and region within the last 365 days; the older ones are forgotten."""
        since = self._wall_clock() - YEAR_SECONDS
        recent = [moment for moment in self._imports.get(key, []) if moment > since]
        self._imports[key] = recent
        return len(recent)

    @staticmethod
    def _key(environ: WSGIEnvironment) -> tuple[str, str]:
        """The account and region whose quotas a request counts against. The account of credentials from AssumeRole
        is the role's, as moto itself decides: every session of every role of one account shares that account's
        quotas, as on AWS."""
        return account_of(environ), region_of(environ)

    def _admit_import(self, key: tuple[str, str]) -> bool:
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(key, TokenBucket(self._rate, max(MIN_BURST, self._rate), now))
            return bucket.take(now)

    def _describe(self, environ: WSGIEnvironment, arn: str) -> _Answer:
        status, headers, body = self._forward(environ)
        pem = self._certificate_pem(environ, arn) if status.startswith("200") else None
        if pem is None:
            return status, headers, body
        answer = json.loads(body)
        described = answer["Certificate"]
        usages = Usages.of(pem)
        described["KeyUsages"] = [{"Name": name} for name in sorted(usages.key_usages or ())]
        described["ExtendedKeyUsages"] = [
            {"Name": _EXTENDED_KEY_USAGES.get(oid, "CUSTOM"), "OID": oid}
            for oid in sorted(usages.extended_key_usages or ())
        ]
        with self._lock:
            described["InUseBy"] = sorted({*described.get("InUseBy", []), *self._in_use.get(arn, ())})
        return _json_answer("200 OK", answer)

    def _certificate_pem(self, environ: WSGIEnvironment, arn: str) -> bytes | None:
        """The certificate moto holds at the ARN (asked with the caller's account and region); None: no such ARN."""
        headers = {
            "Authorization": str(environ.get("HTTP_AUTHORIZATION", "")),
            "X-Amz-Target": _TARGET + "GetCertificate",
            "Content-Type": _JSON,
            "Host": str(environ.get("HTTP_HOST", "localhost")),
        }
        if account := environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
            headers["X-Moto-Account-Id"] = str(account)
        builder = EnvironBuilder(method="POST", path="/", headers=headers, data=json.dumps({"CertificateArn": arn}))
        status, _, body = self._forward(builder.get_environ())
        return str(json.loads(body)["Certificate"]).encode() if status.startswith("200") else None

    def _forward(self, environ: WSGIEnvironment) -> _Answer:
        app_iter, status, headers = run_wsgi_app(self._app, environ, buffered=True)
        return status, headers.to_wsgi_list(), b"".join(app_iter)

    def _error(self, code: str, message: str) -> _Answer:
        with self._lock:
            self.refusals[code] += 1
        status, headers, body = _json_answer("400 Bad Request", {"__type": code, "message": message})
        return status, [*headers, ("x-amzn-ErrorType", code), ("x-amzn-RequestId", str(uuid.uuid4()))], body

    # --- private paths ---

    def _control(self, environ: WSGIEnvironment, path: str) -> _Answer:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        try:
            request = json.loads(_read_body(environ) or b"{}") if method == "PUT" else {}
            with self._lock:
                if path == IMPORT_RATE_PATH and method in ("GET", "PUT"):
                    if method == "PUT":
                        self._rate = _positive(request.get("per_second"))
                        self._buckets.clear()  # full again, at the new rate
                    return _control_answer("200 OK", {"per_second": self._rate})
                if path == IN_USE_PATH and method == "PUT":
                    users = request.get("in_use_by")
                    if not isinstance(request.get("arn"), str) or not isinstance(users, list):
                        raise ValueError('expected {"arn": "...", "in_use_by": ["..."]}')
                    self._in_use[request["arn"]] = tuple(str(user) for user in users)
                    return _control_answer("200 OK", {"arn": request["arn"], "in_use_by": users})
                if path == QUOTAS_PATH and method in ("GET", "PUT"):
                    if method == "PUT":
                        self._quotas = {name: _quota(request.get(name)) for name in self._quotas}
                    return _control_answer("200 OK", self._quota_usage())
                if path == REFUSALS_PATH and method in ("GET", "DELETE"):
                    counts = dict(self.refusals)
                    if method == "DELETE":
                        self.refusals.clear()
                    return _control_answer("200 OK", counts)
        except (ValueError, TypeError) as error:
            return _control_answer("400 Bad Request", {"error": str(error)})
        return _control_answer("404 Not Found", {"error": f"nothing at {method} {path}"})

    def _quota_usage(self) -> dict[str, Any]:
        keys = sorted({*self._held, *self._imports})
        usage = [
            {"account": a, "region": r, "imported": self._held[a, r], "imports_in_year": self._imports_in_year((a, r))}
            for a, r in keys
        ]
        return {**self._quotas, "usage": usage}


def _quota(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a quota is a whole number of certificates or null, got {value!r}")
    return value


def _positive(value: Any) -> float:
    rate = float(value)
    if not rate > 0:
        raise ValueError(f"per_second must be a positive number, got {value!r}")
    return rate


def _json_answer(status: str, value: Any, content_type: str = _JSON) -> _Answer:
    body = json.dumps(value).encode()
    return status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], body


def _control_answer(status: str, value: Any) -> _Answer:
    return _json_answer(status, value, "application/json")


def _read_body(environ: WSGIEnvironment) -> bytes:
    """Read the request body and put it back for the app behind."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class AcmControl:
    """Client of StrictAcm's private paths, usable from any process (LocalStack's methods use it)."""

    def __init__(self, endpoint_url: str, *, timeout: float = 5.0) -> None:
        self.endpoint_url = endpoint_url
        self.timeout = timeout

    def import_rate(self) -> float:
        return float(self._request("GET", IMPORT_RATE_PATH)["per_second"])

    def set_import_rate(self, per_second: float) -> None:
        """ImportCertificate calls allowed per second per account and region from now on; the buckets refill."""
        self._request("PUT", IMPORT_RATE_PATH, {"per_second": per_second})

    def mark_in_use(self, arn: str, in_use_by: Iterable[str]) -> None:
        """DescribeCertificate's InUseBy for the ARN from now on (an empty list: nothing uses it)."""
        self._request("PUT", IN_USE_PATH, {"arn": arn, "in_use_by": list(in_use_by)})

    def quotas(self) -> dict[str, Any]:
        """`{"imported": N, "imported_per_year": M, "usage": [{"account", "region", "imported",
        "imports_in_year"}]}`; None for a quota not set."""
        answer: dict[str, Any] = self._request("GET", QUOTAS_PATH)
        return answer

    def set_quotas(self, *, imported: int | None = None, imported_per_year: int | None = None) -> None:
        """ACM's quotas per account and region from now on (None: none): certificates held, imports in 365 days."""
        self._request("PUT", QUOTAS_PATH, {"imported": imported, "imported_per_year": imported_per_year})

    def usage(self, region: str, account: str) -> tuple[int, int]:
        """(certificates held, imports in 365 days) of the account and region, as the quotas count them."""
        for entry in self.quotas()["usage"]:
            if entry["account"] == account and entry["region"] == region:
                return int(entry["imported"]), int(entry["imports_in_year"])
        return 0, 0

    def refusals(self) -> dict[str, int]:
        """Errors StrictAcm answered since start or the last reset, by code: `{"ThrottlingException": 2}`."""
        counts: dict[str, int] = self._request("GET", REFUSALS_PATH)
        return counts

    def reset_refusals(self) -> None:
        self._request("DELETE", REFUSALS_PATH)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, self.endpoint_url + path, json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise StackError(f"{self.endpoint_url}: {method} {path} gave {response.status_code}: {response.text}")
        return response.json()

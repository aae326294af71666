"""The local stack: moto (AWS), our DNS server (Route53 as DNS) and pebble (ACME), all on 127.0.0.1.

Shared by the integration tests, the demo and the benchmarks. `with LocalStack.start(workdir) as stack: ...`
moto counts every AWS call made to it, from any process, and can hold Route53 changes PENDING for a while as
Route53 does (`route53_delay_seconds`), with the DNS server serving the old records meanwhile.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import boto3
from dnslib import DNSRecord  # type: ignore[import-untyped]

from tests.stack.dns_server import set_servfail
from tests.stack.moto_server import ACCOUNT_HEADER, MotoControl, MotoServer, start_moto
from tests.stack.pebble import Pebble, start_pebble
from tests.stack.processes import Process, StackError, free_port, wait_until_ready
from tests.stack.route53_emulation import normalize
from tests.stack.strict import StrictControl
from tests.stack.strict_acm import AcmControl
from tests.stack.strict_rates import RatesControl
from tests.stack.table import DEFAULT_TEMPLATE, create_table
from tests.stack.tls import TlsFiles, write_localhost_tls

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TableDescriptionTypeDef
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["LocalStack", "Pebble", "StackError"]

DUMMY_CREDENTIAL = "testing"
STARTUP_ATTEMPTS = 3
_T = TypeVar("_T")


class LocalStack:
    """Handles on the running servers; stops them all by pid on exit. Build it with `LocalStack.start(...)`."""

    def __init__(
        self,
        workdir: Path,
        *,
        table_name: str,
        region: str,
        certificate_validity_seconds: int | None = None,
        eab_keys: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.table_name = table_name
        self.region = region
        self.certificate_validity_seconds = certificate_validity_seconds
        self.eab_keys = eab_keys
        self.startup_seconds: float | None = None
        self._processes: dict[str, Process] = {}
        self._moto: MotoServer | None = None
        self._dns_port: int | None = None
        self._pebble: Pebble | None = None
        self._tls: TlsFiles | None = None

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        pebble_env: dict[str, str] | None = None,
        certificate_validity_seconds: int | None = None,
        eab_keys: dict[str, str] | None = None,
        table_name: str = "certificates",
        region: str = "us-east-1",
        route53_delay_seconds: float = 0.0,
    ) -> LocalStack:
        """Start moto with the DNS server in its process, then pebble; whatever started is stopped if a later step
        fails.

        `route53_delay_seconds` > 0 makes each Route53 change PENDING for that long, with a change id of its own,
        and the DNS server serve the names it touched as they were before it until then (0: INSYNC at once).

        A free port can be taken by another process between our pick and the server's bind, so a failed
        start is tried again, up to three times, each in a fresh folder whose logs are kept.
        """
        began = time.monotonic()
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            folder = workdir if attempt == 1 else workdir / f"retry-{attempt}"
            stack = cls(
                folder,
                table_name=table_name,
                region=region,
                certificate_validity_seconds=certificate_validity_seconds,
                eab_keys=eab_keys,
            )
            folder.mkdir(parents=True, exist_ok=True)
            try:
                stack._tls = write_localhost_tls(folder / "tls")
                dns_port = free_port(udp_too=True)
                stack._moto = start_moto(folder, route53_delay_seconds=route53_delay_seconds, dns_port=dns_port)
                stack._track(stack._moto.process)
                stack._dns_port = dns_port
                wait_until_ready(stack._moto.process, functools.partial(_dns_answers, dns_port))
                stack._start_pebble(pebble_env)
            except StackError as failed:
                stack.stop()
                if attempt == STARTUP_ATTEMPTS:
                    raise
                print(f"local stack: start attempt {attempt} failed, trying again: {failed}", file=sys.stderr)
                continue
            except BaseException:
                stack.stop()
                raise
            stack.startup_seconds = time.monotonic() - began
            return stack
        raise AssertionError("unreachable")

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process by pid (pebble first, moto last); safe to call twice."""
        for name in reversed(list(self._processes)):
            self._processes.pop(name).stop()
        self._write_pids()

    # --- handles -------------------------------------------------------------------------------

    @property
    def moto_endpoint(self) -> str:
        return self._require(self._moto, "moto").endpoint_url

    @property
    def dns_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self._require(self._dns_port, "the DNS server"))

    @property
    def pebble(self) -> Pebble:
        return self._require(self._pebble, "pebble")

    @property
    def tls(self) -> TlsFiles:
        """pebble's HTTPS listener certificate and key, and the CA that signed them."""
        return self._require(self._tls, "TLS files")

    @property
    def ca_bundle(self) -> Path:
        """The CA that signed pebble's HTTPS certificate (not pebble's issuing root)."""
        return self.tls.ca

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process (or os.environ) that should talk to this stack."""
        return {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "ACME_DIRECTORY_URL": self.pebble.directory_url,
            "TABLE_NAME": self.table_name,
            # As the template deploys it: challenge names are looked up over DNS first, here at our DNS server.
            "CHALLENGE_LOOKUP": "dns",
            "PROPAGATION_CHECK_NAMESERVERS": "{}:{}".format(*self.dns_address),
        }

    @overload
    def client(self, service: Literal["route53"], account: str | None = ...) -> Route53Client: ...
    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["acm"]) -> ACMClient: ...
    @overload
    def client(self, service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
    @overload
    def client(self, service: str, account: str | None = ...) -> Any: ...
    def client(self, service: str, account: str | None = None) -> Any:
        """A boto3 client pointed at moto, with credentials and region set explicitly (not from the environment);
        with `account`, acting in that moto account (another AWS account) instead of the default one."""
        made = boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.moto_endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIAL,
            aws_secret_access_key=DUMMY_CREDENTIAL,
        )
        if account is not None:

            def in_account(request: Any, **_: Any) -> None:
                request.headers[ACCOUNT_HEADER] = account

            made.meta.events.register("before-sign", in_account)
        return made

    # --- fixtures in moto ----------------------------------------------------------------------

    def create_hosted_zone(self, name: str, account: str | None = None) -> str:
        """Create a public hosted zone (in `account`, else moto's default one); returns its id without the
        `/hostedzone/` prefix."""
        response = self.client("route53", account).create_hosted_zone(
            Name=normalize(name), CallerReference=str(uuid.uuid4())
        )
        return str(response["HostedZone"]["Id"]).removeprefix("/hostedzone/")

    def create_zone_role(self, account: str, name: str, external_id: str | None = None) -> str:
        """A role in `account` that the function may assume (AssumeRole is refused for roles that do not exist,
        and without the external id its trust policy requires: see moto_server.StackApp._assume_role)."""
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole",
        }
        if external_id is not None:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        role = self.client("iam", account).create_role(RoleName=name, AssumeRolePolicyDocument=policy)
        return str(role["Role"]["Arn"])

    def create_table(self, *, template_path: Path = DEFAULT_TEMPLATE) -> TableDescriptionTypeDef:
        """The table as template.yaml defines it, named `table_name`."""
        return create_table(self.client("dynamodb"), self.table_name, template_path=template_path)

    # --- emulation and counters in moto ----------------------------------------------------------

    @property
    def route53_delay_seconds(self) -> float:
        """The propagation delay new Route53 changes get (see `start`)."""
        return self._control().route53_delay_seconds()

    def set_route53_delay(self, seconds: float) -> None:
        """Change the propagation delay on the running stack; changes already pending keep theirs."""
        self._control().set_route53_delay(seconds)

    def aws_calls(self) -> dict[str, dict[str, int]]:
        """AWS calls moto received since start or `reset_aws_calls`, from every process, by service and operation:
        `{"route53": {"ChangeResourceRecordSets": 2, "GetChange": 5}, "dynamodb": {"Query": 1}}`.

        Services are named as requests sign them (boto3's names for Route53, DynamoDB, ACM, Secrets Manager).
        """
        return self._control().aws_calls()

    def dynamodb_items_read(self) -> int:
        """Items DynamoDB answers handed back since start or `reset_aws_calls` (Scan/Query Items, GetItem Item,
        BatchGetItem Responses, a write's returned Attributes)."""
        return self._control().dynamodb_items_read()

    def reset_aws_calls(self) -> None:
        """Zero the call counters and items read."""
        self._control().reset_aws_calls()

    def fail_secret(
        self, secret: str, code: str, message: str, operations: Sequence[str] = (), stage: str | None = None
    ) -> None:
        """From now on, the calls `operations` (every call when empty) on the secret named `secret` (on its version
        `stage` only, when given: AWSCURRENT, AWSPENDING) answer the AWS error `code` with `message`, from any
        process: a real fault, as AccessDeniedException or KMS's DecryptionFailure would come from AWS
        (tests/stack/strict.py). Until `clear_secret_faults`."""
        StrictControl(self.moto_endpoint).fail_secret(secret, code, message, operations, stage)

    def clear_secret_faults(self) -> None:
        StrictControl(self.moto_endpoint).clear_secret_faults()

    # --- ACM as AWS enforces it (strict_acm.py) -----------------------------------------------------------------

    @property
    def acm(self) -> AcmControl:
        """ImportCertificate's rate (ACM's quota by default; raise it only together with the renewer's
        ACM_IMPORTS_PER_SECOND), the ARNs that "are in use", and the errors ACM's rules answered."""
        return AcmControl(self.moto_endpoint)

    # --- request rates as AWS throttles them (strict_rates.py) ----------------------------------------------------

    @property
    def rates(self) -> RatesControl:
        """Route53's and Secrets Manager's write rates per account (AWS's from the start; the integration suite
        turns them off and dedicated tests on), and how many requests were throttled."""
        return RatesControl(self.moto_endpoint)

    def set_dns_servfail(self, names: Iterable[str]) -> None:
        """Make our DNS server answer SERVFAIL for `names` and every name below them (a broken delegation),
        from the next query on; an empty list restores normal answers."""
        set_servfail(self.dns_address, names)

    # --- pebble --------------------------------------------------------------------------------

    def restart_pebble(self, *, pebble_env: dict[str, str] | None = None) -> Pebble:
        """A new pebble (new root, no accounts) with `pebble_env` over the defaults (None: the defaults only).

        The DNS server, certificate validity and EAB keys stay as given to `start`.
        """
        if (old := self._processes.pop("pebble", None)) is not None:
            old.stop()
        return self._start_pebble(pebble_env)

    # --- internals -----------------------------------------------------------------------------

    def _control(self) -> MotoControl:
        return self._require(self._moto, "moto").control

    def _start_pebble(self, pebble_env: dict[str, str] | None) -> Pebble:
        self._pebble = start_pebble(
            self.workdir,
            tls=self.tls,
            dns_address=self.dns_address,
            env=pebble_env,
            certificate_validity_seconds=self.certificate_validity_seconds,
            eab_keys=self.eab_keys,
        )
        self._track(self._pebble.process)
        return self._pebble

    def _track(self, process: Process) -> None:
        self._processes[process.name] = process
        self._write_pids()

    def _write_pids(self) -> None:
        """`name pid` per line, so a crashed test run can be cleaned up with processes.stop_pid."""
        lines = [f"{name} {process.pid}\n" for name, process in self._processes.items()]
        (self.workdir / "pids").write_text("".join(lines))

    @staticmethod
    def _require(value: _T | None, what: str) -> _T:
        if value is None:
            raise StackError(f"{what} is not running")
        return value


def _dns_answers(port: int) -> bool:
    query = DNSRecord.question("ready.invalid.")
    try:
        for tcp in (False, True):
            query.send("127.0.0.1", port, tcp=tcp, timeout=0.5)
    except OSError:
        return False
    return True

"""Mass renewal (issue #16): N certificates due at once, one planner run, K worker processes on moto's SQS queue, with
AWS's request limits emulated by the local stack. `python -m bench.mass_renewal --n 500 --delay 5 --workers 5
--zones 50 [--no-acm] [--delegated]`.

Setup, untimed and fast (emulated limits off, the renewer's rates raised, no DNS delay): N apex + wildcard
certificates spread over the zones (each name's _acme-challenge CNAME-delegated into one validation zone with
--delegated) are issued through the same planner and workers. Then every certificate is made due at once (its status
item's issued fingerprint outdated and due_at now, as an operator's edit leaves it: `tests.integration.invariants.
make_due`), Route53 changes stay PENDING for D seconds, Route53 (10 requests/s, burst 50, per account), Secrets
Manager writes (50/s) and ACM ImportCertificate (1/s per region) throttle as AWS does, and one planner run and K
worker processes (each WORKER_CONCURRENCY=K, so each paces itself to 1/K of every budget) are timed from the
planner's start to the last worker's exit.

Prints markdown tables on stdout (figures, the bound of each emulated limit, AWS calls by operation) and a check
line; progress on stderr. Figures only: nothing here asserts on time. The exit status is 1 when the check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from acme_renewer.settings import (
    ACM_IMPORTS_PER_SECOND,
    ROUTE53_REQUESTS_PER_SECOND,
    SECRETS_WRITE_OPERATIONS,
    SECRETS_WRITES_PER_SECOND,
)
from bench.measure import BenchRunError, ChildRun, child_env, run_child
from bench.names import certificate_names, domains, zone_names
from bench.report import machine_line
from tests.integration.invariants import make_due
from tests.stack import LocalStack
from tests.stack.pebble import Pebble, start_pebble
from tests.stack.strict_acm import IMPORT_QUOTA_PER_SECOND
from tests.stack.strict_rates import AWS_RATES, ROUTE53, SECRETS_WRITES
from tests.stack.table import REPO_ROOT

LIFETIME = timedelta(days=90)
VALIDATION_ZONE = "validation.test"
# Rates of the untimed setup: the emulated limits are off and the renewer paces itself to these instead.
SETUP_RATE = "1000"
SETUP_RETRIES = 5
# pebble 2.4 stopped answering (ReadTimeout after 30 s, nothing more in its log) under 5 workers of 8 ACME threads.
SETUP_ACME_WORKERS = 2
# Above the worker's Lambda timeout, as the template's queue is; a message whose worker died comes back after it.
VISIBILITY_SECONDS = 960


def _burst(budget: str) -> float:
    rate = AWS_RATES[budget]
    return rate.burst if rate is not None else 0.0


# Route53's and Secrets Manager's buckets start full: the first `burst` requests cost no time.
ROUTE53_BURST = _burst(ROUTE53)
SECRETS_BURST = _burst(SECRETS_WRITES)
# AWS's quota counts these (settings.SECRETS_WRITE_OPERATIONS adds CreateSecret, which the renewer paces with them).
SECRETS_QUOTA_OPERATIONS = frozenset(SECRETS_WRITE_OPERATIONS) - {"CreateSecret"}
# Calls of the harness standing in for Lambda's event source mapping, not the renewer's.
HARNESS_CALLS = {
    ("sqs", "ReceiveMessage"),
    ("sqs", "DeleteMessage"),
    ("sqs", "GetQueueAttributes"),
    ("sqs", "ChangeMessageVisibility"),
}
# pebble logs every request it handles; its newOrder requests are counted there. (The counting ACME proxy of
# bench/run.py, one Python process in front of pebble, timed out under K workers of ACME_WORKERS threads each.)
NEW_ORDER_LOG_LINE = b"POST /order-plz "


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} mass_renewal: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Scenario:
    n: int
    workers: int
    delay_seconds: float
    zones: int
    acm: bool
    delegated: bool
    batch_size: int
    acme_workers: int
    cas: int = 1

    @property
    def acm_regions(self) -> int:
        return 1 if self.acm else 0


@dataclass(frozen=True)
class Phase:
    """One planner run and the K workers that emptied the queue after it."""

    wall_seconds: float
    planner: ChildRun
    planned: dict[str, Any]
    workers: list[ChildRun]
    worker_results: list[dict[str, Any]]

    @property
    def batches(self) -> int:
        return int(self.planned.get("queued", {}).get("messages", 0))

    @property
    def failed_messages(self) -> int:
        return sum(int(r.get("failed", 0)) for r in self.worker_results)


@dataclass(frozen=True)
class Bound:
    limit: str
    rate: str
    work: str
    seconds: float


@dataclass(frozen=True)
class Check:
    issued: int
    renewed: int  # serial changed since the setup
    orders: int
    txt_left: int
    pending_txt: int
    errors: list[str] = field(default_factory=list)

    def ok(self, scenario: Scenario, phase: Phase) -> bool:
        n = scenario.n
        return (
            self.issued == n
            and self.renewed == n
            and self.orders == n
            and self.txt_left == 0
            and self.pending_txt == 0
            and phase.failed_messages == 0
            and all(run.returncode == 0 for run in [phase.planner, *phase.workers])
        )


class Fleet:
    def __init__(self, stack: LocalStack, scenario: Scenario, workdir: Path) -> None:
        self.stack = stack
        self.scenario = scenario
        # The stack's pebble and the --cas - 1 others: each zone's certificates order from one of them.
        self.pebbles: list[Pebble] = [stack.pebble]
        self.workdir = workdir
        self.zones = zone_names(scenario.zones)
        self.names = certificate_names("mass", scenario.n, self.zones)
        self.zone_ids: dict[str, str] = {}
        self.queue_url = ""

    # --- setup (untimed) ----------------------------------------------------------------------

    def start_cas(self) -> None:
        """The other pebbles, validating against the same DNS server, serving HTTPS with the stack's TLS files."""
        for index in range(1, self.scenario.cas):
            self.pebbles.append(
                start_pebble(
                    self.stack.workdir / f"ca{index}",
                    tls=self.stack.tls,
                    dns_address=self.stack.dns_address,
                    certificate_validity_seconds=int(LIFETIME.total_seconds()),
                )
            )

    def stop_cas(self) -> None:
        for pebble in self.pebbles[1:]:
            pebble.stop()

    def directory_of(self, name: str) -> str | None:
        """The acme_directory of a name's item: its zone's CA (None: the function's, the stack's pebble)."""
        index = self.zones.index(name.split(".", 1)[1]) % len(self.pebbles)
        return None if index == 0 else self.pebbles[index].directory_url

    def new_orders(self) -> list[int]:
        """newOrder requests each pebble has logged so far."""
        counts = []
        for pebble in self.pebbles:
            with pebble.process.log_path.open("rb") as log:
                counts.append(sum(1 for line in log if NEW_ORDER_LOG_LINE in line))
        return counts

    def setup(self) -> None:
        self.start_cas()
        limits_off(self.stack)
        self.stack.set_route53_delay(0)
        for zone in self.zones:
            self.zone_ids[zone] = self.stack.create_hosted_zone(zone)
        if self.scenario.delegated:
            self.zone_ids[VALIDATION_ZONE] = self.stack.create_hosted_zone(VALIDATION_ZONE)
            self._delegate()
        self.stack.create_table()
        self._put_items()
        self.queue_url = self.stack.client("sqs").create_queue(
            QueueName="renewals", Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
        )["QueueUrl"]
        progress(f"issuing {self.scenario.n} certificates (untimed, limits off)")
        fast = {
            "ROUTE53_REQUESTS_PER_SECOND": SETUP_RATE,
            "ACM_IMPORTS_PER_SECOND": SETUP_RATE,
            "SECRETS_WRITES_PER_SECOND": SETUP_RATE,
            "ACME_WORKERS": str(min(SETUP_ACME_WORKERS, self.scenario.acme_workers)),
        }
        # New items are not in the due index yet: the daily full run sees them (and renews one batch in place).
        phase = self.run_phase("issue", "full", fast)
        statuses = self.statuses()
        for attempt in range(1, SETUP_RETRIES + 1):
            failed = [i for i in self.names if statuses.get(i, {}).get("status") != "ISSUED"]
            if not failed:
                break
            # The local stack's own capacity (one Python DNS server, one moto) can make pebble's DNS lookups time
            # out under load; the setup is not what is measured, so those are issued again, without backoff.
            progress(f"setup: {len(failed)} not issued, again (attempt {attempt}); first: {_first_error(statuses)}")
            for item_id in failed:
                self._due_now(item_id)
            phase = self.run_phase(f"issue-retry{attempt}", "due", fast)
            statuses = self.statuses()
        issued = sum(1 for s in statuses.values() if s.get("status") == "ISSUED")
        if issued != self.scenario.n:
            errors = [s.get("last_error", "?") for s in statuses.values() if s.get("status") != "ISSUED"]
            first = f"; first error: {errors[0]}" if errors else ""
            raise BenchRunError(
                f"setup issued {issued} of {self.scenario.n} in {phase.wall_seconds:.0f} s{first};"
                f" logs in {self.workdir}"
            )
        progress(f"setup issued {issued} in {phase.wall_seconds:.0f} s")

    def _due_now(self, item_id: str) -> None:
        self.stack.client("dynamodb").update_item(
            TableName=self.stack.table_name,
            Key={"id": {"S": f"{item_id}#status"}},
            UpdateExpression="SET due_at = :now REMOVE next_attempt_at",
            ExpressionAttributeValues={":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}},
        )

    def _delegate(self) -> None:
        """Each name's _acme-challenge, in its own zone, a CNAME into the one validation zone."""
        by_zone: dict[str, list[Any]] = {}
        for name in self.names:
            zone = name.split(".", 1)[1]
            target = f"_acme-challenge.{name.replace('.', '-')}.{VALIDATION_ZONE}."
            record_set = {
                "Name": f"_acme-challenge.{name}.",
                "Type": "CNAME",
                "TTL": 60,
                "ResourceRecords": [{"Value": target}],
            }
            by_zone.setdefault(zone, []).append({"Action": "CREATE", "ResourceRecordSet": record_set})
        route53 = self.stack.client("route53")
        for zone, changes in by_zone.items():
            for start in range(0, len(changes), 500):
                route53.change_resource_record_sets(
                    HostedZoneId=self.zone_ids[zone], ChangeBatch={"Changes": changes[start : start + 500]}
                )

    def _put_items(self) -> None:
        serializer = TypeSerializer()
        requests = []
        for name in self.names:
            item: dict[str, Any] = {"id": name, "domains": domains(name)}
            if (directory := self.directory_of(name)) is not None:
                item["acme_directory"] = directory
            if not self.scenario.acm:
                item["acm_regions"] = []
            requests.append({"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}})
        dynamodb = self.stack.client("dynamodb")
        for start in range(0, len(requests), 25):
            pending: Any = {self.stack.table_name: requests[start : start + 25]}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None

    # --- the timed mass renewal ---------------------------------------------------------------

    def renew(self) -> tuple[Phase, dict[str, dict[str, int]], dict[str, Any], Check, tuple[float, ...]]:
        for name in self.names:
            make_due(self.stack, self.stack.table_name, name)
        before = {item_id: s.get("serial") for item_id, s in self.statuses().items()}
        self.stack.set_route53_delay(self.scenario.delay_seconds)
        for budget, rate in AWS_RATES.items():
            self.stack.rates.set_rate(budget, rate)
        self.stack.acm.set_import_rate(IMPORT_QUOTA_PER_SECOND)
        self.stack.rates.reset_throttled()
        self.stack.acm.reset_refusals()
        self.stack.reset_aws_calls()
        before_orders = self.new_orders()
        progress(f"renewing {self.scenario.n} due at once (timed, AWS's limits on)")
        phase = self.run_phase("renew", "due", {})
        load = os.getloadavg()
        calls = self.stack.aws_calls()
        throttled = {"route53/secrets": self.stack.rates.throttled(), "acm": self.stack.acm.refusals()}
        limits_off(self.stack)
        orders = sum(after - before for after, before in zip(self.new_orders(), before_orders, strict=True))
        statuses = self.statuses()
        check = Check(
            issued=sum(1 for s in statuses.values() if s.get("status") == "ISSUED"),
            renewed=sum(1 for i, s in statuses.items() if s.get("serial") and s.get("serial") != before.get(i)),
            orders=orders,
            txt_left=self.txt_left(),
            pending_txt=sum(1 for s in statuses.values() if s.get("pending_txt")),
            errors=sorted({str(s["last_error"]) for s in statuses.values() if s.get("last_error")})[:3],
        )
        return phase, calls, throttled, check, load

    def run_phase(self, label: str, scan: str, extra_env: dict[str, str]) -> Phase:
        settings = {
            "TABLE_NAME": self.stack.table_name,
            "ACME_WORKERS": str(self.scenario.acme_workers),
            # This worktree's package first: the venv's editable install may point at another checkout.
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "acme_renewer"), str(REPO_ROOT)]),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_NAMESPACE": "AcmeRenewerBench",
            "RENEWAL_QUEUE_URL": self.queue_url,
            "WORKER_CONCURRENCY": str(self.scenario.workers),
            "BATCH_SIZE": str(self.scenario.batch_size),
        }
        env = child_env(self.stack, **(settings | extra_env))
        folder = self.workdir / label
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        planner = run_child(
            [sys.executable, "-m", "bench.renew_once", "--out", str(folder / "planner.json"), "--scan", scan],
            env=env,
            log_path=folder / "planner.log",
            cwd=REPO_ROOT,
        )
        if planner.returncode != 0 or not (folder / "planner.json").exists():
            raise BenchRunError(f"the planner ({scan}) exited {planner.returncode}; see {planner.log_path}")
        planned: dict[str, Any] = json.loads((folder / "planner.json").read_text())["report"]
        progress(f"  planner: {planned.get('queued')} in {planner.wall_seconds:.1f} s")

        def worker(index: int) -> ChildRun:
            out = folder / f"worker{index}.json"
            argv = [sys.executable, "-m", "bench.queue_worker", "--queue-url", self.queue_url, "--out", str(out)]
            return run_child(argv, env=env, log_path=folder / f"worker{index}.log", cwd=REPO_ROOT)

        with ThreadPoolExecutor(self.scenario.workers) as pool:
            workers = list(pool.map(worker, range(self.scenario.workers)))
        wall = time.monotonic() - started
        results = []
        for index, run in enumerate(workers):
            out = folder / f"worker{index}.json"
            results.append(json.loads(out.read_text()) if out.exists() else {"failed": 1, "crashed": run.returncode})
        return Phase(wall, planner, planned, workers, results)

    # --- reading the outcome ------------------------------------------------------------------

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Certificate id -> its status item's status, serial, pending_txt and last_error."""
        paginator = self.stack.client("dynamodb").get_paginator("scan")
        pages = paginator.paginate(TableName=self.stack.table_name, ConsistentRead=True)
        found = {}
        for page in pages:
            for item in page["Items"]:
                item_id = item["id"]["S"]
                if item_id.endswith("#status"):
                    found[item_id.removesuffix("#status")] = {
                        key: next(iter(value.values()))
                        for key, value in item.items()
                        if key in ("status", "serial", "pending_txt", "last_error")
                    }
        return found

    def txt_left(self) -> int:
        route53 = self.stack.client("route53")
        paginator = route53.get_paginator("list_resource_record_sets")
        return sum(
            1
            for zone_id in self.zone_ids.values()
            for page in paginator.paginate(HostedZoneId=zone_id)
            for record_set in page["ResourceRecordSets"]
            if record_set["Type"] == "TXT"
        )


def _first_error(statuses: dict[str, dict[str, Any]]) -> str:
    return next((str(s["last_error"]) for s in statuses.values() if s.get("last_error")), "-")


def limits_off(stack: LocalStack) -> None:
    for budget in AWS_RATES:
        stack.rates.set_rate(budget, None)
    stack.acm.set_import_rate(float(SETUP_RATE))


def bounds(scenario: Scenario, phase: Phase, calls: dict[str, dict[str, int]], renewed: int) -> list[Bound]:
    """The least time each emulated limit allows for the work the run did: the measured calls, and for ACM one
    import per renewed certificate and region (a throttled import sent again is not more work)."""
    route53 = sum(calls.get("route53", {}).values())
    writes = sum(count for op, count in calls.get("secretsmanager", {}).items() if op in SECRETS_QUOTA_OPERATIONS)
    imports = calls.get("acm", {}).get("ImportCertificate", 0)
    waves = math.ceil(phase.batches / scenario.workers) if phase.batches else 0
    return [
        Bound(
            "ACM ImportCertificate",
            f"{ACM_IMPORTS_PER_SECOND:g}/s per region",
            f"{renewed} renewed x {scenario.acm_regions} region(s) ({imports} calls)",
            renewed * scenario.acm_regions / ACM_IMPORTS_PER_SECOND,
        ),
        Bound(
            "Route53 requests",
            f"{ROUTE53_REQUESTS_PER_SECOND:g}/s, burst {ROUTE53_BURST:g}",
            f"{route53} calls",
            max(0.0, route53 - ROUTE53_BURST) / ROUTE53_REQUESTS_PER_SECOND,
        ),
        Bound(
            "Secrets Manager writes",
            f"{SECRETS_WRITES_PER_SECOND:g}/s, burst {SECRETS_BURST:g}",
            f"{writes} calls",
            max(0.0, writes - SECRETS_BURST) / SECRETS_WRITES_PER_SECOND,
        ),
        Bound(
            "DNS waits",
            f"D = {scenario.delay_seconds:g} s per wave of {scenario.workers}",
            f"ceil({phase.batches} batches / {scenario.workers}) = {waves} wave(s) x D (+ CA validation: not counted)",
            waves * scenario.delay_seconds,
        ),
    ]


def report(
    scenario: Scenario,
    phase: Phase,
    calls: dict[str, dict[str, int]],
    throttled: dict[str, Any],
    check: Check,
    load: tuple[float, ...],
) -> str:
    n = scenario.n
    limits = bounds(scenario, phase, calls, check.renewed)
    binding = max(limits, key=lambda b: b.seconds)
    route53 = sum(calls.get("route53", {}).values())
    renewer_calls = sum(c for s, ops in calls.items() for op, c in ops.items() if (s, op) not in HARNESS_CALLS)
    peaks = [
        max(run.peak_rss_mb, float(r.get("peak_rss_mb", 0)))
        for run, r in zip(phase.workers, phase.worker_results, strict=True)
    ]
    messages = [int(r.get("messages", 0)) for r in phase.worker_results]
    header = (
        "N",
        "K",
        "ACME_WORKERS",
        "CAs",
        "D s",
        "zones",
        "ACM",
        "delegated",
        "batches",
        "wall s",
        "tightest bound s",
        "wall / bound",
        "R53 calls / cert",
        "AWS calls / cert",
        "orders / cert",
        "peak MB per worker",
        "messages per worker",
        "load avg 1/5/15",
    )
    row = (
        str(n),
        str(scenario.workers),
        str(scenario.acme_workers),
        str(scenario.cas),
        f"{scenario.delay_seconds:g}",
        str(scenario.zones),
        "on" if scenario.acm else "off (acm_regions: [])",
        "yes" if scenario.delegated else "no",
        str(phase.batches),
        f"{phase.wall_seconds:.1f}",
        f"{binding.seconds:.1f} ({binding.limit})",
        f"{phase.wall_seconds / binding.seconds:.2f}" if binding.seconds else "-",
        f"{route53 / n:.2f}",
        f"{renewer_calls / n:.2f}",
        f"{check.orders / n:.2f}",
        "/".join(f"{p:.0f}" for p in peaks),
        "/".join(map(str, messages)),
        "/".join(f"{x:.2f}" for x in load),
    )
    lines = [_line(header), _line(tuple("---" for _ in header)), _line(row), ""]
    lines += [_line(("limit (emulated at AWS's rate)", "rate", "work measured", "bound s")), _line(("---",) * 4)]
    lines += [
        _line((b.limit + (" **binds**" if b is binding else ""), b.rate, b.work, f"{b.seconds:.1f}")) for b in limits
    ]
    lines += ["", _line(("service", "operation", "calls", "per certificate")), _line(("---",) * 4)]
    for service in sorted(calls):
        for operation, count in sorted(calls[service].items(), key=lambda item: -item[1]):
            mark = " (harness: the event source mapping)" if (service, operation) in HARNESS_CALLS else ""
            if (service, operation) == ("sqs", "GetQueueAttributes"):
                mark = " (the harness, and the workers counting the busy workers)"
            lines.append(_line((service, operation + mark, str(count), f"{count / n:.2f}")))
    status = "OK" if check.ok(scenario, phase) else "FAILED"
    lines += [
        "",
        f"check: {status}: ISSUED {check.issued}/{n}, new serial {check.renewed}/{n}, orders {check.orders} "
        f"({check.orders / n:.2f} per certificate), TXT left {check.txt_left}, pending_txt {check.pending_txt}, "
        f"failed messages {phase.failed_messages}, exit codes planner {phase.planner.returncode} workers "
        f"{[r.returncode for r in phase.workers]}; throttled {throttled}"
        + (f"; errors: {check.errors}" if check.errors else ""),
        f"planner {phase.planner.wall_seconds:.1f} s, {phase.planner.peak_rss_mb:.0f} MB; seconds per message "
        + "; ".join(
            f"w{i}: " + ", ".join(f"{s:.0f}" for s in r.get("seconds_per_message", []))
            for i, r in enumerate(phase.worker_results)
        ),
        machine_line(None) + f"; {os.cpu_count()} CPUs shared with other jobs (load average after the run above)",
    ]
    return "\n".join(lines)


def _line(values: Sequence[str]) -> str:
    return "| " + " | ".join(values) + " |"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="certificates (default 50)")
    parser.add_argument("--delay", type=float, default=5.0, help="Route53 propagation delay D in seconds (default 5)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes K, each WORKER_CONCURRENCY=K")
    parser.add_argument("--zones", type=int, default=50, help="hosted zones the names are spread over (default 50)")
    parser.add_argument("--batch-size", type=int, default=100, help="BATCH_SIZE of the planner (default 100)")
    parser.add_argument(
        "--acme-workers",
        type=int,
        default=8,
        help="ACME_WORKERS, threads per worker process (default 8, the renewer's)",
    )
    parser.add_argument(
        "--cas",
        type=int,
        default=1,
        help="pebble instances the zones' certificates are spread over (default 1). pebble 2.4 deadlocks under "
        "sustained concurrent orders (a newOrder scans every authorization under its store's lock while an "
        "authorization's handler waits for that lock holding the authorization's): more, smaller CAs make it rarer",
    )
    parser.add_argument("--no-acm", action="store_true", help="acm_regions: [] on every item (the secret only)")
    parser.add_argument(
        "--delegated", action="store_true", help=f"every _acme-challenge a CNAME into {VALIDATION_ZONE}"
    )
    parser.add_argument("--workdir", type=Path, help="keep the stack's and the processes' logs here (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must not be negative")
    if min(args.n, args.workers, args.zones, args.batch_size, args.acme_workers, args.cas) < 1:
        parser.error(
            "--n, --workers, --zones, --batch-size, --acme-workers and --cas must be at least 1, --delay not negative"
        )
    if args.cas > args.zones:
        parser.error("--cas must not exceed --zones: each zone orders from one CA")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenario = Scenario(
        args.n,
        args.workers,
        args.delay,
        args.zones,
        not args.no_acm,
        args.delegated,
        args.batch_size,
        args.acme_workers,
        args.cas,
    )
    with tempfile.TemporaryDirectory(prefix="acme-renewer-mass-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        progress(f"{scenario}; logs in {workdir}")
        validity = int(LIFETIME.total_seconds())
        with LocalStack.start(workdir / "stack", certificate_validity_seconds=validity) as stack:
            fleet = Fleet(stack, scenario, workdir)
            try:
                fleet.setup()
                phase, calls, throttled, check, load = fleet.renew()
            finally:
                fleet.stop_cas()
    print(report(scenario, phase, calls, throttled, check, load), flush=True)
    if args.json:
        figures = {
            "scenario": asdict(scenario),
            "wall_seconds": phase.wall_seconds,
            "batches": phase.batches,
            "calls": calls,
            "throttled": throttled,
            "check": asdict(check),
            "load": load,
            "workers": phase.worker_results,
            "bounds": [asdict(b) for b in bounds(scenario, phase, calls, check.renewed)],
        }
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if check.ok(scenario, phase) else 1


if __name__ == "__main__":
    sys.exit(main())

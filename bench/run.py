"""Our renewal against certbot + certbot-dns-route53 on one local stack: `python -m bench.run --n 1 10 50 --delay 0 5`.

For every N, each tool first issues N certificates (apex + wildcard) untimed with no DNS delay; then, for every D,
Route53 changes are made to stay PENDING for D seconds and each tool renews all N once, timed and counted. Everything
runs on one stack started once, so all figures of one run compare. Prints a markdown table on stdout and progress on
stderr. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from bench.certbot import CertbotFleet
from bench.certbot_venv import certbot_version, ensure_certbot_venv
from bench.measure import Measurement, Meter
from bench.names import certificate_names, zone_names
from bench.ours import OursFleet
from bench.report import LEGEND, Row, machine_line, markdown_table
from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy

# A realistic lifetime (pebble's default is 5 years), as in the integration tests.
LIFETIME = timedelta(days=90)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10], help="certificates per grid point (default 1 10)")
    parser.add_argument(
        "--delay", type=float, nargs="+", default=[0.0], help="Route53 propagation delays in seconds (default 0)"
    )
    parser.add_argument("--zones", type=int, default=1, help="hosted zones the certificates are spread over")
    parser.add_argument("--skip-certbot", action="store_true", help="measure our renewal only")
    parser.add_argument("--workdir", type=Path, help="keep logs, certbot's state and results here (default: temp)")
    parser.add_argument(
        "--ours-log-level", default="WARNING", help="POWERTOOLS_LOG_LEVEL of our runs (INFO: a timeline in the logs)"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement as JSON to this file")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.n) or any(d < 0 for d in args.delay) or args.zones < 1:
        parser.error("N and --zones must be at least 1, delays not negative")
    return args


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_grid(args: argparse.Namespace, workdir: Path) -> tuple[list[Row], str | None]:
    certbot = None if args.skip_certbot else ensure_certbot_venv()
    version = certbot_version(certbot) if certbot else None
    with LocalStack.start(workdir / "stack", certificate_validity_seconds=int(LIFETIME.total_seconds())) as stack:
        zones = zone_names(args.zones)
        for zone in zones:
            stack.create_hosted_zone(zone)
        with AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls) as proxy:
            meter = Meter(stack, proxy)
            rows = []
            for n in args.n:
                stack.set_route53_delay(0)
                progress(f"N={n}: issuing {n} certificates with each tool (untimed)")
                ours = OursFleet(
                    stack,
                    proxy.directory_url,
                    certificate_names("ours", n, zones),
                    f"bench-n{n}",
                    workdir / f"ours-n{n}",
                    args.ours_log_level,
                )
                ours.setup()
                theirs = None
                if certbot is not None:
                    theirs = CertbotFleet(
                        certbot,
                        stack,
                        proxy.directory_url,
                        certificate_names("certbot", n, zones),
                        workdir / f"certbot-n{n}",
                    )
                    theirs.setup()
                for delay in args.delay:
                    stack.set_route53_delay(delay)
                    progress(f"N={n} D={delay:g}: renewing with ours")
                    mine = ours.renew(meter, delay)
                    progress(f"  ours: {_summary(mine)}")
                    other = None
                    if theirs is not None:
                        progress(f"N={n} D={delay:g}: renewing with certbot")
                        other = theirs.renew(meter, delay)
                        progress(f"  certbot: {_summary(other)}")
                    rows.append(Row(n, delay, mine, other))
    return rows, version


def _summary(measurement: Measurement) -> str:
    return (
        f"{measurement.run.wall_seconds:.1f} s, renewed {measurement.renewed}/{measurement.n}, "
        f"exit {measurement.run.returncode}, log {measurement.run.log_path}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="acme-renewer-bench-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows, version = run_grid(args, workdir)
    print(markdown_table(rows))
    print()
    print(f"{len(zone_names(args.zones))} hosted zone(s). {machine_line(version)}")
    print(LEGEND)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=2, default=str))
    return 0 if all(r.ours.succeeded and (r.certbot is None or r.certbot.succeeded) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

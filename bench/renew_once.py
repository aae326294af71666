"""One scheduled renewal run in a fresh process, as Lambda would start it: `python -m bench.renew_once --out F`.

By default the regular schedule's due-only run (`--scan full` for the daily one, which the first issuance needs:
items written with put-item are not in the due index yet).

A process of its own, so that its peak memory is the renewal's and not the bench's (the stack's clients, the ACME
proxy, earlier runs). The environment (stack endpoints, TABLE_NAME, ACME_DIRECTORY_URL) comes from the parent.
Writes {"inner_seconds", "peak_rss_mb", "report"} as JSON to F.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

# The Lambda's timeout in template.yaml: a run that would need longer defers certificates, as the real one would.
LAMBDA_TIMEOUT_SECONDS = 900.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument(
        "--scan", choices=("due", "full"), default="due", help="the schedule's due-only run (default) or the full run"
    )
    args = parser.parse_args()

    from tests.stack.handler import FakeLambdaContext, invoke_with

    context = FakeLambdaContext(timeout_seconds=LAMBDA_TIMEOUT_SECONDS)
    started = time.monotonic()
    report = invoke_with("renewal", {"source": "schedule", "scan": args.scan}, context)
    inner = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args.out.write_text(json.dumps({"inner_seconds": inner, "peak_rss_mb": peak_kib / 1024, "report": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo: start the local stack, add example.test + *.example.test, run the scheduled handler once, show the result.

Run it with `make demo` (or `python -m tests.stack.demo` in the venv).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from boto3.dynamodb.types import TypeSerializer
from cryptography import x509

from acme_renewer.inventory.table import status_id
from tests.stack import LocalStack
from tests.stack.handler import emitted_metrics, invoke

ZONE = "example.test"
ITEM = {"id": "example.test", "domains": [ZONE, f"*.{ZONE}"]}
LIFETIME_SECONDS = 90 * 86400


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the function's JSON logs")
    args = parser.parse_args()
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="acme-renewer-demo-") as workdir,
        LocalStack.start(Path(workdir), certificate_validity_seconds=LIFETIME_SECONDS) as stack,
    ):
        print(
            f"local stack up in {stack.startup_seconds:.1f} s: moto {stack.moto_endpoint}, "
            f"pebble {stack.pebble.directory_url}, DNS {stack.dns_address[0]}:{stack.dns_address[1]}"
        )
        zone_id = stack.create_hosted_zone(ZONE)
        stack.create_table()
        serializer = TypeSerializer()
        stack.client("dynamodb").put_item(
            TableName=stack.table_name, Item={k: serializer.serialize(v) for k, v in ITEM.items()}
        )
        print(f"hosted zone {ZONE} ({zone_id}); item added: {json.dumps(ITEM)}")

        os.environ.update(stack.env)
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if args.verbose else "WARNING")
        output = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(output):
            result = invoke("renewal", "schedule_full.json")
        run_seconds = time.monotonic() - started
        if args.verbose:
            print(output.getvalue(), end="")

        print(f"\nrenewal run: {run_seconds:.1f} s; renewed {result['renewed']}, failed {result['failed']}")
        # What the renewer wrote is on the certificate's status item, next to the request.
        status_key = {"id": {"S": status_id(ITEM["id"])}}
        item = stack.client("dynamodb").get_item(TableName=stack.table_name, Key=status_key)["Item"]
        if item["status"]["S"] != "ISSUED":
            print(f"FAILED: {item.get('last_error', {}).get('S')}", file=sys.stderr)
            return 1
        secret_arn = item["secret_arn"]["S"]
        secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
        leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        acm_arn = item["acm_arns"]["M"][stack.region]["S"]
        leftovers = [
            r["Name"]
            for r in stack.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            if r["Name"].startswith("_acme-challenge")
        ]
        rows = [
            ("subject", leaf.subject.rfc4514_string()),
            ("names", ", ".join(names.get_values_for_type(x509.DNSName))),
            ("issuer", leaf.issuer.rfc4514_string()),
            ("expires", f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"),
            ("serial", secret["serial"]),
            ("ACM ARN", acm_arn),
            ("secret", f"{secret_arn.split(':secret:')[1].rsplit('-', 1)[0]}  ({secret_arn})"),
            ("item status", f"{item['status']['S']}, not_after {item['not_after']['S']}"),
            ("TXT left", str(len(leftovers))),
            ("metrics", ", ".join(f"{k}={round(v[0], 2):g}" for k, v in emitted_metrics(output.getvalue()).items())),
        ]
        for label, value in rows:
            print(f"  {label:<12} {value}")
    print(f"\ndemo finished in {time.monotonic() - began:.1f} s; the local stack is stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

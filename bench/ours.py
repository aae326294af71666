"""Our side of the comparison: N items in a table of their own, issued once untimed, then renewed in one timed
scheduled run (a fresh `bench.renew_once` process)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from bench.measure import BenchRunError, ChildRun, Measurement, Meter, child_env, run_child
from bench.names import domains
from tests.integration.invariants import make_due
from tests.stack import LocalStack
from tests.stack.table import REPO_ROOT, create_table


@dataclass
class OursFleet:
    stack: LocalStack
    directory_url: str  # the ACME proxy's, so that its requests are counted
    names: list[str]
    table_name: str
    workdir: Path
    # Warnings and errors only by default: a log line per certificate is not what is being measured.
    log_level: str = "WARNING"

    def setup(self) -> None:
        """Create the table and the items, and issue every certificate (untimed, at whatever delay is set)."""
        dynamodb = self.stack.client("dynamodb")
        create_table(dynamodb, self.table_name)
        serializer = TypeSerializer()
        for name in self.names:
            item: dict[str, Any] = {"id": name, "domains": domains(name)}
            dynamodb.put_item(TableName=self.table_name, Item={k: serializer.serialize(v) for k, v in item.items()})
        result, run = self._run_once("issue", scan="full")  # new items are not in the due index yet
        issued = 0 if result is None else result["report"]["renewed"]
        if issued != len(self.names):
            reasons = [] if result is None else [c["reason"] for c in result["report"]["certificates"]]
            first = f" (first: {reasons[0]})" if reasons else ""
            raise BenchRunError(
                f"ours: initial issuance renewed {issued} of {len(self.names)}{first}; see {run.log_path}"
            )

    def renew(self, meter: Meter, delay_seconds: float) -> Measurement:
        """Make every item due, then time one scheduled run over the table.

        A certificate counts as renewed when the serial on its item changed, as certbot's count is taken from its
        files, not from what the tool says about itself.
        """
        for name in self.names:
            make_due(self.stack, self.table_name, name)
        before = self._serials()
        meter.start()
        result, run = self._run_once(f"renew-d{delay_seconds:g}", scan="due")
        counts = meter.stop()
        after = self._serials()
        renewed = sum(1 for name in self.names if name in after and after[name] != before.get(name))
        return Measurement(
            tool="ours",
            n=len(self.names),
            delay_seconds=delay_seconds,
            run=run,
            counts=counts,
            renewed=renewed,
            inner_seconds=None if result is None else float(result["inner_seconds"]),
        )

    def _serials(self) -> dict[str, str]:
        """Item id -> serial of the certificate the item says is in force."""
        paginator = self.stack.client("dynamodb").get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table_name,
            ProjectionExpression="#id, #serial",
            ExpressionAttributeNames={"#id": "id", "#serial": "serial"},
            ConsistentRead=True,
        )
        return {item["id"]["S"]: item["serial"]["S"] for page in pages for item in page["Items"] if "serial" in item}

    def _run_once(self, label: str, *, scan: str) -> tuple[dict[str, Any] | None, ChildRun]:
        """The child's result (None if it crashed before writing one: its log says why) and how it ran."""
        out = self.workdir / f"{label}.json"
        env = child_env(
            self.stack,
            TABLE_NAME=self.table_name,
            ACME_DIRECTORY_URL=self.directory_url,
            PYTHONPATH=str(REPO_ROOT),
            POWERTOOLS_LOG_LEVEL=self.log_level,
        )
        run = run_child(
            [sys.executable, "-m", "bench.renew_once", "--out", str(out), "--scan", scan],
            env=env,
            log_path=self.workdir / f"{label}.log",
            cwd=REPO_ROOT,
        )
        if run.returncode != 0 or not out.exists():
            return None, run
        result: dict[str, Any] = json.loads(out.read_text())
        return result, run

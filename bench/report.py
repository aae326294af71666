"""The bench's output: one markdown row per (N, D), and a line saying on what machine and when."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from bench.measure import Counts, Measurement

CHANGE = "ChangeResourceRecordSets"
GET_CHANGE = "GetChange"

HEADER = (
    "N",
    "D s",
    "ours s",
    "certbot s",
    "certbot/ours",
    "ours R53 change/get/other",
    "certbot R53 change/get/other",
    "ACME req ours",
    "ACME req certbot",
    "DDB items read ours",
    "peak MB ours",
    "peak MB certbot",
    "renewed ours/certbot",
)


@dataclass(frozen=True)
class Row:
    n: int
    delay_seconds: float
    ours: Measurement
    certbot: Measurement | None


def route53_cell(counts: Counts) -> str:
    """`change/get/other`: the writes, the propagation polls, and everything else (zone lookups, reads)."""
    return f"{counts.route53_op(CHANGE)}/{counts.route53_op(GET_CHANGE)}/{counts.route53_other(CHANGE, GET_CHANGE)}"


def seconds_cell(measurement: Measurement | None) -> str:
    if measurement is None:
        return "-"
    text = f"{measurement.run.wall_seconds:.1f}"
    if measurement.inner_seconds is not None:
        text += f" ({measurement.inner_seconds:.1f})"
    return text if measurement.succeeded else text + " FAILED"


def ratio_cell(row: Row) -> str:
    """How many times longer certbot took; only when both renewed everything, else the ratio means nothing."""
    if row.certbot is None or not (row.ours.succeeded and row.certbot.succeeded):
        return "-"
    return f"{row.certbot.run.wall_seconds / row.ours.run.wall_seconds:.1f}x"


def cells(row: Row) -> tuple[str, ...]:
    ours, certbot = row.ours, row.certbot
    return (
        str(row.n),
        f"{row.delay_seconds:g}",
        seconds_cell(ours),
        seconds_cell(certbot),
        ratio_cell(row),
        route53_cell(ours.counts),
        route53_cell(certbot.counts) if certbot else "-",
        str(ours.counts.acme_requests),
        str(certbot.counts.acme_requests) if certbot else "-",
        str(ours.counts.dynamodb_items_read),
        f"{ours.run.peak_rss_mb:.0f}",
        f"{certbot.run.peak_rss_mb:.0f}" if certbot else "-",
        f"{ours.renewed}/{certbot.renewed if certbot else '-'}",
    )


def markdown_table(rows: list[Row]) -> str:
    lines = [_line(HEADER), _line(tuple("---" for _ in HEADER))]
    lines += [_line(cells(row)) for row in rows]
    return "\n".join(lines)


def _line(values: tuple[str, ...]) -> str:
    return "| " + " | ".join(values) + " |"


def machine_line(certbot_version: str | None) -> str:
    """CPU, cores, Python, the tools' versions and the date: figures mean little without them."""
    parts = [
        f"CPU {_cpu_model()}",
        f"{os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        f"moto {metadata.version('moto')}",
        f"pebble {_debian_version('pebble')}",
    ]
    if certbot_version:
        parts.append(certbot_version)
    parts.append(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return "; ".join(parts)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _debian_version(package: str) -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except OSError:
        return "?"
    return done.stdout.strip() or "?"


LEGEND = """\
Wall times are whole processes (interpreter start included); ours in parentheses is the handler call alone.
R53 change/get/other: ChangeResourceRecordSets / GetChange / every other Route53 call, counted by moto.
ACME req: HTTPS requests that reached pebble through the counting proxy. Peak MB: the process's max RSS (wait4).
Both tools renew N existing certificates (issued untimed beforehand), apex + wildcard each; D: Route53 changes
stay PENDING for D seconds and pebble's DNS sees only INSYNC data."""

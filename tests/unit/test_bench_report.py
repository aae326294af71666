"""The bench's bookkeeping: names per tool and zone, the table's cells, and a child's own exit code and memory."""

import sys
from pathlib import Path

from bench.measure import ChildRun, Counts, Measurement, run_child
from bench.names import certificate_names, domains, zone_names
from bench.report import Row, cells, markdown_table, ratio_cell, route53_cell


def measurement(tool: str, seconds: float, renewed: int = 2) -> Measurement:
    run = ChildRun(returncode=0, wall_seconds=seconds, peak_rss_mb=100.0, log_path=Path("x.log"))
    return Measurement(tool, 2, 5.0, run, Counts({}, 4, 30), renewed)


def test_names_spread_round_robin_over_zones_and_never_collide_between_tools() -> None:
    zones = zone_names(2)
    ours = certificate_names("ours", 3, zones)
    assert ours == ["ours-n3-000.bench1.test", "ours-n3-001.bench2.test", "ours-n3-002.bench1.test"]
    assert not set(ours) & set(certificate_names("certbot", 3, zones))
    assert domains(ours[0]) == ["ours-n3-000.bench1.test", "*.ours-n3-000.bench1.test"]


def test_route53_cell_splits_changes_polls_and_the_rest() -> None:
    counts = Counts(
        {"ChangeResourceRecordSets": 4, "GetChange": 3, "ListHostedZones": 2, "ListResourceRecordSets": 1}, 0, 0
    )
    assert route53_cell(counts) == "4/3/3"
    assert route53_cell(Counts({}, 0, 0)) == "0/0/0"


def test_ratio_only_when_both_tools_renewed_everything() -> None:
    assert ratio_cell(Row(2, 5.0, measurement("ours", 10.0), measurement("certbot", 250.0))) == "25.0x"
    assert ratio_cell(Row(2, 5.0, measurement("ours", 10.0), measurement("certbot", 250.0, renewed=1))) == "-"
    assert ratio_cell(Row(2, 5.0, measurement("ours", 10.0), None)) == "-"


def test_a_failed_run_is_marked_in_the_table() -> None:
    row = Row(2, 5.0, measurement("ours", 10.0, renewed=1), None)
    assert cells(row)[2] == "10.0 FAILED"
    assert markdown_table([row]).count("\n") == 2


def test_run_child_reports_the_child_s_own_exit_code_and_peak_memory(tmp_path: Path) -> None:
    grow = "x = bytearray(64 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); raise SystemExit(3)"
    run = run_child([sys.executable, "-c", grow], env={}, log_path=tmp_path / "child.log")
    assert run.returncode == 3
    assert run.peak_rss_mb >= 64

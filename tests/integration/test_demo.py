"""`make demo` is the README's first command: it must keep working as the item layout changes."""

from __future__ import annotations

import subprocess
import sys

from tests.stack.table import REPO_ROOT


def test_the_demo_issues_a_certificate_and_stops_the_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.stack.demo"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "item status  ISSUED" in done.stdout
    assert "TXT left     0" in done.stdout
    assert "the local stack is stopped" in done.stdout

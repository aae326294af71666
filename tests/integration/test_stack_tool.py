"""`python -m tests.stack up` as an operator runs it: a process of its own whose export lines, sourced by a shell,
let the installed `acme-renewer` run the README's session; Ctrl-C (or SIGTERM) stops every server it started."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer

from tests.stack.__main__ import READY
from tests.stack.table import REPO_ROOT

CONSOLE_SCRIPT = Path(sys.executable).parent / "acme-renewer"
ZONE = "example.test"


@dataclass
class Up:
    process: subprocess.Popen[str]
    env_file: Path
    printed: list[str]
    workdir: Path

    def children(self) -> dict[str, int]:
        """name -> pid of the servers it started (LocalStack's pids file, written as each one starts)."""
        lines = (self.workdir / "pids").read_text().splitlines()
        return {name: int(pid) for name, pid in (line.split() for line in lines)}

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return self.process.wait()


def start_up(tmp_path: Path, *args: str) -> Up:
    """Start the tool with the environment of this test run (PYTHONPATH included) and read its stdout up to the
    line that says it is ready."""
    env_file, workdir = tmp_path / "env", tmp_path / "stack"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.stack", "up", *args, "--env-file", str(env_file), "--workdir", str(workdir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed = []
    for line in process.stdout:  # ends early only if the process exits
        printed.append(line.rstrip("\n"))
        if line.startswith(READY):
            break
    assert printed and printed[-1].startswith(READY), printed
    return Up(process, env_file, printed, workdir)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = start_up(tmp_path, "--zone", ZONE, "--zone", "other.test")
    yield started
    if started.process.poll() is None:  # a failed test: stop it all the same
        started.stop(signal.SIGTERM)


def sourced(env_file: Path) -> dict[str, str]:
    """The environment a shell has after `source env_file`, starting from this test's (a profile and a session
    token set on purpose, which the file must unset)."""
    base = {**os.environ, "AWS_PROFILE": "no-such-profile", "AWS_SESSION_TOKEN": "real-looking-token"}
    shell = subprocess.run(
        ["bash", "-c", 'set -e; source "$1"; env -0', "bash", str(env_file)],
        env=base,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(entry.split("=", 1) for entry in shell.stdout.split("\0") if entry)


def operator(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CONSOLE_SCRIPT), *argv], env=env, capture_output=True, text=True)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def client(env: dict[str, str], service: str) -> Any:
    """A boto3 client configured only by the sourced settings."""
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


README = REPO_ROOT / "README.md"


@dataclass
class Step:
    """One `$ acme-renewer ...` line of the README's session, what it prints there, and the exit status it shows."""

    argv: list[str]
    shown: list[str]
    exit_code: int = 0
    before: str = ""  # the comment line above it: something done by hand first


def readme_session() -> list[Step]:
    """The README's CLI session, as written: the code block whose first line is `$ acme-renewer add`."""
    text = README.read_text()
    start = text.index("```\n$ acme-renewer add ") + len("```\n")
    steps: list[Step] = []
    comment = ""
    for line in text[start : text.index("\n```", start)].splitlines():
        if line.startswith("$ acme-renewer "):
            steps.append(Step(shlex.split(line)[2:], [], before=comment))  # past `$ acme-renewer`
            comment = ""
        elif found := re.fullmatch(r"# exit status (\d+)", line):
            steps[-1].exit_code = int(found[1])
        elif line.startswith("# "):
            comment = line[2:]
        else:
            steps[-1].shown.append(line)
    return steps


def by_hand(env: dict[str, str], comment: str) -> None:
    """What a comment of the session says was done between two commands; an unknown one fails the test, so the
    README's session and this test stay one."""
    if comment.startswith("an item written by hand with a typo (acm_region) and an ec-p384 key"):
        item = {"id": "edge", "domains": [f"edge.{ZONE}"], "key_type": "ec-p384", "acm_region": "us-west-2"}
        serialize = TypeSerializer().serialize
        client(env, "dynamodb").put_item(TableName=env["TABLE_NAME"], Item={k: serialize(v) for k, v in item.items()})
    elif comment.startswith('after adding the CAA record 0 issue "other-ca.example" to example.test'):
        route53 = client(env, "route53")
        [zone] = [z["Id"] for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == f"{ZONE}."]
        record = {"Name": ZONE, "Type": "CAA", "TTL": 300, "ResourceRecords": [{"Value": '0 issue "other-ca.example"'}]}
        route53.change_resource_record_sets(
            HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
        )
    else:
        raise AssertionError(f"the README's session does something by hand this test does not know: {comment!r}")


def run_readme_session(env: dict[str, str]) -> None:
    """Every command of the README's session, in order, against the stack: the exit status the README shows, and
    every line of its output that holds no figure (ARNs, ports, dates and serials differ from run to run)."""
    steps = readme_session()
    assert len(steps) >= 8 and steps[0].argv[0] == "add"
    for step in steps:
        if step.before:
            by_hand(env, step.before)
        done = operator(env, *step.argv)
        assert done.returncode == step.exit_code, (step.argv, done.stdout, done.stderr)
        printed = (done.stdout + done.stderr).splitlines()
        missing = [line for line in step.shown if not re.search(r"\d", line) and line.strip() and line not in printed]
        assert missing == [], (step.argv, missing, printed)


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_readme_session_runs_against_the_stack_tool_and_ctrl_c_stops_every_server(up: Up) -> None:
    env = sourced(up.env_file)
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    # The file holds what the tool printed, so either can be sourced.
    assert up.env_file.read_text().splitlines() == [line for line in up.printed if not line.startswith("#")]
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "ACME_DIRECTORY_URL", "REQUESTS_CA_BUNDLE", "ACME_RENEWER_RESOLVER"):
        assert env[name], name
    assert Path(env["REQUESTS_CA_BUNDLE"]).is_file()

    run_readme_session(env)
    (summary,) = [
        s for s in client(env, "acm").list_certificates()["CertificateSummaryList"] if s["DomainName"] == ZONE
    ]
    assert summary["Type"] == "IMPORTED"  # what the session's renew landed, read with the sourced settings

    # `check` asks the stack's DNS server (ACME_RENEWER_RESOLVER), which serves the zone's NS from moto: all OK.
    checked = operator(env, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout.replace("0 FAIL", "")
    assert f"Route53 hosted zone {ZONE}" in checked.stdout

    zones = client(env, "route53").list_hosted_zones()["HostedZones"]
    assert sorted(zone["Name"] for zone in zones) == [f"{ZONE}.", "other.test."]  # --zone is repeatable

    servers = up.children()
    assert set(servers) == {"moto", "pebble"}  # the DNS server runs in moto's process
    assert all(group_alive(pid) for pid in servers.values())
    assert up.stop(signal.SIGINT) == 0
    assert [name for name, pid in servers.items() if group_alive(pid)] == []
    assert not up.env_file.exists()  # its endpoints are gone with the servers


def test_sigterm_stops_every_server_too(tmp_path: Path) -> None:
    started = start_up(tmp_path)
    servers = started.children()
    assert servers and all(group_alive(pid) for pid in servers.values())
    assert started.stop(signal.SIGTERM) == 0
    assert [name for name, pid in servers.items() if group_alive(pid)] == []

"""`acme-renewer install` and the standalone script, without a socket: the secret from the strict in-process stack
(the CLI's boto3) or from a fake `aws` on the PATH (the script's AWS CLI)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from acme_renewer import cli, runtime
from acme_renewer.delivery import files
from tests.stack.in_process import InProcessStack
from tests.stack.table import create_table, write_item
from tests.unit.delivery.test_files import secret_document

SECRET = "acme-renewer/certificates/www"


@pytest.fixture
def aws(strict_aws: InProcessStack, monkeypatch: pytest.MonkeyPatch) -> InProcessStack:
    monkeypatch.setattr(runtime, "client", lambda service, region, role=None: strict_aws.client(service, region))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("TABLE_NAME", raising=False)  # --secret needs no table
    return strict_aws


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = cli.main(argv)
    printed = capsys.readouterr().out
    return code, json.loads(printed)


def test_install_with_json_writes_the_files_then_changes_nothing(
    aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = secret_document()
    aws.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(document))
    marker = tmp_path / "reloaded"
    argv = ["install", "www", "--secret", SECRET, "--dir", str(tmp_path / "www"), "--json"]
    argv += ["--reload", f"echo reloading; touch {marker}"]
    code, first = run_json(argv, capsys)
    assert code == 0
    assert first["serial"] == document["serial"] and first["changed"] is True
    assert [(f["path"].rsplit("/", 1)[1], f["mode"], f["result"]) for f in first["files"]] == [
        ("cert.pem", "0644", "written"),
        ("chain.pem", "0644", "written"),
        ("fullchain.pem", "0644", "written"),
        ("privkey.pem", "0600", "written"),
    ]
    assert first["reload"]["ran"] is True and first["reload"]["exit_code"] == 0 and marker.exists()
    marker.unlink()
    code, second = run_json(argv, capsys)
    assert code == 0 and second["changed"] is False and second["reload"]["ran"] is False
    assert not marker.exists()


def test_no_certificate_stored_yet(aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aws.client("secretsmanager").create_secret(Name=SECRET)  # a secret with no version: no AWSCURRENT
    code, answer = run_json(["install", "www", "--secret", SECRET, "--dir", str(tmp_path), "--json"], capsys)
    assert code == 1
    assert answer["error"].startswith("no certificate stored yet for www")
    assert list(tmp_path.iterdir()) == []


def test_an_item_never_issued_has_no_certificate_yet_even_without_a_secret(
    aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the table: the item names no secret_arn yet, and its secret does not exist."""
    create_table(aws.client("dynamodb"), "certificates")
    write_item(aws.client("dynamodb"), "certificates", {"id": "www", "domains": ["www.example.com"]})
    assert cli.main(["install", "www", "--table", "certificates", "--dir", str(tmp_path)]) == 1
    assert "error: no certificate stored yet for www" in capsys.readouterr().err
    # With --secret, a secret that does not exist is a wrong name, not a wait.
    assert cli.main(["install", "www", "--secret", SECRET, "--dir", str(tmp_path)]) == 1
    assert f"no secret {SECRET} in this account and region" in capsys.readouterr().err


def test_a_host_refused_by_iam_is_told_which_permission(
    aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(secret_document()))
    aws.fail_secret(SECRET, "AccessDeniedException", "User: host is not authorized", ["GetSecretValue"])
    assert cli.main(["install", "www", "--secret", SECRET, "--dir", str(tmp_path)]) == 1
    assert "give this host's role secretsmanager:GetSecretValue" in capsys.readouterr().err


def test_a_secret_scheduled_for_deletion_says_how_to_restore_it(
    aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS refuses GetSecretValue on it (the strict layer does as AWS: tests/stack/strict_secrets.py)."""
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name=SECRET, SecretString=json.dumps(secret_document()))
    secrets.delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)
    assert cli.main(["install", "www", "--secret", SECRET, "--dir", str(tmp_path)]) == 1
    assert (
        "is scheduled for deletion (its request was removed?): restore it with aws secretsmanager restore-secret"
        in (capsys.readouterr().err)
    )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_reload_is_exit_3(aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aws.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(secret_document()))
    code = cli.main(["install", "www", "--secret", SECRET, "--dir", str(tmp_path), "--reload", "exit 4"])
    assert code == 3
    assert "FAILED with exit 4" in capsys.readouterr().out
    assert (tmp_path / "privkey.pem").exists()


def test_without_secret_the_table_is_needed(
    aws: InProcessStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install", "www", "--dir", str(tmp_path)]) == 2
    assert "no table: pass --table" in capsys.readouterr().err


def fake_aws(directory: Path, stdout: str, stderr: str = "", code: int = 0) -> Path:
    """An `aws` that records its arguments and answers as the AWS CLI does."""
    directory.mkdir(exist_ok=True)
    (directory / "answer.json").write_text(json.dumps({"stdout": stdout, "stderr": stderr, "code": code}))
    script = directory / "aws"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        "here = pathlib.Path(__file__).parent\n"
        "(here / 'argv.json').write_text(json.dumps(sys.argv[1:]))\n"
        "answer = json.loads((here / 'answer.json').read_text())\n"
        "sys.stdout.write(answer['stdout']); sys.stderr.write(answer['stderr']); sys.exit(answer['code'])\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


def test_the_script_reads_the_secret_with_the_aws_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = secret_document()
    bin_dir = fake_aws(tmp_path / "bin", json.dumps(document) + "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code = files.main(
        ["--secret", SECRET, "--id", "www", "--region", "eu-west-1", "--dir", str(tmp_path / "d"), "--json"]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["serial"] == document["serial"]
    assert json.loads((bin_dir / "argv.json").read_text()) == [
        "secretsmanager", "get-secret-value", "--secret-id", SECRET, "--query", "SecretString", "--output", "text",
        "--region", "eu-west-1",
    ]  # fmt: skip
    assert (tmp_path / "d" / "privkey.pem").read_text() == document["private_key"]


def test_the_script_says_no_certificate_yet_from_the_aws_clis_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    said = (
        "\nAn error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager"
        " can't find the specified secret value for staging label: AWSCURRENT\n"
    )
    bin_dir = fake_aws(tmp_path / "bin", "", said, 254)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert files.main(["--secret", SECRET, "--id", "www", "--dir", str(tmp_path / "d")]) == 1
    assert "error: no certificate stored yet for www" in capsys.readouterr().err


def python39() -> str | None:
    """Amazon Linux 2023's python3 is 3.9: an interpreter of it, when this machine has one (system or pyenv)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [Path("/usr/bin/python3.9"), *sorted(root.glob("versions/3.9*/bin/python3.9"))]
    return next((str(path) for path in candidates if os.access(path, os.X_OK)), None)


PYTHON39 = python39()


@pytest.mark.skipif(PYTHON39 is None, reason="no python3.9 here; the syntax check of test_delivery_template still runs")
def test_the_script_runs_on_python_3_9(tmp_path: Path) -> None:
    assert PYTHON39 is not None
    document = secret_document()
    bin_dir = fake_aws(tmp_path / "bin", json.dumps(document) + "\n")
    done = subprocess.run(
        [
            PYTHON39,
            str(Path(files.__file__)),
            "--secret",
            SECRET,
            "--id",
            "www",
            "--dir",
            str(tmp_path / "d"),
            "--json",
        ],
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["changed"] is True
    assert (tmp_path / "d" / "fullchain.pem").read_text() == document["fullchain"]

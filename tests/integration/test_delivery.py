"""The certificate onto a server that cannot use ACM: a real nginx serves what `acme-renewer install` wrote, and the
new certificate after a renewal and `install --reload`; the SSM document's script does the same with the AWS CLI."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acme_renewer.report.endpoints import Endpoint, EndpointError, fetch_served_certificate
from tests.integration.test_cli import acme_renewer, operator_env, restore_log_handlers
from tests.integration.test_renewal import get_item, put_item
from tests.stack import LocalStack
from tests.stack.table import load_template

__all__ = ["operator_env", "restore_log_handlers"]  # fixtures of test_cli, used here

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
MARKER = "ACME_RENEWER_FILES_PY"


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
    return port


def nginx_config(prefix: Path, tls: Path, port: int) -> Path:
    """Everything in `prefix`, so that nginx runs without root and without touching /etc or /var."""
    temp = "\n".join(
        f"  {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = prefix / "nginx.conf"
    config.write_text(
        f"""daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 16; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {tls}/fullchain.pem;
    ssl_certificate_key {tls}/privkey.pem;
    return 200 "ok\\n";
  }}
}}
"""
    )
    return config


@pytest.fixture
def nginx_prefix(tmp_path: Path) -> Path:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    return prefix


def served_serial(port: int, name: str, *, until: str | None = None, timeout: float = 10.0) -> str:
    """The serial nginx presents; with `until`, wait until every connection gets that one: after a reload the old
    workers finish their connections and may still accept for a moment, while the new ones start."""
    deadline, in_a_row = time.monotonic() + timeout, 0
    while True:
        try:
            serial = fetch_served_certificate(Endpoint("127.0.0.1", port), name, timeout=2).serial
        except EndpointError:
            if time.monotonic() > deadline:
                raise
            serial = ""
        in_a_row = in_a_row + 1 if serial and serial == until else 0
        if until is None and serial:
            return serial
        if in_a_row == 5 or (until is not None and time.monotonic() > deadline):
            return serial
        time.sleep(0.05)


@pytest.fixture
def running_nginx(nginx_prefix: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path, port: int) -> subprocess.Popen[bytes]:
        assert NGINX is not None
        process = subprocess.Popen([NGINX, "-p", str(nginx_prefix), "-c", str(config)], stderr=subprocess.PIPE)
        started.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return process
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = process.stderr.read() if process.stderr else b""
                    raise AssertionError(f"nginx did not start: {said!r}") from None
                time.sleep(0.05)

    yield start
    for process in started:  # ours only, by pid
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.nginx
# CI sets REQUIRE_NGINX: there, a missing nginx fails the test instead of skipping it.
@pytest.mark.skipif(
    NGINX is None and not os.environ.get("REQUIRE_NGINX"),
    reason="nginx is not installed (apt-get install nginx-light; .ci/run does)",
)
def test_nginx_serves_what_install_wrote_and_the_renewal_after_a_reload(
    stack: LocalStack,
    operator_env: dict[str, str],
    tmp_path: Path,
    nginx_prefix: Path,
    running_nginx: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zone = f"nginx-{uuid.uuid4().hex[:8]}.test"
    stack.create_hosted_zone(zone)
    name = f"www.{zone}"
    put_item(stack, operator_env, {"id": "www", "domains": [name], "acm_regions": []})
    assert acme_renewer(capsys, "renew", "www", "-q").code == 0
    first_serial = get_item(stack, operator_env, "www")["serial"]

    tls, port, marker = tmp_path / "tls" / "www", free_port(), tmp_path / "reloaded"
    installed = acme_renewer(capsys, "install", "www", "--dir", str(tls), "--json")
    assert installed.code == 0, installed.err
    assert json.loads(installed.out)["serial"] == first_serial
    assert stat.S_IMODE((tls / "privkey.pem").stat().st_mode) == 0o600
    running_nginx(nginx_config(nginx_prefix, tls, port), port)
    assert served_serial(port, name) == first_serial

    # A renewal, forced: a new certificate (and key) in the secret; nginx keeps the old one until reloaded.
    assert acme_renewer(capsys, "renew", "www", "-q").code == 0
    second_serial = get_item(stack, operator_env, "www")["serial"]
    assert second_serial != first_serial
    config = nginx_prefix / "nginx.conf"
    reload = f"{shlex.quote(str(NGINX))} -p {shlex.quote(str(nginx_prefix))} -c {shlex.quote(str(config))} -s reload"
    reload += f" && touch {shlex.quote(str(marker))}"
    renewed = acme_renewer(capsys, "install", "www", "--dir", str(tls), "--reload", reload, "--json")
    assert renewed.code == 0, renewed.err
    document = json.loads(renewed.out)
    assert document["changed"] is True
    assert document["reload"] == {"command": reload, "ran": True, "exit_code": 0, "retry": False}
    assert marker.exists()
    assert served_serial(port, name, until=second_serial) == second_serial

    # Nothing new: nothing written, and the reload command does not run.
    marker.unlink()
    again = acme_renewer(capsys, "install", "www", "--dir", str(tls), "--reload", reload, "--json")
    assert again.code == 0
    assert json.loads(again.out)["reload"]["ran"] is False
    assert {f["result"] for f in json.loads(again.out)["files"]} == {"unchanged"}
    assert not marker.exists()
    assert served_serial(port, name) == second_serial


def aws_cli_on_moto(directory: Path, stack: LocalStack) -> Path:
    """An `aws` that answers `secretsmanager get-secret-value --query SecretString --output text` from the stack's
    moto through botocore, and fails as the AWS CLI does: exit 254, 'An error occurred (Code) when calling ...'."""
    directory.mkdir()
    script = directory / "aws"
    script.write_text(
        f"#!{sys.executable}\n"
        "import argparse, sys\n"
        "import boto3, botocore.exceptions\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('service'); parser.add_argument('operation'); parser.add_argument('--secret-id')\n"
        "parser.add_argument('--query'); parser.add_argument('--output'); parser.add_argument('--region')\n"
        "args = parser.parse_args()\n"
        "assert (args.service, args.operation, args.query, args.output) == "
        "('secretsmanager', 'get-secret-value', 'SecretString', 'text'), sys.argv\n"
        f"client = boto3.client('secretsmanager', endpoint_url={stack.moto_endpoint!r}, region_name=args.region or"
        f" {stack.region!r}, aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "try:\n"
        "    print(client.get_secret_value(SecretId=args.secret_id)['SecretString'])\n"
        "except botocore.exceptions.ClientError as error:\n"
        "    print('\\n' + str(error), file=sys.stderr); sys.exit(254)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    # A real interpreter as the host's python3: a pyenv shim would put its own bin (and any aws there) first.
    (directory / "python3").symlink_to(Path(sys.base_prefix, "bin", "python3").resolve())
    return directory


def ssm_script(values: dict[str, str]) -> str:
    """The command document's script with the parameters substituted as the SSM Agent does (`{{ Name }}`)."""
    content = load_template()["Resources"]["DeliveryCommandDocument"]["Properties"]["Content"]
    given = {name: values.get(name, spec.get("default", "")) for name, spec in content["parameters"].items()}
    (script,) = content["mainSteps"][0]["inputs"]["runCommand"]
    for name, value in given.items():
        script = script.replace(f"{{{{ {name} }}}}", value)
    return str(script)


def test_the_ssm_documents_script_installs_the_issued_certificate(
    stack: LocalStack, operator_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = f"ssm-{uuid.uuid4().hex[:8]}.test"
    stack.create_hosted_zone(zone)
    put_item(stack, operator_env, {"id": "api", "domains": [f"api.{zone}"], "acm_regions": []})
    assert acme_renewer(capsys, "renew", "api", "-q").code == 0
    item = get_item(stack, operator_env, "api")
    marker = tmp_path / "reloaded"
    values = {
        "SecretId": item["secret_arn"],  # what the rule passes: the event's secret_arn
        "CertificateId": "api",
        "Directory": str(tmp_path / "etc"),
        "ReloadCommand": f"touch {marker}",
        "Region": stack.region,
    }
    # The host: its python3, our `aws`, and no AWS settings of the test in the environment.
    path = f"{aws_cli_on_moto(tmp_path / 'bin', stack)}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(["bash", "-c", ssm_script(values)], env={"PATH": path}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    files = tmp_path / "etc" / "api"
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=item["secret_arn"])["SecretString"])
    assert (files / "fullchain.pem").read_text() == secret["fullchain"]
    assert (files / "privkey.pem").read_text() == secret["private_key"]
    assert stat.S_IMODE((files / "privkey.pem").stat().st_mode) == 0o600
    assert f"serial {item['serial']}" in done.stdout and marker.exists()
    assert "PRIVATE KEY" not in done.stdout + done.stderr

    # Before the first certificate: a secret with no AWSCURRENT version.
    empty = stack.client("secretsmanager").create_secret(Name=f"acme-renewer/certificates/new-{uuid.uuid4().hex[:6]}")
    done = subprocess.run(
        ["bash", "-c", ssm_script({**values, "SecretId": empty["ARN"], "CertificateId": "new"})],
        env={"PATH": path},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "no certificate stored yet for new" in done.stderr
    assert not (tmp_path / "etc" / "new").exists()

"""moto in server mode as a child process: the stand-in for Route53, DynamoDB, ACM and Secrets Manager."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.stack.processes import Process, free_port, start_process, wait_until_ready


@dataclass
class MotoServer:
    process: Process
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_moto(workdir: Path, *, python: str = sys.executable, timeout: float = 20.0) -> MotoServer:
    """Start `python -m moto.server` on a free loopback port and wait until it answers HTTP."""
    port = free_port()
    process = start_process("moto", [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], workdir)
    server = MotoServer(process=process, port=port)
    wait_until_ready(process, lambda: _answers_http(server.endpoint_url), timeout=timeout)
    return server


def _answers_http(endpoint_url: str) -> bool:
    try:
        # Any HTTP answer at all means the server loop is up.
        requests.get(f"{endpoint_url}/moto-api/", timeout=0.5)
    except requests.RequestException:
        return False
    return True

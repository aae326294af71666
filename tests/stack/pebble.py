"""Debian's pebble (a test ACME server) as a child process, validating DNS-01 against our DNS server."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.stack.processes import Process, free_port, start_process, wait_until_ready
from tests.stack.tls import TlsFiles

PEBBLE_BINARY = "/usr/bin/pebble"

# No random validation sleep, no rejected nonces, a fresh authorization per name: fast and deterministic.
DEFAULT_ENV: dict[str, str] = {
    "PEBBLE_VA_NOSLEEP": "1",
    "PEBBLE_WFE_NONCEREJECT": "0",
    "PEBBLE_AUTHZREUSE": "0",
}


@dataclass
class Pebble:
    process: Process
    port: int
    management_port: int
    ca_bundle: Path  # the CA of pebble's HTTPS listener, not the root it issues from

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def roots_pem(self, chain: int = 0) -> str:
        """The root pebble issues from; a new one on every start. Chains 1.. exist with PEBBLE_ALTERNATE_ROOTS."""
        return self._management(f"/roots/{chain}")

    def intermediates_pem(self, chain: int = 0) -> str:
        return self._management(f"/intermediates/{chain}")

    def stop(self) -> None:
        self.process.stop()

    def _management(self, path: str) -> str:
        response = requests.get(
            f"https://127.0.0.1:{self.management_port}{path}", verify=str(self.ca_bundle), timeout=5
        )
        response.raise_for_status()
        return response.text


def start_pebble(
    workdir: Path,
    *,
    tls: TlsFiles,
    dns_address: tuple[str, int],
    env: Mapping[str, str] | None = None,
    certificate_validity_seconds: int | None = None,
    eab_keys: Mapping[str, str] | None = None,
    binary: str = PEBBLE_BINARY,
    timeout: float = 20.0,
) -> Pebble:
    """Write a config, start pebble with `-dnsserver`, and wait until its directory answers 200.

    `env` overrides DEFAULT_ENV key by key; `eab_keys` (kid -> base64url HMAC key) makes EAB required.
    """
    port, management_port = free_port(), free_port()
    config: dict[str, object] = {
        "listenAddress": f"127.0.0.1:{port}",
        "managementListenAddress": f"127.0.0.1:{management_port}",
        "certificate": str(tls.cert),
        "privateKey": str(tls.key),
        # Ports pebble would connect to for HTTP-01 / TLS-ALPN-01; unused with DNS-01 but must be set.
        "httpPort": free_port(),
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": bool(eab_keys),
    }
    if eab_keys:
        config["externalAccountMACKeys"] = dict(eab_keys)
    if certificate_validity_seconds is not None:
        config["certificateValidityPeriod"] = certificate_validity_seconds
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"pebble-config-{port}.json"
    config_path.write_text(json.dumps({"pebble": config}, indent=2))

    process_env = {**os.environ, **DEFAULT_ENV, **(env or {})}
    dns_host, dns_port = dns_address
    process = start_process(
        "pebble",
        [binary, "-config", str(config_path), "-dnsserver", f"{dns_host}:{dns_port}"],
        workdir,
        env=process_env,
    )
    pebble = Pebble(process=process, port=port, management_port=management_port, ca_bundle=tls.ca)
    wait_until_ready(process, lambda: _directory_answers(pebble), timeout=timeout)
    return pebble


def _directory_answers(pebble: Pebble) -> bool:
    try:
        return requests.get(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=1).status_code == 200
    except requests.RequestException:
        return False

"""certbot's side of the comparison, as a user renews N certificates: N lineages issued once with `certonly`
(untimed), then one timed `certbot renew --force-renewal` process over all of them.

certbot-dns-route53 builds `boto3.client("route53")`, which honours AWS_ENDPOINT_URL: it talks to moto with the
stack's dummy credentials. REQUESTS_CA_BUNDLE makes certbot's acme client trust the proxy's (and pebble's) HTTPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from bench.measure import BenchRunError, ChildRun, Measurement, Meter, child_env, run_child
from bench.names import domains
from tests.stack import LocalStack


@dataclass
class CertbotFleet:
    executable: Path
    stack: LocalStack
    directory_url: str  # the ACME proxy's, so that its requests are counted
    names: list[str]
    workdir: Path

    @property
    def _dirs(self) -> list[str]:
        """certbot's own state in the work dir, never /etc/letsencrypt."""
        return [
            f"--config-dir={self.workdir / 'config'}",
            f"--work-dir={self.workdir / 'work'}",
            f"--logs-dir={self.workdir / 'logs'}",
        ]

    def setup(self) -> None:
        """One `certonly` per certificate, as a user adds them; the account is registered by the first one."""
        for index, name in enumerate(self.names):
            argv = [
                str(self.executable),
                "certonly",
                "--non-interactive",
                "--agree-tos",
                "--register-unsafely-without-email",
                f"--server={self.directory_url}",
                "--dns-route53",
                "--key-type=ecdsa",  # P-256, as ours issues by default
                f"--cert-name={name}",
                *(f"--domain={domain}" for domain in domains(name)),
                *self._dirs,
            ]
            run = self._run(argv, f"certonly-{index:03d}")
            if run.returncode != 0 or name not in self._serials():
                raise BenchRunError(f"certbot: certonly for {name} exited {run.returncode}; see {run.log_path}")

    def renew(self, meter: Meter, delay_seconds: float) -> Measurement:
        """One `certbot renew` over every lineage; a lineage counts as renewed when its live certificate changed."""
        before = self._serials()
        argv = [
            str(self.executable),
            "renew",
            "--force-renewal",
            "--non-interactive",
            # Without a terminal, renew first sleeps up to 8 minutes to spread load on the CA.
            "--no-random-sleep-on-renew",
            *self._dirs,
        ]
        meter.start()
        run = self._run(argv, f"renew-d{delay_seconds:g}")
        counts = meter.stop()
        after = self._serials()
        renewed = sum(1 for name in self.names if name in after and after[name] != before.get(name))
        return Measurement("certbot", len(self.names), delay_seconds, run, counts, renewed)

    def _run(self, argv: list[str], label: str) -> ChildRun:
        return run_child(argv, env=child_env(self.stack), log_path=self.workdir / "runs" / f"{label}.log")

    def _serials(self) -> dict[str, int]:
        """Lineage name -> serial of its live certificate."""
        serials = {}
        for name in self.names:
            path = self.workdir / "config" / "live" / name / "cert.pem"
            if path.exists():
                serials[name] = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
        return serials

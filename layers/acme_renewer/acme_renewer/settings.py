"""Function configuration, parsed once from environment variables into a typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from acme_renewer.errors import ConfigurationError

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DEFAULT_SECRET_PREFIX = "acme-renewer/"
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]+$")


@dataclass(frozen=True)
class Settings:
    table_name: str
    region: str
    acme_directory_url: str = LETSENCRYPT_PRODUCTION
    acme_contact_email: str | None = None
    # Every secret we write lives under this prefix, which the IAM policy in template.yaml is scoped to.
    secret_prefix: str = DEFAULT_SECRET_PREFIX
    propagation_timeout_seconds: float = 300.0
    order_timeout_seconds: float = 300.0
    acme_network_timeout_seconds: int = 30
    txt_ttl_seconds: int = 60
    # Longer than one renewal can take (the function stops at 15 minutes), so that a lease is only
    # ever taken over from a run that died.
    lease_seconds: int = 1200
    max_consecutive_failures: int = 8
    event_bus_name: str = "default"
    # Unmanaged ACM certificates expiring within this many days are reported (the expiry alarm's threshold).
    expiry_warning_days: int = 14
    # How long a consumer may take to pick up a renewed certificate before its endpoint counts as stale.
    endpoint_grace_minutes: float = 60.0
    # A run starts no new renewal with less time than this left before the function's deadline.
    renewal_budget_seconds: float = 180.0
    # Customer-managed KMS key for the secrets we create; None: Secrets Manager's AWS-managed key.
    secrets_kms_key_id: str | None = None
    # One run renews at most this many certificates together (one DNS wait); the rest are handed on.
    max_certificates_per_run: int = 100
    # Threads driving the ACME orders of a batch, each with its own ACME session.
    acme_workers: int = 8
    # Route53 requests per second from one run (Route53 allows 5 per account).
    route53_requests_per_second: float = 4.0

    @property
    def account_secret_name(self) -> str:
        """One ACME account per directory, so staging and production never share a key."""
        host_and_path = re.sub(r"^https://", "", self.acme_directory_url)
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", host_and_path).strip("-")
        return f"{self.secret_prefix}accounts/{slug}"

    def default_secret_name(self, certificate_id: str) -> str:
        return f"{self.secret_prefix}certificates/{certificate_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        table_name = env.get("TABLE_NAME", "").strip()
        if not table_name:
            raise ConfigurationError("TABLE_NAME is required: the name of the certificates DynamoDB table")
        region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
        if not region:
            raise ConfigurationError("AWS_REGION (or AWS_DEFAULT_REGION) is required")
        directory = env.get("ACME_DIRECTORY_URL", "").strip() or LETSENCRYPT_PRODUCTION
        if not directory.startswith("https://"):
            raise ConfigurationError(f"ACME_DIRECTORY_URL must be an https:// URL, got {directory!r}")
        prefix = env.get("SECRET_PREFIX", "").strip() or DEFAULT_SECRET_PREFIX
        if not _SECRET_NAME.match(prefix):
            raise ConfigurationError(f"SECRET_PREFIX {prefix!r} has characters Secrets Manager does not allow")
        return cls(
            table_name=table_name,
            region=region,
            acme_directory_url=directory,
            acme_contact_email=env.get("ACME_CONTACT_EMAIL", "").strip() or None,
            secret_prefix=prefix,
            propagation_timeout_seconds=_positive(env, "PROPAGATION_TIMEOUT_SECONDS", 300.0),
            order_timeout_seconds=_positive(env, "ORDER_TIMEOUT_SECONDS", 300.0),
            acme_network_timeout_seconds=int(_positive(env, "ACME_NETWORK_TIMEOUT_SECONDS", 30)),
            txt_ttl_seconds=int(_positive(env, "TXT_TTL_SECONDS", 60)),
            lease_seconds=int(_positive(env, "LEASE_SECONDS", 1200)),
            max_consecutive_failures=int(_positive(env, "MAX_CONSECUTIVE_FAILURES", 8)),
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip() or "default",
            expiry_warning_days=int(_positive(env, "EXPIRY_WARNING_DAYS", 14)),
            endpoint_grace_minutes=_non_negative(env, "ENDPOINT_GRACE_MINUTES", 60.0),
            renewal_budget_seconds=_non_negative(env, "RENEWAL_BUDGET_SECONDS", 180.0),
            secrets_kms_key_id=env.get("SECRETS_KMS_KEY_ID", "").strip() or None,
            max_certificates_per_run=_whole(env, "MAX_CERTIFICATES_PER_RUN", 100),
            acme_workers=_whole(env, "ACME_WORKERS", 8),
            route53_requests_per_second=_positive(env, "ROUTE53_REQUESTS_PER_SECOND", 4.0),
        )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _non_negative(env, name, default)
    if value == 0:
        raise ConfigurationError(f"{name} must be positive, got {env.get(name)!r}")
    return value


def _non_negative(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)

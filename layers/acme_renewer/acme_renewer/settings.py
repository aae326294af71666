"""Function configuration, parsed once from environment variables into a typed object."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from acme_renewer.errors import ConfigurationError
from acme_renewer.models import ZoneRole

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# Names for the public CAs' production directories (and Let's Encrypt's staging), usable wherever a directory is.
# ZeroSSL and Google Trust Services require External Account Binding (ACME_EAB_SECRET or the item's eab_secret).
CA_ALIASES = {
    "letsencrypt": LETSENCRYPT_PRODUCTION,
    "letsencrypt-staging": LETSENCRYPT_STAGING,
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "google": "https://dv.acme-v02.api.pki.goog/directory",
    "buypass": "https://api.buypass.com/acme/directory",
}
DEFAULT_SECRET_PREFIX = "acme-renewer/"
# Account-wide request rates: AWS's documented defaults. Every process of the account shares them, so each paces
# itself to its share: the rate divided by the workers busy now, at most WORKER_CONCURRENCY (pacing.Shares; the
# *_share_per_second properties are the smallest share).
# Route53's account-level bucket, which every Route53 request of the account draws on: 50 requests of burst,
# refilled at 10 per second ("Throttling for Amazon Route 53 API requests",
# https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html).
ROUTE53_REQUESTS_PER_SECOND = 10.0
# ACM's request rate quota for ImportCertificate, per account and region ("API rate quotas",
# https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits).
ACM_IMPORTS_PER_SECOND = 1.0
# Secrets Manager's "Combined rate of PutSecretValue, RemoveRegionsFromReplication, ReplicateSecretToRegion,
# StopReplicationToReplica, UpdateSecret, and UpdateSecretVersionStage API requests", per account and region
# (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html).
SECRETS_WRITES_PER_SECOND = 50.0
# The operations of that quota (the page's ReplicateSecretToRegion is the API's ReplicateSecretToRegions), paced
# together; CreateSecret, whose row we did not find, is paced with them, so that a fleet creating its first
# secrets does not burst either.
SECRETS_WRITE_OPERATIONS = (
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "StopReplicationToReplica",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "CreateSecret",
)
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]+$")
# IAM's own limits: a role name is 1-64 of these characters, under an optional path /a/b/; the partition is aws,
# aws-cn, aws-us-gov, ...
_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII)
# sts:AssumeRole's ExternalId: 2-1224 characters of these.
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_ZONE_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
ROLE_ARN_EXAMPLE = "arn:aws:iam::111122223333:role/acme-dns"


def is_role_arn(raw: Any) -> bool:
    return isinstance(raw, str) and _ROLE_ARN.fullmatch(raw) is not None and len(raw) <= 2048


def is_external_id(raw: Any) -> bool:
    return isinstance(raw, str) and _EXTERNAL_ID.fullmatch(raw) is not None


class PropagationMode(enum.Enum):
    OFF = "off"
    AUTHORITATIVE = "authoritative"


class ChallengeLookup(enum.Enum):
    ROUTE53 = "route53"
    DNS = "dns"


@dataclass(frozen=True)
class PropagationSettings:
    """PROPAGATION_CHECK: "authoritative" or "off" (default); PROPAGATION_CHECK_RESOLVER: address[:port] that
    resolves NS host names (default: the system resolver); PROPAGATION_CHECK_NAMESERVERS: comma-separated
    address[:port] servers asked for every zone instead of the zone's own (default: discover from Route53).

    CHALLENGE_LOOKUP: "dns" to ask the zones' name servers which challenge names hold nothing before reading them
    from Route53 (dns/lookup.py; the template sets it), or "route53" (default) to read every name from Route53. It
    asks the same servers as the check: PROPAGATION_CHECK_NAMESERVERS, else the zone's NS found through
    PROPAGATION_CHECK_RESOLVER."""

    mode: PropagationMode = PropagationMode.OFF
    resolver: tuple[str, int] | None = None
    nameservers: tuple[tuple[str, int], ...] = ()
    lookup: ChallengeLookup = ChallengeLookup.ROUTE53

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PropagationSettings:
        env = os.environ if env is None else env
        raw_mode = env.get("PROPAGATION_CHECK", "").strip().lower() or PropagationMode.OFF.value
        try:
            mode = PropagationMode(raw_mode)
        except ValueError:
            choices = " or ".join(repr(m.value) for m in PropagationMode)
            raise ConfigurationError(
                f"PROPAGATION_CHECK must be {choices}, got {env.get('PROPAGATION_CHECK')!r}"
            ) from None
        raw_lookup = env.get("CHALLENGE_LOOKUP", "").strip().lower() or ChallengeLookup.ROUTE53.value
        try:
            lookup = ChallengeLookup(raw_lookup)
        except ValueError:
            choices = " or ".join(repr(m.value) for m in ChallengeLookup)
            got = env.get("CHALLENGE_LOOKUP")
            raise ConfigurationError(f"CHALLENGE_LOOKUP must be {choices}, got {got!r}") from None
        raw_resolver = env.get("PROPAGATION_CHECK_RESOLVER", "").strip()
        return cls(
            mode=mode,
            lookup=lookup,
            resolver=parse_server(raw_resolver, variable="PROPAGATION_CHECK_RESOLVER") if raw_resolver else None,
            nameservers=parse_servers(
                env.get("PROPAGATION_CHECK_NAMESERVERS", ""), variable="PROPAGATION_CHECK_NAMESERVERS"
            ),
        )


_SERVER = re.compile(r"\[(?P<v6>[^\]]*)\](?::(?P<v6port>[^:]*))?|(?P<v4>[^:\[\]]*)(?::(?P<port>[^:]*))?")


def parse_server(text: str, *, variable: str = "server") -> tuple[str, int]:
    """`192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1`, `[2001:db8::1]` or `[::1]:5353` -> (address, port).

    IP literals only: configuration is parsed without touching the network.
    """
    text = text.strip()
    example = "an IP address with an optional port: 192.0.2.1, 192.0.2.1:5353 or [2001:db8::1]:53"
    match = _SERVER.fullmatch(text)
    if match is None:
        try:
            return str(ipaddress.IPv6Address(text)), 53  # unbracketed IPv6, no port
        except ValueError:
            raise ConfigurationError(f"{variable}: {text!r} is not {example}") from None
    host, port_text = (match["v6"], match["v6port"]) if match["v6"] is not None else (match["v4"], match["port"])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigurationError(
            f"{variable}: {host!r} in {text!r} is not an IP address; it must be {example}"
        ) from None
    if match["v6"] is not None and address.version != 6:
        raise ConfigurationError(f"{variable}: {text!r} puts an IPv4 address in brackets; write {host}:PORT")
    if port_text is None:
        return str(address), 53
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"{variable}: port {port_text!r} in {text!r} must be a number from 1 to 65535")
    return str(address), int(port_text)


def parse_servers(text: str, *, variable: str = "servers") -> tuple[tuple[str, int], ...]:
    """A comma-separated list of `parse_server` entries; empty entries are ignored, repeats dropped."""
    servers = [parse_server(part, variable=variable) for part in text.split(",") if part.strip()]
    return tuple(dict.fromkeys(servers))


@dataclass(frozen=True)
class ZoneRoles:
    """ZONE_ROLES: a JSON object from a zone's domain name to the role whose account holds that zone,
    `{"example.org": {"role_arn": "arn:aws:iam::111122223333:role/acme-dns", "external_id": "..."}}`
    (external_id optional). A challenge name at or below a key uses its role, the longest key winning; the rest
    stay in the function's own account. Default: empty."""

    by_zone: tuple[tuple[str, ZoneRole], ...] = ()  # longest zone first

    def role_for(self, name: str) -> ZoneRole | None:
        """The role of the longest key that `name` is equal to or below, label-wise (`b.test` does not hold
        `ab.test`); None: the function's own account."""
        name = name.rstrip(".").lower()
        return next((role for zone, role in self.by_zone if name == zone or name.endswith("." + zone)), None)

    @classmethod
    def parse(cls, text: str) -> ZoneRoles:
        if not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except ValueError as bad:
            raise ConfigurationError(
                f'ZONE_ROLES must be a JSON object such as {{"example.org": {{"role_arn": "{ROLE_ARN_EXAMPLE}"}}}}:'
                f" {bad}"
            ) from None
        if not isinstance(raw, dict):
            raise ConfigurationError(
                f"ZONE_ROLES must be a JSON object from zone name to role, got {type(raw).__name__}"
            )
        roles: dict[str, ZoneRole] = {}
        for key, entry in raw.items():
            zone = key.strip().rstrip(".").lower()
            if not zone or len(zone) > 253 or not all(_ZONE_LABEL.fullmatch(label) for label in zone.split(".")):
                raise ConfigurationError(
                    f"ZONE_ROLES key {key!r} must be a hosted zone's domain name such as 'example.org'"
                    " (internationalized names in their xn-- form)"
                )
            if zone in roles:
                raise ConfigurationError(f"ZONE_ROLES names the zone {zone!r} twice")
            roles[zone] = _zone_role(key, entry)
        return cls(tuple(sorted(roles.items(), key=lambda pair: len(pair[0]), reverse=True)))


def _zone_role(key: str, entry: Any) -> ZoneRole:
    if not isinstance(entry, dict) or not set(entry) <= {"role_arn", "external_id"}:
        raise ConfigurationError(
            f'ZONE_ROLES[{key!r}] must be an object {{"role_arn": "...", "external_id": "..."}} (external_id'
            f" optional), got {json.dumps(entry)[:100]}"
        )
    arn, external_id = entry.get("role_arn"), entry.get("external_id")
    if not is_role_arn(arn):
        raise ConfigurationError(
            f"ZONE_ROLES[{key!r}].role_arn {arn!r} must be an IAM role ARN such as {ROLE_ARN_EXAMPLE!r}"
        )
    if external_id is not None and not is_external_id(external_id):
        raise ConfigurationError(
            f"ZONE_ROLES[{key!r}].external_id must be 2-1224 letters, digits and +=,.@:/-_, as STS requires"
        )
    return ZoneRole(str(arn), external_id)


@dataclass(frozen=True)
class Settings:
    table_name: str
    region: str
    acme_directory_url: str = LETSENCRYPT_PRODUCTION
    acme_contact_email: str | None = None
    # Secrets Manager secret holding the EAB key id and HMAC key for acme_directory_url; None: no EAB.
    acme_eab_secret: str | None = None
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
    # A batch: at most this many certificates renewed together (one DNS wait), in one run or one queue message.
    batch_size: int = 100
    # The fan-out queue (inventory/batching.py); None: the scheduled run renews what is due in process.
    renewal_queue_url: str | None = None
    # Threads driving the ACME orders of a batch, each with its own ACME session.
    acme_workers: int = 8
    # Account-wide budgets (requests per second) that the renewer's processes share; each process paces its calls
    # to the budget divided by the workers busy now, at most worker_concurrency (pacing.Shares; the smallest share
    # is the *_share_per_second properties).
    route53_requests_per_second: float = ROUTE53_REQUESTS_PER_SECOND  # per account (Route53 is global)
    acm_imports_per_second: float = ACM_IMPORTS_PER_SECOND  # per account and region
    secrets_writes_per_second: float = SECRETS_WRITES_PER_SECOND  # per account and region
    # How many processes of the renewer may call AWS at the same time (WORKER_CONCURRENCY; the template passes the
    # parameter WorkerMaxConcurrency). 1, as for the CLI: this process has the whole budget.
    worker_concurrency: int = 1
    # After INSYNC, optionally wait until the zone's authoritative servers serve the values (dns/propagation.py).
    propagation: PropagationSettings = field(default_factory=lambda: PropagationSettings())
    # Roles to assume for the hosted zones of other accounts, by zone (ZONE_ROLES); items may name their own.
    zone_roles: ZoneRoles = field(default_factory=lambda: ZoneRoles())
    # ACM_ROLE_ARNS: the roles the function may assume for an item's acm_accounts (stack parameter AcmRoleArns);
    # an item naming another is refused before anything is tried. None (unset, as for the CLI with the operator's
    # own credentials): not checked.
    acm_role_arns: frozenset[str] | None = None

    @property
    def route53_share_per_second(self) -> float:
        """This process's pace of Route53 requests: its share of the account's budget."""
        return self.route53_requests_per_second / self.worker_concurrency

    @property
    def acm_imports_share_per_second(self) -> float:
        """This process's pace of ImportCertificate calls, per account and region."""
        return self.acm_imports_per_second / self.worker_concurrency

    @property
    def secrets_writes_share_per_second(self) -> float:
        """This process's pace of Secrets Manager writes (SECRETS_WRITE_OPERATIONS) in its region."""
        return self.secrets_writes_per_second / self.worker_concurrency

    @property
    def account_secret_name(self) -> str:
        """The account key secret of the function's own directory, without EAB."""
        return self.account_secret_name_for(self.acme_directory_url)

    def account_secret_name_for(self, directory_url: str, eab_key_id: str | None = None) -> str:
        """One ACME account per (directory, EAB key): staging and production, or two EAB keys of one CA, never
        share an account. Without EAB the name is the one earlier versions used, so existing accounts are kept."""
        host_and_path = re.sub(r"^https://", "", directory_url)
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", host_and_path).strip("-")
        if eab_key_id is None:
            return f"{self.secret_prefix}accounts/{slug}"
        key_slug = re.sub(r"[^A-Za-z0-9.-]+", "-", eab_key_id).strip("-")
        if len(key_slug) > 64 or key_slug != eab_key_id:  # keep distinct key ids apart after the clean-up
            key_slug = f"{key_slug[:48]}-{hashlib.sha256(eab_key_id.encode()).hexdigest()[:12]}"
        return f"{self.secret_prefix}accounts/{slug}/eab-{key_slug}"

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
        try:
            directory = directory_url(env.get("ACME_DIRECTORY_URL", "").strip() or LETSENCRYPT_PRODUCTION)
        except ValueError as exc:
            raise ConfigurationError(f"ACME_DIRECTORY_URL {exc}") from None
        prefix = env.get("SECRET_PREFIX", "").strip() or DEFAULT_SECRET_PREFIX
        if not _SECRET_NAME.match(prefix):
            raise ConfigurationError(f"SECRET_PREFIX {prefix!r} has characters Secrets Manager does not allow")
        eab_secret = env.get("ACME_EAB_SECRET", "").strip() or None
        if eab_secret is not None and (problem := eab_secret_problem(eab_secret, prefix)) is not None:
            raise ConfigurationError(f"ACME_EAB_SECRET {problem}")
        return cls(
            table_name=table_name,
            region=region,
            acme_directory_url=directory,
            acme_contact_email=env.get("ACME_CONTACT_EMAIL", "").strip() or None,
            acme_eab_secret=eab_secret,
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
            batch_size=_whole(env, "BATCH_SIZE", 100),
            renewal_queue_url=env.get("RENEWAL_QUEUE_URL", "").strip() or None,
            acme_workers=_whole(env, "ACME_WORKERS", 8),
            route53_requests_per_second=_positive(env, "ROUTE53_REQUESTS_PER_SECOND", ROUTE53_REQUESTS_PER_SECOND),
            acm_imports_per_second=_positive(env, "ACM_IMPORTS_PER_SECOND", ACM_IMPORTS_PER_SECOND),
            secrets_writes_per_second=_positive(env, "SECRETS_WRITES_PER_SECOND", SECRETS_WRITES_PER_SECOND),
            worker_concurrency=_whole(env, "WORKER_CONCURRENCY", 1),
            propagation=PropagationSettings.from_env(env),
            zone_roles=ZoneRoles.parse(env.get("ZONE_ROLES", "")),
            acm_role_arns=parse_role_arns(env["ACM_ROLE_ARNS"], "ACM_ROLE_ARNS") if "ACM_ROLE_ARNS" in env else None,
        )


def parse_role_arns(text: str, variable: str) -> frozenset[str]:
    """A comma-separated list of role ARNs (a CommaDelimitedList parameter joined again); empty entries ignored."""
    arns = [part.strip() for part in text.split(",") if part.strip()]
    for arn in arns:
        if not is_role_arn(arn):
            raise ConfigurationError(
                f"{variable} has {arn!r}, which is not an IAM role ARN such as {ROLE_ARN_EXAMPLE!r}"
            )
    return frozenset(arns)


def directory_url(raw: str) -> str:
    """An ACME directory URL, or the URL of a CA alias; ValueError says what is accepted."""
    if raw in CA_ALIASES:
        return CA_ALIASES[raw]
    if not raw or any(c.isspace() for c in raw):
        raise ValueError(f"must be an https:// URL or one of {', '.join(CA_ALIASES)}, got {raw!r}")
    try:
        parts = urlsplit(raw)
        ok = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 literal
        ok = False
    if not ok:
        raise ValueError(f"must be an https:// URL or one of {', '.join(CA_ALIASES)}, got {raw!r}")
    return raw


def eab_secret_problem(name: str, prefix: str) -> str | None:
    """Why a secret cannot hold EAB credentials for the function, or None. The IAM policy lets the function
    read secrets under its prefix only."""
    if not _SECRET_NAME.match(name) or len(name) > 512:
        return f"{name!r} must be a secret name of 1-512 letters, digits and /_+=.@-"
    if not name.startswith(prefix):
        return (
            f"{name!r} must start with {prefix!r}: the function may only read secrets under that prefix"
            " (template parameter SecretPrefix)"
        )
    return None


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

"""Domain values shared by the pipeline stages: what is requested, what was issued, what happened."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acme_renewer.report.endpoints import Endpoint


class KeyType(enum.Enum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


class Status(enum.Enum):
    ISSUED = "ISSUED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class AcmeAccount:
    """Which ACME account orders a certificate: one per (directory, EAB credentials secret)."""

    directory_url: str
    # Secrets Manager secret with the EAB key id and HMAC key; None: the account is registered without EAB.
    eab_secret: str | None = None


@dataclass(frozen=True)
class CertificateRequest:
    """A validated item: what the user asked for."""

    id: str
    domains: tuple[str, ...]  # ASCII (punycode), lowercase; the first one is the subject
    key_type: KeyType
    acm_regions: tuple[str, ...]
    secret_name: str
    renew_before_days: int | None
    enabled: bool
    endpoints: tuple[Endpoint, ...] = ()  # host:port that should serve this certificate
    # The Route53 zone (bare id) every challenge TXT is written in; None: the longest matching public zone.
    hosted_zone_id: str | None = None
    # Every name's challenge value goes to _acme-challenge.<challenge_alias> (a CNAME target); None: discovered.
    challenge_alias: str | None = None
    # Issuer CN of the topmost certificate of the chain to prefer among the CA's chains; None: the default chain.
    preferred_chain: str | None = None
    # The CA profile to order (directory meta.profiles); None: the CA's default. With profile_fallback, a CA that
    # does not offer it gets an order for its default instead of a failure.
    profile: str | None = None
    profile_fallback: bool = False
    # The CA and account to order from; None: the function's (ACME_DIRECTORY_URL, ACME_EAB_SECRET).
    account: AcmeAccount | None = None
    # The role assumed for the Route53 zones of every challenge value; None: ZONE_ROLES, else the own account.
    zone_role: ZoneRole | None = None
    warnings: tuple[str, ...] = ()
    # ACM of other AWS accounts, each reached with its role; the own account's regions are `acm_regions`.
    acm_accounts: tuple[AcmTarget, ...] = ()
    # Formats of the secret beyond PEM (stores/formats.py FORMATS: "pkcs12", "pkcs12-legacy", "bundle").
    formats: tuple[str, ...] = ()
    # Regions the secret is replicated to (Secrets Manager replication); () : the function's region only.
    secret_regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AriState:
    """ACME Renewal Information (RFC 9773) of the current certificate, as the renewer last saw it (item `ari`)."""

    cert_id: str  # the certificate's ARI id, also what a renewal's newOrder `replaces`
    window_start: datetime | None = None
    window_end: datetime | None = None
    explanation_url: str | None = None
    # A random moment inside the window, chosen once per window: the certificate is due from then on.
    renew_at: datetime | None = None
    checked_at: datetime | None = None
    next_check_at: datetime | None = None  # the CA's Retry-After; None: at the next run that reads the item


@dataclass(frozen=True)
class CertificateState:
    """What the renewer last wrote on the item; empty for a certificate never issued."""

    not_before: datetime | None = None
    not_after: datetime | None = None
    issued_domains: tuple[str, ...] = ()
    acm_arns: dict[str, str] = field(default_factory=dict)  # region -> certificate ARN
    # Fingerprint of the request fields that the current certificate was issued for.
    issued_fingerprint: str | None = None
    # Fingerprint of the request at the last attempt; failures count per fingerprint, so any edit resets them.
    attempt_fingerprint: str | None = None
    failure_count: int = 0
    next_attempt_at: datetime | None = None
    # Challenge values a run published and has not removed yet (it may have died): see JournaledDns.
    pending_txt: tuple[TxtRecord, ...] = ()
    # An order finalized by a run that may have died before storing: (order URL, request fingerprint).
    pending_order: tuple[str, str] | None = None
    # Set when the certificate's CA offers renewalInfo; None: the local renewal window alone decides.
    ari: AriState | None = None
    # ACM certificates this item's certificate moved away from, reported while something still uses them.
    superseded: tuple[SupersededArn, ...] = ()
    # ACM ARNs in other accounts (acm_accounts): account id -> region -> certificate ARN.
    acm_account_arns: dict[str, dict[str, str]] = field(default_factory=dict)
    # The formats the secret's AWSCURRENT was last rendered in (item `secret_formats`); () before formats existed.
    secret_formats: tuple[str, ...] = ()
    # The secret_regions the secret was last replicated to (item `secret_replicas`).
    secret_replicas: tuple[str, ...] = ()
    # When the renewer imported into ACM in each region of its own account, within the last 365 days (item
    # `acm_imports`): what ACM's quota "Imported certificates in last 365 days" counts.
    acm_imports: dict[str, tuple[datetime, ...]] = field(default_factory=dict)
    # True once the `<secret_name>.pending` secret of versions before one secret per certificate is known gone
    # (item `legacy_pending_gone`): later renewals do not ask Secrets Manager to delete it again.
    legacy_pending_gone: bool = False


@dataclass(frozen=True)
class IssuedCertificate:
    """The result of a finalized order, with the new private key. Never log `private_key_pem`."""

    certificate_pem: str  # the leaf
    chain_pem: str  # intermediates
    private_key_pem: str  # PKCS#8
    serial: str
    not_before: datetime
    not_after: datetime
    domains: tuple[str, ...]
    # Seconds from the first DNS write to the provider reporting it live; None when nothing had to be published.
    propagation_seconds: float | None = None
    # The certificate's ARI id when its CA offers renewalInfo (RFC 9773 §4.1); None: the CA has no ARI.
    ari_id: str | None = None

    @property
    def fullchain_pem(self) -> str:
        return self.certificate_pem + self.chain_pem

    def __repr__(self) -> str:
        return f"IssuedCertificate(serial={self.serial!r}, not_after={self.not_after:%Y-%m-%d}, domains={self.domains})"


@dataclass(frozen=True)
class SupersededArn:
    """An ACM certificate that the item no longer imports into, because ACM refuses the re-import (another key
    type or size, a usage dropped): it keeps the last certificate it got, which the resources still attached
    to it serve until it expires. Item attribute `superseded_arns`."""

    region: str
    arn: str
    replaced_at: datetime
    # The role of the account holding it (acm_accounts); None: the function's own account.
    role: ZoneRole | None = None

    @property
    def account(self) -> str | None:
        return self.role.account if self.role is not None else None


@dataclass(frozen=True)
class Replacement:
    """This run imported into a new ARN instead of re-importing into `superseded.arn`, and why."""

    superseded: SupersededArn
    new_arn: str
    reason: str


@dataclass(frozen=True)
class StoredCertificate:
    """Where a certificate landed: one ACM ARN per region and the secret."""

    acm_arns: dict[str, str]
    secret_arn: str
    secret_version_id: str
    # Every ARN of the item now superseded (the earlier ones and this run's), and this run's replacements.
    superseded: tuple[SupersededArn, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    # ARNs in other accounts: account id -> region -> ARN.
    acm_account_arns: dict[str, dict[str, str]] = field(default_factory=dict)
    # The item's imports into ACM in its own account within 365 days, this store's included: region -> times.
    acm_imports: dict[str, tuple[datetime, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ZoneRole:
    """An IAM role in another AWS account, assumed to write challenge values into that account's hosted zones, or
    to import certificates into its ACM (an item's acm_accounts)."""

    arn: str  # arn:<partition>:iam::<account>:role/<path/name>
    external_id: str | None = None

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


@dataclass(frozen=True)
class AcmTarget:
    """ACM of another AWS account: the role assumed there, and the regions the certificate is imported into."""

    role: ZoneRole
    regions: tuple[str, ...]

    @property
    def account(self) -> str:
        return self.role.account


@dataclass(frozen=True)
class TxtRecord:
    """One challenge value. The CA looks it up at `name`; it is written at `target` when `name` is a CNAME
    (delegated, or the item's `challenge_alias`), in the hosted zone `zone_id` when the item pins one, in the
    account of `role` when that is not the function's own (dns/accounts.py)."""

    name: str  # lowercase, no trailing dot
    value: str
    target: str | None = None  # where the TXT is written when that is not `name`: the end of its CNAME chain
    zone_id: str | None = None  # the item's hosted_zone_id; None: the longest matching public zone
    role: ZoneRole | None = None  # assumed to write in another account's zones; None: the function's own account

    @property
    def written_at(self) -> str:
        return self.target or self.name


class Step(enum.Enum):
    """A phase of a run, as a progress display shows it (the CLI's `renew`); the pipeline only reports them."""

    CONSIDERED = "considered"  # `certificates`: the items this run looks at (the due ones on a due-only run)
    ORDERING = "ordering"  # `certificates`: due and leased, their orders are being opened
    PUBLISHING = "publishing"  # `records` TXT values going out to `zones` hosted zones (one adapter's account)
    WAITING = "waiting"  # Route53 still has `changes` changes PENDING, `seconds` after the first poll
    CHECKING = "checking"  # INSYNC; asking the authoritative servers of `zones` zones for the values
    LIVE = "live"  # the `records` values of `certificates` certificates are live, after `seconds`
    VALIDATING = "validating"  # the CA is validating the `certificates` answered orders


@dataclass(frozen=True)
class Phase:
    step: Step
    certificates: int = 0
    records: int = 0
    zones: int = 0
    changes: int = 0
    seconds: float | None = None


# Called from whichever thread reaches the phase (several accounts publish at once).
PhaseObserver = Callable[[Phase], None]

"""Composition root: build the AWS clients once per container and wire the pipeline's adapters together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError
from josepy import jwk

from acme_renewer import __version__
from acme_renewer.dns.accounts import AccountRoutedDns
from acme_renewer.dns.route53 import NameAnswers, Route53Dns, VisibilityCheck
from acme_renewer.errors import ZoneRoleError
from acme_renewer.inventory.ari import RenewalInfoClient
from acme_renewer.inventory.batching import RenewalQueue
from acme_renewer.inventory.policy import FailurePolicy
from acme_renewer.inventory.table import CertificateTable
from acme_renewer.models import AcmeAccount, PhaseObserver, ZoneRole
from acme_renewer.order import orders as order
from acme_renewer.order.account import AccountKeyStore, AccountSessions, AcmeSession, connect, load_eab
from acme_renewer.order.transport import anonymous_network
from acme_renewer.pacing import RateLimiter, Shares, SlottedRateLimiter
from acme_renewer.renewal import Renewer
from acme_renewer.report.events import EventPublisher
from acme_renewer.report.fleet import FleetChecks
from acme_renewer.settings import SECRETS_WRITE_OPERATIONS, ChallengeLookup, PropagationMode, Settings
from acme_renewer.stores.acm import AcmStore
from acme_renewer.stores.secrets import PendingOrderStore, SecretStore

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient

# Adaptive mode rate-limits the client itself after Throttling / PriorRequestNotComplete (Route53) or
# ThrottlingException (ACM, Secrets Manager), behind our own pacing to this process's share of the account's
# budgets (pacing.py: the budget divided by pacing.Shares, the workers busy now).
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    connect_timeout=10,
    read_timeout=30,
    user_agent_extra=f"acme-renewer/{__version__}",
)


# ACM's imports take turns in wall-clock slots (pacing.SlottedRateLimiter), which are their client-side rate
# control: adaptive mode's own limiter would delay a call past its slot into another process's. Standard mode
# retries a throttled call after its backoff, in this process's next slot.
ACM_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 10}))


# What CloudTrail in the zone's account shows as the session of our writes.
ROLE_SESSION_NAME = "acme-renewer"


@cache
def client(service: str, region: str, role: ZoneRole | None = None) -> Any:
    """One client per service and region (and role) per container; AWS_ENDPOINT_URL is honoured by boto3 itself.

    With a role, the client acts in the role's account: AssumeRole is called at once (ZoneRoleError when
    refused), and again shortly before the credentials expire.
    """
    session = boto3.session.Session() if role is None else _assumed_session(role, region)
    config = ACM_CLIENT_CONFIG if service == "acm" else CLIENT_CONFIG
    return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]


def _assumed_session(role: ZoneRole, region: str) -> boto3.session.Session:
    sts = client("sts", region)

    def fetch() -> dict[str, str]:
        extra = {"ExternalId": role.external_id} if role.external_id else {}
        try:
            credentials = sts.assume_role(RoleArn=role.arn, RoleSessionName=ROLE_SESSION_NAME, **extra)["Credentials"]
        except ClientError as refused:
            error = refused.response.get("Error", {})
            raise ZoneRoleError(
                f"could not assume role {role.arn}: {error.get('Code')}: {error.get('Message')}"
            ) from refused
        except BotoCoreError as failed:
            raise ZoneRoleError(f"could not assume role {role.arn}: {failed}") from failed
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    # Refreshable, so that a run outliving the session (one hour) goes on; botocore refreshes ahead of expiry.
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    core = botocore.session.get_session()
    core._credentials = credentials  # type: ignore[attr-defined]  # botocore has no public setter for refreshable ones
    return boto3.session.Session(botocore_session=core)


def build_renewer(
    settings: Settings, time_left: Callable[[], float] | None = None, *, on_phase: PhaseObserver | None = None
) -> Renewer:
    """The pipeline; `on_phase` is told of each phase of a run (the CLI's progress lines), the DNS wait included."""
    region = settings.region
    secrets = secrets_client(settings)

    def orders_for(account: AcmeAccount) -> order.AcmeOrders:
        """The sessions of one ACME account: its EAB credentials and key are read, and the account registered,
        once, when first needed."""
        eab = memoize(lambda: load_eab(secrets, account.eab_secret) if account.eab_secret else None)

        def load_key() -> jwk.JWK:
            credentials = eab()
            key_id = credentials.key_id if credentials is not None else None
            name = settings.account_secret_name_for(account.directory_url, key_id)
            store = AccountKeyStore(secrets, name, account.directory_url, settings.secrets_kms_key_id, key_id)
            return store.load_or_create()

        account_key = memoize(load_key)

        def register() -> AcmeSession:
            return connect(
                account.directory_url,
                account_key(),
                settings.acme_contact_email,
                settings.acme_network_timeout_seconds,
                eab(),
            )

        # One newAccount per account per run; the other sessions reuse its account URL.
        sessions = AccountSessions(register, settings.acme_network_timeout_seconds)
        return order.AcmeOrders(sessions, settings.order_timeout_seconds)

    acm_clients: dict[tuple[ZoneRole | None, str], ACMClient] = {}
    acm_limiters: dict[tuple[str | None, str], RateLimiter] = {}
    acm_lock = threading.Lock()

    def acm_client(acm_region: str, role: ZoneRole | None = None) -> ACMClient:
        """ImportCertificate has its own quota per account and region: one client per region (and role), paced by
        one limiter per account and region that the store threads share, also when two roles reach one account.
        The store threads ask for it at the same moment, and functools.cache alone would let each of them build a
        client (and a limiter) of its own. With a role, building the client assumes it (ZoneRoleError), and a
        failure is not kept: the next certificate naming the role tries again."""
        with acm_lock:
            if (role, acm_region) not in acm_clients:
                acm: ACMClient = client("acm", acm_region) if role is None else client("acm", acm_region, role)
                limiter = acm_limiters.setdefault(
                    (role.account if role else None, acm_region),
                    SlottedRateLimiter(settings.acm_imports_per_second, shares=shares(settings)),
                )
                limiter.attach(acm, "ImportCertificate")
                acm_clients[role, acm_region] = acm
            return acm_clients[role, acm_region]

    dns = AccountRoutedDns(lambda role: route53_dns(settings, role, on_phase), settings.zone_roles)
    table = CertificateTable(client("dynamodb", region), settings.table_name)

    return Renewer(
        settings=settings,
        table=table,
        # Sessions are opened on the first due certificate only: a run with nothing due never contacts the CA.
        orders=order.AccountOrders(orders_for, AcmeAccount(settings.acme_directory_url, settings.acme_eab_secret)),
        dns=dns,
        pending=PendingOrderStore(secrets, settings.secrets_kms_key_id),
        time_left=time_left,
        policy=FailurePolicy(max_consecutive_failures=settings.max_consecutive_failures),
        events=EventPublisher(client("events", region), settings.event_bus_name),
        fleet=FleetChecks(
            acm_client_for_region=acm_client,
            acm_client_for_role=lambda role, acm_region: acm_client(acm_region, role),
            default_region=region,
            expiry_warning=timedelta(days=settings.expiry_warning_days),
            endpoint_grace=timedelta(minutes=settings.endpoint_grace_minutes),
            record_superseded=lambda item_id, kept, read: table.set_superseded(item_id, kept, read=read),
        ),
        secrets=SecretStore(secrets, settings.secrets_kms_key_id),
        acm=AcmStore(acm_client, client_for_role=lambda role, acm_region: acm_client(acm_region, role)),
        renewal_info=RenewalInfoClient(lambda: anonymous_network(settings.acme_network_timeout_seconds)),
        on_phase=on_phase,
    )


T = TypeVar("T")


def route53_dns(settings: Settings, role: ZoneRole | None = None, on_phase: PhaseObserver | None = None) -> Route53Dns:
    """The Route53 adapter of the function's own account, or of a role's; each account has its own rate limit."""
    route53 = route53_client(settings, role)
    return Route53Dns(
        route53,
        ttl=settings.txt_ttl_seconds,
        timeout_seconds=settings.propagation_timeout_seconds,
        visibility_check=_visibility_check(settings, route53),
        on_phase=on_phase,
        dns_answers=_dns_answers(settings),
    )


def _dns_answers(settings: Settings) -> NameAnswers | None:
    """CHALLENGE_LOOKUP=dns: what the challenge names hold, asked over DNS first (dnspython imported only then)."""
    if settings.propagation.lookup is not ChallengeLookup.DNS:
        return None
    from acme_renewer.dns.lookup import build_lookup

    return build_lookup(settings.propagation.nameservers, settings.propagation.resolver)


# One Route53 limiter per account (None: the function's own) and budget, whichever role reaches the account:
# Route53 throttles the account, so two roles of one account share its share.
_route53_limiters: dict[tuple[str | None, float, Shares], RateLimiter] = {}
_route53_lock = threading.Lock()
_shares: dict[tuple[int, str | None], Shares] = {}


def shares(settings: Settings) -> Shares:
    """Into how many shares this process's budgets are cut: WORKER_CONCURRENCY, fewer while fewer batches are in
    flight on RENEWAL_QUEUE_URL (one per busy worker); one count per process, whatever asks."""
    key = (settings.worker_concurrency, settings.renewal_queue_url)
    with _route53_lock:
        if key not in _shares:
            in_flight = None
            if settings.renewal_queue_url is not None:
                sqs, url = client("sqs", settings.region), settings.renewal_queue_url

                def in_flight() -> int:
                    attributes = sqs.get_queue_attributes(
                        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
                    )["Attributes"]
                    return int(attributes["ApproximateNumberOfMessagesNotVisible"])

            _shares[key] = Shares(settings.worker_concurrency, in_flight)
        return _shares[key]


def route53_client(settings: Settings, role: ZoneRole | None = None) -> Any:
    """The Route53 client of the function's own account (or a role's), paced to this process's share of that
    account's request rate by the account's limiter, which a client keeps from its first call (RateLimiter.attach)."""
    # Route53 is global: its API lives in us-east-1 whatever the function's region.
    # Without a role, called exactly as elsewhere (the CLI, tests' hooks): functools.cache keys on the arguments.
    route53 = client("route53", "us-east-1") if role is None else client("route53", "us-east-1", role)
    budget, split = settings.route53_requests_per_second, shares(settings)
    with _route53_lock:
        limiter = _route53_limiters.setdefault(
            (role.account if role else None, budget, split), RateLimiter(budget, shares=split)
        )
    limiter.attach(route53)
    return route53


def secrets_client(settings: Settings) -> Any:
    """The Secrets Manager client of the function's region, its writes paced to this process's share of the
    account's write quota in that region; reads are not paced (their quota is far higher)."""
    secrets = client("secretsmanager", settings.region)
    RateLimiter(settings.secrets_writes_per_second, shares=shares(settings)).attach(secrets, *SECRETS_WRITE_OPERATIONS)
    return secrets


def build_queue(settings: Settings) -> RenewalQueue | None:
    """The fan-out queue the planner sends batches to; None without RENEWAL_QUEUE_URL (renewal in process)."""
    if settings.renewal_queue_url is None:
        return None
    return RenewalQueue(client("sqs", settings.region), settings.renewal_queue_url)


def _visibility_check(settings: Settings, route53: Any) -> VisibilityCheck | None:
    """The optional wait for the authoritative servers; dnspython is imported only when it is switched on."""
    if settings.propagation.mode is PropagationMode.OFF:
        return None
    from acme_renewer.dns.propagation import build_propagation_check

    check = build_propagation_check(settings.propagation, route53, timeout_seconds=settings.propagation_timeout_seconds)
    return None if check is None else check.wait_visible


def memoize(factory: Callable[[], T]) -> Callable[[], T]:
    """Call the factory at most once, also when it fails, and from one thread at a time."""
    result: list[T] = []
    failure: list[Exception] = []
    lock = threading.Lock()

    def get() -> T:
        with lock:
            if failure:
                raise failure[0]
            if not result:
                try:
                    result.append(factory())
                except Exception as exc:
                    failure.append(exc)
                    raise
            return result[0]

    return get

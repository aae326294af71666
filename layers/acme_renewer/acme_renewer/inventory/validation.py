"""Inventory, edge: turn a raw DynamoDB item into a CertificateRequest, or say precisely what is wrong."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import idna

from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.policy import REQUEST_FIELDS
from acme_renewer.models import AcmeAccount, AcmTarget, CertificateRequest, KeyType, ZoneRole
from acme_renewer.report.endpoints import parse_endpoints
from acme_renewer.settings import (
    CA_ALIASES,
    ROLE_ARN_EXAMPLE,
    Settings,
    directory_url,
    eab_secret_problem,
    is_external_id,
    is_role_arn,
)
from acme_renewer.stores.formats import FORMATS

MAX_DOMAINS = 100  # Let's Encrypt's limit of names per certificate
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_PROFILE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Names per certificate that a profile is known to allow (Let's Encrypt's classic: https://letsencrypt.org/docs/
# profiles/; tlsserver: the figure). A profile not listed here has no known limit; the CA enforces its own.
PROFILE_MAX_NAMES = {"classic": 100, "tlsserver": 25}
# AWS's ids start with Z; moto's need not, and nothing here depends on it.
_HOSTED_ZONE_ID = re.compile(r"^(?:/?hostedzone/)?([A-Z0-9]{1,32})$", re.IGNORECASE)

# An unknown attribute is most often a typo of a request field; difflib's ratio above this names the field meant
# ("acm_region" -> "acm_regions", "zone_id" -> "hosted_zone_id") and stays quiet for "eab" (0.6 to "enabled").
TYPO_CUTOFF = 0.65
# CloudFront uses certificates from ACM in us-east-1 only, and only with RSA keys (up to 4096 bits) or EC P-256
# keys: CloudFront Developer Guide, "Requirements for using SSL/TLS certificates with CloudFront" (Key type; Size
# of the certificate key) and "Determine the size of the public key in an SSL/TLS RSA certificate"
# (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-requirements.html), and ACM
# User Guide, "Prerequisites for importing ACM certificates". ACM imports any of our key types, and a load balancer
# or API Gateway in us-east-1 uses them all: a key CloudFront cannot use is a warning, not an error.
CLOUDFRONT_REGION = "us-east-1"
CLOUDFRONT_KEY_TYPES = (KeyType.EC_P256, KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096)

# Written by the renewer itself, on the certificate's status item (see README, "The item"); `written_by` is the
# mark of the renewer's writes from before the status items, removed from requests when they are read.
STATE_FIELDS = frozenset(
    {
        "status", "not_before", "not_after", "serial", "issued_domains", "acm_arns", "secret_arn",
        "secret_version_id", "last_error", "last_attempt_at", "last_renewed_at", "issued_fingerprint",
        "attempt_fingerprint", "failure_count", "next_attempt_at", "lease_owner", "lease_until", "written_by",
        "pending_txt", "pending_order", "display_domains", "schedule", "due_at", "ari", "retired_at", "warnings",
        "superseded_arns", "acm_account_arns", "secret_formats", "secret_replicas", "acm_imports",
        "legacy_pending_gone",
    }
)  # fmt: skip
# Marks a status item; on a request it would hide the request's changes from the stream trigger.
STATUS_MARK = "status_of"


def parse_item(item: Mapping[str, Any], settings: Settings) -> CertificateRequest:
    """Validate every request field; collect all problems so one fix-up round is enough.

    Raises ItemValidationError and nothing else, whatever the item holds: items are written by hand too.
    """
    problems: list[str] = []
    warnings: list[str] = []
    item_id = item.get("id")
    id_ok = isinstance(item_id, str) and bool(_ID.match(item_id))
    if not id_ok:
        problems.append(
            f"id {item_id!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if STATUS_MARK in item:
        problems.append(
            f"{STATUS_MARK} marks the renewer's status items; remove it from the request (with it, the stream trigger "
            "ignores the request's changes)"
        )
    item_id = str(item_id)

    domains = _domains(item.get("domains"), problems)
    key_type = _key_type(item.get("key_type", KeyType.EC_P256.value), problems)
    regions = _regions(item.get("acm_regions", [settings.region]), problems)
    if "secret_name" in item or id_ok:
        secret_name = _secret_name(item.get("secret_name", settings.default_secret_name(item_id)), settings, problems)
    else:
        secret_name = ""  # the default derives from the id, which is already reported
    renew_before_days = _renew_before_days(item.get("renew_before_days"), problems)
    endpoints, endpoint_problems = parse_endpoints(item.get("endpoints", []))
    problems.extend(endpoint_problems)
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"enabled must be true or false (a BOOL), got {describe(enabled)}")
    account = _account(item, settings, problems)
    preferred_chain = _preferred_chain(item.get("preferred_chain"), problems)
    hosted_zone_id = _hosted_zone_id(item.get("hosted_zone_id"), problems)
    challenge_alias = _challenge_alias(item.get("challenge_alias"), problems)
    profile, profile_fallback = _profile(item.get("profile"), item.get("profile_fallback"), domains, problems, warnings)
    zone_role = _zone_role(item.get("zone_role_arn"), item.get("zone_external_id"), problems)
    acm_accounts = _acm_accounts(item.get("acm_accounts"), settings, problems, warnings)
    warnings += _cloudfront(key_type, (*regions, *(region for target in acm_accounts for region in target.regions)))
    secret_formats = _formats(item.get("formats"), problems)
    secret_regions = _secret_regions(item.get("secret_regions"), settings, problems)
    unknown = sorted(str(name) for name in set(item) - set(REQUEST_FIELDS) - STATE_FIELDS)
    warnings += [unknown_attribute(name) for name in unknown]

    if problems:
        # The warnings too: "domain" for "domains" is both a problem and, said as a typo, its fix.
        raise ItemValidationError(problems, warnings)
    return CertificateRequest(
        id=item_id,
        domains=domains,
        key_type=key_type,
        acm_regions=regions,
        secret_name=secret_name,
        renew_before_days=renew_before_days,
        enabled=bool(enabled),
        endpoints=endpoints,
        preferred_chain=preferred_chain,
        hosted_zone_id=hosted_zone_id,
        challenge_alias=challenge_alias,
        account=account,
        profile=profile,
        profile_fallback=profile_fallback,
        zone_role=zone_role,
        warnings=tuple(warnings),
        acm_accounts=acm_accounts,
        formats=secret_formats,
        secret_regions=secret_regions,
    )


def unknown_attribute(name: str) -> str:
    """The warning for an attribute the renewer does not read, naming the request field it most likely meant."""
    closest = difflib.get_close_matches(name.lower(), REQUEST_FIELDS, n=1, cutoff=TYPO_CUTOFF)
    hint = f"; did you mean {closest[0]!r}?" if closest else ""
    return f"unknown attribute {name!r} ignored{hint}"


def _cloudfront(key_type: KeyType, regions: tuple[str, ...]) -> list[str]:
    """A warning when the certificate goes to ACM in us-east-1, CloudFront's region, with a key CloudFront refuses."""
    if CLOUDFRONT_REGION not in regions or key_type in CLOUDFRONT_KEY_TYPES:
        return []
    return [
        f"key_type {key_type.value!r} cannot be used by CloudFront, which takes only RSA (up to 4096 bits) and EC"
        f" P-256 keys from ACM in {CLOUDFRONT_REGION}: for a CloudFront distribution use key_type"
        f" {KeyType.EC_P256.value!r} or {KeyType.RSA_2048.value!r}; for a load balancer or API Gateway in"
        f" {CLOUDFRONT_REGION}, {key_type.value!r} is fine"
    ]


def check_against_lifetime(request: CertificateRequest, not_before: datetime, not_after: datetime) -> list[str]:
    """Problems of the request that only the issued certificate reveals; [] when there are none.

    A `renew_before_days` at least as long as the CA's lifetime puts every certificate inside its renewal
    window from the start, so every run would order a new one (and soon hit the CA's rate limits).
    """
    days = request.renew_before_days
    lifetime = not_after - not_before
    if days is None or timedelta(days=days) < lifetime:
        return []
    lifetime_days = lifetime / timedelta(days=1)
    return [
        f"renew_before_days {days} is not shorter than the certificate's lifetime ({lifetime_days:.3g} days), "
        f"so every run would renew it; use fewer days (about {max(1, math.floor(lifetime_days / 3))} renews "
        "with a third of the lifetime left) or remove renew_before_days for that default"
    ]


def display_name(ascii_name: str) -> str:
    """The Unicode form of a normalized name, for people ("xn--bcher-kva.example" -> "bücher.example").

    Names that do not decode (none that parse_item accepted should) are returned as they are.
    """
    wildcard = ascii_name.startswith("*.")
    base = ascii_name[2:] if wildcard else ascii_name
    try:
        shown = idna.decode(base)
    except (UnicodeError, ValueError):  # idna.IDNAError is a UnicodeError
        return ascii_name
    return ("*." if wildcard else "") + shown


def describe(raw: Any) -> str:
    """A value as DynamoDB would call it, for messages about items written by hand."""
    if isinstance(raw, bool):
        return f"a boolean ({raw})"
    if isinstance(raw, (int, float, Decimal)):
        return f"a number ({raw})"
    if isinstance(raw, str):
        return f"the string {raw!r}"
    if isinstance(raw, (bytes, bytearray)):
        return "binary data"
    if isinstance(raw, (set, frozenset)):
        return f"a set ({len(raw)} elements)"
    if isinstance(raw, Mapping):
        return f"a map ({len(raw)} keys)"
    if isinstance(raw, (list, tuple)):
        return f"a list ({len(raw)} elements)"
    if raw is None:
        return "null"
    return type(raw).__name__


def normalize_domain(raw: str) -> str:
    """Lowercase, drop a trailing dot and convert IDN to punycode; raise ValueError with the reason."""
    name = raw.strip().rstrip(".")
    if not name:
        raise ValueError("is empty")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError("is an IP address; DNS-01 validates DNS names only")
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if "*" in base:
        raise ValueError("may only have a wildcard as its whole first label ('*.example.com')")
    try:
        ascii_base = idna.encode(base, uts46=True).decode("ascii") if not base.isascii() else base.lower()
    except UnicodeError as exc:  # idna.IDNAError is one
        raise ValueError(f"is not a valid internationalized name ({exc})") from None
    labels = ascii_base.split(".")
    if len(labels) < 2:
        raise ValueError("needs at least two labels (a public suffix alone cannot be validated)")
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"has a label longer than 63 characters ({label[:20]}...)")
        if not _LABEL.match(label):
            raise ValueError(f"has an invalid label {label!r} (letters, digits and inner hyphens only)")
        if label.startswith("xn--") and display_name(label) == label:
            raise ValueError(f"has a label {label!r} that is not valid punycode; write the name in Unicode instead")
    ascii_name = ("*." if wildcard else "") + ascii_base
    if len(ascii_name) > 253:
        raise ValueError(f"is {len(ascii_name)} characters long; DNS names stop at 253")
    return ascii_name


def _domains(raw: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(raw, (set, frozenset)):
        problems.append(
            f"domains must be a list (L), not a set: the first name is the certificate's subject and a set has no"
            f" order; got {describe(raw)}"
        )
        return ()
    if not isinstance(raw, (list, tuple)) or not raw:
        problems.append(f'domains must be a non-empty list of DNS names, e.g. ["example.com"], got {describe(raw)}')
        return ()
    names: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            problems.append(f"domains has {describe(entry)}; each name must be a string (S) such as 'example.com'")
            continue
        try:
            name = normalize_domain(entry)
        except ValueError as exc:
            problems.append(f"domain {entry!r} {exc}")
            continue
        if name not in names:  # keep the first occurrence: the first name is the subject
            names.append(name)
    if len(names) > MAX_DOMAINS:
        problems.append(f"domains has {len(names)} names; a certificate holds at most {MAX_DOMAINS}")
    return tuple(names)


def _key_type(raw: Any, problems: list[str]) -> KeyType:
    try:
        return KeyType(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in KeyType)
        got = repr(raw) if isinstance(raw, str) else describe(raw)
        problems.append(f"key_type {got} is not one of {allowed}")
        return KeyType.EC_P256


@cache
def known_regions(service: str = "acm") -> frozenset[str]:
    """The service's regions (ACM's by default) from botocore's bundled endpoint data: offline, and current with
    the runtime's boto3."""
    import boto3

    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions(service, partition_name=partition)
    )


def _regions(raw: Any, problems: list[str], field: str = "acm_regions") -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        empty = " (empty for no ACM import)" if field == "acm_regions" else ""
        problems.append(f"{field} must be a list of region names{empty}, got {describe(raw)}")
        return ()
    regions: list[str] = []
    for region in raw:
        if not isinstance(region, str):
            problems.append(f"{field} has {describe(region)}; each region is a string such as 'us-east-1'")
        elif region not in known_regions():
            problems.append(f"{field} has {region!r}, which is not an AWS region with ACM")
        elif region not in regions:
            regions.append(region)
    return tuple(regions)


def _secret_name(raw: Any, settings: Settings, problems: list[str]) -> str:
    if not isinstance(raw, str) or not _SECRET_NAME.match(raw):
        got = repr(raw) if isinstance(raw, str) else describe(raw)
        problems.append(f"secret_name {got} must be a string of 1-512 letters, digits and /_+=.@-")
        return ""
    if not raw.startswith(settings.secret_prefix):
        problems.append(
            f"secret_name {raw!r} must start with {settings.secret_prefix!r}: the function may only write secrets"
            " under that prefix (template parameter SecretPrefix)"
        )
    return raw


def _renew_before_days(raw: Any, problems: list[str]) -> int | None:
    if raw is None:
        return None
    # DynamoDB numbers arrive as Decimal; accept whole numbers only.
    if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal)):
        problems.append(f"renew_before_days must be a whole number of days (N), got {describe(raw)}")
        return None
    finite = raw.is_finite() if isinstance(raw, Decimal) else math.isfinite(raw)
    if not finite or raw != int(raw) or not 1 <= int(raw) <= 365:
        problems.append(f"renew_before_days must be a whole number from 1 to 365, got {raw}")
        return None
    return int(raw)


def _secret_regions(raw: Any, settings: Settings, problems: list[str]) -> tuple[str, ...]:
    """Regions to replicate the secret to: AWS regions with Secrets Manager other than the function's own."""
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        problems.append(f"secret_regions must be a list of region names such as ['eu-west-1'], got {describe(raw)}")
        return ()
    regions: list[str] = []
    for region in raw:
        if not isinstance(region, str):
            problems.append(f"secret_regions has {describe(region)}; each region is a string such as 'eu-west-1'")
        elif region == settings.region:
            problems.append(
                f"secret_regions has {region!r}, the function's own region, where the secret already is; remove it"
            )
        elif region not in known_regions("secretsmanager"):
            problems.append(f"secret_regions has {region!r}, which is not an AWS region with Secrets Manager")
        elif region not in regions:
            regions.append(region)
    if regions and settings.secrets_kms_key_id:
        problems.append(
            "secret_regions cannot be used with a customer-managed key (SECRETS_KMS_KEY_ID) yet: a replica needs a key"
            " in its own region, and the renewer does not choose one; remove secret_regions, or replicate by hand"
            " (aws secretsmanager replicate-secret-to-regions --add-replica-regions Region=...,KmsKeyId=...)"
        )
    return tuple(regions)


def _formats(raw: Any, problems: list[str]) -> tuple[str, ...]:
    """The secret's formats beyond PEM: a list of distinct values of stores/formats.py FORMATS."""
    if raw is None:
        return ()
    allowed = ", ".join(repr(name) for name in FORMATS)
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        problems.append(
            f'formats must be a list (L) of {allowed}, e.g. ["pkcs12"]; remove it for PEM only, got {describe(raw)}'
        )
        return ()
    names: list[str] = []
    for entry in raw:
        if not isinstance(entry, str) or entry not in FORMATS:
            got = repr(entry) if isinstance(entry, str) else describe(entry)
            problems.append(f"formats has {got}, which is not one of {allowed}")
        elif entry in names:
            problems.append(f"formats has {entry!r} twice; list each format once")
        else:
            names.append(entry)
    return tuple(names)


def _preferred_chain(raw: Any, problems: list[str]) -> str | None:
    """An issuer Common Name; X.509 caps a CN at 64 characters (ub-common-name), so a longer one never matches."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        got = repr(raw) if isinstance(raw, str) else describe(raw)
        problems.append(
            f"preferred_chain {got} must be the Common Name of the root the chain should lead to, a string of 1-64"
            " characters such as 'ISRG Root X1'; remove it for the CA's default chain"
        )
        return None
    return raw


def _profile(
    raw: Any, raw_fallback: Any, domains: tuple[str, ...], problems: list[str], warnings: list[str]
) -> tuple[str | None, bool]:
    """A profile name as a CA advertises it in meta.profiles, checked against the limits it is known to imply."""
    fallback = False
    if raw_fallback is not None:
        if isinstance(raw_fallback, bool):
            fallback = raw_fallback
        else:
            problems.append(f"profile_fallback must be true or false (a BOOL), got {describe(raw_fallback)}")
    if raw is None:
        if raw_fallback is not None:
            warnings.append("profile_fallback has no effect without profile")
        return None, False
    if not isinstance(raw, str) or not _PROFILE.match(raw):
        got = repr(raw) if isinstance(raw, str) else describe(raw)
        problems.append(
            f"profile {got} must be the name of a profile the CA offers, 1-64 letters, digits, '.', '_' or '-',"
            " such as 'tlsserver'; remove it for the CA's default"
        )
        return None, fallback
    limit = PROFILE_MAX_NAMES.get(raw)
    if limit is not None and len(domains) > limit:
        problems.append(
            f"profile {raw!r} allows at most {limit} names per certificate and domains has {len(domains)}; split the"
            f" names over several items, or use a profile that allows more"
        )
    return raw, fallback


def _account(item: Mapping[str, Any], settings: Settings, problems: list[str]) -> AcmeAccount:
    """The item's CA (a URL or an alias) and EAB secret; without them, the function's."""
    raw_directory, raw_eab = item.get("acme_directory"), item.get("eab_secret")
    directory = settings.acme_directory_url
    if raw_directory is not None:
        try:
            if not isinstance(raw_directory, str):
                raise ValueError
            directory = directory_url(raw_directory)
        except ValueError:
            got = repr(raw_directory) if isinstance(raw_directory, str) else describe(raw_directory)
            problems.append(
                f"acme_directory must be an https URL (https://host/path) or one of {', '.join(CA_ALIASES)},"
                f" got {got}; remove it to use the function's directory {settings.acme_directory_url}"
            )
    if raw_eab is None:
        # The function's EAB credentials belong to the function's directory, not to one an item names.
        eab = settings.acme_eab_secret if directory == settings.acme_directory_url else None
        return AcmeAccount(directory, eab)
    problem = eab_secret_problem(raw_eab, settings.secret_prefix) if isinstance(raw_eab, str) else None
    if not isinstance(raw_eab, str) or problem is not None:
        problems.append(
            f"eab_secret {problem or f'must be the name of a Secrets Manager secret (S), got {describe(raw_eab)}'}"
        )
        return AcmeAccount(directory)
    return AcmeAccount(directory, raw_eab)


def account_directory(item: Mapping[str, Any], settings: Settings) -> str:
    """The directory an item orders from, also for an invalid item (for its fingerprint): an unreadable
    acme_directory counts as written."""
    raw = item.get("acme_directory")
    if raw is None:
        return settings.acme_directory_url
    try:
        return directory_url(raw) if isinstance(raw, str) else str(raw)
    except ValueError:
        return str(raw)


def _hosted_zone_id(raw: Any, problems: list[str]) -> str | None:
    """A Route53 zone id, with or without its /hostedzone/ prefix; kept bare, as ListHostedZones ids are compared."""
    if raw is None:
        return None
    match = _HOSTED_ZONE_ID.match(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        got = repr(raw) if isinstance(raw, str) else describe(raw)
        problems.append(
            f"hosted_zone_id {got} must be a Route53 hosted zone id such as 'Z0123456789ABCDEFGHIJ' (as the console"
            " or `aws route53 list-hosted-zones` shows it)"
        )
        return None
    return match.group(1).upper()


def _challenge_alias(raw: Any, problems: list[str]) -> str | None:
    """The domain whose _acme-challenge name every name of the certificate is a CNAME to."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.append(
            f"challenge_alias must be a domain name (S) such as 'validation.example.net', got {describe(raw)}"
        )
        return None
    if raw.strip().lower().startswith("_acme-challenge."):
        problems.append(
            f"challenge_alias {raw!r} must be given without '_acme-challenge.': the values go to"
            " _acme-challenge.<challenge_alias>"
        )
        return None
    try:
        alias = normalize_domain(raw)
    except ValueError as exc:
        problems.append(f"challenge_alias {raw!r} {exc}")
        return None
    if alias.startswith("*."):
        problems.append(f"challenge_alias {raw!r} must be a plain domain name, not a wildcard")
        return None
    return alias


def _zone_role(raw_arn: Any, raw_external_id: Any, problems: list[str]) -> ZoneRole | None:
    """The role whose account holds the hosted zones, and the external id its trust policy may require."""
    if raw_arn is None:
        if raw_external_id is not None:
            problems.append(
                "zone_external_id is set without zone_role_arn: the external id is given when assuming that role;"
                " add zone_role_arn or remove zone_external_id"
            )
        return None
    ok = True
    if not is_role_arn(raw_arn):
        got = repr(raw_arn) if isinstance(raw_arn, str) else describe(raw_arn)
        problems.append(
            f"zone_role_arn {got} must be the ARN of an IAM role in the account that holds the hosted zone, such as"
            f" {ROLE_ARN_EXAMPLE!r}"
        )
        ok = False
    if raw_external_id is not None and not is_external_id(raw_external_id):
        problems.append(external_id_problem("zone_external_id", raw_external_id))
        ok = False
    return ZoneRole(raw_arn, raw_external_id) if ok else None


ACM_ACCOUNT_KEYS = ("role_arn", "external_id", "regions")
_ACM_ACCOUNT_EXAMPLE = f'{{"role_arn": "{ROLE_ARN_EXAMPLE}", "external_id": "...", "regions": ["eu-west-1"]}}'


def _acm_accounts(raw: Any, settings: Settings, problems: list[str], warnings: list[str]) -> tuple[AcmTarget, ...]:
    """ACM of other accounts: a list of maps, each a role to assume (with its external id) and the regions to import
    into in the role's account. One entry per account: two roles of one account would import twice."""
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        problems.append(f"acm_accounts must be a list of maps such as [{_ACM_ACCOUNT_EXAMPLE}], got {describe(raw)}")
        return ()
    if not raw:
        warnings.append("acm_accounts is an empty list and imports nowhere; remove it, or add an account")
    targets: list[AcmTarget] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        where = f"acm_accounts[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} must be a map such as {_ACM_ACCOUNT_EXAMPLE}, got {describe(entry)}")
            continue
        ok = True
        for key in sorted(str(k) for k in set(entry) - set(ACM_ACCOUNT_KEYS)):
            closest = difflib.get_close_matches(key.lower(), ACM_ACCOUNT_KEYS, n=1, cutoff=TYPO_CUTOFF)
            hint = f"; did you mean {closest[0]!r}?" if closest else ""
            problems.append(f"{where} has the unknown key {key!r} (it takes {', '.join(ACM_ACCOUNT_KEYS)}){hint}")
            ok = False
        arn, external_id = entry.get("role_arn"), entry.get("external_id")
        if not is_role_arn(arn):
            got = repr(arn) if isinstance(arn, str) else describe(arn)
            problems.append(
                f"{where}.role_arn {got} must be the ARN of an IAM role in the account to import into, such as"
                f" {ROLE_ARN_EXAMPLE!r}"
            )
            ok = False
        elif settings.acm_role_arns is not None and arn not in settings.acm_role_arns:
            problems.append(
                f"{where}.role_arn {arn!r} is not in the stack parameter AcmRoleArns (ACM_ROLE_ARNS), so the function"
                " may not assume it: add it there and update the stack"
            )
            ok = False
        if external_id is not None and not is_external_id(external_id):
            problems.append(external_id_problem(f"{where}.external_id", external_id))
            ok = False
        raw_regions = entry.get("regions")
        before = len(problems)
        regions = _regions(raw_regions, problems, field=f"{where}.regions")
        if len(problems) > before:
            ok = False
        elif not regions:
            problems.append(f"{where}.regions must name at least one region to import into, such as ['eu-west-1']")
            ok = False
        if not ok:
            continue
        role = ZoneRole(str(arn), external_id)
        if role.account in seen:
            problems.append(
                f"{where} names account {role.account} again (as acm_accounts[{seen[role.account]}]); list all of"
                " the account's regions in one entry"
            )
            continue
        seen[role.account] = index
        targets.append(AcmTarget(role, regions))
    return tuple(targets)


def external_id_problem(field: str, value: Any) -> str:
    """What is wrong with an external id given for assuming a role (zone_external_id, acm_accounts' external_id)."""
    got = repr(value[:40]) if isinstance(value, str) else describe(value)
    return (
        f"{field} {got} must be 2-1224 letters, digits and +=,.@:/-_ (what STS accepts as ExternalId), the value the"
        " role's trust policy requires as sts:ExternalId"
    )

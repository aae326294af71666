"""Inventory, edge: turn a raw DynamoDB item into a CertificateRequest, or say precisely what is wrong."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import idna

from acme_renewer.endpoints import parse_endpoints
from acme_renewer.errors import ItemValidationError
from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.policy import REQUEST_FIELDS
from acme_renewer.settings import Settings

MAX_DOMAINS = 100  # Let's Encrypt's limit of names per certificate
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")

# Written by the renewer itself (and `written_by` by the CLI too); see README, "The item".
STATE_FIELDS = frozenset(
    {
        "status", "not_before", "not_after", "serial", "issued_domains", "acm_arns", "secret_arn",
        "secret_version_id", "last_error", "last_attempt_at", "last_renewed_at", "issued_fingerprint",
        "attempt_fingerprint", "failure_count", "next_attempt_at", "lease_owner", "lease_until", "written_by",
    }
)  # fmt: skip


def parse_item(item: Mapping[str, Any], settings: Settings) -> CertificateRequest:
    """Validate every request field; collect all problems so one fix-up round is enough."""
    problems: list[str] = []
    item_id = item.get("id")
    if not isinstance(item_id, str) or not _ID.match(item_id):
        problems.append(
            f"id {item_id!r} must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
        item_id = str(item_id)

    domains = _domains(item.get("domains"), problems)
    key_type = _key_type(item.get("key_type", KeyType.EC_P256.value), problems)
    regions = _regions(item.get("acm_regions", [settings.region]), problems)
    secret_name = _secret_name(item.get("secret_name", settings.default_secret_name(item_id)), settings, problems)
    renew_before_days = _renew_before_days(item.get("renew_before_days"), problems)
    endpoints, endpoint_problems = parse_endpoints(item.get("endpoints", []))
    problems.extend(endpoint_problems)
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"enabled must be true or false, got {enabled!r}")

    if problems:
        raise ItemValidationError(problems)
    unknown = sorted(set(item) - set(REQUEST_FIELDS) - STATE_FIELDS)
    warnings = tuple(f"unknown attribute {name!r} ignored" for name in unknown)
    return CertificateRequest(
        id=item_id,
        domains=domains,
        key_type=key_type,
        acm_regions=regions,
        secret_name=secret_name,
        renew_before_days=renew_before_days,
        enabled=bool(enabled),
        endpoints=endpoints,
        warnings=warnings,
    )


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
    except idna.IDNAError as exc:
        raise ValueError(f"is not a valid internationalized name ({exc})") from None
    labels = ascii_base.split(".")
    if len(labels) < 2:
        raise ValueError("needs at least two labels (a public suffix alone cannot be validated)")
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"has a label longer than 63 characters ({label[:20]}...)")
        if not _LABEL.match(label):
            raise ValueError(f"has an invalid label {label!r} (letters, digits and inner hyphens only)")
    ascii_name = ("*." if wildcard else "") + ascii_base
    if len(ascii_name) > 253:
        raise ValueError(f"is {len(ascii_name)} characters long; DNS names stop at 253")
    return ascii_name


def _domains(raw: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)) or not raw:
        problems.append(f"domains must be a non-empty list of DNS names, got {raw!r}")
        return ()
    names: list[str] = []
    for entry in raw:
        if not isinstance(entry, str):
            problems.append(f"domain {entry!r} must be a string")
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
        problems.append(f"key_type {raw!r} is not one of {allowed}")
        return KeyType.EC_P256


@cache
def known_regions() -> frozenset[str]:
    """ACM regions from botocore's bundled endpoint data: offline, and current with the runtime's boto3."""
    import boto3

    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("acm", partition_name=partition)
    )


def _regions(raw: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        problems.append(f"acm_regions must be a list of region names (empty for no ACM import), got {raw!r}")
        return ()
    regions: list[str] = []
    for region in raw:
        if not isinstance(region, str) or region not in known_regions():
            problems.append(f"acm_regions has {region!r}, which is not an AWS region with ACM")
        elif region not in regions:
            regions.append(region)
    return tuple(regions)


def _secret_name(raw: Any, settings: Settings, problems: list[str]) -> str:
    if not isinstance(raw, str) or not _SECRET_NAME.match(raw):
        problems.append(f"secret_name {raw!r} must be 1-512 characters of letters, digits and /_+=.@-")
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
        problems.append(f"renew_before_days must be a whole number of days, got {raw!r}")
        return None
    if raw != int(raw) or not 1 <= int(raw) <= 365:
        problems.append(f"renew_before_days must be a whole number from 1 to 365, got {raw}")
        return None
    return int(raw)

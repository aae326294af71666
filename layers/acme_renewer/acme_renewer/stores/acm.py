"""Stores stage, ACM: import the certificate into every requested region, of the function's account and of other
accounts (through their roles), re-importing into the known ARN when ACM allows it, else into a new ARN, and the old
one is superseded.

ACM refuses a re-import that changes the key algorithm or size, or drops a Key Usage or Extended Key Usage value
the imported certificate has (keyEncipherment on ECDSA and the clientAuth EKU excepted), or adds one of those
extensions where it had none (https://docs.aws.amazon.com/acm/latest/userguide/import-reimport.html,
https://docs.aws.amazon.com/acm/latest/userguide/import-certificate-prerequisites.html). Such a certificate goes
into a new ARN; the resources attached to the old ARN keep its last certificate until someone moves them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from acme_renewer import SERVICE
from acme_renewer.errors import StoreError, ZoneRoleError
from acme_renewer.models import CertificateRequest, IssuedCertificate, Replacement, SupersededArn, ZoneRole
from acme_renewer.stores.secrets import MANAGED_BY

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient
    from mypy_boto3_acm.type_defs import CertificateDetailTypeDef, ImportCertificateRequestTypeDef

logger = Logger(service=SERVICE, child=True)

# ACM's names (DescribeCertificate KeyUsages) of the Key Usage bits, as cryptography's KeyUsage spells them.
KEY_USAGE_NAMES = {
    "digital_signature": "DIGITAL_SIGNATURE",
    "content_commitment": "NON_REPUDIATION",
    "key_encipherment": "KEY_ENCIPHERMENT",
    "data_encipherment": "DATA_ENCIPHERMENT",
    "key_agreement": "KEY_AGREEMENT",
    "key_cert_sign": "CERTIFICATE_SIGNING",
    "crl_sign": "CRL_SIGNING",
}
# ACM's names (DescribeCertificate ExtendedKeyUsages) of the EKU OIDs it knows; any other OID is CUSTOM.
EXTENDED_KEY_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "TLS_WEB_SERVER_AUTHENTICATION",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "TLS_WEB_CLIENT_AUTHENTICATION",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "CODE_SIGNING",
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "EMAIL_PROTECTION",
    ExtendedKeyUsageOID.TIME_STAMPING.dotted_string: "TIME_STAMPING",
    ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string: "OCSP_SIGNING",
    "1.3.6.1.5.5.7.3.5": "IPSEC_END_SYSTEM",
    "1.3.6.1.5.5.7.3.6": "IPSEC_TUNNEL",
    "1.3.6.1.5.5.7.3.7": "IPSEC_USER",
}
_EKU_OIDS = {name: oid for oid, name in EXTENDED_KEY_USAGE_NAMES.items()}
# What ACM lets a re-import drop: keyEncipherment on ECDSA (RFC 5480 §3 does not allow it there), and clientAuth,
# which public CAs stopped issuing for Chrome's root program.
DROPPABLE_EC_KEY_USAGE = "KEY_ENCIPHERMENT"
DROPPABLE_EXTENDED_KEY_USAGE = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
# ACM's quotas per account and region as the Service Quotas console names them
# (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html, defaults 2,500 and 5,000).
QUOTA_IMPORTED = "Imported certificates"
QUOTA_IMPORTS_PER_YEAR = "Imported certificates in last 365 days"
QUOTA_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class KeyProfile:
    """What ACM compares when a certificate is re-imported over another."""

    key_algorithm: str  # ACM's name: RSA_2048, EC_prime256v1, EC_secp384r1, ...
    key_usages: frozenset[str] | None  # ACM's names; None: no Key Usage extension
    extended_key_usages: frozenset[str] | None  # OIDs; None: no Extended Key Usage extension

    @classmethod
    def of_certificate(cls, certificate_pem: str) -> KeyProfile:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
        return cls(
            _key_algorithm(certificate.public_key()), _key_usages(certificate), _extended_key_usages(certificate)
        )

    @classmethod
    def of_description(cls, described: CertificateDetailTypeDef) -> KeyProfile:
        """From DescribeCertificate. No values for an extension means the certificate has none: a Key Usage or
        EKU extension always holds at least one."""
        key_usages = {usage["Name"] for usage in described.get("KeyUsages", []) if "Name" in usage}
        extended = {
            usage.get("OID") or _EKU_OIDS.get(usage.get("Name", ""), usage.get("Name", "?"))
            for usage in described.get("ExtendedKeyUsages", [])
        }
        return cls(
            # ACM's enum is RSA_2048; some DescribeCertificate answers have been seen spelling it RSA-2048.
            key_algorithm=str(described.get("KeyAlgorithm", "?")).replace("-", "_"),
            key_usages=frozenset(key_usages) or None,
            extended_key_usages=frozenset(extended) or None,
        )


def reimport_refusals(imported: KeyProfile, new: KeyProfile) -> list[str]:
    """Why ACM would refuse to re-import a certificate of profile `new` over the one imported; empty: it allows it."""
    refusals = []
    if new.key_algorithm != imported.key_algorithm:
        refusals.append(f"the key changes from {imported.key_algorithm} to {new.key_algorithm}")
    refusals += _dropped_or_added(
        "Key Usage",
        imported.key_usages,
        new.key_usages,
        droppable={DROPPABLE_EC_KEY_USAGE} if new.key_algorithm.startswith("EC_") else set(),
        name=str,
    )
    refusals += _dropped_or_added(
        "Extended Key Usage",
        imported.extended_key_usages,
        new.extended_key_usages,
        droppable={DROPPABLE_EXTENDED_KEY_USAGE},
        name=lambda oid: EXTENDED_KEY_USAGE_NAMES.get(oid, oid),
    )
    return refusals


def _dropped_or_added(
    what: str,
    imported: frozenset[str] | None,
    new: frozenset[str] | None,
    *,
    droppable: set[str],
    name: Callable[[str], str],
) -> list[str]:
    if imported is None:
        return [f"it adds the {what} extension, which the imported certificate does not have"] if new else []
    dropped = sorted(name(value) for value in imported - (new or frozenset()) - droppable)
    return [f"it lacks the {what} {', '.join(dropped)} of the imported certificate"] if dropped else []


@dataclass(frozen=True)
class AcmImports:
    """The item's ARN per region after a store, and per account and region in other accounts (`account_arns`);
    `superseded` lists every superseded ARN of the item, the earlier ones and this store's; `imports` the times
    of the item's imports in its own account's regions within 365 days, this store's included."""

    arns: dict[str, str]
    superseded: tuple[SupersededArn, ...] = ()
    replacements: tuple[Replacement, ...] = ()
    account_arns: dict[str, dict[str, str]] = field(default_factory=dict)
    imports: dict[str, tuple[datetime, ...]] = field(default_factory=dict)


def imports_within_year(
    history: Mapping[str, Sequence[datetime]], now: datetime, imported: Sequence[str] = ()
) -> dict[str, tuple[datetime, ...]]:
    """`history` without the imports older than 365 days, plus one now in each region of `imported`. Every
    ImportCertificate counts, re-imports into an ARN too: ACM's quota page does not say whether they do, and
    counting them can only make the alarm early, never late."""
    since = now - QUOTA_WINDOW
    kept = {region: tuple(t for t in times if t > since) for region, times in history.items()}
    for region in imported:
        kept[region] = (*kept.get(region, ()), now)
    return {region: times for region, times in kept.items() if times}


# The ACM client of another account's region, acting with the role's credentials; raises (ZoneRoleError, from
# runtime.py) when the role cannot be assumed.
ClientForRole = Callable[[ZoneRole, str], "ACMClient"]
# What the role in another account must allow: ImportCertificate, AddTagsToCertificate for the tags of a first
# import, DescribeCertificate before a re-import (https://docs.aws.amazon.com/acm/latest/userguide/authen-apipermissions.html).
ROLE_ACTIONS = ("acm:ImportCertificate", "acm:AddTagsToCertificate", "acm:DescribeCertificate")


class AcmStore:
    """Imports into ACM per region, re-importing into the known ARN so that attached resources keep working, as
    long as ACM allows the re-import; in the function's own account (`acm_regions`, `client_for_region`) and in
    other accounts through their roles (`acm_accounts`, `client_for_role`), by the same rules."""

    def __init__(
        self,
        client_for_region: Callable[[str], ACMClient],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client_for_role: ClientForRole | None = None,
    ) -> None:
        self._client_for_region = client_for_region
        self._clock = clock
        self._client_for_role = client_for_role

    def import_all(
        self,
        request: CertificateRequest,
        certificate: IssuedCertificate,
        known_arns: Mapping[str, str],
        superseded: Sequence[SupersededArn] = (),
        known_account_arns: Mapping[str, Mapping[str, str]] | None = None,
        history: Mapping[str, Sequence[datetime]] | None = None,
    ) -> AcmImports:
        """The own account's regions first, then each other account's, one at a time (each account and region has
        its own import quota, and the clients are paced by it). `history`: the item's `acm_imports`."""
        profile = KeyProfile.of_certificate(certificate.certificate_pem)
        arns: dict[str, str] = {}
        account_arns: dict[str, dict[str, str]] = {}
        replacements: list[Replacement] = []
        targets: list[tuple[ZoneRole | None, str]] = [(None, region) for region in request.acm_regions]
        targets += [(target.role, region) for target in request.acm_accounts for region in target.regions]
        for role, region in targets:
            known = known_arns if role is None else (known_account_arns or {}).get(role.account, {})
            try:
                arn, replacement = self._import(role, region, request, certificate, profile, known.get(region))
            except Exception as exc:
                raise PartialImportError(
                    region,
                    arns,
                    exc,
                    _with(superseded, replacements),
                    role=role,
                    imported_accounts=account_arns,
                    imports=imports_within_year(history or {}, self._clock(), list(arns)),
                ) from exc
            if role is None:
                arns[region] = arn
            else:
                account_arns.setdefault(role.account, {})[region] = arn
            if replacement is not None:
                replacements.append(replacement)
        imports = imports_within_year(history or {}, self._clock(), list(arns))
        return AcmImports(arns, _with(superseded, replacements), tuple(replacements), account_arns, imports)

    def _client(self, role: ZoneRole | None, region: str) -> ACMClient:
        if role is None:
            client = self._client_for_region(region)
        elif self._client_for_role is None:
            raise StoreError("this renewer has no ACM clients for other accounts")
        else:
            client = self._client_for_role(role, region)
        _no_retry_beyond_quota(client)
        return client

    def _import(
        self,
        role: ZoneRole | None,
        region: str,
        request: CertificateRequest,
        certificate: IssuedCertificate,
        profile: KeyProfile,
        arn: str | None,
    ) -> tuple[str, Replacement | None]:
        client = self._client(role, region)
        where = {"region": region} | ({"account": role.account, "role_arn": role.arn} if role else {})
        material: ImportCertificateRequestTypeDef = {
            "Certificate": certificate.certificate_pem.encode("ascii"),
            "PrivateKey": certificate.private_key_pem.encode("ascii"),
        }
        if certificate.chain_pem:  # ACM rejects an empty CertificateChain
            material["CertificateChain"] = certificate.chain_pem.encode("ascii")
        refusals: list[str] = []
        if arn:
            try:
                described = client.describe_certificate(CertificateArn=arn)["Certificate"]
                refusals = reimport_refusals(KeyProfile.of_description(described), profile)
                if not refusals:
                    reimport: ImportCertificateRequestTypeDef = {**material, "CertificateArn": arn}
                    return client.import_certificate(**reimport)["CertificateArn"], None
            except client.exceptions.ResourceNotFoundException:
                logger.warning("ACM certificate is gone; importing a new one", extra={**where, "arn": arn})
                arn = None
            except client.exceptions.ValidationException as refused:
                # A rule of ACM's that the comparison above does not know: the certificate still goes to ACM,
                # and the old ARN is reported like any other superseded one. Were the certificate itself wrong,
                # the new import below fails too, and nothing is superseded.
                refusals = [f"ACM refused the re-import: {_message(refused)}"]
        new_arn = self._import_new(client, request, material)
        if arn is None:
            logger.info("imported new ACM certificate", extra={**where, "arn": new_arn})
            return new_arn, None
        reason = "; ".join(refusals)
        logger.warning(
            "ACM refuses a re-import of this certificate: imported it into a new ARN, the old one is superseded."
            " Move what uses the old ARN to the new one before its certificate expires",
            extra={**where, "arn": new_arn, "superseded_arn": arn, "reason": reason},
        )
        return new_arn, Replacement(SupersededArn(region, arn, self._clock(), role), new_arn, reason)

    @staticmethod
    def _import_new(client: ACMClient, request: CertificateRequest, material: ImportCertificateRequestTypeDef) -> str:
        # Tags only on the first import of an ARN: ACM refuses tags on a re-import.
        tagged: ImportCertificateRequestTypeDef = {
            **material,
            "Tags": [{"Key": "managed-by", "Value": MANAGED_BY}, {"Key": "acme-renewer:id", "Value": request.id}],
        }
        return client.import_certificate(**tagged)["CertificateArn"]


class PartialImportError(StoreError):
    """ACM import failed in one region (of the own account, or of `role`'s); `imported` and `imported_accounts`
    hold the regions already done, `imports` the item's imports within 365 days with theirs, and `superseded` every
    superseded ARN of the item, this store's included: all are kept on the item."""

    def __init__(
        self,
        region: str,
        imported: dict[str, str],
        cause: Exception,
        superseded: tuple[SupersededArn, ...] = (),
        *,
        role: ZoneRole | None = None,
        imported_accounts: dict[str, dict[str, str]] | None = None,
        imports: dict[str, tuple[datetime, ...]] | None = None,
    ) -> None:
        self.imported = imported
        self.imports = imports or {}
        self.imported_accounts = imported_accounts or {}
        self.superseded = superseded
        if role is None:
            quota = _quota_fix(region, cause)
            super().__init__(
                f"ACM import into {region} failed: {type(cause).__name__}: {cause}" + (f"; {quota}" if quota else "")
            )
        else:
            super().__init__(
                f"ACM import into account {role.account}, region {region}, with role {role.arn} failed:"
                f" {_cause(cause)}; {_fix(role, region, cause)}"
            )


def _cause(cause: Exception) -> str:
    # ZoneRoleError already says "could not assume role <arn>: <code>: <message>".
    return str(cause) if isinstance(cause, ZoneRoleError) else f"{type(cause).__name__}: {cause}"


def _fix(role: ZoneRole, region: str, cause: Exception) -> str:
    """What to change so that the next attempt works."""
    if isinstance(cause, ZoneRoleError):
        external_id = " and, if it requires one, the item's external_id as sts:ExternalId" if role.external_id else ""
        return (
            f"the trust policy of {role.arn} must allow sts:AssumeRole to the renewer's function role{external_id},"
            " and the role must be in the stack parameter AcmRoleArns (see README, ACM in other accounts)"
        )
    if quota := _quota_fix(region, cause, role.account):
        return quota
    code = _code(cause)
    if "AccessDenied" in code or code == "UnauthorizedOperation":
        return (
            f"the permissions policy of {role.arn} must allow {', '.join(ROLE_ACTIONS)} on"
            f" arn:aws:acm:{region}:{role.account}:certificate/* (see README, ACM in other accounts)"
        )
    return "the next run tries again; the regions already imported are kept"


def _no_retry_beyond_quota(client: ACMClient) -> None:
    """botocore retries LimitExceededException as a throttling error (up to `max_attempts`, about a minute with
    backoff), but beyond a quota ACM refuses until someone raises it: the first refusal is the answer. Registered
    first, so that its False ("no retry") is the response botocore acts on; once per client (`unique_id`)."""

    def refused_by_quota(response: Any = None, **_: Any) -> bool | None:
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else {}
        return False if parsed.get("Error", {}).get("Code") == "LimitExceededException" else None

    # The stubs type every handler as returning None; botocore reads the responses of needs-retry handlers.
    handler = cast("Callable[..., None]", refused_by_quota)
    client.meta.events.register_first(
        "needs-retry.acm.ImportCertificate", handler, unique_id="acme-renewer-no-retry-beyond-quota"
    )


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _quota_fix(region: str, cause: Exception, account: str | None = None) -> str | None:
    """What to do when ImportCertificate hit one of ACM's quotas per account and region (LimitExceededException);
    None for any other error. AWS's message tells the two quotas apart: "... in the last year" is the one of
    imports in 365 days (as quoted in pulumi/pulumi-aws#3290), anything else the one of certificates held."""
    if _code(cause) != "LimitExceededException":
        return None
    yearly = "last year" in _message(cause) or "365" in _message(cause)
    name, default = (QUOTA_IMPORTS_PER_YEAR, 5000) if yearly else (QUOTA_IMPORTED, 2500)
    where = f"account {account}, region {region}" if account else f"the renewer's account, region {region}"
    console = f"in {region} of account {account}" if account else f"in {region}"
    return (
        f'ACM\'s quota "{name}" (default {default:,} per account and region) is reached in {where}. The secret is'
        " stored; this certificate is not in ACM there. Ask AWS for more: Service Quotas console, AWS Certificate"
        f' Manager (ACM), "{name}", {console}. Or, for certificates that only need the secret, set'
        " acm_regions: [] (see README, Quotas)"
    )


def _with(superseded: Sequence[SupersededArn], replacements: Sequence[Replacement]) -> tuple[SupersededArn, ...]:
    known = {entry.arn for entry in superseded}
    return (*superseded, *(r.superseded for r in replacements if r.superseded.arn not in known))


def _message(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Message", error))


def _key_algorithm(public_key: Any) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA_{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC_" + {"secp256r1": "prime256v1"}.get(public_key.curve.name, public_key.curve.name)
    return type(public_key).__name__  # a type ACM does not import at all


def _key_usages(certificate: x509.Certificate) -> frozenset[str] | None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    names = {name for attribute, name in KEY_USAGE_NAMES.items() if getattr(usage, attribute)}
    if usage.key_agreement:  # cryptography reads these two only with keyAgreement
        names |= {"ENCIPHER_ONLY"} if usage.encipher_only else set()
        names |= {"DECIPHER_ONLY"} if usage.decipher_only else set()
    return frozenset(names)


def _extended_key_usages(certificate: x509.Certificate) -> frozenset[str] | None:
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return frozenset(oid.dotted_string for oid in usages)

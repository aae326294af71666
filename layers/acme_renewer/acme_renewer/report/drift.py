"""Report stage, drift: imported ACM certificates that nobody listed, about to expire.

The classic outage is the certificate imported by hand years ago; this finds it while there is time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from acme_renewer.report.outcomes import UnmanagedCertificate

if TYPE_CHECKING:
    from mypy_boto3_acm import ACMClient

# ListCertificates returns only RSA-2048 and RSA-1024 keys unless asked for every type.
ALL_KEY_TYPES = [
    "RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1",
]  # fmt: skip


def unmanaged_expiring(
    client_for_region: Callable[[str], ACMClient],
    regions: Iterable[str],
    managed_arns: set[str],
    now: datetime,
    within: timedelta,
) -> list[UnmanagedCertificate]:
    found = []
    for region in sorted(set(regions)):
        paginator = client_for_region(region).get_paginator("list_certificates")
        for page in paginator.paginate(Includes={"keyTypes": ALL_KEY_TYPES}):  # type: ignore[typeddict-item]
            for summary in page["CertificateSummaryList"]:
                not_after = summary.get("NotAfter")
                if (
                    summary.get("Type") == "IMPORTED"
                    and summary["CertificateArn"] not in managed_arns
                    and not_after is not None
                    and not_after - now <= within
                ):
                    found.append(
                        UnmanagedCertificate(
                            arn=summary["CertificateArn"],
                            region=region,
                            domain=summary.get("DomainName", "?"),
                            not_after=not_after,
                        )
                    )
    return found

"""Report stage, ACM quotas: what the renewer uses of ACM's quotas per region of its own account, counted from its
status items in the daily full run, which sees every item (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html).

- imported certificates held ("Imported certificates", 2,500): the distinct ARNs of `acm_arns` and of the
  superseded ARNs still listed (ACM keeps a superseded certificate: the renewer never deletes one);
- imports within 365 days ("Imported certificates in last 365 days", 5,000): the times in `acm_imports`, every
  import and re-import.

Certificates imported by anyone else, superseded ones the renewer forgot (nothing used them any more) and those of
deleted items still count with ACM and not here: the figures are the renewer's share, a lower bound of ACM's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from acme_renewer.inventory.table import imports_from_item, superseded_from_item
from acme_renewer.report.outcomes import AcmUsage, Outcome
from acme_renewer.stores.acm import imports_within_year


def acm_usage(processed: Iterable[tuple[Mapping[str, Any], Outcome]], now: datetime) -> list[AcmUsage]:
    """Per region, sorted; a region appears once anything of the renewer's was imported there."""
    held: dict[str, set[str]] = {}
    imports: dict[str, int] = {}
    for item, outcome in processed:
        published = outcome.published
        arns = published.acm_arns if published is not None else item.get("acm_arns") or {}
        superseded = (
            published.superseded if published is not None else superseded_from_item(item.get("superseded_arns"))
        )
        for region, arn in arns.items():
            if isinstance(region, str) and isinstance(arn, str):
                held.setdefault(region, set()).add(arn)
        for entry in superseded:
            if entry.role is None:  # another account's counts there, not here
                held.setdefault(entry.region, set()).add(entry.arn)
        history = published.acm_imports if published is not None else imports_from_item(item.get("acm_imports"))
        for region, times in imports_within_year(history, now).items():
            imports[region] = imports.get(region, 0) + len(times)
    return [AcmUsage(region, len(held.get(region, ())), imports.get(region, 0)) for region in sorted({*held, *imports})]

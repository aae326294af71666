"""Domain exceptions: every failure of one certificate is one of these, caught once per certificate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acme_renewer.models import TxtRecord


class RenewalError(Exception):
    """A certificate could not be renewed; the message is written to the item's `last_error`."""


class ItemValidationError(RenewalError):
    """The DynamoDB item breaks the item contract (see README, "The item"). `warnings` are what validation would
    also have said of a valid item (an unknown attribute, a typo): not part of the message, recorded beside it."""

    def __init__(self, problems: list[str], warnings: Sequence[str] = ()) -> None:
        self.problems = problems
        self.warnings = tuple(warnings)
        super().__init__("invalid item: " + "; ".join(problems))


class ConfigurationError(Exception):
    """The function's environment is unusable; nothing can be renewed until it is fixed."""


class HostedZoneNotFoundError(RenewalError):
    """No public Route53 hosted zone contains the name to validate."""


class DnsPropagationError(RenewalError):
    """A Route53 change did not become INSYNC in time."""


class AcmeOrderError(RenewalError):
    """The CA refused the order, a challenge failed, or finalization failed."""


class StoreError(RenewalError):
    """ACM or Secrets Manager refused a write or a read: the certificate, its pending key, the ACME account key."""


class CaRetryLaterError(AcmeOrderError):
    """The CA refused with a Retry-After (rate limited or overloaded); no attempt before that many seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"{message} (the CA asks to retry after {retry_after:.0f} s)")


class DnsPublishError(RenewalError):
    """Some challenge names could not be published (no zone, change refused); the rest of the batch went out.

    `names` are the record names that failed; the certificates needing any of them fail with this message.
    `records`, when known, are the failed records themselves: two certificates may write one name in two
    zones (a pinned hosted zone), and only the one whose zone failed should fail.
    `failures`, when known, are the failed records group by group with each group's reason, so that each
    certificate's error (`about`) names only its own records and reasons, not those of the rest of the batch.
    """

    def __init__(
        self,
        message: str,
        names: frozenset[str],
        records: frozenset[TxtRecord] | None = None,
        failures: Sequence[tuple[frozenset[TxtRecord], str]] = (),
    ) -> None:
        self.names = names
        self.records = records
        self.failures = tuple(failures)
        super().__init__(message)

    def covers(self, record: TxtRecord) -> bool:
        return record in self.records if self.records is not None else record.written_at in self.names

    def about(self, records: Iterable[TxtRecord]) -> DnsPublishError | None:
        """The part of this error that concerns these records (one certificate's): the groups holding one of
        them, each narrowed to them; None when none of them failed. Without groups, the whole error."""
        mine = frozenset(record for record in records if self.covers(record))
        if not mine:
            return None
        if not self.failures:
            return self
        return DnsPublishError.of([(group & mine, reason) for group, reason in self.failures if group & mine])

    @classmethod
    def of(cls, failures: Sequence[tuple[Iterable[TxtRecord], str]]) -> DnsPublishError:
        """One error for (failed records, reason) pairs; a reason shared by several (apex and www in an ambiguous
        zone, one role for many names) is said once."""
        groups = [(frozenset(records), reason) for records, reason in failures]
        failed = frozenset(record for records, _ in groups for record in records)
        message = "; ".join(dict.fromkeys(reason for _, reason in groups))
        return cls(message, frozenset(record.written_at for record in failed), failed, groups)


class ZoneRoleError(RenewalError):
    """A role named for another account's hosted zones could not be assumed, or that account's zones not read."""

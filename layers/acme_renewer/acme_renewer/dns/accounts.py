"""DNS challenge stage, across AWS accounts: send each challenge value to the Route53 of the account holding its
zone, the function's own or one reached by assuming a role (an item's zone_role_arn, or ZONE_ROLES)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.dns.challenge import ChallengeDns
from acme_renewer.dns.route53 import MAX_CNAME_HOPS, Route53Dns
from acme_renewer.errors import DnsPublishError, ZoneRoleError
from acme_renewer.models import TxtRecord, ZoneRole
from acme_renewer.settings import ZoneRoles

logger = Logger(service=SERVICE, child=True)

# The DNS adapter of one account: None for the function's own; raises (ZoneRoleError) when the role cannot be
# assumed. runtime.py builds a Route53Dns with a client of that account and a rate limiter of its own.
DnsForRole = Callable[[ZoneRole | None], ChallengeDns]


class AccountRoutedDns:
    """A ChallengeDns over one adapter per account: records are grouped by their `role` and each group goes to
    its account's adapter.

    `resolve` settles the role of every record: the item's own role when it names one (its CNAMEs and alias
    are looked up in that account), else the role of the longest ZONE_ROLES key above the name where the TXT is
    written (a CNAME is followed into the account of its target's zone). Publishing writes to every account at
    once and waits for them together, so a run still waits for DNS once. A role that cannot be assumed fails
    only the records that need it; with one account only, everything behaves exactly as a single Route53Dns.
    """

    def __init__(self, dns_for: DnsForRole, zone_roles: ZoneRoles | None = None) -> None:
        self._dns_for = dns_for
        self._zone_roles = zone_roles or ZoneRoles()
        self._adapters: dict[ZoneRole | None, ChallengeDns] = {}
        # Why a role's account cannot be used in this run; asked once, not once per step.
        self._failed: dict[ZoneRole, str] = {}
        # Records publish never sent (their role failed): remove must not try to take them away again.
        self._unpublished: set[TxtRecord] = set()
        self._lock = threading.Lock()

    def adapter(self, role: ZoneRole | None) -> ChallengeDns:
        """The adapter of the role's account, built once; ZoneRoleError when the role cannot be used."""
        with self._lock:
            if role is not None and role in self._failed:
                raise ZoneRoleError(self._failed[role])
            if role not in self._adapters:
                try:
                    built = self._dns_for(role)
                    if role is not None and isinstance(built, Route53Dns):
                        built.upsert_when_create_denied()  # a role's policy may predate CREATE (route53.py)
                    self._adapters[role] = built
                except Exception as failed:
                    if role is None:
                        raise
                    self._failed[role] = _about(role, failed, "could not assume role")
                    logger.error("zone role unusable", extra={"role_arn": role.arn, "error": self._failed[role]})
                    raise ZoneRoleError(self._failed[role]) from failed
            return self._adapters[role]

    def resolve(self, records: list[TxtRecord]) -> list[TxtRecord]:
        lookup = [record.role or self._zone_roles.role_for(record.name) for record in records]
        resolved = self._resolve_in(records, lookup)
        # ZONE_ROLES only: a discovered CNAME may point into a zone of another account; go on looking there.
        for _ in range(MAX_CNAME_HOPS):
            moved = [
                i
                for i, record in enumerate(resolved)
                if records[i].role is None
                and records[i].target is None
                and record.target is not None
                and self._zone_roles.role_for(record.target) != lookup[i]
            ]
            if not moved:
                break
            probes = [TxtRecord(str(resolved[i].target), resolved[i].value, zone_id=resolved[i].zone_id) for i in moved]
            roles = [self._zone_roles.role_for(probe.name) for probe in probes]
            for i, role, answer in zip(moved, roles, self._resolve_in(probes, roles), strict=True):
                lookup[i] = role
                if answer.target is not None:
                    resolved[i] = replace(resolved[i], target=answer.target)
        return [
            record if record.role is not None else replace(record, role=self._zone_roles.role_for(record.written_at))
            for record in resolved
        ]

    def _resolve_in(self, records: Sequence[TxtRecord], roles: Sequence[ZoneRole | None]) -> list[TxtRecord]:
        """Resolve each record in the account of its role. A role account that fails leaves its records as they
        are, and publish fails them; a failure in the function's own account fails the batch, as it always did."""
        resolved = list(records)
        groups: dict[ZoneRole | None, list[int]] = {}
        for index, role in enumerate(roles):
            groups.setdefault(role, []).append(index)
        for role, indexes in groups.items():
            try:
                answers = self.adapter(role).resolve([records[i] for i in indexes])
            except ZoneRoleError:
                continue
            except Exception as failed:
                if role is None:
                    raise
                with self._lock:
                    self._failed.setdefault(
                        role, _about(role, failed, "could not look up the challenge names in the account of role")
                    )
                logger.error("zone role unusable", extra={"role_arn": role.arn, "error": self._failed[role]})
                continue
            for i, answer in zip(indexes, answers, strict=True):
                resolved[i] = answer
        return resolved

    def publish(self, records: list[TxtRecord]) -> None:
        """Write to every account concurrently, each adapter waiting for its own changes; raise one
        DnsPublishError naming every record that failed, whichever account it was in, each with its own reason."""
        failures: list[tuple[Collection[TxtRecord], str]] = []
        ready: dict[ZoneRole | None, tuple[ChallengeDns, list[TxtRecord]]] = {}
        for role, group in _by_role(records).items():
            try:
                ready[role] = (self.adapter(role), group)
            except ZoneRoleError as unusable:
                failures.append((group, str(unusable)))
                with self._lock:
                    self._unpublished.update(group)
        if len(ready) == 1 and not failures:
            [(adapter, group)] = ready.values()
            adapter.publish(group)
            return
        if ready:
            with ThreadPoolExecutor(max_workers=len(ready), thread_name_prefix="route53-account") as pool:
                futures = {role: pool.submit(adapter.publish, group) for role, (adapter, group) in ready.items()}
            for role, future in futures.items():
                error = future.exception()
                if error is None:
                    continue
                if not isinstance(error, Exception):
                    raise error
                group = ready[role][1]
                failures += [(failed, _in_account(role, why)) for failed, why in _failed_groups(error, group)]
        if failures:
            raise DnsPublishError.of(failures)

    def remove(self, records: list[TxtRecord]) -> None:
        """Remove in every account; values publish never sent are skipped, a role that cannot be assumed (a
        dead run's journal) is an error, so that the journal stays for a later run."""
        with self._lock:
            written = [record for record in records if record not in self._unpublished]
        problems: list[str] = []
        for role, group in _by_role(written).items():
            try:
                self.adapter(role).remove(group)
            except Exception as failed:
                problems.append(_in_account(role, str(failed)))
        if problems:
            raise DnsPublishError("; ".join(problems), frozenset())


def _by_role(records: Sequence[TxtRecord]) -> dict[ZoneRole | None, list[TxtRecord]]:
    groups: dict[ZoneRole | None, list[TxtRecord]] = {}
    for record in records:
        groups.setdefault(record.role, []).append(record)
    return groups


def _failed_groups(error: Exception, group: Sequence[TxtRecord]) -> list[tuple[Collection[TxtRecord], str]]:
    """What failed of one account's records, reason by reason: the account's own groups when its adapter
    kept them apart (a zone refused, another missing), else the records the error covers, or all of them."""
    if not isinstance(error, DnsPublishError):
        return [(group, str(error))]
    if error.failures:
        return list(error.failures)
    return [([record for record in group if error.covers(record)], str(error))]


def _about(role: ZoneRole, failed: Exception, what: str) -> str:
    """A message naming the role, once: ZoneRoleError from runtime.py already does."""
    return str(failed) if isinstance(failed, ZoneRoleError) else f"{what} {role.arn}: {failed}"


def _in_account(role: ZoneRole | None, message: str) -> str:
    if role is None or role.arn in message:
        return message
    return f"in the account of role {role.arn}: {message}"

"""DNS challenge stage: which TXT records an order needs, and publishing them for exactly as long as needed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger

from acme_renewer import SERVICE
from acme_renewer.models import TxtRecord, ZoneRole

logger = Logger(service=SERVICE, child=True)

CHALLENGE_LABEL = "_acme-challenge"


def challenge_record_name(domain: str) -> str:
    """RFC 8555 §8.4: the TXT lives at _acme-challenge.<name>; a wildcard validates at its base name."""
    return f"{CHALLENGE_LABEL}.{domain.removeprefix('*.').rstrip('.').lower()}"


def challenge_record(
    domain: str,
    value: str,
    *,
    alias: str | None = None,
    zone_id: str | None = None,
    role: ZoneRole | None = None,
) -> TxtRecord:
    """The record for one name of a certificate; with a challenge alias every name's value goes to
    _acme-challenge.<alias>, which each _acme-challenge.<name> must be a CNAME to."""
    target = challenge_record_name(alias) if alias else None
    return TxtRecord(challenge_record_name(domain), value, target, zone_id, role)


def merge_values(records: Iterable[TxtRecord]) -> dict[str, tuple[str, ...]]:
    """Group values by the name they are written at, keeping first-seen order and dropping repeats.

    Apex and wildcard of one name need two values on one record set (so do two names, or two
    certificates, delegated to one CNAME target); writing them one by one would make the second
    overwrite the first. These are our values only, each one string: the values others hold on the name are
    the provider's to keep exactly as they stand (Route53 splits a long one into several strings).
    """
    merged: dict[str, list[str]] = {}
    for record in records:
        values = merged.setdefault(record.written_at, [])
        if record.value not in values:
            values.append(record.value)
    return {name: tuple(values) for name, values in merged.items()}


def is_subdomain(name: str, zone: str) -> bool:
    name, zone = name.rstrip(".").lower(), zone.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


class ChallengeDns(Protocol):
    """What the order stage needs from a DNS provider. Route53Dns is the real one."""

    def resolve(self, records: list[TxtRecord]) -> list[TxtRecord]:
        """The same records, in order, with the `target` their names are CNAMEs to filled in; done once,
        before journaling, so that publish, remove and a later sweep all write where the CA looks."""

    def publish(self, records: list[TxtRecord]) -> None:
        """Write the values and return once the provider reports them live; raise RenewalError otherwise."""

    def remove(self, records: list[TxtRecord]) -> None:
        """Delete exactly these values, leaving any other value on the same names alone."""


class JournaledDns:
    """Writes down on the item which values it is about to publish, and crosses them out once removed.

    A run that dies between the two (timeout, crash) leaves the journal behind; the next run removes
    exactly those values (Renewer._sweep), so no record we wrote outlives the run that wrote it for long.
    """

    def __init__(self, dns: ChallengeDns, journal: Journal) -> None:
        self._dns = dns
        self._journal = journal

    def resolve(self, records: list[TxtRecord]) -> list[TxtRecord]:
        return self._dns.resolve(records)

    def publish(self, records: list[TxtRecord]) -> None:
        self._journal.write(records)
        self._dns.publish(records)

    def remove(self, records: list[TxtRecord]) -> None:
        self._dns.remove(records)
        self._journal.clear()


class Journal(Protocol):
    def write(self, records: list[TxtRecord]) -> None: ...

    def clear(self) -> None: ...


@dataclass
class Publication:
    """How long publishing took, from the first write to the provider reporting the records live."""

    seconds: float | None = None


@contextmanager
def published(dns: ChallengeDns, records: list[TxtRecord]) -> Iterator[Publication]:
    """Publish the records for the duration of the block and always remove them afterwards.

    A failed cleanup is logged rather than raised: it must not turn an issued certificate into a
    failure, nor hide the error that ended the block.
    """
    publication = Publication()
    try:
        started = time.monotonic()
        dns.publish(records)
        publication.seconds = time.monotonic() - started
        yield publication
    finally:
        try:
            dns.remove(records)
        except Exception:
            logger.exception(
                "could not remove challenge TXT records", extra={"names": sorted({r.name for r in records})}
            )

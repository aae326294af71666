"""Route53 calls per certificate for one run's batch (resolve the CNAMEs, publish, remove), counted by operation on
the local stack's AWS side in this process (moto behind the strict layer), for four fleets of N certificates
(apex + wildcard each): every certificate in a zone of its own, all in one zone, all CNAME-delegated from one zone
into one validation zone, and each CNAME-delegated from a zone of its own into one validation zone; each with
CHALLENGE_LOOKUP=route53 (every name read from Route53) and =dns (names DNS says hold nothing or are a CNAME are
not read; DNS queries are not Route53 requests and are not counted).

Usage: python -m bench.route53_calls [--n 100]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from acme_renewer.dns.lookup import NameAnswer
from acme_renewer.dns.route53 import HostedZone, NameAnswers, Route53Dns
from acme_renewer.models import TxtRecord
from tests.stack.in_process import InProcessStack


class Calls:
    """The API calls a client really makes, by operation (botocore's before-call event)."""

    def __init__(self, client: Any) -> None:
        self.by_operation: Counter[str] = Counter()
        client.meta.events.register("before-call.route53", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.by_operation[model.name] += 1


def create_zone(client: Any, name: str) -> str:
    zone_id: str = client.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
    return zone_id.rsplit("/", 1)[-1]


def cname(client: Any, zone_id: str, name: str, target: str) -> None:
    record_set = {"Name": name, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": target}]}
    client.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": record_set}]}
    )


def certificate(name: str) -> list[TxtRecord]:
    """Apex and wildcard: two values on one challenge name."""
    return [TxtRecord(f"_acme-challenge.{name}", f"apex-{name}"), TxtRecord(f"_acme-challenge.{name}", f"wild-{name}")]


class ServedNames:
    """What the zones' name servers would say (dns/lookup.py's answers, without their lag): the names that hold no
    record set, and the explicit CNAMEs, read through a client of its own whose calls are not counted, as DNS
    queries are not Route53's."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def look(self, pairs: Iterable[tuple[HostedZone, str]]) -> dict[tuple[str, str], NameAnswer]:
        held: dict[str, dict[str, Any]] = {}
        told = {}
        for zone, name in pairs:
            if zone.id not in held:
                pages = self._reader.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone.id)
                held[zone.id] = {
                    rs["Name"].rstrip(".").lower(): rs for page in pages for rs in page["ResourceRecordSets"]
                }
            record_set = held[zone.id].get(name)
            if record_set is None:
                told[zone.id, name] = NameAnswer(empty=True)
            elif record_set["Type"] == "CNAME":
                told[zone.id, name] = NameAnswer(cname=record_set["ResourceRecords"][0]["Value"].rstrip(".").lower())
        return told


def run_batch(client: Any, records: list[TxtRecord], lookup: NameAnswers | None = None) -> Counter[str]:
    """One run's Route53 work for a batch, on a fresh adapter (one per run), counted from the first call; with
    `lookup`, names are first looked up as CHALLENGE_LOOKUP=dns does."""
    calls = Calls(client)
    dns = Route53Dns(client, sleep=lambda _: None, dns_answers=lookup)
    resolved = dns.resolve(records)
    dns.publish(resolved)
    dns.remove(resolved)
    return calls.by_operation


def distinct_zones(client: Any, n: int) -> list[TxtRecord]:
    for i in range(n):
        create_zone(client, f"zone{i}.test")
    return [record for i in range(n) for record in certificate(f"zone{i}.test")]


def one_zone(client: Any, n: int) -> list[TxtRecord]:
    create_zone(client, "one.test")
    return [record for i in range(n) for record in certificate(f"site{i}.one.test")]


def delegated(client: Any, n: int) -> list[TxtRecord]:
    """Every name's _acme-challenge is a CNAME into one validation zone."""
    customer = create_zone(client, "customer.test")
    create_zone(client, "validation.test")
    for i in range(n):
        cname(client, customer, f"_acme-challenge.site{i}.customer.test", f"_acme-challenge.site{i}.validation.test")
    return [record for i in range(n) for record in certificate(f"site{i}.customer.test")]


def delegated_from_own_zones(client: Any, n: int) -> list[TxtRecord]:
    """Every name in a zone of its own, its _acme-challenge a CNAME into one validation zone."""
    create_zone(client, "validation.test")
    for i in range(n):
        zone_id = create_zone(client, f"own{i}.test")
        cname(client, zone_id, f"_acme-challenge.own{i}.test", f"_acme-challenge.own{i}.validation.test")
    return [record for i in range(n) for record in certificate(f"own{i}.test")]


Scenario = Callable[[Any, int], list[TxtRecord]]
SCENARIOS: tuple[Scenario, ...] = (distinct_zones, one_zone, delegated, delegated_from_own_zones)


def measure(n: int = 100) -> dict[str, dict[str, int]]:
    """Calls by operation for each scenario, with CHALLENGE_LOOKUP route53 and dns, each on a fresh stack."""
    figures = {}
    for scenario in SCENARIOS:
        for lookup in ("route53", "dns"):
            stack = InProcessStack()
            try:
                client = stack.client("route53")
                records = scenario(client, n)
                served = ServedNames(stack.client("route53")) if lookup == "dns" else None
                figures[f"{scenario.__name__}, CHALLENGE_LOOKUP={lookup}"] = dict(
                    sorted(run_batch(client, records, served).items())
                )
            finally:
                stack.reset()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="certificates per scenario")
    n = parser.parse_args().n
    print(f"| scenario (N = {n}) | calls | per certificate | by operation |")
    print("| --- | --- | --- | --- |")
    for scenario, counts in measure(n).items():
        total = sum(counts.values())
        by_operation = ", ".join(f"{operation} {count}" for operation, count in counts.items())
        print(f"| {scenario} | {total} | {total / n:.2f} | {by_operation} |")


if __name__ == "__main__":
    main()

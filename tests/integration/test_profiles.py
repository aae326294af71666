"""newOrder's extensions of #6 against pebble, through the proxy: the item's ACME profile, and ARI's `replaces`.

pebble 2.4 advertises neither profiles nor renewalInfo, and ignores both fields in newOrder. So the proxy's
directory hook advertises them, its request hook records (or refuses) each newOrder, and everything else,
validation included, is pebble's: a certificate here was issued for DNS-01 records pebble really looked up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import jwk

from acme_renewer.errors import AcmeOrderError
from acme_renewer.inventory.validation import parse_item
from acme_renewer.models import CertificateRequest, IssuedCertificate
from acme_renewer.order.account import connect
from acme_renewer.order.orders import AcmeOrders, OpenOrder
from acme_renewer.settings import Settings
from tests.integration.invariants import challenge_records
from tests.integration.test_faults_acme import NEW_ORDER, Ca, ca_for
from tests.integration.test_renewal import run, unique
from tests.stack import LocalStack
from tests.stack.acme_proxy import JsonObject, ProxiedRequest, Rule

pytestmark = pytest.mark.integration

PROFILES = {
    "classic": "https://letsencrypt.org/docs/profiles#classic",
    "tlsserver": "https://letsencrypt.org/docs/profiles#tlsserver",
    "shortlived": "https://letsencrypt.org/docs/profiles#shortlived",
}
ARI_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
ALREADY_REPLACED = "urn:ietf:params:acme:error:alreadyReplaced"


@pytest.fixture
def ca(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ca]:
    with ca_for(stack, monkeypatch) as opened:
        yield opened


def advertise(ca: Ca, **meta_and_fields: Any) -> None:
    """The proxy's directory gets `profiles` into meta, other keywords (renewalInfo) at the top level."""
    profiles = meta_and_fields.pop("profiles", None)

    def hook(directory: JsonObject) -> JsonObject:
        meta = {**directory.get("meta", {}), **({"profiles": profiles} if profiles is not None else {})}
        return {**directory, **meta_and_fields, "meta": meta}

    ca.proxy.directory_hook = hook


def record_new_orders(ca: Ca, answer: Any = None) -> list[Any]:
    """The JWS payload of every newOrder, in order; `answer(payload)` may return a Rule to refuse one."""
    payloads: list[Any] = []

    def hook(request: ProxiedRequest) -> Rule | None:
        if request.method != "POST" or request.path != NEW_ORDER:
            return None
        payload = request.jws_payload()
        payloads.append(payload)
        return answer(payload) if answer is not None else None

    ca.proxy.request_hook = hook
    return payloads


def new_order_statuses(ca: Ca) -> list[int]:
    return [e.status for e in ca.proxy.requests if e.method == "POST" and e.path == NEW_ORDER]


# --- profile: the whole renewal, through the scheduled handler -------------------------------------------


def test_an_offered_profile_goes_into_new_order_and_the_certificate_is_issued(ca: Ca) -> None:
    advertise(ca, profiles=PROFILES)
    payloads = record_new_orders(ca)
    item_id = ca.add_item("tlsserver", wildcard=True, profile="tlsserver")

    assert run()["renewed"] == 1

    item, stored = ca.issued(item_id)
    assert payloads == [
        {"identifiers": [{"type": "dns", "value": name} for name in item["domains"]], "profile": "tlsserver"}
    ]
    assert new_order_statuses(ca) == [201]
    assert stored.current_leaf.subject.rfc4514_string() == f"CN={item['domains'][0]}"


def test_a_profile_the_ca_does_not_offer_fails_the_item_before_any_new_order(ca: Ca) -> None:
    payloads = record_new_orders(ca)  # pebble's own directory: no profiles at all
    item_id = ca.add_item("unoffered", profile="tlsserver")

    result = run()

    assert (result["renewed"], result["failed"]) == (0, 1)
    item, stored = ca.check(item_id)
    assert item["status"] == "FAILED" and stored is None
    assert item["last_error"] == (
        f"the CA at {ca.proxy.directory_url} does not offer profile 'tlsserver' (it offers no profiles); set"
        " profile_fallback true to order its default, or change profile"
    )
    assert payloads == [] and ca.proxy.count("POST", NEW_ORDER) == 0
    assert challenge_records(ca.stack, ca.zones.values()) == []


def test_with_profile_fallback_a_profile_not_offered_orders_the_default(
    ca: Ca, capsys: pytest.CaptureFixture[str]
) -> None:
    advertise(ca, profiles={"classic": PROFILES["classic"]})
    payloads = record_new_orders(ca)
    item_id = ca.add_item("fallback", profile="tlsserver", profile_fallback=True)
    capsys.readouterr()

    assert run()["renewed"] == 1

    item, _ = ca.issued(item_id)
    assert payloads == [{"identifiers": [{"type": "dns", "value": item["domains"][0]}]}]
    logged = capsys.readouterr().out
    assert "does not offer the profile; ordering its default" in logged
    assert '"offered":["classic"]' in logged.replace(" ", "")


# --- replaces: at the order level (the item's ARI state does not fill Job.replaces yet) ------------------


def orders_for(ca: Ca) -> AcmeOrders:
    settings = Settings.from_env()
    key = jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    return AcmeOrders(lambda: connect(settings.acme_directory_url, key, None, 30), timeout_seconds=60)


def order_request(ca: Ca, prefix: str, **fields: Any) -> tuple[CertificateRequest, str]:
    """A request for a name in a new hosted zone, and that zone's id."""
    zone = unique(prefix) + ".test"
    zone_id = ca.stack.create_hosted_zone(zone)
    return parse_item({"id": unique(prefix), "domains": [zone], **fields}, Settings.from_env()), zone_id


def issue(ca: Ca, orders: AcmeOrders, opened: OpenOrder, zone_id: str) -> IssuedCertificate:
    """Publish the order's TXT values in moto (pebble reads them through the stack's DNS server), let pebble
    validate, take them away, and finalize."""
    route53 = ca.stack.client("route53")

    def change(action: str) -> None:
        changes: list[Any] = [
            {
                "Action": action,
                "ResourceRecordSet": {
                    "Name": record.name + ".",
                    "Type": "TXT",
                    "TTL": 60,
                    "ResourceRecords": [{"Value": f'"{record.value}"'}],
                },
            }
            for record in opened.records
        ]
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

    change("UPSERT")
    try:
        orders.answer(opened)
        orders.validate(opened)
    finally:
        change("DELETE")
    return orders.finish(opened)


def test_replaces_goes_into_new_order_when_the_ca_has_ari(ca: Ca) -> None:
    advertise(ca, renewalInfo=f"{ca.proxy.base_url}/renewal-info")
    payloads = record_new_orders(ca)
    orders = orders_for(ca)
    request, zone_id = order_request(ca, "replaces")

    certificate = issue(ca, orders, orders.begin(request, replaces=ARI_ID), zone_id)

    assert certificate.domains == request.domains
    assert payloads == [{"identifiers": [{"type": "dns", "value": request.domains[0]}], "replaces": ARI_ID}]
    assert new_order_statuses(ca) == [201]


def test_without_ari_in_the_directory_replaces_is_not_sent(ca: Ca) -> None:
    payloads = record_new_orders(ca)
    orders = orders_for(ca)
    request, _ = order_request(ca, "no-ari")

    orders.begin(request, replaces=ARI_ID)

    assert payloads == [{"identifiers": [{"type": "dns", "value": request.domains[0]}]}]


def test_an_already_replaced_refusal_is_retried_once_without_replaces(ca: Ca, caplog: pytest.LogCaptureFixture) -> None:
    """RFC 9773 §5: the CA answers 409 alreadyReplaced; the order goes again without replaces, and is issued."""
    advertise(ca, profiles=PROFILES, renewalInfo=f"{ca.proxy.base_url}/renewal-info")
    refusal = {"type": ALREADY_REPLACED, "detail": "the certificate was already replaced by order 42", "status": 409}
    payloads = record_new_orders(ca, lambda payload: Rule(status=409, body=refusal) if "replaces" in payload else None)
    orders = orders_for(ca)
    request, zone_id = order_request(ca, "replaced", profile="shortlived")

    with caplog.at_level(logging.WARNING):
        opened = orders.begin(request, replaces=ARI_ID)
    certificate = issue(ca, orders, opened, zone_id)

    identifiers = [{"type": "dns", "value": request.domains[0]}]
    assert payloads == [
        {"identifiers": identifiers, "profile": "shortlived", "replaces": ARI_ID},
        {"identifiers": identifiers, "profile": "shortlived"},
    ]
    assert new_order_statuses(ca) == [409, 201]
    assert certificate.domains == request.domains
    warning = next(r for r in caplog.records if "refused replaces" in r.getMessage())
    assert "already replaced by order 42" in warning.__dict__["error"]


def test_a_refusal_that_is_not_about_replaces_is_not_retried(ca: Ca) -> None:
    advertise(ca, renewalInfo=f"{ca.proxy.base_url}/renewal-info")
    refusal = {"type": "urn:ietf:params:acme:error:unauthorized", "detail": "account is deactivated", "status": 403}
    payloads = record_new_orders(ca, lambda payload: Rule(status=403, body=refusal))
    orders = orders_for(ca)

    with pytest.raises(AcmeOrderError, match="account is deactivated"):
        orders.begin(order_request(ca, "refused")[0], replaces=ARI_ID)

    assert len(payloads) == 1 and payloads[0]["replaces"] == ARI_ID
    assert new_order_statuses(ca) == [403]

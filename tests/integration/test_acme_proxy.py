"""The fault-injecting proxy in front of pebble: orders go through it unchanged, and its rules and hooks reach the
acme client as a CA's faults would (429 + Retry-After, 503, badNonce, a directory with profiles)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import josepy as jose
import pytest
import requests
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy, ProxiedRequest, Rule

if TYPE_CHECKING:
    from mypy_boto3_route53.type_defs import ResourceRecordSetTypeDef

pytestmark = pytest.mark.integration

ZONE = "acme-proxy.test"
PROFILES = {"classic": "the default profile", "shortlived": "six-day certificates"}


@pytest.fixture(scope="module")
def zone_id(stack: LocalStack) -> str:
    return stack.create_hosted_zone(ZONE)


@pytest.fixture
def proxy(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[AcmeProxy]:
    # The acme client trusts the stack's CA through REQUESTS_CA_BUNDLE, as the function will.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.ca_bundle))
    with AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls) as running:
        yield running


class Account:
    """An acme client with a fresh account, talking to `directory_url`."""

    def __init__(self, directory_url: str) -> None:
        self.key = jose.jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.network = client.ClientNetwork(self.key, alg=jose.jwa.ES256, user_agent="acme-proxy-test")
        self.acme = client.ClientV2(client.ClientV2.get_directory(directory_url, self.network), self.network)
        self.registration = self.acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))

    def answer_dns01(self, stack: LocalStack, zone_id: str, order: messages.OrderResource) -> None:
        """Publish each authorization's TXT record in moto (pebble reads it through our DNS server) and answer."""
        for authorization in order.authorizations:
            challenge = next(c for c in authorization.body.challenges if isinstance(c.chall, challenges.DNS01))
            record: ResourceRecordSetTypeDef = {
                "Name": f"_acme-challenge.{authorization.body.identifier.value}.",
                "Type": "TXT",
                "TTL": 60,
                "ResourceRecords": [{"Value": f'"{challenge.chall.validation(self.key)}"'}],
            }
            stack.client("route53").change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
            )
            self.acme.answer_challenge(challenge, challenge.chall.response(self.key))


def new_domain() -> str:
    return f"{uuid.uuid4().hex[:8]}.{ZONE}"


def csr_for(domain: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    csr: bytes = crypto_util.make_csr(key_pem, [domain])
    return csr


def deadline() -> datetime.datetime:
    return datetime.datetime.now() + datetime.timedelta(seconds=30)


def leaf_names(order: messages.OrderResource) -> list[str]:
    leaf = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    names: list[str] = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    return names


def statuses(proxy: AcmeProxy, method: str, path_prefix: str) -> list[int]:
    return [e.status for e in proxy.requests if e.method == method and e.path.startswith(path_prefix)]


def test_full_order_through_the_proxy_uses_only_proxy_urls(stack: LocalStack, zone_id: str, proxy: AcmeProxy) -> None:
    account = Account(proxy.directory_url)
    domain = new_domain()
    order = account.acme.new_order(csr_for(domain))
    account.answer_dns01(stack, zone_id, order)
    order = account.acme.poll_and_finalize(order, deadline=deadline())

    assert leaf_names(order) == [domain]
    assert order.body.certificate is not None
    urls: list[str] = [
        account.registration.uri,
        order.uri,
        order.body.finalize,
        order.body.certificate,
        *(authorization.uri for authorization in order.authorizations),
        *(challenge.uri for authorization in order.authorizations for challenge in authorization.body.challenges),
    ]
    assert all(url.startswith(proxy.base_url + "/") for url in urls), urls
    assert proxy.count("POST", "/order-plz") == 1
    assert proxy.count("POST", path_prefix="/certZ/") == 1
    assert all(exchange.status < 400 for exchange in proxy.requests), proxy.requests


def test_rate_limited_new_order_raises_once_then_succeeds(proxy: AcmeProxy) -> None:
    account = Account(proxy.directory_url)
    rule = proxy.add_rule(
        Rule(
            method="POST",
            path="/order-plz",
            status=429,
            headers={"Retry-After": "3600"},
            body={"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many"},
            times=1,
        )
    )
    csr = csr_for(new_domain())

    with pytest.raises(messages.Error) as raised:
        account.acme.new_order(csr)
    assert (raised.value.code, raised.value.detail) == ("rateLimited", "too many")
    assert proxy.count("POST", "/order-plz") == 1

    order = account.acme.new_order(csr)  # the rule has run out: pebble answers
    assert order.body.status == messages.STATUS_PENDING
    assert statuses(proxy, "POST", "/order-plz") == [429, 201]
    assert (rule.hits, rule.exhausted) == (1, True)


def test_injected_answer_is_a_problem_with_retry_after_and_a_fresh_nonce(stack: LocalStack, proxy: AcmeProxy) -> None:
    proxy.add_rule(Rule(path="/order-plz", status=429, headers={"Retry-After": "3600"}, times=None))
    answers = [
        requests.post(f"{proxy.base_url}/order-plz", data=b"{}", verify=str(stack.ca_bundle), timeout=5)
        for _ in range(2)
    ]
    for answer in answers:
        assert answer.status_code == 429
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["Retry-After"] == "3600"
        assert answer.json()["type"] == "urn:ietf:params:acme:error:rateLimited"
    nonces = {answer.headers["Replay-Nonce"] for answer in answers}
    assert len(nonces) == 2


def test_directory_hook_adds_profiles_the_client_sees_and_uses(proxy: AcmeProxy) -> None:
    """pebble 2.4 has no profiles; the hook advertises some, a request hook sees the one the client asks for."""
    proxy.directory_hook = lambda directory: {**directory, "meta": {**directory["meta"], "profiles": PROFILES}}
    new_order_payloads: list[Any] = []

    def spy(request: ProxiedRequest) -> Rule | None:
        if request.path == "/order-plz":
            new_order_payloads.append(request.jws_payload())
        return None

    proxy.request_hook = spy
    account = Account(proxy.directory_url)

    assert account.acme.directory.meta.profiles == PROFILES
    assert account.acme.directory["newOrder"] == f"{proxy.base_url}/order-plz"
    domain = new_domain()
    account.acme.new_order(csr_for(domain), profile="shortlived")
    assert new_order_payloads == [
        {"identifiers": [{"type": "dns", "value": domain}], "profile": "shortlived"},
    ]


def test_finalize_answered_503_once_then_succeeds(stack: LocalStack, zone_id: str, proxy: AcmeProxy) -> None:
    account = Account(proxy.directory_url)
    rule = proxy.add_rule(Rule(method="POST", path_prefix="/finalize-order/", status=503, times=1))
    domain = new_domain()
    order = account.acme.new_order(csr_for(domain))
    account.answer_dns01(stack, zone_id, order)
    order = account.acme.poll_authorizations(order, deadline())

    with pytest.raises(messages.Error) as raised:
        account.acme.finalize_order(order, deadline())
    assert raised.value.code == "serverInternal"
    assert (rule.hits, rule.exhausted) == (1, True)

    order = account.acme.finalize_order(order, deadline())
    assert leaf_names(order) == [domain]
    assert statuses(proxy, "POST", "/finalize-order/") == [503, 200]
    assert rule.hits == 1


def test_request_hook_answers_bad_nonce_and_the_client_retries_by_itself(proxy: AcmeProxy) -> None:
    """acme's ClientNetwork retries a badNonce once; the hook rejects only the first newOrder."""
    rejected: list[str] = []

    def reject_first_new_order(request: ProxiedRequest) -> Rule | None:
        if request.path != "/order-plz" or rejected:
            return None
        rejected.append(request.path)
        return Rule(status=400, body={"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale"})

    proxy.request_hook = reject_first_new_order
    account = Account(proxy.directory_url)
    order = account.acme.new_order(csr_for(new_domain()))
    assert order.body.status == messages.STATUS_PENDING
    assert statuses(proxy, "POST", "/order-plz") == [400, 201]

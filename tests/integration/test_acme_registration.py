"""One ACME account registration per CA per run, on the local stack: two proxies in front of pebble stand for two
CAs, each run opens several sessions per CA (one per worker thread), and the proxies count what reaches the CA."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests

from acme_renewer import runtime
from tests.integration.test_renewal import check_certificate, get_item, put_item, run, unique
from tests.stack import LocalStack
from tests.stack.acme_proxy import AcmeProxy, ProxiedRequest, Rule
from tests.stack.table import create_table


@dataclass
class Ca:
    """A proxy in front of the stack's pebble, with the paths of its directory's endpoints."""

    proxy: AcmeProxy
    new_account: str
    new_order: str
    ids: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, stack: LocalStack) -> Ca:
        proxy = AcmeProxy.start(upstream_directory_url=stack.pebble.directory_url, tls=stack.tls)
        # From pebble itself, so that the proxy counts only the renewer's requests; the proxy keeps the paths.
        directory = requests.get(stack.pebble.directory_url, verify=str(stack.ca_bundle), timeout=10).json()
        return cls(proxy, urlsplit(directory["newAccount"]).path, urlsplit(directory["newOrder"]).path)

    def count(self, method: str, path: str) -> int:
        return self.proxy.count(method, path)

    @property
    def directory_gets(self) -> int:
        return self.proxy.count("GET", self.proxy.directory_path)


class NewOrderGate:
    """A request hook that holds each newOrder until `parties` of them are in flight at once. A session serves one
    thread at a time (orders.AcmeOrders), so that many newOrders in flight come from that many sessions. Records
    the JWS `kid` of each: the account URL the session signs with."""

    def __init__(self, path: str, parties: int) -> None:
        self.path = path
        # The timeout only keeps a broken run from hanging the suite; a broken barrier fails the test.
        self.barrier = threading.Barrier(parties, timeout=60)
        self.broken = False
        self.kids: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: ProxiedRequest) -> Rule | None:
        if request.method == "POST" and request.path == self.path:
            protected = json.loads(request.body)["protected"]
            header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
            with self._lock:
                self.kids.append(header.get("kid", "no kid"))
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
        return None


@pytest.fixture
def two_cas(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, str], Ca, Ca]]:
    """A fresh table, the function's CA behind one proxy and an item's CA (acme_directory) behind another."""
    table = f"certificates-{uuid.uuid4().hex[:8]}"
    create_table(stack.client("dynamodb"), table)
    env = {**stack.env, "TABLE_NAME": table, "ACME_WORKERS": "8"}
    default, other = Ca.start(stack), Ca.start(stack)
    try:
        for name, value in {**env, "ACME_DIRECTORY_URL": default.proxy.directory_url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        runtime.client.cache_clear()
        yield env, default, other
    finally:
        runtime.client.cache_clear()
        default.proxy.stop()
        other.proxy.stop()


def add(stack: LocalStack, env: dict[str, str], ca: Ca, count: int, **fields: str) -> None:
    for _ in range(count):
        zone = unique("reg") + ".test"
        stack.create_hosted_zone(zone)
        item_id = unique("reg")
        put_item(stack, env, {"id": item_id, "domains": [zone], **fields})
        ca.ids.append(item_id)


def test_a_run_registers_each_account_once_and_every_session_signs_with_it(
    stack: LocalStack, two_cas: tuple[dict[str, str], Ca, Ca]
) -> None:
    env, default, other = two_cas
    add(stack, env, default, 4)
    add(stack, env, other, 3, acme_directory=other.proxy.directory_url)
    gates = {id(ca): NewOrderGate(ca.new_order, len(ca.ids)) for ca in (default, other)}
    for ca in (default, other):
        ca.proxy.request_hook = gates[id(ca)]

    result = run()

    assert result["renewed"] == 7, result
    for ca in (default, other):
        gate = gates[id(ca)]
        assert not gate.broken, "fewer newOrders were in flight at once than certificates: fewer sessions"
        assert len(gate.kids) == len(ca.ids)  # as many sessions as certificates ...
        assert ca.count("POST", ca.new_account) == 1  # ... and one registration
        assert ca.directory_gets == 1  # the other sessions reuse the directory too
        [kid] = set(gate.kids)  # every session signs with the one account's URL
        assert kid.startswith(ca.proxy.base_url)
        for item_id in ca.ids:
            item = get_item(stack, env, item_id)
            check_certificate(stack, item, item["domains"])


def test_a_refused_registration_fails_only_that_cas_certificates_and_is_not_sent_again(
    stack: LocalStack, two_cas: tuple[dict[str, str], Ca, Ca]
) -> None:
    env, default, other = two_cas
    refusal = default.proxy.add_rule(Rule(method="POST", path=default.new_account, status=500, times=None))
    add(stack, env, default, 3)
    add(stack, env, other, 1, acme_directory=other.proxy.directory_url)

    result = run()

    outcomes = {c["id"]: c["result"] for c in result["certificates"]}
    assert outcomes == {**dict.fromkeys(default.ids, "failed"), **dict.fromkeys(other.ids, "renewed")}
    assert refusal.hits == 1  # no retry storm: one newAccount for three certificates and their sessions
    assert default.count("POST", default.new_order) == 0
    for item_id in default.ids:
        item = get_item(stack, env, item_id)
        assert (item["status"], item["failure_count"]) == ("FAILED", 1)
        assert item["last_error"].startswith(
            f"the CA failed to POST {default.proxy.base_url}{default.new_account} with HTTP 500: "
        ), item["last_error"]
        assert "next_attempt_at" in item
    [fine] = other.ids
    item = get_item(stack, env, fine)
    check_certificate(stack, item, item["domains"])
    assert other.count("POST", other.new_account) == 1

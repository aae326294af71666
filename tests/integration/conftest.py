"""The local stack, started once per test session, and per-test isolation inside it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from acme_renewer import runtime
from acme_renewer.order.account import AcmeClient
from tests.stack import LocalStack
from tests.stack.strict_acm import IMPORT_QUOTA_PER_SECOND
from tests.stack.strict_rates import AWS_RATES, RatesControl

# pebble issues 5-year certificates by default; give them a realistic 90-day lifetime.
LIFETIME = timedelta(days=90)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack.start(
        tmp_path_factory.mktemp("stack"), certificate_validity_seconds=int(LIFETIME.total_seconds())
    ) as running:
        unthrottled(running)
        yield running


def unthrottled(stack: LocalStack) -> None:
    """No request rate of strict_rates.py: the suite's own calls (zones, checks, many tests' renewals one after
    another) would spend Route53's account budget that the renewer paces itself to. `route53_rate` turns it on."""
    for budget in AWS_RATES:
        stack.rates.set_rate(budget, None)


@pytest.fixture
def route53_rate(stack: LocalStack, env: dict[str, str]) -> Iterator[RatesControl]:
    """Route53 throttles again, at a rate the test sets (`route53_rate.set_rate(ROUTE53, Rate(...))`); the throttle
    counts start from zero, and the rates are off again afterwards."""
    stack.rates.reset_throttled()
    yield stack.rates
    unthrottled(stack)


@dataclass
class Calls:
    """What a run sent: ACME newOrder requests and Route53 changes (zone id per change)."""

    new_orders: list[bytes] = field(default_factory=list)
    route53_changes: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """os.environ pointed at the stack with a fresh table; clients are rebuilt for this environment."""
    table = f"certificates-{uuid.uuid4().hex[:8]}"
    values = {**stack.env, "TABLE_NAME": table}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    stack.client("dynamodb").create_table  # noqa: B018 - the client is valid before we use the stack
    from tests.stack.table import create_table

    create_table(stack.client("dynamodb"), table)
    runtime.client.cache_clear()
    yield values
    runtime.client.cache_clear()
    assert os.environ["TABLE_NAME"] == table


# ImportCertificate calls per second that tests importing many certificates allow themselves (`fast_acm_imports`).
FAST_ACM_IMPORTS = 50.0


@pytest.fixture
def fast_acm_imports(stack: LocalStack, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """ACM in the stack takes FAST_ACM_IMPORTS imports per second, and the renewer paces its imports to as many
    (ACM_IMPORTS_PER_SECOND), both at once: a test importing many certificates stays fast and is never throttled.
    The renewer's ACM clients are built at its first run, after this, so they get this rate; ACM's own rate comes
    back afterwards."""
    stack.acm.set_import_rate(FAST_ACM_IMPORTS)
    monkeypatch.setenv("ACM_IMPORTS_PER_SECOND", repr(FAST_ACM_IMPORTS))
    yield FAST_ACM_IMPORTS
    stack.acm.set_import_rate(IMPORT_QUOTA_PER_SECOND)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Calls:
    """Spy on the wire: ACME newOrder (wrapping AcmeClient) and Route53 changes (a botocore event hook)."""
    recorded = Calls()
    original = AcmeClient.new_order

    def new_order(self: AcmeClient, csr_pem: bytes, *args: Any, **kwargs: Any) -> Any:
        recorded.new_orders.append(csr_pem)
        return original(self, csr_pem, *args, **kwargs)

    monkeypatch.setattr(AcmeClient, "new_order", new_order)

    def on_change(params: dict[str, Any], **_: Any) -> None:
        recorded.route53_changes.append(params)

    runtime.client("route53", "us-east-1").meta.events.register(
        "provide-client-params.route53.ChangeResourceRecordSets", on_change
    )
    return recorded

"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.stack.in_process import InProcessStack


@pytest.fixture
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-memory AWS for the test, never a real or local endpoint or profile."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def route53(mocked_aws: None) -> Any:
    return boto3.client("route53", region_name="us-east-1")


@pytest.fixture
def secrets(mocked_aws: None) -> Any:
    return boto3.client("secretsmanager", region_name="eu-west-1")


@pytest.fixture
def strict_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessStack]:
    """The local stack's AWS side in this process: moto behind StackApp, whose strict layer refuses what AWS refuses
    and moto accepts (tests/stack/strict.py). Clients come from `strict_aws.client(service)`."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    stack = InProcessStack()
    yield stack
    stack.reset()

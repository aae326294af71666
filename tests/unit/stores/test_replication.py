"""Stores stage, replication: the secret's replica regions follow the item's `secret_regions`, against the local
stack's AWS side in this process (moto 5 implements ReplicateSecretToRegions, RemoveRegionsFromReplication and the
ReplicationStatus of DescribeSecret, and refuses a replica in the secret's own region as AWS does)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from acme_renewer.models import CertificateRequest, KeyType
from acme_renewer.stores.secrets import SecretStore
from tests.stack.in_process import REGION, InProcessStack
from tests.unit.fakes import FakeCa

REQUEST = CertificateRequest("web", ("web.example",), KeyType.EC_P256, (), "acme-renewer/certificates/web", None, True)


def replicas(secrets: Any) -> dict[str, str]:
    described = secrets.describe_secret(SecretId=REQUEST.secret_name)
    return {status["Region"]: status["Status"] for status in described.get("ReplicationStatus", [])}


def test_the_replicas_follow_the_items_regions(strict_aws: InProcessStack) -> None:
    """https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_ReplicateSecretToRegions.html and
    API_RemoveRegionsFromReplication.html: regions added and removed on the secret in its own region."""
    secrets = strict_aws.client("secretsmanager")
    store = SecretStore(secrets)
    store.put(REQUEST, FakeCa().sign(REQUEST))
    assert REGION not in ("eu-west-1", "ap-southeast-2")

    two = replace(REQUEST, secret_regions=("eu-west-1", "ap-southeast-2"))
    assert store.replicate(two) == []
    assert replicas(secrets) == {"eu-west-1": "InSync", "ap-southeast-2": "InSync"}
    assert store.replicate(two) == []  # nothing new: no second replica of a region
    assert replicas(secrets) == {"eu-west-1": "InSync", "ap-southeast-2": "InSync"}

    assert store.replicate(replace(REQUEST, secret_regions=("ap-southeast-2", "ca-central-1"))) == []
    assert replicas(secrets) == {"ap-southeast-2": "InSync", "ca-central-1": "InSync"}
    assert store.replicate(REQUEST) == []
    assert replicas(secrets) == {}


def test_a_refused_replication_is_a_warning_and_the_certificate_stays_stored(strict_aws: InProcessStack) -> None:
    secrets = strict_aws.client("secretsmanager")
    store = SecretStore(secrets)
    arn, version = store.put(REQUEST, FakeCa().sign(REQUEST))
    strict_aws.fail_secret(REQUEST.secret_name, "AccessDeniedException", "not authorized", ["ReplicateSecretToRegions"])

    warnings = store.replicate(replace(REQUEST, secret_regions=("eu-west-1",)))

    assert len(warnings) == 1
    assert warnings[0].startswith(f"secret_regions: Secrets Manager refused replicating {REQUEST.secret_name}")
    assert "AccessDeniedException: not authorized" in warnings[0] and "next renewal" in warnings[0]
    assert replicas(secrets) == {}
    assert secrets.get_secret_value(SecretId=arn)["VersionId"] == version

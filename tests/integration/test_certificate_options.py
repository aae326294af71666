"""The item's certificate options end to end: every key type, ACM in several regions, and a preferred chain
among the CA's alternates (pebble started with PEBBLE_ALTERNATE_ROOTS, in a stack of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from acme_renewer import runtime
from tests.integration.conftest import LIFETIME
from tests.integration.invariants import acm_client, assert_nothing_lost, make_due, read_item, secret_version
from tests.integration.test_renewal import put_item, run, unique
from tests.stack import LocalStack
from tests.stack.table import create_table

KEY_TYPES: dict[str, tuple[type[Any], int]] = {
    "ec-p256": (ec.EllipticCurvePublicKey, 256),
    "ec-p384": (ec.EllipticCurvePublicKey, 384),
    "rsa-2048": (rsa.RSAPublicKey, 2048),
    "rsa-3072": (rsa.RSAPublicKey, 3072),
    "rsa-4096": (rsa.RSAPublicKey, 4096),
}
# ACM's names for the key algorithms (DescribeCertificate KeyAlgorithm).
ACM_KEY_ALGORITHMS = {
    "ec-p256": "EC_prime256v1",
    "ec-p384": "EC_secp384r1",
    "rsa-2048": "RSA_2048",
    "rsa-3072": "RSA_3072",
    "rsa-4096": "RSA_4096",
}
OTHER_REGION = "eu-west-1"


def add(stack: LocalStack, table: str, prefix: str, **fields: Any) -> tuple[str, str]:
    """An item for a name in a new hosted zone; returns (id, zone id)."""
    zone = unique(prefix) + ".test"
    zone_id = stack.create_hosted_zone(zone)
    item_id = unique(prefix)
    put_item(stack, {"TABLE_NAME": table}, {"id": item_id, "domains": [zone], **fields})
    return item_id, zone_id


def acm_leaf(stack: LocalStack, region: str, arn: str) -> x509.Certificate:
    pem = acm_client(stack, region).get_certificate(CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def test_every_key_type_is_issued_in_one_run_and_imported_into_acm(
    stack: LocalStack, env: dict[str, str], fast_acm_imports: float
) -> None:
    items = {key_type: add(stack, env["TABLE_NAME"], key_type, key_type=key_type) for key_type in KEY_TYPES}

    result = run()

    assert result["renewed"] == len(KEY_TYPES), result
    acm = stack.client("acm")
    for key_type, (item_id, zone_id) in items.items():
        item, stored = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
        assert item["status"] == "ISSUED" and stored is not None, item.get("last_error")
        public_key = stored.current_leaf.public_key()
        expected_class, expected_size = KEY_TYPES[key_type]
        assert isinstance(public_key, expected_class), key_type
        size = public_key.curve.key_size if isinstance(public_key, ec.EllipticCurvePublicKey) else public_key.key_size
        assert size == expected_size, key_type
        arn = item["acm_arns"][stack.region]
        assert stored.acm[stack.region] == stored.current_leaf
        described = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        assert described["KeyAlgorithm"] == ACM_KEY_ALGORITHMS[key_type]


def test_acm_in_two_regions_gets_one_arn_each_renewed_in_place(stack: LocalStack, env: dict[str, str]) -> None:
    table = env["TABLE_NAME"]
    regions = [stack.region, OTHER_REGION]
    item_id, zone_id = add(stack, table, "regions", acm_regions=regions)

    assert run()["renewed"] == 1
    item, first = assert_nothing_lost(stack, table, item_id, [zone_id])
    assert first is not None and item["status"] == "ISSUED"
    arns = item["acm_arns"]
    assert sorted(arns) == sorted(regions)
    assert all(f":acm:{region}:" in arns[region] for region in regions)
    assert all(acm_leaf(stack, region, arns[region]) == first.current_leaf for region in regions)

    make_due(stack, table, item_id)
    assert run()["renewed"] == 1
    item, second = assert_nothing_lost(stack, table, item_id, [zone_id], previous_serial=first.current["serial"])
    assert second is not None and second.current_leaf != first.current_leaf
    assert item["acm_arns"] == arns, "a renewal must re-import into the same ARN in every region"
    assert all(acm_leaf(stack, region, arns[region]) == second.current_leaf for region in regions)

    # Dropping a region re-issues (acm_regions is an issuance field) and stops importing there. The certificate
    # in the dropped region is left alone, as deleting an item leaves it, and the item forgets its ARN.
    put_item(stack, {"TABLE_NAME": table}, {**read_item(stack, table, item_id), "acm_regions": [stack.region]})
    assert run()["renewed"] == 1
    item, third = assert_nothing_lost(stack, table, item_id, [zone_id], previous_serial=second.current["serial"])
    assert third is not None
    assert item["acm_arns"] == {stack.region: arns[stack.region]}
    assert acm_leaf(stack, stack.region, arns[stack.region]) == third.current_leaf
    assert acm_leaf(stack, OTHER_REGION, arns[OTHER_REGION]) == second.current_leaf


# --- preferred chain ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alternate_roots_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: restarting the session's pebble would give every later test a new root."""
    with LocalStack.start(
        tmp_path_factory.mktemp("alternate-roots"),
        pebble_env={"PEBBLE_ALTERNATE_ROOTS": "1"},
        certificate_validity_seconds=int(LIFETIME.total_seconds()),
    ) as running:
        yield running


@pytest.fixture
def alternate_table(alternate_roots_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """os.environ pointed at the alternate-roots stack with a fresh table."""
    table = f"certificates-{uuid.uuid4().hex[:8]}"
    create_table(alternate_roots_stack.client("dynamodb"), table)
    for name, value in {**alternate_roots_stack.env, "TABLE_NAME": table}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    runtime.client.cache_clear()
    yield table
    runtime.client.cache_clear()


def pebble_chain(stack: LocalStack, number: int) -> tuple[x509.Certificate, x509.Certificate]:
    """(root, intermediate) of pebble's chain `number`: 0 is the default one, 1 the alternate."""
    root = x509.load_pem_x509_certificate(stack.pebble.roots_pem(number).encode())
    intermediate = x509.load_pem_x509_certificate(stack.pebble.intermediates_pem(number).encode())
    return root, intermediate


def common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def stored_chain(stack: LocalStack, table: str, item_id: str) -> tuple[dict[str, Any], list[x509.Certificate]]:
    """The item, checked to be ISSUED, and the chain its secret holds, checked to be the one ACM holds."""
    item = read_item(stack, table, item_id)
    assert item["status"] == "ISSUED", item.get("last_error")
    secret = secret_version(stack, item["secret_arn"], "AWSCURRENT")
    assert secret is not None and secret["fullchain"] == secret["certificate"] + secret["chain"]
    chain = x509.load_pem_x509_certificates(secret["chain"].encode())
    leaf = x509.load_pem_x509_certificate(secret["certificate"].encode())
    acm = stack.client("acm").get_certificate(CertificateArn=item["acm_arns"][stack.region])
    assert x509.load_pem_x509_certificate(acm["Certificate"].encode()) == leaf
    # moto appends a CA of its own to CertificateChain: ours comes first.
    assert x509.load_pem_x509_certificates(acm["CertificateChain"].encode())[: len(chain)] == chain
    return item, [leaf, *chain]


def verifies_to(root: x509.Certificate, chain: list[x509.Certificate], name: str) -> bool:
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    try:
        verifier.verify(chain[0], chain[1:])
    except Exception:
        return False
    return True


def test_a_preferred_chain_picks_the_alternate_and_the_default_stays_otherwise(
    alternate_roots_stack: LocalStack, alternate_table: str
) -> None:
    stack, table = alternate_roots_stack, alternate_table
    default_root, default_intermediate = pebble_chain(stack, 0)
    alternate_root, alternate_intermediate = pebble_chain(stack, 1)
    assert common_name(default_root.subject) != common_name(alternate_root.subject)
    preferred, _ = add(stack, table, "preferred", preferred_chain=common_name(alternate_root.subject))
    plain, _ = add(stack, table, "plain")
    unmatched, _ = add(stack, table, "unmatched", preferred_chain="No Such Root")

    assert run()["renewed"] == 3

    item, chain = stored_chain(stack, table, preferred)
    assert chain[1:] == [alternate_intermediate]
    assert verifies_to(alternate_root, chain, item["domains"][0])
    assert not verifies_to(default_root, chain, item["domains"][0])
    for default_item in (plain, unmatched):  # no preference, or one the CA does not offer: the default chain
        item, chain = stored_chain(stack, table, default_item)
        assert chain[1:] == [default_intermediate]
        assert verifies_to(default_root, chain, item["domains"][0])

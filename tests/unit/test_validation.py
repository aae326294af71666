"""The item contract: every field is checked, and every rejection says what to fix."""

from decimal import Decimal

import pytest

from acme_renewer.errors import ItemValidationError
from acme_renewer.models import KeyType
from acme_renewer.settings import Settings
from acme_renewer.validation import MAX_DOMAINS, normalize_domain, parse_item

SETTINGS = Settings(table_name="certificates", region="eu-west-1")


def item(**fields: object) -> dict[str, object]:
    return {"id": "example", "domains": ["example.com"], **fields}


def test_minimal_item_gets_documented_defaults() -> None:
    request = parse_item(item(), SETTINGS)
    assert request.domains == ("example.com",)
    assert request.key_type is KeyType.EC_P256
    assert request.acm_regions == (SETTINGS.region,)
    assert request.secret_name == SETTINGS.default_secret_name("example")
    assert request.secret_name.startswith(SETTINGS.secret_prefix)
    assert request.renew_before_days is None
    assert request.enabled is True


def test_full_item_is_read_as_written() -> None:
    request = parse_item(
        item(
            domains=["example.com", "*.example.com"],
            key_type="rsa-3072",
            acm_regions=["us-east-1", "eu-central-1"],
            secret_name="acme-renewer/custom/name",
            renew_before_days=Decimal(20),
            enabled=False,
        ),
        SETTINGS,
    )
    assert request.domains == ("example.com", "*.example.com")
    assert request.key_type is KeyType.RSA_3072
    assert request.acm_regions == ("us-east-1", "eu-central-1")
    assert request.secret_name == "acme-renewer/custom/name"
    assert request.renew_before_days == 20
    assert request.enabled is False


def test_empty_region_list_means_no_acm_import() -> None:
    assert parse_item(item(acm_regions=[]), SETTINGS).acm_regions == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_names_are_normalized(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


def test_duplicates_are_dropped_keeping_the_subject_first() -> None:
    request = parse_item(item(domains=["b.example.com", "a.example.com", "B.example.com."]), SETTINGS)
    assert request.domains == ("b.example.com", "a.example.com")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"domains": []}, "non-empty list"),
        ({"domains": "example.com"}, "non-empty list"),
        ({"domains": ["ex ample.com"]}, "invalid label"),
        ({"domains": ["a" * 64 + ".com"]}, "longer than 63"),
        ({"domains": [".".join(["a" * 60] * 5)]}, "253"),
        ({"domains": ["www.*.example.com"]}, "wildcard"),
        ({"domains": ["*.*.example.com"]}, "wildcard"),
        ({"domains": ["192.0.2.1"]}, "IP address"),
        ({"domains": ["localhost"]}, "two labels"),
        ({"domains": [7]}, "must be a string"),
        ({"domains": [f"n{i}.example.com" for i in range(MAX_DOMAINS + 1)]}, "at most 100"),
        ({"key_type": "dsa-1024"}, "key_type 'dsa-1024'"),
        ({"acm_regions": ["mars-north-1"]}, "mars-north-1"),
        ({"acm_regions": "us-east-1"}, "acm_regions must be a list"),
        ({"secret_name": "acme-renewer/bad name!"}, "secret_name"),
        ({"secret_name": "elsewhere/cert"}, "must start with 'acme-renewer/'"),
        ({"renew_before_days": -3}, "renew_before_days"),
        ({"renew_before_days": Decimal("2.5")}, "renew_before_days"),
        ({"renew_before_days": "10"}, "renew_before_days"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"id": "has space"}, "id 'has space'"),
    ],
)
def test_bad_fields_are_rejected_with_an_actionable_message(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(**fields), SETTINGS)
    assert message in str(raised.value)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(domains=["ok.example.com", "bad..example.com"], key_type="nope"), SETTINGS)
    assert len(raised.value.problems) == 2


def test_unknown_attributes_warn_but_do_not_fail() -> None:
    request = parse_item(item(colour="blue"), SETTINGS)
    assert request.warnings == ("unknown attribute 'colour' ignored",)


def test_state_written_by_the_renewer_is_not_unknown() -> None:
    request = parse_item(item(status="ISSUED", not_after="2030-01-01T00:00:00Z", last_error="x"), SETTINGS)
    assert request.warnings == ()

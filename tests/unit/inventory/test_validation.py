"""The item contract: every field is checked, and every rejection says what to fix."""

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acme_renewer.errors import ItemValidationError
from acme_renewer.inventory.policy import REQUEST_FIELDS, fingerprint
from acme_renewer.inventory.table import LEGACY_MARK, STATUS_OF
from acme_renewer.inventory.validation import (
    MAX_DOMAINS,
    STATE_FIELDS,
    account_directory,
    check_against_lifetime,
    display_name,
    normalize_domain,
    parse_item,
)
from acme_renewer.models import AcmeAccount, CertificateRequest, KeyType
from acme_renewer.settings import CA_ALIASES, LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, Settings
from tests.stack.table import REPO_ROOT

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
        ({"domains": Decimal(5)}, "got a number (5)"),
        ({"domains": {"a": "example.com"}}, "got a map"),
        ({"domains": {"example.com", "www.example.com"}}, "not a set"),
        ({"domains": None}, "got null"),
        ({"domains": ["not a dns name.example.com"]}, "invalid label"),
        ({"domains": ["exa_mple.com"]}, "invalid label"),
        ({"domains": ["-example.com"]}, "invalid label"),
        ({"domains": ["xn--zz.example.com"]}, "not valid punycode"),
        ({"domains": [""]}, "is empty"),
        ({"domains": ["*"]}, "wildcard"),
        ({"domains": ["2001:db8::1"]}, "IP address"),
        ({"domains": ["ex ample.com"]}, "invalid label"),
        ({"domains": ["a" * 64 + ".com"]}, "longer than 63"),
        ({"domains": [".".join(["a" * 60] * 5)]}, "253"),
        ({"domains": ["www.*.example.com"]}, "wildcard"),
        ({"domains": ["*.*.example.com"]}, "wildcard"),
        ({"domains": ["192.0.2.1"]}, "IP address"),
        ({"domains": ["localhost"]}, "two labels"),
        ({"domains": [7]}, "must be a string"),
        ({"domains": [Decimal(1), Decimal(2)]}, "domains has a number (2); each name must be a string (S)"),
        ({"key_type": Decimal(5)}, "key_type a number (5) is not one of ec-p256"),
        ({"secret_name": Decimal(3)}, "secret_name a number (3) must be a string"),
        ({"acm_regions": [Decimal(1)]}, "each region is a string"),
        ({"endpoints": ["https://example.com/"]}, "drop 'https://'"),
        ({"endpoints": ["example.com"]}, "has no port"),
        ({"endpoints": "example.com:443"}, "endpoints must be a list"),
        ({"acme_directory": "http://ca.example/directory"}, "acme_directory must be an https URL"),
        ({"acme_directory": "not a url"}, "or one of letsencrypt, letsencrypt-staging, zerossl, google, buypass"),
        ({"acme_directory": Decimal(1)}, "acme_directory must be an https URL"),
        ({"acme_directory": "LetsEncrypt"}, "got 'LetsEncrypt'"),
        ({"eab_secret": "elsewhere/eab"}, "eab_secret 'elsewhere/eab' must start with 'acme-renewer/'"),
        ({"eab_secret": "acme-renewer/bad name"}, "eab_secret 'acme-renewer/bad name' must be a secret name"),
        ({"eab_secret": ["acme-renewer/eab"]}, "eab_secret must be the name of a Secrets Manager secret"),
        ({"domains": [f"n{i}.example.com" for i in range(MAX_DOMAINS + 1)]}, "at most 100"),
        ({"key_type": "dsa-1024"}, "key_type 'dsa-1024'"),
        ({"acm_regions": ["mars-north-1"]}, "mars-north-1"),
        ({"acm_regions": "us-east-1"}, "acm_regions must be a list"),
        ({"secret_name": "acme-renewer/bad name!"}, "secret_name"),
        ({"secret_name": "elsewhere/cert"}, "must start with 'acme-renewer/'"),
        ({"renew_before_days": -3}, "renew_before_days"),
        ({"renew_before_days": 0}, "from 1 to 365"),
        ({"renew_before_days": 366}, "from 1 to 365"),
        ({"renew_before_days": Decimal("NaN")}, "renew_before_days"),
        ({"renew_before_days": float("inf")}, "renew_before_days"),
        ({"renew_before_days": True}, "renew_before_days"),
        ({"renew_before_days": Decimal("2.5")}, "renew_before_days"),
        ({"renew_before_days": "10"}, "renew_before_days"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"enabled": Decimal(1)}, "enabled must be true or false (a BOOL), got a number (1)"),
        ({"id": "has space"}, "id 'has space'"),
        ({"preferred_chain": ""}, "preferred_chain '' must be the Common Name"),
        ({"preferred_chain": "   "}, "preferred_chain '   ' must be the Common Name"),
        ({"preferred_chain": "R" * 65}, "a string of 1-64 characters"),
        ({"preferred_chain": Decimal(1)}, "preferred_chain a number (1) must be the Common Name"),
        ({"preferred_chain": ["ISRG Root X1"]}, "preferred_chain a list (1 elements)"),
        ({"formats": "pkcs12"}, "formats must be a list (L) of 'pkcs12', 'pkcs12-legacy', 'bundle'"),
        ({"formats": {"pkcs12"}}, "formats must be a list (L) of 'pkcs12', 'pkcs12-legacy', 'bundle'"),
        ({"formats": ["pfx"]}, "formats has 'pfx', which is not one of 'pkcs12', 'pkcs12-legacy', 'bundle'"),
        ({"formats": [Decimal(12)]}, "formats has a number (12), which is not one of 'pkcs12'"),
        ({"formats": ["bundle", "bundle"]}, "formats has 'bundle' twice; list each format once"),
        ({"secret_regions": "eu-west-2"}, "secret_regions must be a list of region names"),
        ({"secret_regions": ["eu-west-1"]}, "secret_regions has 'eu-west-1', the function's own region"),
        ({"secret_regions": ["mars-north-1"]}, "'mars-north-1', which is not an AWS region with Secrets Manager"),
        ({"secret_regions": [Decimal(1)]}, "secret_regions has a number (1); each region is a string"),
    ],
)
def test_bad_fields_are_rejected_with_an_actionable_message(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(**fields), SETTINGS)
    assert message in str(raised.value)


def test_formats_are_read_in_order_and_default_to_none() -> None:
    assert parse_item(item(), SETTINGS).formats == ()
    assert parse_item(item(formats=[]), SETTINGS).formats == ()
    chosen = parse_item(item(formats=["bundle", "pkcs12-legacy", "pkcs12"]), SETTINGS)
    assert chosen.formats == ("bundle", "pkcs12-legacy", "pkcs12")


def test_secret_regions_are_read_once_each_and_refused_with_a_key_of_the_stacks_own() -> None:
    assert parse_item(item(), SETTINGS).secret_regions == ()
    read = parse_item(item(secret_regions=["us-west-2", "ap-south-1", "us-west-2"]), SETTINGS)
    assert read.secret_regions == ("us-west-2", "ap-south-1")
    with_key = replace(SETTINGS, secrets_kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/1234")
    assert parse_item(item(), with_key).secret_regions == ()
    with pytest.raises(ItemValidationError, match="secret_regions cannot be used with a customer-managed key"):
        parse_item(item(secret_regions=["us-west-2"]), with_key)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(domains=["ok.example.com", "bad..example.com"], key_type="nope"), SETTINGS)
    assert len(raised.value.problems) == 2


def test_unknown_attributes_warn_but_do_not_fail() -> None:
    request = parse_item(item(colour="blue"), SETTINGS)
    assert request.warnings == ("unknown attribute 'colour' ignored",)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("key_tpye", "key_type"),
        ("acm_region", "acm_regions"),
        ("region", "acm_regions"),
        ("Domains", "domains"),  # attribute names are case-sensitive
        ("KEY_TYPE", "key_type"),
        ("renew_before", "renew_before_days"),
        ("zone_id", "hosted_zone_id"),
        ("profile_fallbak", "profile_fallback"),
    ],
)
def test_an_unknown_attribute_names_the_field_it_most_likely_meant(name: str, meant: str) -> None:
    request = parse_item(item(**{name: "x"}), SETTINGS)
    assert request.warnings == (f"unknown attribute {name!r} ignored; did you mean {meant!r}?",)


@pytest.mark.parametrize("name", ["colour", "eab", "owner", "notes"])
def test_an_unknown_attribute_like_no_field_names_none(name: str) -> None:
    assert parse_item(item(**{name: "x"}), SETTINGS).warnings == (f"unknown attribute {name!r} ignored",)


def test_an_invalid_item_still_says_what_it_ignored() -> None:
    """`domain` for `domains`: the problem says domains is missing, the warning says where it went."""
    with pytest.raises(ItemValidationError) as raised:
        parse_item({"id": "typo", "domain": ["example.com"]}, SETTINGS)
    assert raised.value.warnings == ("unknown attribute 'domain' ignored; did you mean 'domains'?",)
    assert "did you mean" not in str(raised.value)  # the message is the problems, as before


def test_the_renewers_warnings_are_not_an_unknown_attribute() -> None:
    assert parse_item(item(warnings=["unknown attribute 'x' ignored"]), SETTINGS).warnings == ()


# CloudFront uses ACM certificates from us-east-1 with RSA keys up to 4096 bits or EC P-256 keys only: "Requirements
# for using SSL/TLS certificates with CloudFront" (Key type, Size of the certificate key),
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-requirements.html, with
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-size-of-public-key.html ("the
# maximum size of the public key in an SSL/TLS RSA certificate is 4096 bits") and ACM's "Prerequisites for importing
# ACM certificates" (https://docs.aws.amazon.com/acm/latest/userguide/import-certificate-prerequisites.html:
# "CloudFront only supports 1024-bit RSA, 2048-bit RSA, 3072-bit RSA, 4096-bit RSA, and Elliptic Prime Curve 256-bit
# keys"). Of our key types, ec-p384 is the one CloudFront cannot use.
@pytest.mark.parametrize("key_type", [k for k in KeyType])
def test_a_key_cloudfront_cannot_use_in_us_east_1_is_a_warning_with_what_to_use(key_type: KeyType) -> None:
    request = parse_item(item(key_type=key_type.value, acm_regions=["eu-west-1", "us-east-1"]), SETTINGS)
    if key_type is not KeyType.EC_P384:
        assert request.warnings == ()
        return
    [warning] = request.warnings
    assert warning == (
        "key_type 'ec-p384' cannot be used by CloudFront, which takes only RSA (up to 4096 bits) and EC P-256 keys"
        " from ACM in us-east-1: for a CloudFront distribution use key_type 'ec-p256' or 'rsa-2048'; for a load"
        " balancer or API Gateway in us-east-1, 'ec-p384' is fine"
    )
    assert request.key_type is KeyType.EC_P384  # a warning: the certificate is issued as asked


def test_the_cloudfront_warning_needs_us_east_1() -> None:
    assert parse_item(item(key_type="ec-p384", acm_regions=["eu-west-1"]), SETTINGS).warnings == ()
    assert parse_item(item(key_type="ec-p384", acm_regions=[]), SETTINGS).warnings == ()
    # The function's own region is the default for acm_regions.
    in_us_east_1 = replace(SETTINGS, region="us-east-1")
    assert len(parse_item(item(key_type="ec-p384"), in_us_east_1).warnings) == 1


def test_state_written_by_the_renewer_is_not_unknown() -> None:
    request = parse_item(item(status="ISSUED", not_after="2030-01-01T00:00:00Z", last_error="x"), SETTINGS)
    assert request.warnings == ()


def test_a_bad_id_does_not_also_blame_the_default_secret_name() -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(id="has space"), SETTINGS)
    assert [p for p in raised.value.problems if "secret_name" in p] == []


def test_a_string_set_of_names_is_refused_because_it_has_no_subject() -> None:
    with pytest.raises(ItemValidationError) as raised:
        parse_item(item(domains={"example.com"}), SETTINGS)
    assert "first name is the certificate's subject" in str(raised.value)


def test_many_names_that_collapse_to_few_are_fine() -> None:
    request = parse_item(item(domains=["Example.com", "example.com.", "EXAMPLE.COM"] * 50), SETTINGS)
    assert request.domains == ("example.com",)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("*.Bücher.Example", "*.xn--bcher-kva.example"),
        ("ÉCOLE.example.", "xn--cole-9oa.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("  example.com  ", "example.com"),
    ],
)
def test_more_names_are_normalized(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("ascii_name", "shown"),
    [
        ("xn--bcher-kva.example", "bücher.example"),
        ("*.xn--bcher-kva.example", "*.bücher.example"),
        ("example.com", "example.com"),
        ("xn--zz.example", "xn--zz.example"),  # not decodable: shown as it is
    ],
)
def test_display_name_gives_the_unicode_form(ascii_name: str, shown: str) -> None:
    assert display_name(ascii_name) == shown


def test_display_name_inverts_normalization() -> None:
    for raw in ("bücher.example", "*.münchen.example", "example.com", "日本.example"):
        assert display_name(normalize_domain(raw)) == raw


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("letsencrypt", LETSENCRYPT_PRODUCTION),
        ("letsencrypt-staging", LETSENCRYPT_STAGING),
        ("zerossl", CA_ALIASES["zerossl"]),
        ("https://ca.example/directory", "https://ca.example/directory"),
    ],
)
def test_an_item_orders_from_its_own_directory_or_alias(raw: str, url: str) -> None:
    request = parse_item(item(acme_directory=raw), SETTINGS)
    assert request.account == AcmeAccount(url, None)
    assert request.warnings == ()


def test_without_a_directory_the_item_uses_the_functions_account() -> None:
    settings = replace(SETTINGS, acme_eab_secret="acme-renewer/eab/default")
    assert parse_item(item(), settings).account == AcmeAccount(settings.acme_directory_url, "acme-renewer/eab/default")


def test_the_functions_eab_secret_stays_with_the_functions_directory() -> None:
    settings = replace(SETTINGS, acme_directory_url=CA_ALIASES["zerossl"], acme_eab_secret="acme-renewer/eab/zerossl")
    # The same CA named by its alias: the function's binding applies.
    assert parse_item(item(acme_directory="zerossl"), settings).account == AcmeAccount(
        CA_ALIASES["zerossl"], "acme-renewer/eab/zerossl"
    )
    # Another CA: ZeroSSL's key would be refused there, so no EAB unless the item names its own.
    assert parse_item(item(acme_directory="letsencrypt"), settings).account == AcmeAccount(LETSENCRYPT_PRODUCTION)
    own = parse_item(item(acme_directory="google", eab_secret="acme-renewer/eab/google"), settings)
    assert own.account == AcmeAccount(CA_ALIASES["google"], "acme-renewer/eab/google")


def test_an_alias_and_its_url_are_one_request() -> None:
    by_alias = fingerprint(
        item(acme_directory="letsencrypt"),
        REQUEST_FIELDS,
        account_directory(item(acme_directory="letsencrypt"), SETTINGS),
    )
    by_url = item(acme_directory=LETSENCRYPT_PRODUCTION)
    assert by_alias == fingerprint(by_url, REQUEST_FIELDS, account_directory(by_url, SETTINGS))
    # And both are the function's own directory: the same request as an item without the field.
    assert by_alias == fingerprint(item(), REQUEST_FIELDS, account_directory(item(), SETTINGS))
    other = item(acme_directory="letsencrypt-staging")
    assert fingerprint(other, REQUEST_FIELDS, account_directory(other, SETTINGS)) != by_alias


def test_the_renewers_journal_and_display_names_are_not_unknown() -> None:
    request = parse_item(item(pending_txt=[], display_domains=["example.com"]), SETTINGS)
    assert request.warnings == ()


# --- what only the issued certificate tells -------------------------------------------------------------------

NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NINETY_DAYS = NOT_BEFORE + timedelta(days=90) - timedelta(seconds=1)  # pebble's and Let's Encrypt's notAfter


def with_days(days: int | None) -> CertificateRequest:
    return parse_item(item() if days is None else item(renew_before_days=days), SETTINGS)


@pytest.mark.parametrize("days", [90, 120, 365])
def test_renew_before_days_not_shorter_than_the_lifetime_is_a_problem(days: int) -> None:
    problems = check_against_lifetime(with_days(days), NOT_BEFORE, NINETY_DAYS)
    assert len(problems) == 1
    assert f"renew_before_days {days} is not shorter than the certificate's lifetime (90 days)" in problems[0]
    assert "about 29" in problems[0]


@pytest.mark.parametrize("days", [None, 1, 30, 89])
def test_renew_before_days_inside_the_lifetime_is_fine(days: int | None) -> None:
    assert check_against_lifetime(with_days(days), NOT_BEFORE, NINETY_DAYS) == []


def test_short_lived_certificates_are_checked_too() -> None:
    six_days = NOT_BEFORE + timedelta(days=6)
    assert check_against_lifetime(with_days(6), NOT_BEFORE, six_days)
    assert check_against_lifetime(with_days(5), NOT_BEFORE, six_days) == []


# --- fuzzing: whatever an item holds, parse_item answers with a request or an ItemValidationError ---------------

# What boto3's TypeDeserializer can hand us (and a few things it cannot, to be safe).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(),
    st.binary(),
    st.sampled_from(["example.com", "*.example.com", "bücher.example", "ec-p256", "us-east-1", "acme-renewer/x"]),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
        st.frozensets(st.one_of(st.text(max_size=20), st.decimals(allow_nan=False), st.binary(max_size=8)), max_size=5),
        st.sets(st.text(max_size=20), max_size=5),
    ),
    max_leaves=20,
)
FIELDS = sorted({*REQUEST_FIELDS, *STATE_FIELDS})
items = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)),
    json_like,
    max_size=len(FIELDS) + 3,
)


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=items)
def test_parse_item_never_raises_anything_but_item_validation_error(raw: dict[str, Any]) -> None:
    try:
        request = parse_item(raw, SETTINGS)
    except ItemValidationError as invalid:
        assert invalid.problems
        assert all(isinstance(p, str) and p for p in invalid.problems)
    else:
        assert isinstance(request, CertificateRequest)


@settings(max_examples=200, deadline=None, database=None)
@given(
    domains=st.lists(st.one_of(st.text(max_size=70), json_like), max_size=6),
    extra=st.dictionaries(st.sampled_from(FIELDS), json_like, max_size=4),
)
def test_parse_item_never_crashes_on_near_valid_items(domains: list[Any], extra: dict[str, Any]) -> None:
    """Mostly valid items get further into the checks than random ones do."""
    try:
        request = parse_item({"id": "fuzz", "domains": domains, **extra}, SETTINGS)
    except ItemValidationError:
        return
    assert request.domains and all(name == normalize_domain(name) for name in request.domains)


def test_preferred_chain_is_read_as_written_and_absent_by_default() -> None:
    assert parse_item(item(), SETTINGS).preferred_chain is None
    assert parse_item(item(preferred_chain="ISRG Root X1"), SETTINGS).preferred_chain == "ISRG Root X1"
    assert parse_item(item(preferred_chain="R" * 64), SETTINGS).warnings == ()


def readme_table(heading: str) -> list[str]:
    """The first-column names of the first table under a README heading (a row may name several: `a`, `b`)."""
    lines = (REPO_ROOT / "README.md").read_text().split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|")) + 2  # past the header and the rule
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [name.strip("` ") for row in rows for name in row.split("|")[1].split(",")]


def test_the_readme_documents_every_item_field_in_one_table() -> None:
    """Every field a user writes has a row in "The item" table, and every row there is a field the code reads."""
    assert sorted(readme_table("## The item")) == sorted(REQUEST_FIELDS)


def test_the_readme_documents_every_attribute_the_renewer_writes() -> None:
    """The table of the status item's attributes is the set validation does not count as unknown, but for the mark
    of the writes of versions before status items (`written_by`, documented apart) and with the status item's own
    `status_of`."""
    heading = "The status item's attributes (don't edit them by hand):"
    assert sorted(readme_table(heading)) == sorted((STATE_FIELDS - {LEGACY_MARK}) | {STATUS_OF})

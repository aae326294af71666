"""Bad items on the local stack: each one ends FAILED with a last_error that says what to fix, in the same run
as good certificates that are issued all the same. Names that only need normalizing are issued, not refused.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from tests.integration.test_renewal import challenge_records, check_certificate, get_item, put_item, run, unique
from tests.stack import LocalStack

# (item id, the item's fields but its id, a piece of the last_error). `{zone}` is a hosted zone that exists, so
# each item has exactly one thing wrong with it.
BAD_ITEMS: list[tuple[str, dict[str, Any], str]] = [
    ("not-a-dns-name", {"domains": ["www.ex ample.{zone}"]}, "has an invalid label 'ex ample'"),
    ("label-too-long", {"domains": ["a" * 64 + ".{zone}"]}, "has a label longer than 63 characters"),
    ("name-too-long", {"domains": [".".join(["a" * 60] * 4) + ".{zone}"]}, "DNS names stop at 253"),
    ("wildcard-inside", {"domains": ["www.*.{zone}"]}, "wildcard as its whole first label"),
    ("double-wildcard", {"domains": ["*.*.{zone}"]}, "wildcard as its whole first label"),
    ("ipv4-address", {"domains": ["192.0.2.1"]}, "is an IP address"),
    ("ipv6-address", {"domains": ["2001:db8::1"]}, "is an IP address"),
    ("too-many-names", {"domains": [f"n{i}.{{zone}}" for i in range(101)]}, "a certificate holds at most 100"),
    ("no-domains", {"domains": []}, "domains must be a non-empty list of DNS names"),
    ("domains-a-string", {"domains": "{zone}"}, "domains must be a non-empty list of DNS names"),
    ("domains-a-number", {"domains": Decimal(7)}, "got a number (7)"),
    ("domains-a-map", {"domains": {"name": "{zone}"}}, "got a map (1 keys)"),
    ("domains-a-set", {"domains": {"{zone}", "www.{zone}"}}, "domains must be a list (L), not a set"),
    ("unknown-key-type", {"key_type": "rsa-1024"}, "key_type 'rsa-1024' is not one of ec-p256"),
    ("unknown-region", {"acm_regions": ["mars-north-1"]}, "'mars-north-1', which is not an AWS region with ACM"),
    ("secret-name-chars", {"secret_name": "acme-renewer/bad name!"}, "letters, digits and /_+=.@-"),
    ("secret-name-elsewhere", {"secret_name": "elsewhere/cert"}, "must start with 'acme-renewer/'"),
    ("renew-negative", {"renew_before_days": Decimal(-3)}, "whole number from 1 to 365, got -3"),
    ("renew-fraction", {"renew_before_days": Decimal("2.5")}, "whole number from 1 to 365, got 2.5"),
    ("renew-a-string", {"renew_before_days": "10"}, "renew_before_days must be a whole number of days"),
    ("enabled-a-string", {"enabled": "yes"}, "enabled must be true or false"),
    ("endpoint-url", {"endpoints": ["https://www.{zone}/"]}, "has a scheme; drop 'https://'"),
    ("endpoint-no-port", {"endpoints": ["www.{zone}"]}, "has no port"),
    ("endpoints-a-string", {"endpoints": "www.{zone}:443"}, "endpoints must be a list"),
    ("directory-http", {"acme_directory": "http://ca.example/dir"}, "acme_directory must be an https URL"),
    ("directory-alias", {"acme_directory": "ZeroSSL"}, "or one of letsencrypt, letsencrypt-staging, zerossl"),
    ("eab-elsewhere", {"eab_secret": "other/eab"}, "eab_secret 'other/eab' must start with 'acme-renewer/'"),
    ("bad id with spaces", {}, "id 'bad id with spaces' must be 1-128 characters"),
]
NO_ZONE_MESSAGE = "no public Route53 hosted zone contains"
# An item written by hand in DynamoDB JSON, with numbers where strings belong.
UNREADABLE = {
    "domains": {"L": [{"N": "1"}, {"N": "2"}]},
    "key_type": {"N": "5"},
    "secret_name": {"N": "3"},
}
UNREADABLE_MESSAGES = (
    "domains has a number (1); each name must be a string (S)",
    "key_type a number (5) is not one of",
    "secret_name a number (3) must be a string",
)


def fill(value: Any, zone: str) -> Any:
    """`value` with `{zone}` replaced in every string, through lists, sets and maps."""
    if isinstance(value, str):
        return value.replace("{zone}", zone)
    if isinstance(value, list):
        return [fill(v, zone) for v in value]
    if isinstance(value, set):
        return {fill(v, zone) for v in value}
    if isinstance(value, dict):
        return {k: fill(v, zone) for k, v in value.items()}
    return value


def put_raw(stack: LocalStack, env: dict[str, str], item: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(TableName=env["TABLE_NAME"], Item=item)


def test_bad_items_fail_with_actionable_errors_while_good_ones_are_issued(
    stack: LocalStack, env: dict[str, str]
) -> None:
    zone = unique("input") + ".test"
    zone_id = stack.create_hosted_zone(zone)
    for item_id, fields, _ in BAD_ITEMS:
        put_item(stack, env, {"id": item_id, "domains": [f"www.{zone}"], **fill(fields, zone)})
    put_item(stack, env, {"id": "no-hosted-zone", "domains": [f"www.{uuid.uuid4().hex[:8]}.invalid"]})
    put_raw(stack, env, {"id": {"S": "unreadable"}, **UNREADABLE})
    # Good ones, one plain and one that needs every normalization, with attributes that only warn.
    put_item(stack, env, {"id": "good-plain", "domains": [zone, f"*.{zone}"]})
    put_item(
        stack,
        env,
        {
            "id": "good-normalized",
            "domains": [f"WWW.{zone.upper()}.", f"www.{zone}", f"Bücher.{zone}", f"www.{zone}."],
            "colour": "blue",
        },
    )

    result = run()

    for item_id, _, message in BAD_ITEMS:
        item = get_item(stack, env, item_id)
        assert item["status"] == "FAILED", item_id
        assert message in item["last_error"], (item_id, item["last_error"])
    no_zone = get_item(stack, env, "no-hosted-zone")
    assert (no_zone["status"], NO_ZONE_MESSAGE in no_zone["last_error"]) == ("FAILED", True), no_zone["last_error"]
    unreadable = get_item(stack, env, "unreadable")
    assert unreadable["status"] == "FAILED"
    for message in UNREADABLE_MESSAGES:
        assert message in unreadable["last_error"], unreadable["last_error"]

    check_certificate(stack, get_item(stack, env, "good-plain"), [zone, f"*.{zone}"])
    normalized = get_item(stack, env, "good-normalized")
    check_certificate(stack, normalized, [f"www.{zone}", f"xn--bcher-kva.{zone}"])
    assert normalized["issued_domains"] == [f"www.{zone}", f"xn--bcher-kva.{zone}"]  # the subject stays first
    assert (result["renewed"], result["failed"]) == (2, len(BAD_ITEMS) + 2)
    assert challenge_records(stack, zone_id) == []


def test_renew_before_days_beyond_the_lifetime_fails_once_the_lifetime_is_known(
    stack: LocalStack, env: dict[str, str]
) -> None:
    zone = unique("lifetime") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "eager", "domains": [zone], "renew_before_days": 120})
    run()
    first = get_item(stack, env, "eager")
    assert first["status"] == "ISSUED"  # the lifetime is unknown before the first certificate

    run()

    second = get_item(stack, env, "eager")
    assert second["status"] == "FAILED"
    assert "renew_before_days 120 is not shorter than the certificate's lifetime (90 days)" in second["last_error"]
    assert second["serial"] == first["serial"]  # nothing was ordered

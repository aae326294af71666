"""The function's environment, parsed once with clear errors."""

import pytest

from acme_renewer.errors import ConfigurationError
from acme_renewer.settings import CA_ALIASES, LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, Settings

BASE = {"TABLE_NAME": "certificates", "AWS_REGION": "eu-west-1"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.acme_directory_url == LETSENCRYPT_PRODUCTION
    assert settings.acme_contact_email is None
    assert settings.secret_prefix == "acme-renewer/"
    assert settings.default_secret_name("www") == "acme-renewer/certificates/www"


def test_acm_imports_are_paced_to_acms_quota_unless_set() -> None:
    """ImportCertificate: 1 request per second per account and region
    (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html#api-rate-limits)."""
    assert Settings.from_env(BASE).acm_imports_per_second == 1.0
    assert Settings.from_env({**BASE, "ACM_IMPORTS_PER_SECOND": "20"}).acm_imports_per_second == 20.0


def test_each_process_paces_to_its_share_of_the_account_budgets() -> None:
    """The budgets are the account's (AWS's documented rates by default: Route53 10 requests per second per account,
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/throttling-api-requests.html; Secrets Manager 50
    writes per second per region, https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html);
    WORKER_CONCURRENCY processes share them, each taking the budget divided by their number."""
    alone = Settings.from_env(BASE)
    assert alone.worker_concurrency == 1  # the CLI: the whole budget
    assert (alone.route53_share_per_second, alone.acm_imports_share_per_second) == (10.0, 1.0)
    assert alone.secrets_writes_share_per_second == 50.0

    fleet = Settings.from_env({**BASE, "WORKER_CONCURRENCY": "5"})
    assert (fleet.route53_share_per_second, fleet.acm_imports_share_per_second) == (2.0, 0.2)
    assert fleet.secrets_writes_share_per_second == 10.0


def test_a_budget_set_is_the_accounts_and_still_divided() -> None:
    """ROUTE53_REQUESTS_PER_SECOND and ACM_IMPORTS_PER_SECOND keep their names and, for one process, their effect;
    with several processes each takes its share of them, so that an account's limit is never multiplied."""
    env = {**BASE, "ROUTE53_REQUESTS_PER_SECOND": "4", "ACM_IMPORTS_PER_SECOND": "20", "SECRETS_WRITES_PER_SECOND": "9"}
    alone = Settings.from_env(env)
    assert (alone.route53_share_per_second, alone.acm_imports_share_per_second) == (4.0, 20.0)
    assert alone.secrets_writes_share_per_second == 9.0
    three = Settings.from_env({**env, "WORKER_CONCURRENCY": "3"})
    assert three.route53_share_per_second == pytest.approx(4 / 3)
    assert three.acm_imports_share_per_second == pytest.approx(20 / 3)
    assert three.secrets_writes_share_per_second == pytest.approx(3.0)


def test_one_account_secret_per_directory() -> None:
    production = Settings.from_env(BASE).account_secret_name
    staging = Settings.from_env({**BASE, "ACME_DIRECTORY_URL": LETSENCRYPT_STAGING}).account_secret_name
    assert production == "acme-renewer/accounts/acme-v02.api.letsencrypt.org-directory"
    assert staging != production
    assert staging.startswith("acme-renewer/accounts/")


def test_one_account_secret_per_directory_and_eab_key() -> None:
    settings = Settings.from_env(BASE)
    plain = settings.account_secret_name_for(CA_ALIASES["zerossl"])
    first = settings.account_secret_name_for(CA_ALIASES["zerossl"], "kid-1")
    second = settings.account_secret_name_for(CA_ALIASES["zerossl"], "kid-2")
    assert first == "acme-renewer/accounts/acme.zerossl.com-v2-DV90/eab-kid-1"
    assert len({plain, first, second}) == 3
    # Key ids that clean up to the same text, or are very long, stay apart and within Secrets Manager's limits.
    odd = [settings.account_secret_name_for(LETSENCRYPT_PRODUCTION, kid) for kid in ("a/b", "a:b", "a-b", "k" * 300)]
    assert len(set(odd)) == 4
    assert all(len(name) < 200 for name in odd)


@pytest.mark.parametrize(("alias", "url"), sorted(CA_ALIASES.items()))
def test_the_functions_directory_may_be_an_alias(alias: str, url: str) -> None:
    assert Settings.from_env({**BASE, "ACME_DIRECTORY_URL": alias}).acme_directory_url == url


def test_eab_secret_for_the_functions_directory() -> None:
    settings = Settings.from_env({**BASE, "ACME_EAB_SECRET": "acme-renewer/eab/zerossl"})
    assert settings.acme_eab_secret == "acme-renewer/eab/zerossl"
    assert Settings.from_env(BASE).acme_eab_secret is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_REGION": "eu-west-1"}, "TABLE_NAME is required"),
        ({"TABLE_NAME": "t"}, "AWS_REGION"),
        ({**BASE, "ACME_DIRECTORY_URL": "http://ca.example/dir"}, "must be an https:// URL"),
        ({**BASE, "ACME_DIRECTORY_URL": "zerossl.com"}, "or one of letsencrypt, letsencrypt-staging"),
        ({**BASE, "SECRET_PREFIX": "bad prefix/"}, "SECRET_PREFIX"),
        ({**BASE, "ACME_EAB_SECRET": "other/eab"}, "ACME_EAB_SECRET 'other/eab' must start with 'acme-renewer/'"),
        ({**BASE, "PROPAGATION_TIMEOUT_SECONDS": "soon"}, "PROPAGATION_TIMEOUT_SECONDS must be a number"),
        ({**BASE, "ORDER_TIMEOUT_SECONDS": "-1"}, "ORDER_TIMEOUT_SECONDS must not be negative"),
        ({**BASE, "ORDER_TIMEOUT_SECONDS": "0"}, "ORDER_TIMEOUT_SECONDS must be positive"),
        ({**BASE, "ACM_IMPORTS_PER_SECOND": "0"}, "ACM_IMPORTS_PER_SECOND must be positive"),
        ({**BASE, "SECRETS_WRITES_PER_SECOND": "0"}, "SECRETS_WRITES_PER_SECOND must be positive"),
        ({**BASE, "WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY must be a whole number of at least 1"),
        ({**BASE, "WORKER_CONCURRENCY": "2.5"}, "WORKER_CONCURRENCY must be a whole number of at least 1"),
    ],
)
def test_bad_environment_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)

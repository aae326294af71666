"""The function's environment, parsed once with clear errors."""

import pytest

from acme_renewer.errors import ConfigurationError
from acme_renewer.settings import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, Settings

BASE = {"TABLE_NAME": "certificates", "AWS_REGION": "eu-west-1"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.acme_directory_url == LETSENCRYPT_PRODUCTION
    assert settings.acme_contact_email is None
    assert settings.secret_prefix == "acme-renewer/"
    assert settings.default_secret_name("www") == "acme-renewer/certificates/www"


def test_one_account_secret_per_directory() -> None:
    production = Settings.from_env(BASE).account_secret_name
    staging = Settings.from_env({**BASE, "ACME_DIRECTORY_URL": LETSENCRYPT_STAGING}).account_secret_name
    assert production == "acme-renewer/accounts/acme-v02.api.letsencrypt.org-directory"
    assert staging != production
    assert staging.startswith("acme-renewer/accounts/")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_REGION": "eu-west-1"}, "TABLE_NAME is required"),
        ({"TABLE_NAME": "t"}, "AWS_REGION"),
        ({**BASE, "ACME_DIRECTORY_URL": "http://ca.example/dir"}, "must be an https:// URL"),
        ({**BASE, "SECRET_PREFIX": "bad prefix/"}, "SECRET_PREFIX"),
        ({**BASE, "PROPAGATION_TIMEOUT_SECONDS": "soon"}, "PROPAGATION_TIMEOUT_SECONDS must be a number"),
        ({**BASE, "ORDER_TIMEOUT_SECONDS": "-1"}, "ORDER_TIMEOUT_SECONDS must not be negative"),
        ({**BASE, "ORDER_TIMEOUT_SECONDS": "0"}, "ORDER_TIMEOUT_SECONDS must be positive"),
    ],
)
def test_bad_environment_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)

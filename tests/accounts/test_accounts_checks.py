"""The Authentik settings check: a URL without its token stops the start; http is warned about
outside DEBUG; a blank URL (development) says nothing."""

from __future__ import annotations

from accounts.checks import check_authentik_settings


def ids(settings) -> list[str]:
    return [message.id for message in check_authentik_settings()]


def test_a_url_without_a_token_is_an_error_that_names_the_variable_not_a_value(settings):
    settings.AUTHENTIK_URL = "https://auth.example.com"
    settings.AUTHENTIK_API_TOKEN = ""

    (error,) = check_authentik_settings()

    assert error.id == "accounts.E001" and error.is_serious()
    assert "AUTHENTIK_API_TOKEN" in error.msg and "auth.example.com" not in error.msg


def test_plain_http_is_warned_about_only_outside_debug(settings):
    settings.AUTHENTIK_URL = "http://auth.example.com"
    settings.AUTHENTIK_API_TOKEN = "token"

    settings.DEBUG = False
    assert ids(settings) == ["accounts.W001"]
    settings.DEBUG = True
    assert ids(settings) == []


def test_a_complete_https_configuration_and_a_blank_url_pass(settings):
    settings.DEBUG = False
    settings.AUTHENTIK_URL = "https://auth.example.com"
    settings.AUTHENTIK_API_TOKEN = "token"
    assert ids(settings) == []
    settings.AUTHENTIK_URL = ""
    settings.AUTHENTIK_API_TOKEN = ""
    assert ids(settings) == []


def test_a_url_that_is_not_a_url_is_an_error(settings):
    settings.AUTHENTIK_URL = "auth.example.com"
    settings.AUTHENTIK_API_TOKEN = "token"

    assert ids(settings) == ["accounts.E002"]

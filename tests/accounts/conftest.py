"""Customer accounts against a fake Authentik held honest by authentik-client's models, plus the
lifecycle tests' buy/deliver/sweep story helpers (shared, not copied)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.authentik import API, TOKEN, URL, FakeAuthentik
from integrations.http import transport_for
from provisioning import provision
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)
from tests.lifecycle.conftest import Bought, buy, deliver, post, sweep  # noqa: F401


@pytest.fixture
def authentik(settings) -> Iterator[FakeAuthentik]:
    """AUTHENTIK_URL pointing at a fresh fake; every request and answer it saw must have been
    valid for authentik-client's models (checked after the test)."""
    fake = FakeAuthentik()
    settings.AUTHENTIK_URL = URL
    settings.AUTHENTIK_API_TOKEN = TOKEN
    with transport_for(URL + API, fake.transport()):
        yield fake
    assert fake.violations == []


@pytest.fixture
def user_data(monkeypatch) -> list[str]:
    """The user data of every server created (what create_server handed the provider)."""
    sent: list[str] = []
    real = provision.bootstrap_user_data

    def recording(*args, **kwargs):
        sent.append(real(*args, **kwargs))
        return sent[-1]

    monkeypatch.setattr(provision, "bootstrap_user_data", recording)
    return sent

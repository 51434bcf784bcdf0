"""Shared test set-up: tasks run inline, fakes answer at once, documents go to a temp dir."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django_q.conf import Conf

# django-q2 reads its settings once at import; run every enqueued task inline in the tests.
Conf.SYNC = True


@pytest.fixture(autouse=True)
def _fast_fakes(settings, tmp_path):
    settings.FAKE_SERVER_BOOT_SECONDS = 0
    settings.FAKE_BEACON_INSTALL_SECONDS = 0
    settings.DOCUMENTS_ROOT = tmp_path / "documents"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STRIPE_TEST_WEBHOOK_SECRET = "whsec_test_secret"
    settings.STRIPE_TEST_SECRET_KEY = ""
    settings.STRIPE_LIVE_MODE = False
    settings.PROVIDERS = ["fake"]
    settings.DNS_BACKEND = "fake"
    settings.WOPR_BASE_DOMAIN = "beacons.test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need row locks and truly concurrent transactions."""
    if "postgresql" in django_settings.DATABASES["default"]["ENGINE"]:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks, concurrent transactions); SQLite serialises writers. "
        "Set DATABASE_URL=postgres://... to run it."
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)

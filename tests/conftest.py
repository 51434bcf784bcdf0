"""Shared test set-up: tasks run inline, fakes answer at once, documents go to a temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django_q.conf import Conf

from tests.loopback import redis_server
from tests.oidc_provider import oidc_provider  # noqa: F401  (session fixture: the test OIDC provider)

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


@pytest.fixture(autouse=True)
def _process_memos_forgotten():
    """What a process remembers of database rows (the webhook endpoint, the rendered
    catalogue) describes rows that each test rolls back: every test starts without it."""
    from billing.catalog_cache import catalog_forget
    from billing.webhooks import webhook_endpoints_forget

    webhook_endpoints_forget()
    catalog_forget()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The URL of a Redis server this test starts for itself on a free port (and stops)."""
    with redis_server() as url:
        yield url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the vendor mock servers this session started; ones already running stay up."""
    vendor_spec = sys.modules.get("tests.vendor_spec")
    if vendor_spec is not None:  # None: nothing imported it, so nothing was started
        vendor_spec.mocks_stop_started()


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


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Advance a job and everything it enqueues after commit (tasks run inline); keyword
    arguments go to job_advance. (tests/backups has its own `run`, of any work.)"""

    from provisioning.tasks import job_advance  # after Django is set up

    def _run(job, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            job_advance(job_id=job.pk, **kwargs)
        job.refresh_from_db()
        return job

    return _run

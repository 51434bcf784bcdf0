"""Fixtures of the installer tests: releases stored in a temporary INSTALLERS_ROOT, the
reference installer's tarball as `make installer` builds it, a Beacon waiting for its
callback (so its job's token is live), and a clean per-IP throttle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.cache import caches

from provisioning.callbacks import job_callback_token
from provisioning.models import Beacon, Job, JobState
from provisioning.services import beacon_create_for_order
from tests.factories import OrderFactory
from tests.installers.helpers import load_build_script
from wopr import throttle


@pytest.fixture(scope="session")
def reference_tarball() -> bytes:
    """The reference installer packed exactly as `make installer` packs it."""
    build = load_build_script()
    return build.tarball_bytes(build.SOURCE, "1.0.0")


@pytest.fixture(autouse=True)
def installers_root(settings, tmp_path) -> Path:
    settings.INSTALLERS_ROOT = tmp_path / "installers"
    settings.WOPR_INSTALLER_URL = ""
    settings.WOPR_INSTALLER_SHA256 = ""
    settings.WOPR_INSTALLER_VERSION = "env"
    return settings.INSTALLERS_ROOT


@pytest.fixture(autouse=True)
def _fresh_throttle(settings, monkeypatch):
    """In-memory throttle counters, mid-minute (as tests/api/conftest.py)."""
    settings.CACHES = {
        **settings.CACHES,
        "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t-inst"},
    }
    caches["api"].clear()
    monkeypatch.setattr(throttle, "clock", lambda: 1_800_000_030.0)
    settings.THROTTLE_DEFAULT = "1000/min"
    settings.TRUSTED_PROXIES = []
    yield
    caches["api"].clear()


@pytest.fixture
def waiting_beacon(settings, django_capture_on_commit_callbacks) -> Callable:
    """A Beacon whose provision job waits for its callback; (beacon, job, token)."""
    settings.FAKE_BEACON_INSTALL_SECONDS = 3600

    def _make(name: str) -> tuple[Beacon, Job, str]:
        order = OrderFactory(beacon_name=name)
        with django_capture_on_commit_callbacks(execute=True):
            beacon, _ = beacon_create_for_order(order=order)
        job = beacon.jobs.get()
        assert job.state == JobState.WAITING
        return beacon, job, job_callback_token(job)

    return _make

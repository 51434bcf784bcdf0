"""Fixtures of the drift tests (issue 13, item 6): the life-after-purchase story fixtures
(clock, deliver, buy, sweep), the storefront's API client and Stripe mock, and `reconcile`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.api.conftest import (  # noqa: F401  (fixtures, shared)
    _fresh_throttle,
    api,
    checkout_payload,
    post_json,
    stripe_calls,
    stripe_mock,
    stripe_mock_url,
)
from tests.clock import clock_fixture  # noqa: F401  (the `clock` fixture, shared)
from tests.lifecycle.conftest import buy, deliver, post, sweep  # noqa: F401  (fixtures, shared)


@pytest.fixture
def reconcile(django_capture_on_commit_callbacks):
    """Run `manage.py reconcile --json [args]`; returns (exit status, parsed output)."""

    def _reconcile(*args: str) -> tuple[int, dict]:
        out = io.StringIO()
        code = 0
        with django_capture_on_commit_callbacks(execute=True):
            try:
                call_command("reconcile", "--json", *args, stdout=out)
            except SystemExit as exit_:
                code = int(exit_.code)
        return code, json.loads(out.getvalue())

    return _reconcile

"""A fixture that mounts dj-stripe's own webhook route, as STRIPE_DJSTRIPE_WEBHOOK_ROUTE=true
does at start-up (the URL map reads the setting once, when it is imported)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from django.urls import clear_url_caches


@pytest.fixture
def djstripe_route(settings) -> Iterator[None]:
    import wopr.urls

    settings.STRIPE_DJSTRIPE_WEBHOOK_ROUTE = True
    importlib.reload(wopr.urls)
    clear_url_caches()
    yield
    settings.STRIPE_DJSTRIPE_WEBHOOK_ROUTE = False
    importlib.reload(wopr.urls)
    clear_url_caches()


@pytest.fixture
def djstripe_view_calls(monkeypatch) -> list[str]:
    """The endpoint UUIDs dj-stripe's own ProcessWebhookView was called with (it still runs)."""
    from djstripe.views import ProcessWebhookView

    calls: list[str] = []
    real_post = ProcessWebhookView.post

    def post(self, request, uuid):
        calls.append(str(uuid))
        return real_post(self, request, uuid)

    monkeypatch.setattr(ProcessWebhookView, "post", post)
    return calls

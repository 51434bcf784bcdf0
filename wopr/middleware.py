"""Request hardening shared by every route."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class DropWebhookSecretOverride:
    """Remove `X-Djstripe-Webhook-Secret` from every request.

    With DEBUG on, dj-stripe lets that header replace an endpoint's signing secret (for the
    Stripe CLI), so anyone could sign their own events on any webhook route. We never honour it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.META.pop("HTTP_X_DJSTRIPE_WEBHOOK_SECRET", None)
        return self.get_response(request)

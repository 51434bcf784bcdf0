"""HTTPS behind Caddy: which request headers about the original connection are believed."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from wopr.api_common import _address, _networks


class TrustedProxyHeaders:
    """Drop `X-Forwarded-Proto` unless the connection comes from a trusted proxy.

    Django believes SECURE_PROXY_SSL_HEADER from anyone; only Caddy (TRUSTED_PROXIES, the same
    list the throttles use) may say "this came in over https". Anyone else connecting directly
    is plain http, so the SSL redirect and secure-only cookies stay honest.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _from_trusted_proxy(request):
            request.META.pop("HTTP_X_FORWARDED_PROTO", None)
        return self.get_response(request)


def _from_trusted_proxy(request: HttpRequest) -> bool:
    address = _address(request.META.get("REMOTE_ADDR", ""))
    trusted = _networks(settings.TRUSTED_PROXIES)
    return address is not None and any(address in network for network in trusted)

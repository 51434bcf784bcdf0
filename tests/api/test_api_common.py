"""What every /api/ endpoint shares: the error body, throttling per client IP (X-Forwarded-For
only from trusted proxies), CORS for the storefront, the schema and docs, and no anonymous
access to anything that is not public."""

from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from wopr.api_common import client_ip

pytestmark = pytest.mark.django_db

PUBLIC_API_VIEWS = {
    "CatalogView",
    "BeaconNameView",
    "CheckoutView",
    "OrderStatusView",
    "OrderEventsView",
    "BeaconCallbackView",
    "BeaconInstallerView",
    "SpectacularAPIView",
    "SpectacularRedocView",
}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    return body["error"]


# --- one error body ------------------------------------------------------------------------


def test_an_unknown_url_under_api_is_a_json_404(api):
    assert_error(api.get("/api/v1/no-such-thing"), 404, "not_found")


def test_an_unknown_url_elsewhere_stays_djangos_page(api):
    response = api.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_wrong_method_is_a_json_405(api):
    error = assert_error(api.delete("/api/v1/catalog"), 405, "method_not_allowed")

    assert "DELETE" in error["message"]


def test_an_unsupported_media_type_is_a_json_415(api):
    response = api.post("/api/v1/checkout", "bundle=starter", content_type="text/plain")

    assert_error(response, 415, "unsupported_media_type")


def test_an_unhandled_error_under_api_is_a_json_500_without_details(api, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("billing.api.catalog_public", explode)
    api.raise_request_exception = False

    response = api.get("/api/v1/catalog")

    error = assert_error(response, 500, "server_error")
    assert "hunter2" not in json.dumps(error)


# --- throttling ----------------------------------------------------------------------------


def test_checkout_is_throttled_per_client_with_retry_after(api, settings):
    settings.THROTTLE_CHECKOUT = "2/min"
    body = json.dumps({"bundle": "nope"})

    statuses = [
        api.post("/api/v1/checkout", body, content_type="application/json").status_code
        for _ in range(3)
    ]

    assert statuses == [400, 400, 429]
    response = api.post("/api/v1/checkout", body, content_type="application/json")
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another client has its own budget.
    other = api.post(
        "/api/v1/checkout", body, content_type="application/json", REMOTE_ADDR="198.51.100.9"
    )
    assert other.status_code == 400


def test_other_endpoints_share_the_default_rate(api, settings):
    settings.THROTTLE_DEFAULT = "3/min"

    statuses = [api.get(f"/api/v1/beacon-names/name{i}").status_code for i in range(3)]
    statuses.append(api.get("/api/v1/catalog").status_code)

    assert statuses == [200, 200, 200, 429]


def test_a_spoofed_forwarded_for_does_not_escape_the_throttle(api, settings):
    settings.THROTTLE_DEFAULT = "2/min"

    statuses = [
        api.get("/api/v1/beacon-names/abc", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(3)
    ]

    assert statuses == [200, 200, 429]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(api, settings):
    settings.THROTTLE_DEFAULT = "1/min"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    def get(forwarded: str) -> int:
        return api.get(
            "/api/v1/beacon-names/abc", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
        ).status_code

    assert get("203.0.113.1") == 200
    assert get("203.0.113.2") == 200
    assert get("203.0.113.1") == 429
    assert get("198.51.100.7, 203.0.113.2") == 429  # the left entry is the client's own claim


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "", [], "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", [], "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", ["10.0.0.1"], "203.0.113.5"),
        ("10.0.0.1", "198.51.100.1", ["10.0.0.1"], "198.51.100.1"),
        ("10.0.0.1", "1.1.1.1, 198.51.100.1", ["10.0.0.1"], "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1, 10.0.0.2", ["10.0.0.0/24"], "198.51.100.1"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", ["10.0.0.0/24"], "10.0.0.1"),
        ("10.0.0.1", "garbage, 198.51.100.1", ["10.0.0.1"], "198.51.100.1"),
        ("10.0.0.1", "198.51.100.1, garbage", ["10.0.0.1"], "10.0.0.1"),
        ("10.0.0.1", "", ["10.0.0.1"], "10.0.0.1"),
        ("10.0.0.1", "[2001:db8::1]:443", ["10.0.0.1"], "2001:db8::1"),
        ("10.0.0.1", "203.0.113.9:8080", ["10.0.0.1"], "203.0.113.9"),
        ("::1", "2001:db8::7", ["::1"], "2001:db8::7"),
    ],
)
def test_client_ip(settings, remote, forwarded, trusted, expected):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


# --- CORS ----------------------------------------------------------------------------------


def test_the_storefront_origin_may_call_the_api(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example.com"]

    preflight = api.options(
        "/api/v1/checkout",
        HTTP_ORIGIN="https://shop.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    simple = api.get("/api/v1/catalog", HTTP_ORIGIN="https://shop.example.com")

    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert simple["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "ETag" in simple["Access-Control-Expose-Headers"]


def test_other_origins_and_other_paths_get_no_cors_headers(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example.com"]

    evil = api.get("/api/v1/catalog", HTTP_ORIGIN="https://evil.example.net")
    health = api.get("/api/health", HTTP_ORIGIN="https://shop.example.com")

    assert "Access-Control-Allow-Origin" not in evil
    assert "Access-Control-Allow-Origin" not in health


# --- schema, docs, and what anonymous callers cannot reach ---------------------------------


def test_the_schema_is_public_and_describes_every_endpoint(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    # The customer self-service paths (/api/v1/me/) are checked in tests/selfservice/.
    assert {path for path in schema["paths"] if not path.startswith("/api/v1/me/")} == {
        "/api/v1/catalog",
        "/api/v1/beacon-names/{name}",
        "/api/v1/checkout",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/events",
        "/api/v1/beacons/{beacon_id}/callback",
        "/api/v1/beacons/{beacon_id}/installer",
    }
    checkout = schema["paths"]["/api/v1/checkout"]["post"]
    assert set(checkout["responses"]) == {"201", "400", "429", "502", "503"}
    callback = schema["paths"]["/api/v1/beacons/{beacon_id}/callback"]["post"]
    assert {"401", "403"} <= set(callback["responses"])
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_the_docs_page_renders_and_points_at_the_schema(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert "/api/schema/" in response.content.decode()


def _views(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_drf_view_that_is_not_public_is_staff_only():
    """A new API view is staff-only unless it says otherwise (DRF's default IsAdminUser)."""
    for route, callback in _views(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if view is None or not issubclass(view, APIView):
            continue
        public = any(isinstance(permission, AllowAny) for permission in view().get_permissions())
        assert public == (view.__name__ in PUBLIC_API_VIEWS), route


def test_a_drf_view_without_permissions_of_its_own_refuses_anonymous_callers(rf):
    class Internal(APIView):
        def get(self, request):
            return None

    response = Internal.as_view()(rf.get("/api/v1/internal"))

    assert response.status_code in (401, 403)
    assert response.data["error"]["code"] in ("not_authenticated", "permission_denied")


def test_the_admin_needs_staff(api):
    response = api.get("/admin/billing/order/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]

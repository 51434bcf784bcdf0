"""URL map: admin, health, the Stripe webhook (ours and dj-stripe's own), the storefront API
(/api/v1/), its OpenAPI schema (/api/schema/) and documentation page (/api/docs/)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from billing.api import (
    BeaconNameView,
    CatalogView,
    CheckoutView,
    OrderEventsView,
    OrderStatusView,
)
from billing.webhooks import StripeWebhookView
from provisioning.api import BeaconCallbackView
from wopr.api import HealthView

api_v1 = [
    path("catalog", CatalogView.as_view(), name="catalog"),
    path("beacon-names/<str:name>", BeaconNameView.as_view(), name="beacon-name"),
    path("checkout", CheckoutView.as_view(), name="checkout"),
    path("orders/<uuid:order_id>", OrderStatusView.as_view(), name="order-status"),
    path("orders/<uuid:order_id>/events", OrderEventsView.as_view(), name="order-events"),
    path(
        "beacons/<uuid:beacon_id>/callback",
        BeaconCallbackView.as_view(),
        name="beacon-callback",
    ),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", HealthView.as_view(), name="health"),
    path("api/webhook/stripe", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="api-docs"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
]

# Under /api/ even Django's own 404 and 500 answer with the API's error body.
handler404 = "wopr.api_common.json_not_found"
handler500 = "wopr.api_common.json_server_error"

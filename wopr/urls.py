"""URL map: admin, health, Prometheus metrics (/metrics), the Stripe webhook (ours and
dj-stripe's own), the storefront API (/api/v1/), its OpenAPI schema (/api/schema/) and
documentation page (/api/docs/)."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from billing.api import (
    BeaconNameView,
    CatalogView,
    CheckoutView,
    OrderStatusView,
)
from billing.me_api import MeBeaconsView, MeBillingPortalView, MeCancelView, MeWelcomeView
from billing.me_tier_api import MeTierView
from billing.order_events import OrderEventsView
from billing.webhooks import DjstripeEndpointWebhookView, StripeWebhookView
from provisioning.api import BeaconCallbackView, BeaconInstallerView
from wopr.api import HealthView
from wopr.metrics_view import MetricsView

api_v1 = [
    path("catalog", CatalogView.as_view(), name="catalog"),
    path("beacon-names/<str:name>", BeaconNameView.as_view(), name="beacon-name"),
    path("checkout", CheckoutView.as_view(), name="checkout"),
    path("orders/<uuid:order_id>", OrderStatusView.as_view(), name="order-status"),
    path("orders/<uuid:order_id>/events", OrderEventsView.as_view(), name="order-events"),
    path("me/beacons", MeBeaconsView.as_view(), name="me-beacons"),
    path(
        "me/beacons/<uuid:beacon_id>/billing-portal",
        MeBillingPortalView.as_view(),
        name="me-beacon-billing-portal",
    ),
    path("me/beacons/<uuid:beacon_id>/cancel", MeCancelView.as_view(), name="me-beacon-cancel"),
    path("me/beacons/<uuid:beacon_id>/welcome", MeWelcomeView.as_view(), name="me-beacon-welcome"),
    path("me/beacons/<uuid:beacon_id>/tier", MeTierView.as_view(), name="me-beacon-tier"),
    path(
        "beacons/<uuid:beacon_id>/callback",
        BeaconCallbackView.as_view(),
        name="beacon-callback",
    ),
    path(
        "beacons/<uuid:beacon_id>/installer",
        BeaconInstallerView.as_view(),
        name="beacon-installer",
    ),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", HealthView.as_view(), name="health"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/webhook/stripe", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="api-docs"),
]

# dj-stripe's own route, only when asked for (endpoints made in dj-stripe's admin); it runs the
# same checks as ours before storing anything. Its name is the one dj-stripe's admin reverses.
if settings.STRIPE_DJSTRIPE_WEBHOOK_ROUTE:
    djstripe_routes = [
        path(
            "webhook/<uuid:uuid>/",
            DjstripeEndpointWebhookView.as_view(),
            name="djstripe_webhook_by_uuid",
        )
    ]
    urlpatterns.append(path("stripe/", include((djstripe_routes, "djstripe"))))

# Staff single sign-on with Authentik (wopr.staff_sso), only with OIDC_ISSUER set.
if settings.OIDC_ISSUER:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))

# Under /api/ even Django's own 404 and 500 answer with the API's error body.
handler404 = "wopr.api_common.json_not_found"
handler500 = "wopr.api_common.json_server_error"

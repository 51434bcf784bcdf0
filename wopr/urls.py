"""URL map: admin, health, the Stripe webhook (ours and dj-stripe's own)."""

from django.contrib import admin
from django.urls import include, path

from billing.webhooks import StripeWebhookView
from wopr.api import HealthView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", HealthView.as_view(), name="health"),
    path("api/webhook/stripe", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
]

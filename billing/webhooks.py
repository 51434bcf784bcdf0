"""`POST /api/webhook/stripe`: dj-stripe's own webhook view, on the endpoint of the current mode.

dj-stripe checks the signature with the endpoint's secret, stores the trigger, and processes the
event once. Processing goes through `process_trigger`:

- with a Stripe secret key for the event's mode, dj-stripe's normal processing runs (it stores
  the Event, re-fetches and syncs the objects from Stripe, then sends the signals our receivers
  listen to);
- without one (the embedded first run, which has no Stripe account and no network), the Event
  is stored locally, once, and our receivers are called directly; nothing calls Stripe.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger
from djstripe.signals import webhook_pre_validate
from djstripe.views import ProcessWebhookView

from billing import receivers

logger = logging.getLogger(__name__)


def webhook_secret(*, livemode: bool) -> str:
    return settings.STRIPE_LIVE_WEBHOOK_SECRET if livemode else settings.STRIPE_TEST_WEBHOOK_SECRET


def stripe_api_key(*, livemode: bool) -> str:
    return settings.STRIPE_LIVE_SECRET_KEY if livemode else settings.STRIPE_TEST_SECRET_KEY


def webhook_endpoint_for_mode(*, livemode: bool) -> WebhookEndpoint:
    """The local WebhookEndpoint row behind /api/webhook/stripe, its secret kept in step with
    the environment (the secret lives in settings, the row only carries it for dj-stripe)."""
    mode = "live" if livemode else "test"
    secret = webhook_secret(livemode=livemode)
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    endpoint = WebhookEndpoint.objects.filter(id=f"we_wopr_{mode}").first()
    if endpoint is None:
        try:
            with transaction.atomic():
                return WebhookEndpoint.objects.create(
                    id=f"we_wopr_{mode}",
                    livemode=livemode,
                    secret=secret,
                    url=f"{settings.WOPR_PUBLIC_URL.rstrip('/')}/api/webhook/stripe",
                    enabled_events=["*"],
                    status="enabled",
                    api_version="",
                    djstripe_tolerance=tolerance,
                    stripe_data={},
                )
        except IntegrityError:
            endpoint = WebhookEndpoint.objects.get(id=f"we_wopr_{mode}")
    if (
        endpoint.secret != secret
        or endpoint.djstripe_tolerance != tolerance
        or endpoint.djstripe_validation_method != "verify_signature"
    ):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            secret=secret,
            djstripe_tolerance=tolerance,
            djstripe_validation_method="verify_signature",
        )
        endpoint.refresh_from_db()
    return endpoint


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class StripeWebhookView(View):
    """Stripe posts every event here (the address in containers/README.md)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        endpoint = webhook_endpoint_for_mode(livemode=settings.STRIPE_LIVE_MODE)
        # Refuse a bad signature before dj-stripe stores anything: an anonymous caller must not
        # be able to fill the trigger table. dj-stripe then checks it again, as it always does.
        try:
            stripe.WebhookSignature.verify_header(
                request.body.decode("utf-8", errors="replace"),
                request.headers.get("Stripe-Signature", ""),
                endpoint.secret,
                endpoint.djstripe_tolerance,
            )
        except stripe.SignatureVerificationError:
            logger.warning("refused a Stripe webhook with a bad or stale signature")
            return HttpResponseBadRequest("bad signature")
        return ProcessWebhookView.as_view()(request, uuid=endpoint.djstripe_uuid)


@receiver(webhook_pre_validate)
def enforce_signature_check(sender: Any, instance: WebhookEventTrigger, **kwargs: Any) -> None:
    """Every webhook route (ours and dj-stripe's own) verifies the Stripe signature, whatever an
    endpoint's stored validation method says (dj-stripe's admin can set it to `none`)."""
    endpoint = instance.webhook_endpoint
    if endpoint is not None:
        endpoint.djstripe_validation_method = "verify_signature"


def process_trigger(trigger: WebhookEventTrigger, api_key: str | None = None) -> None:
    """dj-stripe's processing hook (DJSTRIPE_WEBHOOK_EVENT_CALLBACK), run after the signature
    was verified, inside dj-stripe's transaction."""
    data = trigger.json_body
    livemode = bool(data.get("livemode"))
    if stripe_api_key(livemode=livemode):
        trigger.process(save=False, api_key=api_key)
        return
    trigger.event = event_record_offline(data)
    trigger.processed = True


def event_record_offline(data: dict[str, Any]) -> Event:
    """Store the Event once and run our receivers; a redelivered event changes nothing.

    Like dj-stripe's Event.process, the insert and the receivers share one savepoint: when a
    concurrent delivery wins the insert, our receivers' work rolls back with ours.
    """
    existing = Event.objects.filter(id=data["id"]).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            event = Event.objects.create(
                id=data["id"],
                livemode=bool(data.get("livemode")),
                type=data.get("type", ""),
                api_version=data.get("api_version") or "",
                data=data.get("data") or {},
                created=datetime.fromtimestamp(int(data.get("created", 0)), tz=UTC),
                request_id=((data.get("request") or {}).get("id") or "")[:50],
                idempotency_key=(data.get("request") or {}).get("idempotency_key") or "",
                stripe_data=data,
            )
            receivers.dispatch(event)
            return event
    except IntegrityError:
        existing = Event.objects.filter(id=data["id"]).first()
        if existing is None:
            raise
        return existing

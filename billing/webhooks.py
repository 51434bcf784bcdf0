"""The Stripe webhook: `POST /api/webhook/stripe`, on the endpoint of the current mode (and
dj-stripe's own `/stripe/webhook/<uuid>/` only when STRIPE_DJSTRIPE_WEBHOOK_ROUTE asks for it).

Before anything is stored, a delivery must be signed with the endpoint's secret, be a Stripe
event, and say the deployment's mode (`livemode` must equal STRIPE_LIVE_MODE: an event of the
other mode is acknowledged, logged and recorded for staff, and changes nothing). Text that
PostgreSQL cannot store (NUL, lone surrogates) is replaced first. Then dj-stripe's own
`ProcessWebhookView` stores the delivery as a WebhookEventTrigger (checking the signature again)
and processes it once through `process_trigger` (DJSTRIPE_WEBHOOK_EVENT_CALLBACK); only a
delivery whose text had to be replaced is stored by `cleaned_record_and_process` instead.
Every trigger's error text is redacted before it is saved (`trigger_error_redact`).

Processing:

- with a Stripe secret key for the event's mode, dj-stripe's normal processing runs (it stores
  the Event, re-fetches and syncs the objects from Stripe, then sends the signals our receivers
  listen to);
- without one (the embedded first run, which has no Stripe account and no network), the Event
  is stored locally, once, and our receivers are called directly; nothing calls Stripe.

Cost (issue 10): the endpoint row is read once per delivery (in dj-stripe's view; this process
remembers the synced row), the Event is one INSERT that skips a stored id (no look-up first,
no savepoint), and a first checkout delivery is 13 statements in all, a redelivery 4
(tests/test_webhook_queries.py pins them). Nothing in it scans dj-stripe's event history.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from datetime import UTC, datetime
from traceback import format_exc
from typing import Any
from uuid import UUID

import stripe
from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models.constants import OnConflict
from django.db.models.signals import pre_save
from django.db.models.sql import InsertQuery
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger
from djstripe.signals import webhook_pre_validate, webhook_processing_error
from djstripe.views import ProcessWebhookView

from billing import receivers
from wopr.api_common import client_ip
from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

# dj-stripe's columns: Event.id, Event.type and WebhookEventTrigger.exception.
EVENT_ID_MAX_LENGTH = 255
EVENT_TYPE_MAX_LENGTH = 250
EXCEPTION_MAX_LENGTH = 128
UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")
# How such text can stand in a JSON body (a NUL or surrogate escape; a raw NUL is no JSON).
# Only a body that matches is walked by `storable`: the common delivery costs one regex scan.
MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def webhook_secret(*, livemode: bool) -> str:
    return settings.STRIPE_LIVE_WEBHOOK_SECRET if livemode else settings.STRIPE_TEST_WEBHOOK_SECRET


def stripe_api_key(*, livemode: bool) -> str:
    return settings.STRIPE_LIVE_SECRET_KEY if livemode else settings.STRIPE_TEST_SECRET_KEY


# This process's copy of each endpoint row as last synced, by (livemode, secret, tolerance): the
# row changes only when settings do (a new key), so a delivery reads it once, in dj-stripe's
# view. A row deleted meanwhile makes that view answer 404 before storing anything, and the
# delivery is tried again on a freshly synced row (StripeWebhookView).
_ENDPOINTS: dict[tuple[bool, str, int], WebhookEndpoint] = {}


def _endpoint_key(livemode: bool) -> tuple[bool, str, int]:
    return livemode, webhook_secret(livemode=livemode), settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS


def webhook_endpoints_forget() -> None:
    """Drop the remembered endpoint rows (the next delivery reads and syncs its row again)."""
    _ENDPOINTS.clear()


def webhook_endpoint_remembered(*, livemode: bool) -> WebhookEndpoint:
    """The endpoint of `livemode` as this process last synced it (no query), else synced now."""
    endpoint = _ENDPOINTS.get(_endpoint_key(livemode))
    return endpoint if endpoint is not None else webhook_endpoint_for_mode(livemode=livemode)


def webhook_endpoint_for_mode(*, livemode: bool) -> WebhookEndpoint:
    """The local WebhookEndpoint row behind /api/webhook/stripe, its secret kept in step with
    the environment (the secret lives in settings, the row only carries it for dj-stripe)."""
    endpoint = _endpoint_synced(livemode)
    _ENDPOINTS[_endpoint_key(livemode)] = endpoint
    return endpoint


def _endpoint_synced(livemode: bool) -> WebhookEndpoint:
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
        live = settings.STRIPE_LIVE_MODE
        try:
            return webhook_receive(request, endpoint=webhook_endpoint_remembered(livemode=live))
        except Http404:  # the remembered row is gone (nothing was stored): sync it, try again
            webhook_endpoints_forget()
            return webhook_receive(request, endpoint=webhook_endpoint_for_mode(livemode=live))


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class DjstripeEndpointWebhookView(View):
    """dj-stripe's own route, `/stripe/webhook/<uuid>/`, mounted only with
    STRIPE_DJSTRIPE_WEBHOOK_ROUTE (for endpoints created through dj-stripe's admin).

    Only an endpoint of the active mode answers (a test endpoint's old secret opens nothing on
    a live deployment), and it goes through the same checks as ours before anything is stored.
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest, uuid: UUID) -> HttpResponse:
        live = settings.STRIPE_LIVE_MODE
        endpoint = WebhookEndpoint.objects.filter(djstripe_uuid=uuid, livemode=live).first()
        if endpoint is None:
            raise Http404("no webhook endpoint of the active mode here")
        endpoint = _endpoint_current(endpoint)  # ours: its secret follows settings
        return webhook_receive(request, endpoint=endpoint)


def webhook_receive(request: HttpRequest, *, endpoint: WebhookEndpoint) -> HttpResponse:
    """Check a delivery, then store and process it once; what fails a check stores nothing.

    - a bad or stale signature: 400 (an anonymous caller must not fill the trigger table);
    - a signed body that is not a Stripe event: 400;
    - an event whose `livemode` is not the deployment's: acknowledged and ignored, recorded
      for staff (a trigger row saying why), since its own flag must not choose how it is
      trusted;
    - otherwise dj-stripe's view stores and processes the event; one whose text PostgreSQL
      cannot store had to be replaced is stored and processed by `cleaned_record_and_process`.
    """
    header = request.headers.get("Stripe-Signature", "")
    if not signature_valid(request.body, header, endpoint):
        logger.warning("refused a Stripe webhook with a bad or stale signature")
        return HttpResponseBadRequest("bad signature")
    data = event_parse(request.body)
    if data is None:
        logger.warning("refused a signed Stripe webhook that is not an event")
        return HttpResponseBadRequest("not a Stripe event")
    body = request.body.decode("utf-8")
    clean = storable(data) if MAYBE_UNSTORABLE.search(request.body) else data
    headers = dict(request.headers)
    replaced = clean != data or storable(headers) != headers
    if replaced:
        logger.warning("Stripe event %s carries text that cannot be stored; replaced", clean["id"])
    if clean != data:
        body = json.dumps(clean)
    if data["livemode"] != settings.STRIPE_LIVE_MODE:
        endpoint = _endpoint_current(endpoint)
        trigger = livemode_mismatch_record(request, endpoint=endpoint, body=body, data=clean)
        return HttpResponse(f"{trigger.pk} ignored: livemode does not match this deployment")
    if replaced:
        endpoint = _endpoint_current(endpoint)
        trigger = cleaned_record_and_process(request, endpoint=endpoint, body=body, data=clean)
        return HttpResponse(str(trigger.pk))
    return djstripe_store_and_process(request, endpoint=endpoint)


def djstripe_store_and_process(request: HttpRequest, *, endpoint: WebhookEndpoint) -> HttpResponse:
    """dj-stripe's own view: it checks the signature again, stores the trigger, runs
    `process_trigger`, keeps the error on the trigger and re-raises it (a 500: Stripe retries).
    """
    # It records the left-most X-Forwarded-For entry as the sender's address, whoever wrote it,
    # in an address column that refuses anything else: hand it the address we trust instead.
    request.META["HTTP_X_FORWARDED_FOR"] = trigger_address(request)
    request.__dict__.pop("headers", None)  # HttpRequest.headers is cached from META
    response = ProcessWebhookView.as_view()(request, uuid=endpoint.djstripe_uuid)
    if response.status_code == 400:
        # dj-stripe refused a signature we accepted: its row's secret was changed behind the
        # remembered copy; the next delivery (Stripe retries) reads and syncs the row again.
        webhook_endpoints_forget()
    return response


def _endpoint_current(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Our endpoint row read again (the paths that store a trigger themselves point it at the
    row, which a remembered copy may no longer name); another endpoint as it is."""
    if endpoint.id == f"we_wopr_{'live' if endpoint.livemode else 'test'}":
        return webhook_endpoint_for_mode(livemode=endpoint.livemode)
    return endpoint


def signature_valid(body: bytes, header: str, endpoint: WebhookEndpoint) -> bool:
    """Whether `header` signs `body` with the endpoint's secret, within its tolerance."""
    if not endpoint.secret:  # anyone can compute an HMAC with an empty key
        return False
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8", errors="replace"),
            header,
            endpoint.secret,
            endpoint.djstripe_tolerance,
        )
    except stripe.SignatureVerificationError:
        return False
    return True


def event_parse(body: bytes) -> dict[str, Any] | None:
    """The event in a signed body, or None when it is not one we can take."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("livemode"), bool):
        return None
    event_id, event_type = data.get("id"), data.get("type")
    for value, limit in ((event_id, EVENT_ID_MAX_LENGTH), (event_type, EVENT_TYPE_MAX_LENGTH)):
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            return None
    if not isinstance(data.get("data"), dict):
        return None
    return data


def storable(value: Any) -> Any:
    """`value` with every NUL and lone surrogate replaced by U+FFFD: PostgreSQL refuses NUL in
    text and jsonb, and a lone surrogate cannot be encoded; neither belongs in an address or a
    name, so validation later flags what they touched."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def trigger_address(request: HttpRequest) -> str:
    """The sender's address as the throttles see it (TRUSTED_PROXIES), always a valid one."""
    address = client_ip(request)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "0.0.0.0"  # noqa: S104  (a placeholder value, nothing binds to it)
    return address


def _trigger_new(
    request: HttpRequest, *, endpoint: WebhookEndpoint, body: str
) -> WebhookEventTrigger:
    """An unsaved trigger for a delivery whose signature was verified."""
    return WebhookEventTrigger(
        headers=storable(dict(request.headers)),
        body=body,
        remote_ip=trigger_address(request),
        valid=True,
        stripe_trigger_account=endpoint.djstripe_owner_account,
        webhook_endpoint=endpoint,
    )


def livemode_mismatch_record(
    request: HttpRequest, *, endpoint: WebhookEndpoint, body: str, data: dict[str, Any]
) -> WebhookEventTrigger:
    """Store the ignored event as a trigger that says why (staff see it in the admin's
    "Webhook event triggers", unprocessed, with this reason as its exception)."""
    deployment = "live" if settings.STRIPE_LIVE_MODE else "test"
    reason = f"ignored: livemode={str(data['livemode']).lower()} on a {deployment}-mode deployment"
    logger.warning("Stripe event %s (%s) %s", data["id"], data["type"], reason)
    trigger = _trigger_new(request, endpoint=endpoint, body=body)
    trigger.exception = reason[:EXCEPTION_MAX_LENGTH]
    trigger.save()
    return trigger


def cleaned_record_and_process(
    request: HttpRequest, *, endpoint: WebhookEndpoint, body: str, data: dict[str, Any]
) -> WebhookEventTrigger:
    """Store and process a delivery whose text had to be replaced, as dj-stripe's
    WebhookEventTrigger.from_request would, for the one case its view cannot take: dj-stripe
    stores the raw body (PostgreSQL refuses its NUL / lone surrogate) and re-checks the
    signature on what it stores (a replaced body no longer matches). The signature of the
    delivered bytes was verified by `webhook_receive`.

    Like dj-stripe: the trigger row is kept with the error when processing fails (its text is
    redacted on save), the processing rolls back, and the error is raised again (a 500, so
    Stripe delivers the event again).
    """
    trigger = _trigger_new(request, endpoint=endpoint, body=body)
    trigger.save()
    try:
        with transaction.atomic():
            process_trigger(trigger, api_key=stripe_api_key(livemode=data["livemode"]) or None)
    except Exception as exc:
        trigger.exception = f"{type(exc).__name__}: {exc}"  # cut to the column on save
        trigger.traceback = format_exc()
        trigger.save()
        raise
    trigger.save()
    return trigger


@receiver(webhook_pre_validate, dispatch_uid="billing.webhooks.signature_check_enforce")
def signature_check_enforce(sender: Any, instance: WebhookEventTrigger, **kwargs: Any) -> None:
    """dj-stripe re-checks the signature whatever an endpoint's stored validation method says
    (dj-stripe's admin can set it to `none`). `webhook_receive` has already checked it: this
    keeps dj-stripe's own check from ever being switched off behind it."""
    endpoint = instance.webhook_endpoint
    if endpoint is not None:
        endpoint.djstripe_validation_method = "verify_signature"


@receiver(webhook_processing_error, dispatch_uid="billing.webhooks.trigger_error_full")
def trigger_error_full(
    sender: Any, instance: WebhookEventTrigger, exception: BaseException, **kwargs: Any
) -> None:
    """dj-stripe cuts the error text to the column's length before saving it, which can leave
    the beginning of a secret that redaction no longer recognises; hand the whole text to
    `trigger_error_redact`, which redacts first and cuts after."""
    instance.exception = f"{type(exception).__name__}: {exception}"


@receiver(
    pre_save, sender=WebhookEventTrigger, dispatch_uid="billing.webhooks.trigger_error_redact"
)
def trigger_error_redact(sender: Any, instance: WebhookEventTrigger, **kwargs: Any) -> None:
    """No secret reaches a trigger's stored error, whoever saves it (dj-stripe's view, our
    paths, the admin): vendor errors quote what they were given, a malformed API key included,
    and staff read these in the admin."""
    instance.exception = redact(instance.exception)[:EXCEPTION_MAX_LENGTH]
    instance.traceback = redact(instance.traceback)


def process_trigger(trigger: WebhookEventTrigger, api_key: str | None = None) -> None:
    """dj-stripe's processing hook (DJSTRIPE_WEBHOOK_EVENT_CALLBACK), run after the signature
    was verified, inside dj-stripe's transaction."""
    data = trigger.json_body
    livemode = bool(data.get("livemode"))
    if stripe_api_key(livemode=livemode):
        trigger.process(save=False, api_key=api_key)
        return
    trigger.event_id = event_record_offline(data)  # the Event's Stripe id (the key it is kept by)
    trigger.processed = True


def event_record_offline(data: dict[str, Any]) -> str:
    """Store the Event once and run our receivers; a redelivered event changes nothing.
    Returns the event's id.

    One insert that skips an event already stored (ON CONFLICT DO NOTHING on its unique id)
    decides every race: a concurrent delivery of the same event waits on the id until the
    first commits, then stores and runs nothing. The receivers run only for the delivery that
    stored it, in the same transaction: a failure rolls both back and Stripe delivers again.
    """
    event = Event(
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
    if _insert_unless_stored(event):
        receivers.dispatch(event)
    return event.id


def _insert_unless_stored(event: Event) -> bool:
    """INSERT the event unless one with its id is stored (no savepoint, no prior SELECT);
    True when this call stored it."""
    using = router.db_for_write(Event)
    fields = [field for field in Event._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(Event, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [event])
    [(sql, params)] = query.get_compiler(using=using).as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1

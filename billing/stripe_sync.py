"""Stripe is the source of truth (issue 13): what reconcile asks Stripe itself.

- Missed events: Stripe's events list (`GET /v1/events`, only the types `billing.receivers`
  handles) is read from where the mode's cursor (StripeEventCursor) stopped, and every event
  dj-stripe's Event table does not hold is processed exactly as a verified webhook delivery is
  (`billing.webhooks.process_trigger` with a key: dj-stripe's `Event.process` in one
  transaction, which stores the Event, syncs its objects and sends the signals our receivers
  listen to). A recovered event is therefore indistinguishable from a delivered one, and a
  later real delivery of it is acknowledged and changes nothing (dj-stripe finds the Event).
- Unmatched subscriptions: active or trialing subscriptions for our prices (or naming a wopr
  order in their metadata) that no Order knows. Reported for a human, never cancelled here.

Only the deployment's own mode is asked (STRIPE_LIVE_MODE, with its secret key): the webhook
takes only that mode's events and ignores the other's, and recovery must do no more than a
delivery would. Test and live never share a key, a cursor or dj-stripe rows (Event.livemode).

The cursor: the newest event of the mode up to which every event is known to be processed.
With one, the list is walked forward from it (`ending_before`, the page just newer each time),
oldest first, and the cursor moves after each processed event, so a run stopped by its page
bound or by an error resumes where it stopped. Without one (the first run), the list is read
back over the whole 30 days Stripe keeps (not only back to the newest event dj-stripe stored:
an event dropped before a later delivered one would never be listed), bounded by the page
limit, then processed oldest first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from djstripe.models import Event

from billing.checkout import active_mode, stripe_client
from billing.models import Order, Price, StripeEventCursor, StripeMode
from billing.receivers import HANDLERS
from billing.webhooks import storable, stripe_api_key
from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

EVENT_TYPES = sorted(HANDLERS)
EVENT_RETENTION = timedelta(days=30)
# A cursor this close to Stripe's 30 days may name an event Stripe no longer has.
CURSOR_MARGIN = timedelta(hours=1)
PAGE_SIZE = 100
MAX_EVENT_PAGES = 20  # per run: 2,000 events; the cursor resumes the rest on the next run
MAX_SUBSCRIPTION_PAGES = 20  # per status
STRIPE_TIMEOUT_SECONDS = 20


class StripeSyncError(Exception):
    """Stripe refused or failed; the message is redacted and safe to store."""


@dataclass(frozen=True)
class RecoveredEvent:
    """An event Stripe listed that no webhook had delivered, now processed."""

    id: str
    type: str
    created: datetime
    object_id: str


@dataclass
class EventsRecovery:
    """One mode's pass over Stripe's events list."""

    mode: str
    recovered: list[RecoveredEvent] = field(default_factory=list)
    listed: int = 0
    more: bool = False  # stopped at the page bound: the next run goes on from the cursor
    # A first run stopped at its bound: events older than this were not checked.
    unchecked_before: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class UnmatchedSubscription:
    """A paying Stripe subscription for our catalogue that no Order knows."""

    id: str
    status: str
    customer: str
    why_ours: str


def stripe_error_text(error: stripe.StripeError) -> str:
    """What Stripe said, with its request id, and no secret."""
    message = error.user_message or str(error) or type(error).__name__
    return redact(f"{type(error).__name__} (HTTP {error.http_status}): {message}")[:500]


# --- missed events ---------------------------------------------------------------------------


def events_recover() -> EventsRecovery | None:
    """Process the active mode's events Stripe has and no webhook delivered (None: no key)."""
    mode = active_mode()
    if not stripe_api_key(livemode=mode == StripeMode.LIVE):
        return None
    result = EventsRecovery(mode=mode)
    cursor, _ = StripeEventCursor.objects.get_or_create(mode=mode)
    try:
        for data in _unseen_events(cursor, result):
            _event_recover(data, cursor, result)
    except stripe.StripeError as error:  # the list itself failed
        result.error = result.error or stripe_error_text(error)
    StripeEventCursor.objects.filter(pk=cursor.pk).update(checked_at=timezone.now())
    return result


def _unseen_events(cursor: StripeEventCursor, result: EventsRecovery) -> Iterator[dict[str, Any]]:
    """The listed events, oldest first, that dj-stripe's Event table does not hold."""
    fresh = timezone.now() - EVENT_RETENTION + CURSOR_MARGIN
    if cursor.last_event_id and cursor.last_event_created and cursor.last_event_created > fresh:
        pages = _pages_forward(cursor.last_event_id, result)
    else:
        pages = iter([_pages_back_to(_first_since(), result)])
    for page in pages:
        result.listed += len(page)
        ids = [event["id"] for event in page]
        stored = set(Event.objects.filter(id__in=ids).values_list("id", flat=True))
        for data in page:
            if data["id"] in stored or not _ours_to_process(data, result.mode):
                _cursor_advance(cursor, data, result)
            else:
                yield data


def _ours_to_process(data: dict[str, Any], mode: str) -> bool:
    """An event of the mode asked, of a type our receivers handle (Stripe filters by type
    already; this holds whatever a list answers to that)."""
    return data.get("type") in HANDLERS and bool(data.get("livemode")) == (mode == StripeMode.LIVE)


def _list_page(mode: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """One page of the events list, newest first, as plain dicts."""
    listing = stripe_client(mode).v1.events.list(
        params={"types": EVENT_TYPES, "limit": PAGE_SIZE, **params}  # type: ignore[typeddict-item]
    )
    return [event.to_dict(for_json=True) for event in listing.data], bool(listing.has_more)


def _pages_forward(after_id: str, result: EventsRecovery) -> Iterator[list[dict[str, Any]]]:
    """Pages of events newer than `after_id`, each oldest first, the oldest page first."""
    for _ in range(MAX_EVENT_PAGES):
        page, more = _list_page(result.mode, {"ending_before": after_id})
        if not page:
            return
        yield list(reversed(page))
        if not more:
            return
        after_id = page[0]["id"]
    result.more = True


def _pages_back_to(since: datetime, result: EventsRecovery) -> list[dict[str, Any]]:
    """Every event since `since` (bounded), oldest first: the first run's starting point."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}}
    for _ in range(MAX_EVENT_PAGES):
        page, more = _list_page(result.mode, params)
        events += page
        if not (page and more):
            return list(reversed(events))
        params["starting_after"] = page[-1]["id"]
    # Stripe lists newest first: what lies between `since` and the oldest event read is out of
    # this bound and, the cursor being set past it, of later runs too. Said in the run's notes.
    result.unchecked_before = datetime.fromtimestamp(int(events[-1]["created"]), tz=UTC)
    return list(reversed(events))


def _first_since() -> datetime:
    """Where the first run starts: all of Stripe's 30 days. Not the newest event dj-stripe
    stored: a webhook dropped before a later delivered one would lie before it, never listed,
    and the cursor would then move past it for good."""
    return timezone.now() - EVENT_RETENTION


def _event_recover(data: dict[str, Any], cursor: StripeEventCursor, result: EventsRecovery) -> None:
    """Process one event as a verified webhook delivery is, then move the cursor past it.

    One that fails (dj-stripe's sync, a receiver) is rolled back with everything it did (the
    webhook's transaction; its on-commit tasks are dropped with it) and holds the cursor
    before it, so the next run tries it again; the later events are still processed now, so
    one bad event delays nothing else (they are found stored next time).
    """
    key = stripe_api_key(livemode=result.mode == StripeMode.LIVE)
    try:
        with transaction.atomic():
            Event.process(storable(data), api_key=key)
    except Exception as error:
        failure = stripe_error_text(error) if isinstance(error, stripe.StripeError) else ""
        failure = failure or redact(f"{type(error).__name__}: {error}")[:500]
        result.error = result.error or f"event {data['id']} ({data['type']}): {failure}"
        logger.error("recovering Stripe event %s failed: %s", data["id"], failure)
        return
    obj = (data.get("data") or {}).get("object") or {}
    created = datetime.fromtimestamp(int(data["created"]), tz=UTC)
    result.recovered.append(RecoveredEvent(data["id"], data["type"], created, obj.get("id", "")))
    logger.warning("recovered Stripe event %s (%s) no webhook delivered", data["id"], data["type"])
    _cursor_advance(cursor, data, result)


def _cursor_advance(
    cursor: StripeEventCursor, data: dict[str, Any], result: EventsRecovery
) -> None:
    """Past `data`, unless an earlier event of this run failed (it must be tried again); only
    forward (a slower concurrent run never moves it back)."""
    if result.error:
        return
    created = datetime.fromtimestamp(int(data["created"]), tz=UTC)
    StripeEventCursor.objects.filter(pk=cursor.pk).filter(
        Q(last_event_created__isnull=True) | Q(last_event_created__lte=created)
    ).update(last_event_id=data["id"], last_event_created=created)
    cursor.last_event_id, cursor.last_event_created = data["id"], created


# --- subscriptions no Order knows ------------------------------------------------------------


def subscriptions_unmatched() -> list[UnmatchedSubscription] | None:
    """Active and trialing subscriptions of the active mode for our prices (or naming a wopr
    order) that match no Order's subscription id (None: no key for the mode)."""
    mode = active_mode()
    if not stripe_api_key(livemode=mode == StripeMode.LIVE):
        return None
    ours = set(
        Price.objects.filter(mode=mode)
        .exclude(stripe_price_id="")
        .values_list("stripe_price_id", flat=True)
    )
    candidates = {}
    for subscription in _paying_subscriptions(mode):
        why = _why_ours(subscription, ours)
        if why:
            candidates[subscription["id"]] = (subscription, why)
    known = set(
        Order.objects.filter(stripe_subscription_id__in=list(candidates)).values_list(
            "stripe_subscription_id", flat=True
        )
    )
    return [
        UnmatchedSubscription(sub_id, sub.get("status", ""), _customer_id(sub), why)
        for sub_id, (sub, why) in sorted(candidates.items())
        if sub_id not in known
    ]


def _paying_subscriptions(mode: str) -> Iterator[dict[str, Any]]:
    client = stripe_client(mode)
    for status in ("active", "trialing"):
        params: dict[str, Any] = {"status": status, "limit": PAGE_SIZE}
        for _ in range(MAX_SUBSCRIPTION_PAGES):
            listing = client.v1.subscriptions.list(params=params)  # type: ignore[arg-type]
            page = [sub.to_dict(for_json=True) for sub in listing.data]
            yield from page
            if not (page and listing.has_more):
                break
            params["starting_after"] = page[-1]["id"]


def _why_ours(subscription: dict[str, Any], ours: set[str]) -> str:
    metadata = subscription.get("metadata") or {}
    if metadata.get("wopr_order_id"):
        return f"its metadata names wopr order {metadata['wopr_order_id']}"
    items = ((subscription.get("items") or {}).get("data")) or []
    for item in items:
        price = item.get("price") or {}
        price_id = price.get("id") if isinstance(price, dict) else price
        if price_id in ours:
            return f"its price {price_id} is ours"
    return ""


def _customer_id(subscription: dict[str, Any]) -> str:
    customer = subscription.get("customer") or ""
    return customer.get("id", "") if isinstance(customer, dict) else str(customer)

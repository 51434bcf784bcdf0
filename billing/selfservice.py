"""Customer self-service: who a sign-in is, and what a signed-in customer may do to their own
Beacons' subscriptions (the billing portal, cancel at period end and its undo, the welcome
e-mail again). The HTTP side is billing.me_api; the token check is billing.customer_auth.
"""

from __future__ import annotations

import logging
import time

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.checkout import stripe_client
from billing.models import Customer, Order, StripeMode
from billing.subscriptions import ENDED_STATUSES, subscription_answer_record
from billing.webhooks import stripe_api_key
from provisioning.models import Beacon, BeaconStatus
from provisioning.welcome import WelcomeResendTooSoon, welcome_resend_queue

logger = logging.getLogger(__name__)

# A billing portal request repeated within this many seconds gets the same session.
PORTAL_KEY_SECONDS = 60
# The wall clock of the portal and welcome windows (tests move it).
clock = time.time


# --- sign-in ----------------------------------------------------------------------------------


class SignInRefused(Exception):
    """The token's e-mail belongs to a Customer already bound to another OIDC `sub`."""


def customer_sign_in(*, subject: str, email: str, email_verified: bool) -> Customer | None:
    """The Customer a verified sign-in is, learning its OIDC `sub` on the first one.

    By `sub` when a Customer already carries it. Otherwise only a verified e-mail counts: the
    verified Customer with that address (case-insensitive), or the newest unverified one made
    verified, or a new verified one; every unverified Customer with that address is merged into
    it (their Orders and Beacons move; their own Stripe customer ids stay on the Orders). An
    unverified e-mail gets None. A Customer already bound to another `sub` is never taken over
    by an e-mail claim: SignInRefused, and nothing changes. Safe under concurrent first sign-ins
    (unique constraints on the verified e-mail and on `oidc_subject` decide; the loser reads the
    winner's row).
    """
    if subject:
        known = Customer.objects.filter(oidc_subject=subject).first()
        if known is not None:
            return known
    if not (email and email_verified):
        return None
    try:
        with transaction.atomic():
            customer = _verified_customer(email)
            _refuse_other_subject(customer, subject)
            _merge_unverified(customer)
            _bind_subject(customer, subject)
    except IntegrityError:  # a concurrent first sign-in won: its rows are ours now
        customer = Customer.objects.filter(
            email__iexact=email, email_verified_at__isnull=False
        ).first()
        if customer is not None:
            _refuse_other_subject(customer, subject)
    return customer


def _refuse_other_subject(customer: Customer, subject: str) -> None:
    """SignInRefused when `customer` is bound to an OIDC `sub` other than `subject`."""
    if customer.oidc_subject and customer.oidc_subject != subject:
        logger.warning("customer %s: sign-in by another subject refused", customer.pk)
        raise SignInRefused()


def _bind_subject(customer: Customer, subject: str) -> None:
    """Record `subject` as `customer`'s OIDC `sub` unless it has one (then it must be it)."""
    if not subject or customer.oidc_subject:
        return
    if not Customer.objects.filter(pk=customer.pk, oidc_subject="").update(oidc_subject=subject):
        customer.refresh_from_db(fields=["oidc_subject"])  # bound meanwhile: to this sub only
        _refuse_other_subject(customer, subject)
    customer.oidc_subject = subject


def _verified_customer(email: str) -> Customer:
    """The verified Customer of `email`, making the newest unverified one (or a new one) it."""
    same_address = Customer.objects.select_for_update().filter(email__iexact=email)
    verified = same_address.filter(email_verified_at__isnull=False).first()
    if verified is not None:
        return verified
    customer = same_address.order_by("-created_at", "-pk").first()
    if customer is None:
        customer = Customer(email=email)
    customer.email_verified_at = timezone.now()
    with transaction.atomic():  # a savepoint: the unique verified e-mail may refuse it
        customer.save()
    logger.info("customer %s verified its e-mail by signing in", customer.pk)
    return customer


def _merge_unverified(customer: Customer) -> None:
    """Move the Orders and Beacons of unverified Customers with `customer`'s address to it."""
    others = Customer.objects.filter(
        email__iexact=customer.email, email_verified_at__isnull=True
    ).exclude(pk=customer.pk)
    other_ids = list(others.values_list("pk", flat=True))
    if not other_ids:
        return
    orders = Order.objects.filter(customer_id__in=other_ids).update(customer=customer)
    beacons = Beacon.objects.filter(owner_id__in=other_ids).update(owner=customer)
    if not customer.authentik_user_pk:
        account = others.exclude(authentik_user_pk="").values_list("authentik_user_pk", flat=True)
        if pk := account.first():
            Customer.objects.filter(pk=customer.pk).update(authentik_user_pk=pk)
            customer.authentik_user_pk = pk
    logger.info(
        "customer %s: merged %d unverified customers (%d orders, %d beacons)",
        customer.pk,
        len(other_ids),
        orders,
        beacons,
    )


# --- Stripe -----------------------------------------------------------------------------------


class SelfServiceError(Exception):
    """A request that cannot be done; `code` and the message are safe to show the customer."""

    code = "conflict"


class NotPossible(SelfServiceError):
    """The subscription's state forbids it (ended, no subscription yet, period over)."""


class StripeUnconfigured(SelfServiceError):
    """No Stripe secret key for the order's mode."""

    code = "service_unavailable"


class StripeFailed(SelfServiceError):
    """Stripe refused or failed; nothing changed on our side (details in the log)."""

    code = "bad_gateway"


class TooSoon(SelfServiceError):
    """The same request was done moments ago; `retry_after` seconds until it may be again."""

    code = "throttled"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def stripe_client_for(mode: str) -> stripe.StripeClient:
    """A client for the order's own Stripe mode (a test order is never sent to live Stripe)."""
    if not stripe_api_key(livemode=mode == StripeMode.LIVE):
        raise StripeUnconfigured("Billing is not available right now.")
    return stripe_client(mode)


def _stripe_failed(error: stripe.StripeError, what: str, order: Order) -> StripeFailed:
    logger.warning(
        "stripe: %s during %s for order %s (HTTP %s, code %s, request %s)",
        type(error).__name__,
        what,
        order.pk,
        error.http_status,
        error.code,
        error.request_id,
    )
    return StripeFailed("The payment provider failed; nothing changed, try again shortly.")


def billing_portal_session_create(*, order: Order) -> str:
    """The URL of a Stripe billing portal session for the order's Stripe customer.

    Its idempotency key is the order and a PORTAL_KEY_SECONDS window: a retried request gets
    the same session, a later one a fresh session (they expire after a few minutes)."""
    if not order.stripe_customer_id:
        raise NotPossible("This Beacon has no billing account yet.")
    window = int(clock() // PORTAL_KEY_SECONDS)
    try:
        session = stripe_client_for(order.stripe_mode).v1.billing_portal.sessions.create(
            params={"customer": order.stripe_customer_id, "return_url": portal_return_url()},
            options={"idempotency_key": f"wopr-portal-{order.pk}-{window}"},
        )
    except stripe.StripeError as error:
        raise _stripe_failed(error, "a billing portal session", order) from error
    return str(session.url)


def portal_return_url() -> str:
    return settings.SELFSERVICE_RETURN_URL or f"{settings.WOPR_PUBLIC_URL.rstrip('/')}/"


def _cancel_problem(order: Order, cancel: bool) -> str:
    """Why the subscription's cancel-at-period-end cannot be set to `cancel` ('' if it can)."""
    if not order.stripe_subscription_id:
        return "This Beacon has no subscription yet."
    ended = order.subscription_ended_at is not None
    if ended or order.subscription_status in ENDED_STATUSES:
        return "The subscription has already ended."
    period_end = order.subscription_period_end
    if not cancel and period_end is not None and period_end <= timezone.now():
        return "The subscription's period is over; it can no longer be kept."
    return ""


def subscription_cancel_set(*, order: Order, cancel: bool) -> Order:
    """Ask Stripe to end the subscription at its period end (`cancel`), or take that back.

    Nothing is asked when the Order already holds the wanted value. The idempotency key names
    the order, the wanted value and the version of Stripe's view we hold, so a retry replays
    the same update and a later change of mind is a new one. The Order follows Stripe's
    answer (billing.subscriptions.subscription_answer_record), and the webhook after it."""
    problem = _cancel_problem(order, cancel)
    if problem:
        raise NotPossible(problem)
    if order.subscription_cancel_at_period_end == cancel:
        return order
    version = order.subscription_status_at.timestamp() if order.subscription_status_at else 0
    key = f"wopr-cancel-{order.pk}-{'on' if cancel else 'off'}-{version:.6f}"
    try:
        subscription = stripe_client_for(order.stripe_mode).v1.subscriptions.update(
            str(order.stripe_subscription_id),
            params={"cancel_at_period_end": cancel},
            options={"idempotency_key": key},
        )
    except stripe.StripeError as error:
        raise _stripe_failed(error, "a cancellation change", order) from error
    subscription_answer_record(order=order, subscription=subscription.to_dict())
    order.refresh_from_db()
    return order


# --- the welcome e-mail again ---------------------------------------------------------------


def welcome_resend_request(*, beacon: Beacon) -> str:
    """Queue the welcome e-mail to the order's address again; its key.

    At most one per WELCOME_RESEND_MINUTES window and Beacon, a window staff's "Resend welcome"
    shares (provisioning.welcome.welcome_resend_queue): a second request in it gets TooSoon.
    Only for a Beacon that got its welcome already (it is running or suspended)."""
    if beacon.status not in (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED):
        raise NotPossible("The Beacon is not ready; its welcome e-mail comes when it is.")
    try:
        return welcome_resend_queue(beacon=beacon, now=clock())
    except WelcomeResendTooSoon as error:
        message = "The welcome e-mail was sent again moments ago."
        raise TooSoon(message, error.retry_after) from None

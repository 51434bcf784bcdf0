"""No charge without a Beacon: refund the paid invoice and cancel the subscription of an order
whose provisioning failed for good (its billing.OrderRemedy, opened by provisioning.remedies).

Each side effect is claimed before it is made and recorded after it:
- a remedy moves to REFUNDING by a conditional update (QUEUED or FAILED -> REFUNDING), so two
  staff clicks or two workers start one set of calls; policy `refund` creates it REFUNDING;
- the refund and the cancellation carry idempotency keys made of the order id, and each is
  recorded as soon as Stripe answers (`refunded_at`, `subscription_cancelled_at`), so a run
  after a crash between them makes only the call that is missing;
- Stripe refusing moves the remedy to FAILED with the reason (redacted) for staff, who retry
  from the admin; a network or Stripe-side error keeps it REFUNDING for the sweep to retry.

Stripe's API version of stripe-python 15.6.2 (2026-08-26.dahlia) has no `charge` or
`payment_intent` on an invoice: the payment that paid it is an InvoicePayment
(`GET /v1/invoice_payments?invoice=…`), whose `payment` names the PaymentIntent (or Charge) to
refund.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.checkout import active_mode, stripe_client
from billing.models import Order, OrderRemedy, RemedyPolicy, RemedyState, SubscriptionStatus
from billing.subscriptions import money_display
from documents.emails import email_send_once
from documents.models import EmailMessage, EmailStatus
from wopr.lib.queue import task_enqueue_after_commit
from wopr.lib.redact import redact

logger = logging.getLogger(__name__)

RUN_TASK = "billing.tasks.order_remedy_run"
# Stripe could not be reached or failed on its side: the sweep tries again, the claim holds.
# IdempotencyError: another worker's request with the same key is still running at Stripe.
TRANSIENT = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    stripe.IdempotencyError,
)
# The sweep asks again every JOB_SWEEP_MINUTES: about an hour of a Stripe outage by default,
# then the remedy is FAILED and staff retry it from the admin.
REMEDY_MAX_ATTEMPTS = 60
# A PaymentIntent or Charge refunded already (from Stripe's dashboard, say) needs no refund.
ALREADY_REFUNDED = "charge_already_refunded"
REFUNDED_EMAIL_FOR = timedelta(days=3)


@dataclass(frozen=True)
class PaidInvoice:
    """The invoice a remedy refunds, and what paid it (`payment_intent` or `charge` id)."""

    id: str
    amount_cents: int
    currency: str
    payment: dict[str, str]


@dataclass(frozen=True)
class RemedyPlan:
    """What a staff click will do, for the confirmation page (`problem`: why it cannot)."""

    remedy: OrderRemedy
    invoice: PaidInvoice | None
    problem: str = ""

    @property
    def amount(self) -> str:
        if self.invoice is None:
            return ""
        return money_display(self.invoice.amount_cents, self.invoice.currency)


def refund_idempotency_key(order: Order) -> str:
    return f"wopr-remedy-refund-{order.pk}"


def cancel_idempotency_key(order: Order) -> str:
    return f"wopr-remedy-cancel-{order.pk}"


# --- Stripe ------------------------------------------------------------------------------------


def paid_invoice(client: stripe.StripeClient, subscription_id: str) -> PaidInvoice | None:
    """The subscription's newest paid invoice that took money, with the payment that paid it
    (None: nothing was paid, e.g. a trial or a 100% coupon)."""
    invoices = client.v1.invoices.list(
        params={"subscription": subscription_id, "status": "paid", "limit": 10}
    )
    for invoice in (item.to_dict() for item in invoices.data):
        amount = int(invoice.get("amount_paid") or 0)
        if amount > 0:
            payment = invoice_payment(client, str(invoice["id"]))
            currency = str(invoice.get("currency") or "usd")
            return PaidInvoice(str(invoice["id"]), amount, currency, payment)
    return None


def invoice_payment(client: stripe.StripeClient, invoice_id: str) -> dict[str, str]:
    """The refund's target: `{"payment_intent": id}` or `{"charge": id}` of the invoice's paid
    InvoicePayment. Raises ValueError when Stripe names none (staff must look)."""
    payments = client.v1.invoice_payments.list(
        params={"invoice": invoice_id, "status": "paid", "limit": 10}
    )
    for row in (item.to_dict() for item in payments.data):
        payment = row.get("payment") or {}
        for kind in ("payment_intent", "charge"):
            if payment.get(kind):
                return {kind: _id(payment[kind])}
    raise ValueError(f"invoice {invoice_id} has no paid payment Stripe can refund")


def _id(value: Any) -> str:
    """An expandable field's id, expanded or not."""
    return str(value.get("id") if isinstance(value, dict) else value)


def _refund(client: stripe.StripeClient, remedy: OrderRemedy) -> None:
    """Refund the paid invoice in full (once: the key is the order's), then record it."""
    order = remedy.order
    invoice = paid_invoice(client, str(order.stripe_subscription_id))
    recorded: dict[str, Any] = {"refunded_at": timezone.now()}
    if invoice is not None:
        recorded.update(stripe_invoice_id=invoice.id, currency=invoice.currency)
        recorded.update(_refund_create(client, order, invoice))
    OrderRemedy.objects.filter(pk=remedy.pk, refunded_at__isnull=True).update(**recorded)
    remedy.refresh_from_db()


def _refund_create(
    client: stripe.StripeClient, order: Order, invoice: PaidInvoice
) -> dict[str, Any]:
    """POST /v1/refunds for the whole payment; the fields to record."""
    params: dict[str, Any] = {
        **invoice.payment,
        "reason": "requested_by_customer",
        "metadata": {"wopr_order_id": str(order.pk), "wopr_invoice_id": invoice.id},
    }
    try:
        refund = client.v1.refunds.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": refund_idempotency_key(order)},
        )
    except stripe.InvalidRequestError as error:
        if error.code != ALREADY_REFUNDED:
            raise
        return {"amount_cents": 0, "last_error": "the payment was refunded already at Stripe"}
    return {"stripe_refund_id": str(refund.id), "amount_cents": int(refund.amount)}


def _cancel(client: stripe.StripeClient, remedy: OrderRemedy) -> None:
    """Cancel the subscription now (once: the key is the order's), then record it. One that
    Stripe already told us is cancelled needs no call."""
    order = remedy.order
    if order.subscription_status != SubscriptionStatus.CANCELED:
        client.v1.subscriptions.cancel(
            str(order.stripe_subscription_id),
            params={"prorate": False, "invoice_now": False},
            options={"idempotency_key": cancel_idempotency_key(order)},
        )
    OrderRemedy.objects.filter(pk=remedy.pk, subscription_cancelled_at__isnull=True).update(
        subscription_cancelled_at=timezone.now()
    )
    remedy.refresh_from_db()


def _client_for(order: Order) -> stripe.StripeClient:
    """A client of the order's own Stripe mode: test and live are kept apart."""
    if order.stripe_mode != active_mode():
        raise ValueError(
            f"the order is in Stripe {order.stripe_mode} mode, WOPR in {active_mode()}"
        )
    if not order.stripe_subscription_id:
        raise ValueError("the order has no Stripe subscription")
    return stripe_client()


# --- services ----------------------------------------------------------------------------------


def order_remedy_run(*, remedy_id: int) -> str:
    """Make the refund and the cancellation of a REFUNDING remedy, each once, then DONE; a
    remedy in any other state is left alone (a repeated task, a second worker). Returns what
    happened, for the task's result."""
    remedy = OrderRemedy.objects.select_related("order").get(pk=remedy_id)
    if remedy.state == RemedyState.DONE:
        return refunded_email(remedy)
    if remedy.state != RemedyState.REFUNDING:
        return f"nothing to do: the remedy is {remedy.state}"
    try:
        client = _client_for(remedy.order)
        if remedy.refunded_at is None:
            _refund(client, remedy)
        if remedy.subscription_cancelled_at is None:
            _cancel(client, remedy)
    except TRANSIENT as error:
        return _retry_or_fail(remedy, _describe(error))
    except (stripe.StripeError, ValueError) as error:
        return _fail(remedy, _describe(error))
    with transaction.atomic():
        OrderRemedy.objects.filter(pk=remedy.pk, state=RemedyState.REFUNDING).update(
            state=RemedyState.DONE, done_at=timezone.now()
        )
    remedy.refresh_from_db()
    return refunded_email(remedy)


def _describe(error: Exception) -> str:
    """An error as staff read it, never with a credential in it."""
    if isinstance(error, stripe.StripeError):
        detail = error.user_message or error.code or type(error).__name__
        return redact(f"{type(error).__name__} (HTTP {error.http_status}): {detail}")[:1000]
    return redact(str(error))[:1000]


def _retry_or_fail(remedy: OrderRemedy, error: str) -> str:
    """A transient failure: counted; the sweep asks again until REMEDY_MAX_ATTEMPTS, then the
    remedy is FAILED for staff (no endless retries)."""
    if remedy.attempts + 1 >= REMEDY_MAX_ATTEMPTS:
        return _fail(remedy, f"Stripe kept failing ({REMEDY_MAX_ATTEMPTS} tries): {error}")
    OrderRemedy.objects.filter(pk=remedy.pk).update(attempts=F("attempts") + 1)
    return _note(remedy, f"Stripe failed, retrying: {error}")


def _note(remedy: OrderRemedy, message: str) -> str:
    OrderRemedy.objects.filter(pk=remedy.pk).update(last_error=message)
    logger.warning("remedy %s: %s", remedy.pk, message)
    return message


def _fail(remedy: OrderRemedy, message: str) -> str:
    """Stripe refused (or the order cannot be refunded here): FAILED, staff retry."""
    OrderRemedy.objects.filter(pk=remedy.pk, state=RemedyState.REFUNDING).update(
        state=RemedyState.FAILED, last_error=message
    )
    logger.warning("remedy %s failed: %s", remedy.pk, message)
    return f"failed: {message}"


def refunded_email(remedy: OrderRemedy) -> str:
    """The short "refunded" e-mail, once, after a staff click carried the remedy out (under
    policy `refund` the failure e-mail already said so). Failure to send is retried by the
    sweep."""
    if remedy.policy != RemedyPolicy.STAFF:
        return "done"
    order = remedy.order
    amount = money_display(remedy.amount_cents, remedy.currency) if remedy.amount_cents else ""
    email_send_once(
        key=f"remedy_refunded:{order.pk}",
        template="remedy_refunded",
        to=order.email,
        context={"order": order, "remedy": remedy, "amount": amount},
        order=order,
    )
    return "done; the customer was told"


def order_remedy_start(*, remedy_id: int, requested_by: Any) -> bool:
    """A staff click: claim a QUEUED or FAILED remedy (QUEUED/FAILED -> REFUNDING, one row)
    and ask for the calls after commit. False when it was not there to claim (another click,
    done, withdrawn)."""
    with transaction.atomic():
        claimed = OrderRemedy.objects.filter(
            pk=remedy_id, state__in=[RemedyState.QUEUED, RemedyState.FAILED]
        ).update(state=RemedyState.REFUNDING, decided_by=requested_by, last_error="", attempts=0)
        if claimed:
            task_enqueue_after_commit(RUN_TASK, remedy_id, group="billing")
    return bool(claimed)


def order_remedy_plan(*, remedy: OrderRemedy) -> RemedyPlan:
    """What a click on `remedy` will refund, asked of Stripe (reads only; nothing moves)."""
    if remedy.state not in (RemedyState.QUEUED, RemedyState.FAILED):
        return RemedyPlan(remedy, None, f"it is {remedy.get_state_display().lower()}")
    if remedy.refunded_at is not None:
        return RemedyPlan(remedy, None)  # only the cancellation is left to make
    try:
        client = _client_for(remedy.order)
        return RemedyPlan(remedy, paid_invoice(client, str(remedy.order.stripe_subscription_id)))
    except (stripe.StripeError, ValueError) as error:
        return RemedyPlan(remedy, None, f"Stripe could not say: {_describe(error)}")


def remedies_sweep() -> int:
    """Ask again for every remedy under way (a lost task, Stripe down) and for every recent
    staff-decided one whose "refunded" e-mail did not go out. Returns how many."""
    recent = timezone.now() - REFUNDED_EMAIL_FOR
    under_way = OrderRemedy.objects.filter(state=RemedyState.REFUNDING)
    told = OrderRemedy.objects.filter(
        state=RemedyState.DONE, policy=RemedyPolicy.STAFF, done_at__gte=recent
    )
    ids = list(under_way.values_list("pk", flat=True)[:500])
    ids += [pk for pk in told.values_list("pk", flat=True)[:500] if _unsent(pk)]
    for remedy_id in ids:
        task_enqueue_after_commit(RUN_TASK, remedy_id, group="billing")
    return len(ids)


def _unsent(remedy_id: int) -> bool:
    order_id = OrderRemedy.objects.filter(pk=remedy_id).values_list("order_id", flat=True).get()
    key = f"remedy_refunded:{order_id}"
    return not EmailMessage.objects.filter(idempotency_key=key, status=EmailStatus.SENT).exists()

"""Catalogue, customers, orders and payment failures."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Lower

# The id of a dj-stripe Event's object (`data.object.id`), indexed by billing migration 0005:
# queries that find events by their object use exactly this expression, so the index serves them.
STRIPE_EVENT_OBJECT_ID = KeyTransform("id", KeyTransform("object", "data"))


class StripeMode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"


class Period(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"


class Bundle(models.Model):
    """A bundle of self-hosted apps sold on the storefront (from catalog.json)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20)
    modules = models.JSONField(default=list)
    min_size = models.PositiveSmallIntegerField(default=1)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Tier(models.Model):
    """A storage tier (t1, t2, t3) with its limits."""

    slug = models.SlugField(max_length=8, unique=True)
    number = models.PositiveSmallIntegerField(unique=True)
    storage_gb = models.PositiveIntegerField()
    ram_gb = models.PositiveIntegerField()
    max_users = models.PositiveIntegerField()
    backup_days = models.PositiveIntegerField()

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return self.slug


class Price(models.Model):
    """The price of a (bundle, tier, period) in one Stripe mode; sellable when non-zero."""

    bundle = models.ForeignKey(Bundle, on_delete=models.CASCADE, related_name="prices")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="prices")
    period = models.CharField(max_length=10, choices=Period.choices)
    mode = models.CharField(max_length=4, choices=StripeMode.choices)
    amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    stripe_price_id = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bundle", "tier", "period", "mode"], name="price_unique_per_offer"
            ),
            models.UniqueConstraint(
                fields=["stripe_price_id"],
                condition=~models.Q(stripe_price_id=""),
                name="price_unique_stripe_price_id",
            ),
        ]
        ordering = ["bundle__slug", "tier__number", "period", "mode"]

    def __str__(self) -> str:
        return f"{self.bundle.slug}/{self.tier.slug}/{self.period}/{self.mode}"

    @property
    def sellable(self) -> bool:
        return self.amount_cents > 0


class CatalogVersion(models.Model):
    """One row whose stamp the database changes on every write to what the public catalogue
    is built from (bundles, tiers, prices, providers; triggers of billing migration 0006),
    whoever writes (the admin, a queryset update, load_catalog, the health sweep, raw SQL).

    The catalogue is rebuilt only when the stamp moves (billing.catalog_cache). A random stamp
    rather than a counter: a rolled-back write can never bring an old stamp back for new rows.
    """

    stamp = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.stamp


class Customer(models.Model):
    """A buyer. One per e-mail address among verified customers; unverified ones are per order.

    Until buyers sign in, nobody has proven they own an e-mail address, so every storefront
    checkout gets its own unverified Customer (and its own Stripe customers): typing someone
    else's e-mail never attaches an order to their record or their Stripe customer. A later
    sign-in sets `email_verified_at` on one Customer and may then merge the unverified ones with
    the same address into it (their Orders keep their own e-mail and Stripe customer id).

    Test and live mode are different Stripe accounts' objects, so the Stripe customer id is kept
    per mode (`stripe_customer_id_for`).
    """

    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    djstripe_customer = models.ForeignKey(
        "djstripe.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_test_customer_id = models.CharField(max_length=255, blank=True)
    stripe_live_customer_id = models.CharField(max_length=255, blank=True)
    # The customer's user in Authentik (its numeric pk; blank until accounts made one).
    authentik_user_pk = models.CharField(max_length=64, blank=True)
    # The `sub` of the customer's sign-in tokens, learnt at the first self-service request.
    oidc_subject = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(email_verified_at__isnull=False),
                name="customer_unique_verified_email_ci",
            ),
            models.UniqueConstraint(
                fields=["stripe_test_customer_id"],
                condition=~models.Q(stripe_test_customer_id=""),
                name="customer_unique_stripe_test_id",
            ),
            models.UniqueConstraint(
                fields=["stripe_live_customer_id"],
                condition=~models.Q(stripe_live_customer_id=""),
                name="customer_unique_stripe_live_id",
            ),
            models.UniqueConstraint(
                fields=["oidc_subject"],
                condition=~models.Q(oidc_subject=""),
                name="customer_unique_oidc_subject",
            ),
        ]
        indexes = [models.Index(Lower("email"), name="customer_email_ci")]

    def __str__(self) -> str:
        return self.email

    @property
    def verified(self) -> bool:
        return self.email_verified_at is not None

    @staticmethod
    def stripe_id_field(mode: str) -> str:
        """The column holding the Stripe customer id of `mode` ('test' or 'live')."""
        return "stripe_live_customer_id" if mode == StripeMode.LIVE else "stripe_test_customer_id"

    def stripe_customer_id_for(self, mode: str) -> str:
        """This Customer's Stripe customer id in `mode` ('' when none yet)."""
        return str(getattr(self, self.stripe_id_field(mode)))


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses (blank: Stripe has told us nothing yet)."""

    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"
    CANCELED = "canceled", "Canceled"


class Order(models.Model):
    """One storefront checkout. Its id is an unguessable UUID the buyer may see."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    # Null only for a paid session whose metadata names no known bundle or tier: staff must act.
    bundle = models.ForeignKey(Bundle, null=True, blank=True, on_delete=models.PROTECT)
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT)
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTHLY)
    beacon_name = models.CharField(max_length=63, blank=True)
    region = models.CharField(max_length=32, blank=True)
    custom_domain = models.CharField(max_length=253, blank=True)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    stripe_mode = models.CharField(
        max_length=4, choices=StripeMode.choices, default=StripeMode.TEST
    )
    status = models.CharField(
        max_length=10, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    # NULL until known: unique constraints ignore NULLs, where empty strings would collide.
    stripe_checkout_session_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    stripe_subscription_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # The Stripe customer this order's session and subscription belong to (the order's own).
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    # When the Checkout Session stops accepting payment: the beacon name is held until then.
    checkout_expires_at = models.DateTimeField(null=True, blank=True)
    needs_attention = models.BooleanField(default=False)
    attention_reason = models.TextField(blank=True)
    stripe_metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # What the buyer paid at checkout (Stripe's amount_total, in the currency's minor unit);
    # null until the paid session is seen.
    amount_cents = models.PositiveIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    # Stripe's view of the subscription, and the Stripe time of the newest event (or sync) that
    # told us: an older event arriving late never overwrites a newer status.
    subscription_status = models.CharField(
        max_length=20, choices=SubscriptionStatus.choices, blank=True
    )
    subscription_status_at = models.DateTimeField(null=True, blank=True)
    subscription_period_end = models.DateTimeField(null=True, blank=True)
    subscription_ended_at = models.DateTimeField(null=True, blank=True)
    # Stripe's `cancel_at_period_end`: the customer cancelled, the Beacon runs to the period end.
    subscription_cancel_at_period_end = models.BooleanField(default=False)
    # A tier change the customer asked for, until Stripe says it is paid (then `tier` moves).
    tier_change_to = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tier_change_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_checkout_session_id"], name="order_unique_checkout_session"
            ),
            models.UniqueConstraint(
                fields=["stripe_subscription_id"], name="order_unique_subscription"
            ),
        ]
        indexes = [
            models.Index(fields=["needs_attention", "status"]),
            # The changelist's order; the cockpit's daily sales and revenue windows.
            models.Index(fields=["created_at"]),
            models.Index(fields=["paid_at"]),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Order {self.id} ({self.beacon_name or '?'}, {self.status})"


class PaymentFailure(models.Model):
    """A failed invoice payment; at most one row per Stripe invoice.

    `attempt_count` is Stripe's count of failed attempts on the invoice (the highest seen, so a
    late or repeated event never lowers it); `paid_at` is set once Stripe says the invoice was
    paid, whichever of the two events arrived first.
    """

    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="payment_failures"
    )
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True)
    amount_due_cents = models.PositiveIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="usd")
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["stripe_subscription_id", "paid_at"])]

    def __str__(self) -> str:
        return self.stripe_invoice_id


class RemedyPolicy(models.TextChoices):
    """FAILED_ORDER_POLICY: what makes the money right when a paid order gets no Beacon."""

    REFUND = "refund", "Refund and cancel automatically"
    STAFF = "staff", "Queue for a staff click"


class RemedyState(models.TextChoices):
    QUEUED = "queued", "Waiting for staff"
    REFUNDING = "refunding", "Refund and cancellation under way"
    DONE = "done", "Refunded and cancelled"
    FAILED = "failed", "Stripe refused (staff must act)"
    WITHDRAWN = "withdrawn", "Withdrawn (the Beacon was made after all)"


class OrderRemedy(models.Model):
    """The money side of a paid order whose provisioning failed for good: at most one per
    order (the unique order is the claim), so retries never refund or cancel twice."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="remedy")
    policy = models.CharField(max_length=8, choices=RemedyPolicy.choices)
    state = models.CharField(max_length=10, choices=RemedyState.choices)
    reason = models.TextField(blank=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    refunded_at = models.DateTimeField(null=True, blank=True)
    subscription_cancelled_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    last_error = models.TextField(blank=True)
    # Transient Stripe failures since the last claim: past REMEDY_MAX_ATTEMPTS the remedy is
    # FAILED for staff instead of being asked again forever.
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"remedy of {self.order_id} ({self.state})"


class StripeEventCursor(models.Model):
    """Per Stripe mode, the newest event reconcile has seen in Stripe's events list: the next
    run asks only for events after it (Stripe keeps 30 days)."""

    mode = models.CharField(max_length=4, choices=StripeMode.choices, unique=True)
    last_event_id = models.CharField(max_length=255, blank=True)
    last_event_created = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.mode}: {self.last_event_id or 'none'}"

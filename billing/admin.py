"""Staff views of the catalogue, customers, orders and payment failures.

Orders and customers come from Stripe checkouts and carry real money: they are never added or
deleted here, their Stripe ids are read-only, and the only things staff edit on an Order are the
"needs attention" flag and its reason.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import (
    Bundle,
    CatalogVersion,
    Customer,
    Order,
    OrderRemedy,
    PaymentFailure,
    Price,
    StripeEventCursor,
    Tier,
)
from billing.remedy_admin import OrderRemedyAdmin
from billing.subscriptions import money_display
from wopr.lib.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline, admin_link
from wopr.notes import NOTE_LIMIT, staff_note_view, staff_notes_table

# The customer's page shows the newest notes; the rest are a link away (wopr.notes).


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "min_size", "active")
    list_filter = ("active", "kind")
    search_fields = ("slug", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Bundle | None = None) -> Any:
        # Stripe metadata and Orders name bundles by slug.
        return ("slug",) if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ("slug", "number", "storage_gb", "ram_gb", "max_users", "backup_days")
    search_fields = ("slug",)

    def get_readonly_fields(self, request: HttpRequest, obj: Tier | None = None) -> Any:
        return ("slug", "number") if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = (
        "bundle",
        "tier",
        "period",
        "mode",
        "amount_cents",
        "currency",
        "stripe_price_id",
    )
    list_editable = ("stripe_price_id",)
    list_filter = ("mode", "period", "tier")
    search_fields = ("bundle__slug", "stripe_price_id")
    list_select_related = ("bundle", "tier")

    def get_readonly_fields(self, request: HttpRequest, obj: Price | None = None) -> Any:
        return ("bundle", "tier", "period", "mode") if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def attention_marker(order: Order) -> SafeString | str:
    """A warning sign on an order staff must look at, a dash on the others.

    Not Django's boolean icons: they draw a green tick for True, which reads as "all good"
    exactly where something is wrong."""
    if not order.needs_attention:
        return "—"
    return format_html(
        '<img src="{}" alt="" width="14" height="14"> <strong>Needs attention</strong>',
        static("admin/img/icon-alert.svg"),
    )


class OrderInline(ReadOnlyTabularInline):
    model = Order
    fields = ("beacon_name", "bundle", "tier", "status", "attention", "created_at")
    readonly_fields = fields

    @admin.display(description="Attention")
    def attention(self, obj: Order) -> SafeString | str:
        return attention_marker(obj)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "email_verified_at", "created_at")
    search_fields = ("email", "name", "stripe_test_customer_id", "stripe_live_customer_id")
    fields = (
        "email",
        "name",
        "email_verified_at",
        "stripe_test_customer_id",
        "stripe_live_customer_id",
        "djstripe_customer",
        "created_at",
        "staff_notes",
    )
    readonly_fields = (
        "email_verified_at",
        "stripe_test_customer_id",
        "stripe_live_customer_id",
        "djstripe_customer",
        "created_at",
        "staff_notes",
    )
    inlines = (OrderInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Staff notes")
    def staff_notes(self, obj: Customer) -> SafeString:
        return staff_notes_table(limit=NOTE_LIMIT, customer=obj)

    def get_urls(self) -> list[URLPattern]:
        """The note form's address: notes are added there, not by saving the customer, so
        support (who may not change a customer) can write them, and each is recorded once."""
        note = self.admin_site.admin_view(self.note_view)
        return [
            path("<int:object_id>/note/", note, name="billing_customer_note"),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Customer | None = None,
    ) -> TemplateResponse:
        context["can_add_note"] = obj is not None and request.user.has_perm("wopr.add_staffnote")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        customer = get_object_or_404(Customer, pk=object_id)
        back = reverse("admin:billing_customer_change", args=[customer.pk])
        return staff_note_view(self, request, back_url=back, customer=customer)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NeedsAttentionFilter(admin.SimpleListFilter):
    """The first filter staff see: orders a human has to look at."""

    title = "⚠ needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Needs attention"), ("no", "No action needed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(needs_attention=True)
        if self.value() == "no":
            return queryset.filter(needs_attention=False)
        return queryset


class PaymentFailureInline(ReadOnlyTabularInline):
    model = PaymentFailure
    fields = (
        "stripe_invoice_id",
        "amount_due_cents",
        "attempt_count",
        "next_payment_attempt",
        "created_at",
    )
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "beacon_name",
        "email",
        "bundle",
        "tier",
        "amount",
        "status",
        "attention",
        "created_at",
    )
    list_filter = (
        NeedsAttentionFilter,
        "status",
        "stripe_mode",
        "bundle",
        ("created_at", admin.DateFieldListFilter),  # not the date hierarchy's DISTINCT years
    )
    search_fields = (
        "email",
        "beacon_name",
        "stripe_checkout_session_id",
        "stripe_subscription_id",
        "stripe_customer_id",
    )
    list_select_related = ("bundle", "tier")
    fieldsets = (
        ("Attention", {"fields": ("needs_attention", "attention_reason")}),
        (
            "Order",
            {
                "fields": (
                    "id",
                    "status",
                    "customer",
                    "email",
                    "name",
                    "bundle",
                    "tier",
                    "period",
                    "beacon_name",
                    "beacon_link",
                    "region",
                    "custom_domain",
                )
            },
        ),
        (
            "Stripe",
            {
                "fields": (
                    "stripe_mode",
                    "stripe_checkout_session_id",
                    "stripe_subscription_id",
                    "stripe_customer_id",
                    "stripe_metadata",
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "paid_at")}),
        ("Payment", {"fields": ("amount_cents", "currency")}),
    )
    # Everything but the attention flag and its reason: the rest is what Stripe told us.
    readonly_fields = tuple(
        name
        for _, options in fieldsets
        for name in options["fields"]
        if name not in ("needs_attention", "attention_reason")
    )
    inlines = (PaymentFailureInline,)

    @admin.display(description="Attention", ordering="-needs_attention")
    def attention(self, obj: Order) -> SafeString | str:
        return attention_marker(obj)

    @admin.display(description="Amount", ordering="amount_cents")
    def amount(self, obj: Order) -> str:
        """What the paid Checkout Session charged (blank until it was paid)."""
        if obj.amount_cents is None:
            return "—"
        return money_display(obj.amount_cents, obj.currency)

    @admin.display(description="Beacon")
    def beacon_link(self, obj: Order) -> Any:
        beacon = getattr(obj, "beacon", None)
        return admin_link(beacon, beacon.fqdn) if beacon else "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentFailure)
class PaymentFailureAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "stripe_invoice_id",
        "order",
        "amount_due_cents",
        "attempt_count",
        "next_payment_attempt",
        "created_at",
    )
    search_fields = ("stripe_invoice_id", "stripe_subscription_id", "order__email")
    list_select_related = ("order",)
    date_hierarchy = "created_at"
    fields = (
        "order",
        "stripe_invoice_id",
        "stripe_subscription_id",
        "amount_due_cents",
        "attempt_count",
        "next_payment_attempt",
        "created_at",
    )
    readonly_fields = fields


@admin.register(CatalogVersion)
class CatalogVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The catalogue's version stamp, moved by the database on every catalogue write: shown so
    staff can see the public catalogue was rebuilt after an edit; nobody sets it by hand."""

    list_display = ("stamp",)


@admin.register(StripeEventCursor)
class StripeEventCursorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Per Stripe mode, the newest event reconcile has read from Stripe's events list (moved by
    reconcile only): shown so staff can see how far missed webhooks have been looked for."""

    list_display = ("mode", "last_event_id", "last_event_created", "checked_at")


admin.site.register(OrderRemedy, OrderRemedyAdmin)

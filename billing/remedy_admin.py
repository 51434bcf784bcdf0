"""Staff view of order remedies (no charge without a Beacon): the queue of paid orders whose
provisioning failed for good, and the one-click refund-and-cancel behind a confirmation page
that says exactly what Stripe will be asked to do. Registered in billing/admin.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from billing.models import OrderRemedy
from billing.remedy import order_remedy_plan, order_remedy_start
from billing.subscriptions import money_display
from wopr.audit import staff_action_record
from wopr.lib.admin import ReadOnlyAdminMixin, admin_link


class OrderRemedyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every remedy with who decided and when; external ids read-only, nothing edited by hand."""

    list_display = (
        "order_link",
        "state",
        "policy",
        "refunded",
        "subscription_cancelled_at",
        "decided_by",
        "created_at",
        "done_at",
    )
    list_filter = ("state", "policy")
    search_fields = ("order__id", "order__email", "order__beacon_name", "stripe_refund_id")
    list_select_related = ("order", "decided_by")
    date_hierarchy = "created_at"
    readonly_fields = (
        "order_link",
        "policy",
        "state",
        "reason",
        "stripe_invoice_id",
        "stripe_refund_id",
        "amount_cents",
        "currency",
        "refunded_at",
        "subscription_cancelled_at",
        "decided_by",
        "last_error",
        "created_at",
        "done_at",
    )
    fields = readonly_fields
    actions = ("refund_and_cancel",)

    def has_refund_permission(self, request: HttpRequest) -> bool:
        """Refunds move money: the owner's (wopr.roles)."""
        return request.user.has_perm("wopr.refund_order")

    @admin.display(description="Order", ordering="order__created_at")
    def order_link(self, obj: OrderRemedy) -> SafeString:
        return admin_link(obj.order, obj.order.beacon_name or obj.order.pk)

    @admin.display(description="Refunded")
    def refunded(self, obj: OrderRemedy) -> str:
        if obj.refunded_at is None:
            return "—"
        return money_display(obj.amount_cents, obj.currency) if obj.amount_cents else "nothing paid"

    @admin.action(
        description="Refund the paid invoice and cancel the subscription…", permissions=["refund"]
    )
    def refund_and_cancel(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Moves money: show exactly what (asked of Stripe, nothing changes), act on "yes"."""
        if request.POST.get("post") != "yes":
            return self._confirmation(request, queryset)
        lines = []
        for remedy in queryset.select_related("order"):
            started = order_remedy_start(remedy_id=remedy.pk, requested_by=request.user)
            outcome = "refund and cancellation started" if started else f"skipped ({remedy.state})"
            staff_action_record(
                user=request.user, action="order.refund", target=remedy.order, outcome=outcome
            )
            lines.append(f"{remedy.order.beacon_name or remedy.order_id}: {outcome}")
        self.message_user(request, "Refund and cancel — " + "; ".join(lines), messages.INFO)
        return None

    def _confirmation(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse:
        plans = [order_remedy_plan(remedy=remedy) for remedy in queryset.select_related("order")]
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Refund and cancel these orders?",
            "opts": self.model._meta,
            "queryset": queryset,
            "plans": plans,
            "acts": any(not plan.problem for plan in plans),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/confirm_remedy.html", context)

"""The project's own rows in the admin: who signs in through Authentik, the audit trail
(StaffAction, with every admin LogEntry copied into it) and staff notes; all read-only."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from wopr.audit import staff_action_write
from wopr.lib.admin import ReadOnlyAdminMixin
from wopr.models import StaffAction, StaffIdentity, StaffNote


@admin.register(StaffIdentity)
class StaffIdentityAdmin(admin.ModelAdmin):
    """Which Authentik subject each single-sign-on staff user is, and their last sign-in.

    Rows are made by sign-ins only (wopr.staff_sso); deleting one makes the next sign-in of
    that subject a new user. Roles are changed in Authentik, not here.
    """

    list_display = ("user", "subject", "issuer", "last_sign_in_at", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email", "subject")
    readonly_fields = ("user", "issuer", "subject", "last_sign_in_at", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StaffActionChangeList(ChangeList):
    """The audit changelist, which also learns which of the page's targets still exist: one
    query per kind of target on the page, never one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        wanted: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if row.target_type and row.target_id:
                wanted[row.target_type].add(row.target_id)
        existing = {
            (target_type, target_id)
            for target_type, ids in wanted.items()
            for target_id in _existing_ids(target_type, ids)
        }
        for row in rows:
            row.target_exists = (row.target_type, row.target_id) in existing


def _existing_ids(target_type: str, ids: set[str]) -> set[str]:
    """Which of `ids` are still rows of the model `target_type` ("app_label.model_name")."""
    try:
        model = apps.get_model(target_type)
        found = model._default_manager.filter(pk__in=ids).values_list("pk", flat=True)
        return {str(pk) for pk in found}
    except (LookupError, ValueError, ValidationError):  # a model gone, an id of another type
        return set()


def _target_url(row: StaffAction) -> str | None:
    """The admin page of the row's target, when the admin has one."""
    app_label, _, model_name = row.target_type.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model_name}_change", args=[row.target_id])
    except NoReverseMatch:
        return None


# The kinds of staff action (the part of `action` before the dot), fixed here so the audit list
# runs no SELECT DISTINCT over the whole trail on each load; one action is found by search.
AUDIT_ACTION_KINDS = (
    ("admin", "Admin add, change, delete"),
    ("beacon", "Beacon actions and notes"),
    ("customer", "Customer notes"),
    ("order", "Refunds"),
    ("snapshot", "Snapshot restores"),
    ("installer", "Installer releases"),
    ("sweep", "Sweeps run now"),
    ("vendor", "dj-stripe and django-q2 actions"),
)


class ActionKindFilter(admin.SimpleListFilter):
    """The trail by kind of action ("beacon" for beacon.suspend, beacon.retry_job, ...)."""

    title = "kind of action"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:
        return AUDIT_ACTION_KINDS

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return queryset.filter(action__startswith=f"{self.value()}.")


class StaffUserFilter(admin.SimpleListFilter):
    """The trail by who: the staff users (a small table), not the trail's distinct users."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Any:
        users = get_user_model()._default_manager.filter(is_staff=True).order_by("username")
        return [(str(user.pk), user.get_username()) for user in users]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return queryset.filter(user_id=self.value())


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: every staff action and every admin add, change and delete. Read-only
    for everyone, superusers included: a trail that can be edited proves nothing."""

    list_display = ("at", "username", "action", "target", "outcome")
    # A date-range filter, not the date hierarchy (which lists years with a DISTINCT scan).
    list_filter = (ActionKindFilter, StaffUserFilter, ("at", admin.DateFieldListFilter))
    search_fields = ("username", "action", "target_repr", "target_id")
    fields = (
        "at",
        "username",
        "user",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "outcome",
        "detail",
    )
    readonly_fields = fields

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return StaffActionChangeList

    @admin.display(description="Target")
    def target(self, row: StaffAction) -> str | SafeString:
        """A link to the target's page while it exists (known from the changelist); its name
        as it was, otherwise."""
        url = _target_url(row) if getattr(row, "target_exists", False) else None
        if url is None:
            return row.target_repr or "—"
        return format_html('<a href="{}">{}</a>', url, row.target_repr or row.target_id)


@admin.register(StaffNote)
class StaffNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every note staff left on a Beacon or a customer (written on those pages, never here)."""

    list_display = ("created_at", "author_name", "beacon", "customer", "body")
    list_select_related = ("beacon", "customer")
    search_fields = ("author_name", "body", "beacon__name", "customer__email")
    date_hierarchy = "created_at"


def log_entry_copy(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """post_save receiver (wopr.apps): every admin add, change and delete Django logs is also
    written to the audit trail, with the change message ("Changed amount_cents.") as outcome.

    Every entry is copied, whatever wrote it: our staff actions record their own StaffAction
    and write no LogEntry, so nothing is copied twice and no entry needs guessing about."""
    if not created or kwargs.get("raw"):
        return
    staff_action_write(
        user=instance.user if instance.user_id else None,
        action=LOG_ENTRY_ACTIONS.get(instance.action_flag, "admin.other"),
        target=(
            _label_lower(instance.content_type_id),
            str(instance.object_id or ""),
            instance.object_repr or "",
        ),
        outcome=str(instance.get_change_message()),
    )


LOG_ENTRY_ACTIONS = {ADDITION: "admin.add", CHANGE: "admin.change", DELETION: "admin.delete"}


def _label_lower(content_type_id: int | None) -> str:
    if content_type_id is None:
        return ""
    content_type = ContentType.objects.get_for_id(content_type_id)
    return f"{content_type.app_label}.{content_type.model}"


@admin.action(permissions=["delete"], description=delete_selected.short_description)
def delete_selected_audited(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> Any:
    """Django's "Delete selected" whose log entries all reach the audit trail: Django writes
    the entries of a delete of two or more rows with bulk_create, which sends no post_save."""
    last_before = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = delete_selected(modeladmin, request, queryset)
    written = LogEntry.objects.filter(
        pk__gt=last_before, user_id=request.user.pk, action_flag=DELETION
    ).select_related("user")
    entries = list(written)
    if len(entries) > 1:  # one entry is saved singly: log_entry_copy has it already
        for entry in entries:
            log_entry_copy(LogEntry, entry, created=True)
    return response


admin.site.add_action(delete_selected_audited, "delete_selected")

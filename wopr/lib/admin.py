"""Admin building blocks shared by the apps: read-only views, escaped HTML helpers and the
bounded-count paginator every changelist of the site uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# A changelist counts at most this many rows (and one more, to know there are more).
CHANGELIST_COUNT_LIMIT = 10_000


class ReadOnlyAdminMixin:
    """For rows only services may write: staff can look, never add, edit or delete by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only table of related rows with a link to each row's own page."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


def html_table(headers: Iterable[str], rows: Iterable[tuple[Any, ...]], empty: str) -> SafeString:
    """An escaped HTML table; every cell goes through format_html."""
    rows = list(rows)
    if not rows:
        return format_html("<p>{}</p>", empty)
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def admin_link(obj: Any, text: Any = None) -> SafeString:
    """A link to an object's change page in the admin."""
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


class BoundedCountPaginator(Paginator):
    """A paginator that never counts a whole table: it counts the rows of the first
    `limit` + 1 (a `LIMIT` subquery, ordering dropped), so a changelist of 10,000,000 rows costs
    what one of 10,001 does, on SQLite and PostgreSQL alike. Beyond the limit the page says
    "more than 10,000" and the last pages are reached by filtering or searching instead.

    PostgreSQL's planner estimate (pg_class.reltuples) would be free for an unfiltered list,
    but it is wrong after bulk loads until ANALYZE and does not exist on SQLite; an exact count
    up to the limit is what staff can trust."""

    limit = CHANGELIST_COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        """The number of rows, or `limit` + 1 when there are more."""
        if not isinstance(self.object_list, QuerySet):
            return super().count
        return self.object_list.order_by().values("pk")[: self.limit + 1].count()

    @property
    def capped(self) -> bool:
        """True when there are more rows than were counted."""
        return self.count > self.limit


def _chosen_by_class(model_admin: admin.ModelAdmin, name: str) -> bool:
    """Whether a class between the admin's own and Django's ModelAdmin sets `name`."""
    for cls in type(model_admin).__mro__:
        if cls is admin.ModelAdmin:
            return False
        if name in vars(cls):
            return True
    return False


def changelist_defaults_apply(model_admin: admin.ModelAdmin) -> None:
    """Give a registered admin the site's changelist defaults unless its class chose its own:
    no full-table count (`show_full_result_count`) and the bounded-count paginator. Applied by
    WoprAdminSite.register, so dj-stripe's and django-q2's admins get them too."""
    if not _chosen_by_class(model_admin, "show_full_result_count"):
        model_admin.show_full_result_count = False
    if not _chosen_by_class(model_admin, "paginator"):
        model_admin.paginator = BoundedCountPaginator


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on one field (`parameter_name`) whose values come from `choices_known()`."""

    def choices_known(self) -> list[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(value, value) for value in self.choices_known()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.parameter_name: self.value()})

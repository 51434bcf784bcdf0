"""Staff views of the PDFs rendered for Beacons (with a download link) and the e-mail log."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from documents.models import Document, EmailMessage
from wopr.lib.admin import FixedChoicesFilter, ReadOnlyAdminMixin


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "beacon", "kind", "size_bytes", "created_at", "download")
    list_filter = ("kind",)
    search_fields = ("beacon__name", "beacon__fqdn", "sha256")
    list_select_related = ("beacon",)
    fields = ("beacon", "kind", "path", "sha256", "size_bytes", "created_at", "download")
    readonly_fields = fields

    @admin.display(description="PDF")
    def download(self, obj: Document) -> SafeString:
        url = reverse("admin:documents_document_download", args=[obj.pk])
        return format_html('<a href="{}">Download</a>', url)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="documents_document_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: int) -> FileResponse:
        """Serve the stored PDF to staff who may view documents."""
        from documents.services import document_path

        document = get_object_or_404(Document.objects.select_related("beacon"), pk=object_id)
        if not self.has_view_permission(request, document):
            raise Http404
        try:
            handle = document_path(document).open("rb")
        except (OSError, ValueError) as error:
            raise Http404("the document's file is missing") from error
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"{document.beacon.name}-{document.kind}.pdf",
            content_type="application/pdf",
        )


class EmailTemplateFilter(FixedChoicesFilter):
    """E-mails by template: the templates on disk (templates/emails), no DISTINCT query."""

    title = "template"
    parameter_name = "template"

    def choices_known(self) -> list[str]:
        folder = Path(settings.BASE_DIR) / "templates" / "emails"
        return sorted({path.name.split(".")[0] for path in folder.glob("*.subject.txt")})


@admin.register(EmailMessage)
class EmailMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "template",
        "recipient",
        "subject",
        "status",
        "attempts",
        "beacon",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", EmailTemplateFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("recipient", "subject", "idempotency_key", "provider_message_id")
    list_select_related = ("beacon",)
    fields = (
        "idempotency_key",
        "template",
        "recipient",
        "subject",
        "beacon",
        "order",
        "status",
        "provider_message_id",
        "attempts",
        "last_error",
        "body_text",
        "created_at",
        "updated_at",
        "sent_at",
    )
    readonly_fields = fields

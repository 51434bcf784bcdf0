"""HTML-to-PDF rendering. The only module that imports WeasyPrint."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher

TEMPLATE_DIR = "documents/"

# DOCUMENTS_PAGE_SIZE (compared case-insensitively) to the CSS `@page { size }` keyword. Only
# these fixed keywords reach the stylesheet, never the setting's own text.
PAGE_SIZES: dict[str, str] = {"a4": "A4", "letter": "letter"}


def page_size() -> str:
    """The CSS page size for DOCUMENTS_PAGE_SIZE; ImproperlyConfigured for anything else (the
    system check `documents.E001` reports that at start-up)."""
    configured = str(getattr(settings, "DOCUMENTS_PAGE_SIZE", "A4")).strip().lower()
    try:
        return PAGE_SIZES[configured]
    except KeyError:
        raise ImproperlyConfigured("DOCUMENTS_PAGE_SIZE must be A4 or Letter") from None


def _offline_url_fetcher() -> URLFetcher:
    """A fetcher that only resolves inline `data:` URLs.

    Documents are rendered inside workers that must never reach the network or the local
    filesystem on behalf of a template: any other scheme (http, https, file, ftp) is refused and
    WeasyPrint skips the resource.
    """
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """Render the Django template `template_name` (under templates/documents/) to PDF bytes.

    `template_name` is given as Django names it, e.g. "documents/welcome_card.html". The page
    size follows DOCUMENTS_PAGE_SIZE (`page_size` in the template). The bytes are not
    reproducible (embedded font subsets carry a timestamp): compare checksums of stored files,
    never of fresh renders.
    """
    if not template_name.startswith(TEMPLATE_DIR):
        raise ValueError(f"PDF templates live under {TEMPLATE_DIR!r}: {template_name!r}")
    html = render_to_string(template_name, {**context, "page_size": page_size()})
    document = HTML(string=html, base_url=None, url_fetcher=_offline_url_fetcher())
    return document.write_pdf()

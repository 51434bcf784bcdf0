"""HTML-to-PDF rendering. The only module that imports WeasyPrint."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher

TEMPLATE_DIR = "documents/"


def _offline_url_fetcher() -> URLFetcher:
    """A fetcher that only resolves inline `data:` URLs.

    Documents are rendered inside workers that must never reach the network or the local
    filesystem on behalf of a template: any other scheme (http, https, file, ftp) is refused and
    WeasyPrint skips the resource.
    """
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """Render the Django template `template_name` (under templates/documents/) to PDF bytes.

    `template_name` is given as Django names it, e.g. "documents/welcome_card.html". The bytes
    are not reproducible (embedded font subsets carry a timestamp): compare checksums of stored
    files, never of fresh renders.
    """
    if not template_name.startswith(TEMPLATE_DIR):
        raise ValueError(f"PDF templates live under {TEMPLATE_DIR!r}: {template_name!r}")
    html = render_to_string(template_name, context)
    document = HTML(string=html, base_url=None, url_fetcher=_offline_url_fetcher())
    return document.write_pdf()

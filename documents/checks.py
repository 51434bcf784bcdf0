"""System checks for what customers are shown: the support address and the PDFs' paper size.

Messages name the variable, never its value.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

from documents.pdf import page_size

EMBEDDED_SUPPORT_DOMAIN = "@localhost"


@register("wopr")
def check_customer_documents(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """DOCUMENTS_PAGE_SIZE and SUPPORT_EMAIL are usable; the embedded support address is only
    for a development run (a warning with DEBUG off)."""
    messages: list[CheckMessage] = []
    try:
        page_size()
    except ImproperlyConfigured:
        messages.append(Error("DOCUMENTS_PAGE_SIZE must be A4 or Letter.", id="documents.E001"))
    support = getattr(settings, "SUPPORT_EMAIL", "")
    if not _is_one_address(support):
        messages.append(
            Error(
                "SUPPORT_EMAIL must be one e-mail address (customers are told to write to it, "
                "and it is the Reply-To of their e-mails).",
                id="documents.E002",
            )
        )
    elif not settings.DEBUG and support.lower().endswith(EMBEDDED_SUPPORT_DOMAIN):
        messages.append(
            Warning(
                "SUPPORT_EMAIL is the embedded default, which customers cannot write to; set "
                "SUPPORT_EMAIL to your support address.",
                id="documents.W001",
            )
        )
    return messages


def _is_one_address(value: object) -> bool:
    """A single plain address: no display name, list, or line break (it becomes a header)."""
    if not isinstance(value, str) or value != value.strip():
        return False
    try:
        validate_email(value)  # accepts `name@localhost`, the embedded default
    except ValidationError:
        return False
    return True

"""Django's error reports (DEBUG pages, admin e-mails) with our secrets hidden too."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Also hides settings whose names say URL or DSN: DATABASE_URL and REDIS_URL carry
    passwords."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN", flags=re.IGNORECASE
    )

"""WSGI entry point for gunicorn."""

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")
application = get_wsgi_application()


def _log_embedded_defaults() -> None:
    from wopr.checks import embedded_defaults_in_use

    parts = embedded_defaults_in_use()
    if parts:
        logging.getLogger("wopr").warning("running on embedded defaults: %s", ", ".join(parts))


_log_embedded_defaults()

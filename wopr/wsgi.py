"""WSGI entry point for gunicorn.

Django runs system checks only for management commands; gunicorn would start on a fake backend
or without a secret. Here a non-DEBUG start runs our checks and refuses to serve on any error.
"""

import logging
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")
application = get_wsgi_application()


def _refuse_unsafe_start() -> None:
    from django.conf import settings
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    from wopr.checks import embedded_defaults_in_use

    if not settings.DEBUG:
        errors = [issue for issue in checks.run_checks(tags=["wopr"]) if issue.is_serious()]
        if errors:
            raise ImproperlyConfigured(
                "refusing to start: " + " ".join(f"[{e.id}] {e.msg}" for e in errors)
            )
    parts = embedded_defaults_in_use()
    if parts:
        logging.getLogger("wopr").warning("running on embedded defaults: %s", ", ".join(parts))


_refuse_unsafe_start()

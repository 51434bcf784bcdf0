"""WSGI entry point of the bare webhook view (gunicorn -c gunicorn.conf.py benchmarks.bare.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bare.settings"
application = get_wsgi_application()

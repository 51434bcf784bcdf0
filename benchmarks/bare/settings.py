"""Minimal Django settings for the bare webhook view: no apps, no middleware, the project's
database (DATABASE_URL) with the same connection reuse as wopr/settings.py."""

from __future__ import annotations

import environ

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)  # the same value the real web process runs with
SECRET_KEY = env.str("SECRET_KEY", default="bench-bare-view")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.bare.urls"
DATABASES = {"default": env.db_url_config(env.str("DATABASE_URL"))}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
USE_TZ = True
WEBHOOK_SECRET = env.str("STRIPE_TEST_WEBHOOK_SECRET")
WEBHOOK_TOLERANCE_SECONDS = 300

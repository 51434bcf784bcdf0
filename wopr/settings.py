"""Settings for the WOPR control plane, all read from the environment.

With no environment at all the service runs on the embedded defaults: SQLite, the django-q2 ORM
broker, the fake provider and DNS backends and console e-mail. Every variable is documented in
`.env.example` and the README's configuration table.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from wopr.devsecrets import dev_secret
from wopr.envfile import env_file_read

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer's .env (issue 9), under the environment; never under pytest (wopr.envfile).
env_file_read(BASE_DIR)

DEBUG = env.bool("DEBUG", default=True)
# A generated key kept in var/ for the embedded first run; wopr.checks refuses it without DEBUG.
SECRET_KEY = env.str("SECRET_KEY", default="") or dev_secret(BASE_DIR, "secret-key", "")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "djstripe",
    # Before django_q: provisioning's `qcluster` command (the cluster plus the due-job loop)
    # must win over django-q2's.
    "provisioning",
    # After provisioning: backups registers its job workflows over provisioning's engine.
    "backups",
    "django_q",
    "anymail",
    "wopr.apps.WoprConfig",
    "billing",
    "dns",
    "documents",
    "operations",
    "installers",
    # Customers' Authentik accounts (issue 13).
    "accounts",
]

MIDDLEWARE = [
    "wopr.middleware.DropWebhookSecretOverride",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "wopr.urls"
DEFAULT_EXCEPTION_REPORTER_FILTER = "wopr.reporting.ExceptionReporterFilter"
WSGI_APPLICATION = "wopr.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env.str("DATABASE_URL", default="sqlite:///db.sqlite3")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _name = Path(DATABASES["default"]["NAME"])
    if _name.name != ":memory:" and not _name.is_absolute():
        DATABASES["default"]["NAME"] = str(BASE_DIR / _name)
    # Several processes (gunicorn and the worker) share the file: wait for locks instead of
    # failing, and take the write lock up front so two writers never deadlock on an upgrade.
    # A file, not memory, for the test database: the process tests share it with gunicorn and
    # the qcluster they start.
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 behaviour now; silences a dj-stripe admin warning

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

# --- WOPR ---------------------------------------------------------------------------------
WOPR_BASE_DOMAIN = env.str("WOPR_BASE_DOMAIN", default="beacons.localhost")
WOPR_PUBLIC_URL = env.str("WOPR_PUBLIC_URL", default="http://127.0.0.1:8001")
DOCUMENTS_ROOT = Path(env.str("DOCUMENTS_ROOT", default=str(BASE_DIR / "var" / "documents")))
# Uploaded Beacon installer tarballs (content addressed: <sha256>.tar.gz); in the deployment a
# directory on the documents volume, which every web replica mounts.
INSTALLERS_ROOT = Path(env.str("INSTALLERS_ROOT", default=str(BASE_DIR / "var" / "installers")))

PROVIDERS = env.list("PROVIDERS", default=["fake"])
DNS_BACKEND = env.str("DNS_BACKEND", default="fake")
HETZNER_API_URL = env.str("HETZNER_API_URL", default="https://api.hetzner.cloud/v1")
HETZNER_API_TOKEN = env.str("HETZNER_API_TOKEN", default="")
HETZNER_SSH_KEYS = env.list("HETZNER_SSH_KEYS", default=[])
# The Hetzner Cloud project's number (in the console's address): the Beacon page's console link
# goes to the server itself with it, to the project list without (the API never names it).
HETZNER_PROJECT_ID = env.str("HETZNER_PROJECT_ID", default="")
DIGITALOCEAN_API_URL = env.str("DIGITALOCEAN_API_URL", default="https://api.digitalocean.com")
DIGITALOCEAN_API_TOKEN = env.str("DIGITALOCEAN_API_TOKEN", default="")
DIGITALOCEAN_SSH_KEYS = env.list("DIGITALOCEAN_SSH_KEYS", default=[])
# USD per GB and month of a droplet snapshot (DigitalOcean's API gives no price; its list price).
DIGITALOCEAN_SNAPSHOT_PRICE_PER_GB = env.str("DIGITALOCEAN_SNAPSHOT_PRICE_PER_GB", default="0.06")
# Public keys (OpenSSH lines, comma-separated) cloud-init authorises on every new server for the
# operators; the *_SSH_KEYS above are key ids at the provider and stay.
WOPR_OPERATOR_SSH_KEYS = env.list("WOPR_OPERATOR_SSH_KEYS", default=[])
CLOUDFLARE_API_URL = env.str("CLOUDFLARE_API_URL", default="https://api.cloudflare.com/client/v4")
CLOUDFLARE_API_TOKEN = env.str("CLOUDFLARE_API_TOKEN", default="")
CLOUDFLARE_ZONE_ID = env.str("CLOUDFLARE_ZONE_ID", default="")
# The Beacon installer release given by URL (else the current one staff registered in the admin).
WOPR_INSTALLER_URL = env.str("WOPR_INSTALLER_URL", default="")
WOPR_INSTALLER_SHA256 = env.str("WOPR_INSTALLER_SHA256", default="")
WOPR_INSTALLER_VERSION = env.str("WOPR_INSTALLER_VERSION", default="env")
AUTHENTIK_URL = env.str("AUTHENTIK_URL", default="")
AUTHENTIK_API_TOKEN = env.str("AUTHENTIK_API_TOKEN", default="")
# --- issue 13: customers and money -------------------------------------------------------------
# OpenID Connect (Authentik's provider for WOPR): staff sign-in and customers' bearer tokens.
# Blank OIDC_ISSUER: no single sign-on (local staff passwords only) and no self-service API.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").rstrip("/")
# SPEC §10's names in the environment; mozilla-django-oidc's names in settings.
OIDC_RP_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
# The audience customers' access tokens must carry (blank: the client id).
OIDC_API_AUDIENCE = env.str("OIDC_API_AUDIENCE", default="")
# What a paid order whose provisioning failed for good gets: "staff" (queued for one click) or
# "refund" (the paid invoice refunded and the subscription cancelled at once).
FAILED_ORDER_POLICY = env.str("FAILED_ORDER_POLICY", default="staff")
# What the failure e-mail promises under policy "staff": a refund or a finished Beacon within
# this many hours.
FAILED_ORDER_HOURS = env.int("FAILED_ORDER_HOURS", default=24)
# Customer self-service (/api/v1/me/, bearer tokens of OIDC_ISSUER): where Stripe's billing
# portal sends the customer back (blank: WOPR_PUBLIC_URL), the minutes between two resent
# welcome e-mails of one Beacon, and each signed-in customer's request budget.
SELFSERVICE_RETURN_URL = env.str("SELFSERVICE_RETURN_URL", default="")
WELCOME_RESEND_MINUTES = env.int("WELCOME_RESEND_MINUTES", default=15)
THROTTLE_SELFSERVICE = env.str("THROTTLE_SELFSERVICE", default="60/min")

# The fake cloud: how long a fake server takes to boot and a fake Beacon to report `complete`
# (its earlier stages spread evenly before that).
FAKE_SERVER_BOOT_SECONDS = env.float("FAKE_SERVER_BOOT_SECONDS", default=2.0)
FAKE_BEACON_INSTALL_SECONDS = env.float("FAKE_BEACON_INSTALL_SECONDS", default=5.0)

# Jobs: bounded retries with exponential backoff; a lease so a dead worker's job is picked up.
# 10 attempts with these delays ride out 15-30 minutes of provider trouble before compensating.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=10)
# Undoing (deleting what a failed job made) is retried for hours: giving up may leak a server.
JOB_COMPENSATE_MAX_ATTEMPTS = env.int("JOB_COMPENSATE_MAX_ATTEMPTS", default=40)
JOB_BACKOFF_BASE_SECONDS = env.float("JOB_BACKOFF_BASE_SECONDS", default=5.0)
JOB_BACKOFF_MAX_SECONDS = env.float("JOB_BACKOFF_MAX_SECONDS", default=600.0)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=120)
JOB_POLL_SECONDS = env.float("JOB_POLL_SECONDS", default=5.0)
# The shortest pause between two looks at a booting server (it grows to JOB_POLL_SECONDS).
JOB_POLL_MIN_SECONDS = env.float("JOB_POLL_MIN_SECONDS", default=1.0)
# Time limits of a Beacon's install (the protocol of provisioning/callbacks.py): a `booted`
# report within INSTALL_BOOT_LIMIT_SECONDS of the server running, then a new stage at least
# every INSTALL_PROGRESS_LIMIT_SECONDS. At a limit, INSTALL_TIMEOUT_ACTION: `retry` deletes the
# server and tries a fresh one (at most INSTALL_FRESH_SERVERS per run, then as `staff`);
# `staff` fails the job keeping the server, flags the order and e-mails operators and customer.
INSTALL_BOOT_LIMIT_SECONDS = env.int("INSTALL_BOOT_LIMIT_SECONDS", default=600)
INSTALL_PROGRESS_LIMIT_SECONDS = env.int("INSTALL_PROGRESS_LIMIT_SECONDS", default=1200)
INSTALL_TIMEOUT_ACTION = env.str("INSTALL_TIMEOUT_ACTION", default="retry")
INSTALL_FRESH_SERVERS = env.int("INSTALL_FRESH_SERVERS", default=1)
JOB_SWEEP_MINUTES = env.int("JOB_SWEEP_MINUTES", default=1)
# How often each qcluster's due-job loop looks for jobs whose wake-up time has come (seconds).
JOB_DUE_POLL_SECONDS = env.float("JOB_DUE_POLL_SECONDS", default=0.25)

# Provider health sweep (`manage.py provider_health`; also the django-q2 schedule
# "wopr-provider-health", every PROVIDER_HEALTH_SWEEP_MINUTES).
PROVIDER_HEALTH_TIMEOUT_SECONDS = env.float("PROVIDER_HEALTH_TIMEOUT_SECONDS", default=10.0)
PROVIDER_HEALTH_HISTORY_DAYS = env.int("PROVIDER_HEALTH_HISTORY_DAYS", default=30)

# --- Stripe (dj-stripe) ----------------------------------------------------------------------
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env.str("STRIPE_LIVE_SECRET_KEY", default="")
STRIPE_TEST_WEBHOOK_SECRET = env.str("STRIPE_TEST_WEBHOOK_SECRET", default="") or dev_secret(
    BASE_DIR, "webhook-secret", "whsec_dev_"
)
STRIPE_LIVE_WEBHOOK_SECRET = env.str("STRIPE_LIVE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
if STRIPE_API_BASE:
    STRIPE_API_HOST = STRIPE_API_BASE  # dj-stripe points stripe-python here
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_EVENT_CALLBACK = "billing.webhooks.process_trigger"
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)

# --- E-mail ----------------------------------------------------------------------------------
EMAIL_FROM = env.str("EMAIL_FROM", default="WOPR <noreply@localhost>")
DEFAULT_FROM_EMAIL = EMAIL_FROM
SERVER_EMAIL = EMAIL_FROM
OPERATORS_EMAIL = env.str("OPERATORS_EMAIL", default="ops@localhost")
SMTP_HOST = env.str("SMTP_HOST", default="")
if SMTP_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = SMTP_HOST
    EMAIL_PORT = env.int("SMTP_PORT", default=587)
    EMAIL_HOST_USER = env.str("SMTP_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("SMTP_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("SMTP_USE_TLS", default=True)
    EMAIL_TIMEOUT = 20
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="wopr.lib.console_email.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "mail"))
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in env.ENVIRON.items()
    if key.startswith("ANYMAIL_")
}

# --- Task queue (django-q2) ------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict[str, object] = {
    "name": "wopr",
    "workers": env.int("Q_WORKERS", default=2),
    # A task may run for `timeout` seconds; the broker redelivers after `retry`, which must be
    # longer. django-q2 never retries on its own: the Job row decides (finite attempts).
    "timeout": 90,
    "retry": 120,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # How long an idle ORM broker waits before looking for a task again: a Beacon's callback
    # or a staff action waits at most this long for a worker (one small query per look).
    Q_CLUSTER["poll"] = 0.2

# --- DRF -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# `text` (one readable line a record) or `json` (one JSON object a line: time, level, logger,
# message, exception, extras; wopr.lib.jsonlog). gunicorn.conf.py reads it too.
LOG_FORMATS = ("text", "json")
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
if LOG_FORMAT not in LOG_FORMATS:  # before logging is set up, so no system check could say it
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of: {', '.join(LOG_FORMATS)}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "wopr.lib.jsonlog.RedactingJsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        # stripe-python logs request details at INFO; keep it quiet.
        "stripe": {"level": "WARNING"},
        # WeasyPrint warns on every render when HarfBuzz-Subset is missing (it falls back to
        # fontTools, which works); errors still show.
        "weasyprint": {"level": "ERROR"},
        "fontTools": {"level": "WARNING"},
    },
}

# --- Storefront API (issue 4) ----------------------------------------------------------------
# drf-spectacular (schema at /api/schema/, docs at /api/docs/), CORS for the storefront on
# /api/v1/ only, one error body under /api/, per-client-IP throttling.
INSTALLED_APPS += ["corsheaders", "drf_spectacular"]
# CORS answers preflights before CommonMiddleware can redirect them.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"),
    "corsheaders.middleware.CorsMiddleware",
)

REST_FRAMEWORK.update(
    {
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "EXCEPTION_HANDLER": "wopr.api_common.api_exception_handler",
    }
)
SPECTACULAR_SETTINGS = {
    "TITLE": "WOPR control plane API",
    "DESCRIPTION": "The storefront's catalogue, beacon-name check, checkout and order status, "
    "and the Beacons' callback. Every error has the body "
    '`{"error": {"code", "message", "fields"}}`.',
    "VERSION": "1",
    # 3.1: JSON Schema 2020-12, so each Server-Sent Event's `data` can name its JSON schema.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "billing.models.OrderStatus",
        "JobStateEnum": "provisioning.models.JobState",
        "BeaconStatusEnum": "provisioning.models.BeaconStatus",
        "InstallStageEnum": "provisioning.serializers.INSTALL_STAGES",
    },
}

# The storefront's origins (scheme://host[:port], comma-separated) may call /api/v1/ from a browser.
STOREFRONT_ORIGINS = env.list("STOREFRONT_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = STOREFRONT_ORIGINS
CORS_URLS_REGEX = r"^/api/v1/.*$"
CORS_ALLOW_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]  # DELETE: /me/.../cancel (undo)
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After"]

# Where Stripe sends the buyer after paying or cancelling; {ORDER_ID} becomes the order id
# (Stripe itself fills {CHECKOUT_SESSION_ID}). Default: the order's status in this API.
STOREFRONT_SUCCESS_URL = env.str(
    "STOREFRONT_SUCCESS_URL", default=f"{WOPR_PUBLIC_URL.rstrip('/')}/api/v1/orders/{{ORDER_ID}}"
)
STOREFRONT_CANCEL_URL = env.str(
    "STOREFRONT_CANCEL_URL", default=f"{WOPR_PUBLIC_URL.rstrip('/')}/api/v1/orders/{{ORDER_ID}}"
)
# ORDER_EVENTS_*: see the block of issue 9 (serving) at the end.

# Requests per client IP (DRF rate syntax: N/sec|min|hour|day): checkout, and every other
# /api/v1/ endpoint. The client IP is REMOTE_ADDR unless that is a trusted proxy (addresses or
# networks, comma-separated); then the right-most X-Forwarded-For entry that is not one.
THROTTLE_CHECKOUT = env.str("THROTTLE_CHECKOUT", default="10/min")
THROTTLE_DEFAULT = env.str("THROTTLE_DEFAULT", default="120/min")
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# CACHES: see the block of issue 9 (serving) at the end.
# --- end of Storefront API (issue 4) ---

# --- Subscription lifecycle (issue 5) ---------------------------------------------------------
# Suspend a past-due subscription's Beacon once this many payment attempts failed on its unpaid
# invoices (Stripe's `unpaid` status suspends at once).
SUSPEND_AFTER_FAILURES = env.int("SUSPEND_AFTER_FAILURES", default=3)
# What suspension does to the server: `power_off` (the only policy built so far; the provider
# keeps billing a powered-off server, so cancellation decommissions after the grace period).
SUSPENDED_POLICY = env.str("SUSPENDED_POLICY", default="power_off")
# Days between a subscription's deletion and its Beacon's server and DNS records being deleted.
DECOMMISSION_GRACE_DAYS = env.int("DECOMMISSION_GRACE_DAYS", default=7)
# Hours staff may power a decommissioning Beacon on for its customer to export their data
# (never past the deletion date); the decommission job powers it off again after.
EXPORT_WINDOW_HOURS = env.int("EXPORT_WINDOW_HOURS", default=48)
# `manage.py reconcile --fix` deletes an orphan server or DNS record only once it has been seen
# orphaned for this long (it may belong to work still in flight).
RECONCILE_ORPHAN_MIN_AGE_HOURS = env.int("RECONCILE_ORPHAN_MIN_AGE_HOURS", default=24)

# --- Deployment: health and workers (issue 6) --------------------------------------------------
# /api/health says `degraded` when no django-q2 worker is alive (none reporting through the
# broker, no task finished for HEALTH_WORKER_STALE_SECONDS). On by default in production only:
# a development web process runs without a worker now and then.
HEALTH_REQUIRE_WORKER = env.bool("HEALTH_REQUIRE_WORKER", default=not DEBUG)
# A live cluster runs the job sweep every JOB_SWEEP_MINUTES (its scheduler looks every ~30 s).
HEALTH_WORKER_STALE_SECONDS = env.int(
    "HEALTH_WORKER_STALE_SECONDS", default=120 * JOB_SWEEP_MINUTES + 60
)
# --- end of Deployment (issue 6) ---

# --- Issue 9: customer documents and e-mail ---
# The address customers are told to write to: in the PDFs, in the e-mails and as the Reply-To of
# every customer e-mail. Never OPERATORS_EMAIL (that is where alerts go). A start with DEBUG off
# warns while it is the embedded default.
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="support@localhost")
# Paper size of the PDFs: `A4` or `Letter` (a system check refuses anything else).
DOCUMENTS_PAGE_SIZE = env.str("DOCUMENTS_PAGE_SIZE", default="A4")
# --- end of Issue 9: customer documents and e-mail ---

# --- Issue 9: admin sign-in and HTTPS ---------------------------------------------------------
# The admin site is ours (wopr.admin_site): it asks staff for a TOTP code when ADMIN_REQUIRE_OTP
# is on. Lockouts (django-axes), second factors (django-otp), a content security policy
# (django-csp) and the API docs' packaged Redoc (drf-spectacular-sidecar).
INSTALLED_APPS[INSTALLED_APPS.index("django.contrib.admin")] = "wopr.admin_config.WoprAdminConfig"
INSTALLED_APPS += [
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "drf_spectacular_sidecar",
]
# X-Forwarded-Proto counts only from a trusted proxy: dropped before SecurityMiddleware reads it.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware"),
    "wopr.security.TrustedProxyHeaders",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django_otp.middleware.OTPMiddleware",
)
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, as django-axes requires
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out sign-in before the password
    "django.contrib.auth.backends.ModelBackend",
]

# Sign-in lockout: after ADMIN_LOGIN_FAILURE_LIMIT failures, the username is locked (whatever
# address tries it: guessing spread over many addresses) and so is the address (whatever
# username it tries: one address spraying many names), each for ADMIN_LOCKOUT_COOLOFF_SECONDS
# after its last failure. Unknown usernames lock the same way, so a lockout says nothing about
# who exists. The client address is the API throttles' (REMOTE_ADDR, or X-Forwarded-For from a
# TRUSTED_PROXIES proxy). Unlock early: `manage.py axes_reset_username <name>` / `axes_reset`.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("ADMIN_LOCKOUT_COOLOFF_SECONDS", default=900))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "wopr.api_common.client_ip"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# Refused sign-ins during a lockout do not restart it: the cool-off ends on time for staff even
# while someone keeps knocking (they get the same refusal either way).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Stored with each failed attempt (AccessAttempt.post_data): never the password or the code.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]

# Second factor: with ADMIN_REQUIRE_OTP on, only staff who signed in with a TOTP code from a
# confirmed device reach the admin (enrol: `manage.py totp_enroll <username>`). Default: on
# when DEBUG is off, so `make run` stays password-only.
ADMIN_REQUIRE_OTP = env.bool("ADMIN_REQUIRE_OTP", default=not DEBUG)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="WOPR control plane")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the device admin never shows a TOTP key

# Staff single sign-on (issue 13, wopr.staff_sso): with OIDC_ISSUER set, the admin's sign-in page
# offers "Sign in with Authentik" (mozilla-django-oidc under /oidc/). Endpoints follow Authentik's
# layout (issuer https://<authentik>/application/o/<slug>/); each can be set on its own.
# OIDC_STAFF_GROUPS maps Authentik groups to staff roles (Django groups); anyone in none of them
# is refused. Staff signed in this way skip the local TOTP (ADMIN_REQUIRE_OTP) only when the ID
# token's `amr` names one of OIDC_STAFF_MFA_AMR (Authentik puts "mfa" there after an MFA stage);
# a password-only sign-in is asked for the local TOTP code.
_OIDC_SHARED = OIDC_ISSUER.rsplit("/", 1)[0]
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str(
    "OIDC_OP_AUTHORIZATION_ENDPOINT", default=f"{_OIDC_SHARED}/authorize/"
)
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default=f"{_OIDC_SHARED}/token/")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default=f"{_OIDC_SHARED}/userinfo/")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default=f"{OIDC_ISSUER}/jwks/")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile"  # Authentik's profile scope carries `groups`
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_CALLBACK_CLASS = "wopr.staff_sso.StaffOIDCCallbackView"
OIDC_STAFF_GROUPS = env.str(
    "OIDC_STAFF_GROUPS",
    default="wopr-support=support,wopr-operations=operations,wopr-owners=owner",
)
OIDC_STAFF_MFA_AMR = env.str("OIDC_STAFF_MFA_AMR", default="mfa")
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=refused"
# Every OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, a staff page load asks Authentik again without a
# prompt (SessionRefresh): someone deactivated or removed from the staff groups there is signed
# out here within that time, not at the end of the session.
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env.int("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", default=900)
OIDC_EXEMPT_URLS = [re.compile(r"^/api/")]  # API clients get answers, not redirects
if OIDC_ISSUER:
    AUTHENTICATION_BACKENDS.append("wopr.staff_sso.StaffOIDCBackend")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django_otp.middleware.OTPMiddleware") + 1,
        "mozilla_django_oidc.middleware.SessionRefresh",
    )

# HTTPS: Caddy terminates TLS and sets X-Forwarded-Proto. Everything but /api/health (the
# container's HEALTHCHECK and Caddy's probe speak plain http inside) is redirected to https.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# /metrics too: a scraper inside the host or the container network speaks plain http to the
# web process (Caddy redirects http to https for everyone outside).
SECURE_REDIRECT_EXEMPT = [r"^api/health$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    # Preloading is a decision for the owner of the registrable domain (the control plane runs
    # on a subdomain); without it the check would warn on every deployment.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# Content security policy: scripts only from this origin. Inline styles and blob: workers are
# allowed because Redoc (/api/docs/) builds its styles and search worker that way; the admin
# sets inline style attributes too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SPECTACULAR_SETTINGS["REDOC_DIST"] = "SIDECAR"  # packaged Redoc, served from STATIC_URL
# --- end of Issue 9: admin sign-in and HTTPS ---

# --- Issue 9: serving ----------------------------------------------------------------------------
# Shared state of the web processes: throttle counters and the open-stream slots (wopr.slots)
# live in the `api` cache, which every process and replica must share: Redis when REDIS_URL is
# set, the database otherwise (its table is made by `createcachetable`, which `make run`, the
# container's migration step and the test database creation run; it is idempotent).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "wopr-api",
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "wopr_cache",
            # Culling past MAX_ENTRIES would drop live throttle and stream slots: keep it far
            # above what the throttles can hold (expired rows are deleted as they are read).
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    ),
}

# gunicorn (gunicorn.conf.py) reads the same two variables: threads per web process, and the
# seconds after which a silent worker is restarted.
WEB_THREADS = env.int("WEB_THREADS", default=32)
GUNICORN_TIMEOUT = env.int("GUNICORN_TIMEOUT", default=60)
# GET /api/v1/orders/<id>/events: each stream ends after this many seconds (the client then
# reconnects with Last-Event-ID), always at least 10 s below the worker timeout.
ORDER_EVENTS_DEADLINE_SECONDS = min(
    env.float("ORDER_EVENTS_DEADLINE_SECONDS", default=45.0), max(GUNICORN_TIMEOUT - 10, 5)
)
# Open streams: per web process (below its thread count, so health, admin and webhooks always
# find a thread: by default a quarter of the threads, at least 2, stay free), per client
# address, and in total over every process and replica. Beyond: 503, 429, 503 (Retry-After).
ORDER_EVENTS_MAX_PER_PROCESS = env.int(
    "ORDER_EVENTS_MAX_PER_PROCESS", default=max(1, WEB_THREADS - max(2, WEB_THREADS // 4))
)
ORDER_EVENTS_MAX_PER_CLIENT = env.int("ORDER_EVENTS_MAX_PER_CLIENT", default=4)
ORDER_EVENTS_MAX_OPEN = env.int("ORDER_EVENTS_MAX_OPEN", default=200)
# --- end of Issue 9: serving ---

# --- Issue 9: Stripe webhooks, secrets, input -------------------------------------------------
# dj-stripe's own webhook route (/stripe/webhook/<uuid>/, for endpoints made in dj-stripe's
# admin) is not mounted unless this asks for it; it then checks signatures and `livemode` like
# /api/webhook/stripe before storing anything.
STRIPE_DJSTRIPE_WEBHOOK_ROUTE = env.bool("STRIPE_DJSTRIPE_WEBHOOK_ROUTE", default=False)
# Every log record reaching the console has configured secrets (and Stripe-shaped keys) redacted.
LOGGING.setdefault("filters", {})["redact"] = {"()": "wopr.lib.redact.RedactingFilter"}
LOGGING["handlers"]["console"].setdefault("filters", []).append("redact")
# --- end of Issue 9: Stripe webhooks, secrets, input ---

# --- Issue 9: customers and checkout ---------------------------------------------------------
# The region of a paid session whose metadata names a bundle and tier but no region (a session
# made outside the storefront, SPEC §3). Must be one of the catalogue's regions (system check
# wopr.E060); empty: such sessions are flagged for staff instead.
DEFAULT_REGION = env.str("DEFAULT_REGION", default="eu-central").strip()
# --- end of Issue 9: customers and checkout ---

# --- Issue 9: schedules, provider health, placement --------------------------------------------
# Minutes between runs of the periodic django-q2 schedules (operations/schedules.py writes
# them from these settings after every `migrate`, i.e. at each start; settings win over edits
# made in the admin). JOB_SWEEP_MINUTES (above) is the job sweep; 0 switches these two off.
PROVIDER_HEALTH_SWEEP_MINUTES = env.int("PROVIDER_HEALTH_SWEEP_MINUTES", default=15)
RECONCILE_SWEEP_MINUTES = env.int("RECONCILE_SWEEP_MINUTES", default=60)

# Backups (backups app): the sweep starting each active Beacon's daily snapshot job runs every
# BACKUPS_DAILY_MINUTES (0 switches it off), at most BACKUPS_DAILY_BATCH jobs per run; a
# snapshot not available BACKUP_SNAPSHOT_DEADLINE_MINUTES after it was asked for fails its job.
BACKUPS_DAILY_MINUTES = env.int("BACKUPS_DAILY_MINUTES", default=60)
BACKUPS_DAILY_BATCH = env.int("BACKUPS_DAILY_BATCH", default=200)
BACKUP_SNAPSHOT_DEADLINE_MINUTES = env.int("BACKUP_SNAPSHOT_DEADLINE_MINUTES", default=240)
# --- end of Issue 9: schedules, provider health, placement ---

# --- Issue 14: metrics ---------------------------------------------------------------------------
# GET /metrics (wopr.metrics_view): a scraper sends `Authorization: Bearer <METRICS_TOKEN>`;
# empty: only signed-in staff with the permission wopr.view_metrics can read it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# --- end of Issue 14: metrics ---

"""The project package as a Django app: system checks and the start-up banner."""

import logging

from django.apps import AppConfig

logger = logging.getLogger("wopr")


class WoprConfig(AppConfig):
    name = "wopr"
    verbose_name = "WOPR"

    def ready(self) -> None:
        from integrations.errors import redactor_install
        from wopr import checks  # noqa: F401  (registers the system checks)
        from wopr.lib.redact import redact

        redactor_install(redact)  # vendor errors are redacted before anyone stores them

        from django.db.models.signals import post_migrate

        from wopr.roles import roles_post_migrate

        # The staff roles' groups are written after every migrate (wopr.roles).
        post_migrate.connect(roles_post_migrate, sender=self, dispatch_uid="wopr_roles_sync")

        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from wopr.admin import log_entry_copy

        # Every admin add, change and delete is copied into the audit trail (wopr.admin).
        post_save.connect(log_entry_copy, sender=LogEntry, dispatch_uid="wopr_log_entry_copy")

        _drop_djstripe_callback_deprecation_check()


def _drop_djstripe_callback_deprecation_check() -> None:
    """dj-stripe warns on every command that DJSTRIPE_WEBHOOK_EVENT_CALLBACK is deprecated.

    It is still the only hook that replaces processing, which the offline path needs (see
    billing.webhooks); the warning has no id to silence, so the check is unregistered here.
    """
    from django.core.checks.registry import registry
    from djstripe import checks as djstripe_checks

    registry.registered_checks.discard(djstripe_checks.check_webhook_event_callback_accepts_api_key)

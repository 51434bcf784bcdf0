"""The operations app: what looks after the fleet on a timer or at staff's command, above
provisioning: the provider health sweep, reconciliation, and the periodic schedules."""

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class OperationsConfig(AppConfig):
    name = "operations"

    def ready(self) -> None:
        """Write the periodic schedules from their settings after every `migrate` (each start
        of `make run` and of the web and worker containers migrates first)."""
        from operations.schedules import schedules_post_migrate

        # post_migrate is sent once per app with models (this app has none): listen for
        # django-q2's, whose Schedule table the sync writes, so it runs once per migrate.
        post_migrate.connect(
            schedules_post_migrate,
            sender=apps.get_app_config("django_q"),
            dispatch_uid="wopr-schedules-sync",
        )

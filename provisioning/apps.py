"""The provisioning app: Beacons, jobs, providers, and the periodic schedules."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        """Write the periodic schedules from their settings after every `migrate` (each start
        of `make run` and of the web and worker containers migrates first)."""
        from provisioning.schedules import schedules_post_migrate

        # sender=self: post_migrate is sent once per installed app; sync once per migrate.
        post_migrate.connect(
            schedules_post_migrate, sender=self, dispatch_uid="wopr-schedules-sync"
        )

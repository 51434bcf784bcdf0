"""The provisioning app: Beacons, jobs, providers, and the periodic schedules."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        """Register the workflows, and write the periodic schedules from their settings after
        every `migrate` (each start of `make run` and of the web and worker containers migrates
        first)."""
        from provisioning.jobs import workflow_register
        from provisioning.lifecycle import DECOMMISSION, RESUME, SUSPEND
        from provisioning.provision import PROVISION
        from provisioning.schedules import schedules_post_migrate

        for kind, workflow in (
            ("provision", PROVISION),
            ("suspend", SUSPEND),
            ("resume", RESUME),
            ("decommission", DECOMMISSION),
        ):
            workflow_register(kind, workflow)

        # sender=self: post_migrate is sent once per installed app; sync once per migrate.
        post_migrate.connect(
            schedules_post_migrate, sender=self, dispatch_uid="wopr-schedules-sync"
        )

"""The provisioning app: Beacons, their jobs and workflows, providers."""

from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        """Register the workflows (the engine runs only what is registered here)."""
        from provisioning.jobs import workflow_register
        from provisioning.lifecycle import DECOMMISSION, RESUME, SUSPEND
        from provisioning.provision import PROVISION
        from provisioning.resize import RESIZE

        for kind, workflow in (
            ("provision", PROVISION),
            ("suspend", SUSPEND),
            ("resume", RESUME),
            ("decommission", DECOMMISSION),
            ("resize", RESIZE),
        ):
            workflow_register(kind, workflow)

"""The backups app: daily and final snapshots of Beacons, their retention, cost and restore."""

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the snapshot and restore workflows with provisioning's job engine, and
        hand the decommission workflow its final-snapshot steps (provisioning imports no
        backups: the layers go the other way)."""
        from backups.workflows import RESTORE, SNAPSHOT, final_snapshot_steps
        from provisioning.jobs import workflow_register
        from provisioning.lifecycle import final_snapshot_steps_register
        from provisioning.models import JobKind

        workflow_register(JobKind.SNAPSHOT, SNAPSHOT)
        workflow_register(JobKind.RESTORE, RESTORE)
        final_snapshot_steps_register(final_snapshot_steps())

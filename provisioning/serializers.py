"""Shapes of the provisioning side of the API: a Beacon's and a Job's progress as the buyer may
see them, and the Beacon's own callback."""

from __future__ import annotations

from rest_framework import serializers

from provisioning.callbacks import CALLBACK_STATUSES
from provisioning.jobs import WORKFLOWS
from provisioning.models import Beacon, BeaconStatus, Job, JobState

# Statuses in which the Beacon answers at its name; before that the name resolves to nothing.
FQDN_VISIBLE = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED)


def job_percent(job: Job) -> int:
    """How far the job is: its step's place in the workflow (a failed job stays where it
    failed), 100 once completed."""
    if job.state == JobState.COMPLETED:
        return 100
    workflow = WORKFLOWS.get(job.kind)
    if workflow is None:
        return 0
    names = [name for name, _ in workflow.steps]
    step = job.step if job.step in names else job.checkpoint.get("failure", {}).get("step")
    return 100 * names.index(step) // len(names) if step in names else 0


class BeaconProgressSerializer(serializers.Serializer):
    name = serializers.CharField()
    fqdn = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=BeaconStatus.choices)

    def get_fqdn(self, beacon: Beacon) -> str | None:
        """The Beacon's address, only once it is active."""
        return beacon.fqdn if beacon.status in FQDN_VISIBLE else None


class JobProgressSerializer(serializers.Serializer):
    step = serializers.CharField(help_text="The step running or next (`compensate`: undoing).")
    state = serializers.ChoiceField(choices=JobState.choices)
    percent = serializers.SerializerMethodField()

    def get_percent(self, job: Job) -> int:
        return job_percent(job)


class CallbackInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(CALLBACK_STATUSES))
    message = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", trim_whitespace=True
    )


class CallbackAcceptedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()

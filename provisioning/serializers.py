"""Shapes of the provisioning side of the API: a Beacon's and a Job's progress as the buyer may
see them, and the Beacon's own callback."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from provisioning.callbacks import CALLBACK_STATUSES, LOG_TAIL_MAX_CHARS, MESSAGE_MAX_CHARS
from provisioning.checkpoint import Checkpoint
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


# Overall percent of an install (README "Install progress"): 0 until `booted`, then 10, plus 80
# shared evenly by the modules done, 90 once `configuring_sso`, 100 at `complete`.
BOOTED_PERCENT, MODULES_PERCENT, SSO_PERCENT = 10, 80, 90
# What `install.stage` may say (`waiting`: the server runs, no report yet).
INSTALL_STAGES = ("waiting", "booted", "installing", "configuring_sso", "complete", "failed")


def install_progress(job: Job | None) -> dict[str, Any] | None:
    """The buyer's view of the install of a provision job's current server (None before it
    runs). One query: the stages of the job's current round."""
    if job is None or job.kind != "provision" or "wait_server_running" not in job.checkpoint:
        return None
    round_ = Checkpoint(job.checkpoint).install_round
    stages = list(
        job.install_stages.filter(round=round_).order_by("at", "id").values_list("stage", flat=True)
    )
    modules = list(job.beacon.modules)
    states = {module: "pending" for module in modules}
    installing = [stage.split(":", 1)[1] for stage in stages if stage.startswith("installing:")]
    for module in installing:
        states[module] = "done"
    settled = {"configuring_sso", "complete"} & set(stages)
    if installing and not settled:  # the latest module runs; a later report means it is done
        states[installing[-1]] = "installing"
    done = sum(1 for state in states.values() if state == "done")
    return {
        "stage": _install_stage(stages),
        "percent": _install_percent(stages, done, len(states)),
        "round": round_,
        "modules": [{"module": module, "state": state} for module, state in states.items()],
    }


def _install_stage(stages: list[str]) -> str:
    """The furthest stage reported (`failed` wins), `waiting` before the first."""
    for stage in ("failed", "complete", "configuring_sso"):
        if stage in stages:
            return stage
    if any(stage.startswith("installing:") for stage in stages):
        return "installing"
    return "booted" if "booted" in stages else "waiting"


def _install_percent(stages: list[str], done: int, total: int) -> int:
    if "complete" in stages:
        return 100
    if "configuring_sso" in stages:
        return SSO_PERCENT
    if not stages or stages == ["failed"]:
        return 0
    return BOOTED_PERCENT + (MODULES_PERCENT * done // total if total else 0)


class InstallModuleSerializer(serializers.Serializer):
    module = serializers.CharField()
    state = serializers.ChoiceField(choices=["pending", "installing", "done"])


class InstallProgressSerializer(serializers.Serializer):
    stage = serializers.ChoiceField(
        choices=list(INSTALL_STAGES),
        help_text="The furthest stage the Beacon reported (`waiting`: its server runs, no "
        "report yet).",
    )
    percent = serializers.IntegerField(
        min_value=0,
        max_value=100,
        help_text="booted 10, then 10 + 80 x modules done / modules, configuring_sso 90, "
        "complete 100.",
    )
    round = serializers.IntegerField(
        min_value=0, help_text="Fresh servers tried before this one after a stalled install."
    )
    modules = InstallModuleSerializer(many=True)


# More modules than any bundle has; and well inside the stored small integers.
MODULES_MAX = 1000


class CallbackInputSerializer(serializers.Serializer):
    """One report of a Beacon's installer (the protocol in the README's installer contract)."""

    status = serializers.ChoiceField(choices=list(CALLBACK_STATUSES))
    message = serializers.CharField(
        max_length=MESSAGE_MAX_CHARS,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=True,
    )
    module = serializers.CharField(
        max_length=64,
        required=False,
        default="",
        help_text="`installing` only, required: one of the Beacon's modules.",
    )
    index = serializers.IntegerField(
        min_value=1,
        max_value=MODULES_MAX,
        required=False,
        default=None,
        help_text="`installing` only: n of `total`.",
    )
    total = serializers.IntegerField(
        min_value=1,
        max_value=MODULES_MAX,
        required=False,
        default=None,
        help_text="`installing` only: the modules.",
    )
    log_tail = serializers.CharField(
        max_length=LOG_TAIL_MAX_CHARS,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="`failed` only: the end of the install log.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """`installing` names a module of this Beacon (`context["modules"]`) and n of m."""
        if attrs["status"] != "installing":
            return {**attrs, "module": "", "index": None, "total": None}
        errors: dict[str, list[str]] = {}
        for name in ("module", "index", "total"):
            if attrs.get(name) in (None, ""):
                errors[name] = ["Required when the status is `installing`."]
        modules = self.context.get("modules")
        if attrs["module"] and modules is not None and attrs["module"] not in modules:
            errors["module"] = [f"Not a module of this Beacon (one of: {', '.join(modules)})."]
        if attrs["index"] and attrs["total"] and attrs["index"] > attrs["total"]:
            errors["index"] = ["Must not be more than `total`."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class CallbackAcceptedSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    duplicate = serializers.BooleanField(
        help_text="True: this stage was already recorded for this server; nothing new recorded."
    )

"""The resize workflow: the server moves to the size of the tier the customer pays for.

Order.tier is what is paid for, Beacon.tier what runs; provisioning.services.beacon_converge
starts this job for an active Beacon whose two differ (`beacon_needs_resize`). The steps:

- look: read the server and decide (`ResizePlan`): the size the paid tier needs, whether the
  disk grows; a server that already has that size skips straight to the power-on;
- power_off, wait_off: the lifecycle's power steps;
- change_type: read the server first (its size, a resize still running), so a lost answer or
  a retried step never sends a second change; then Hetzner change_type / DigitalOcean resize;
- wait_resized: until the server reports the new size;
- power_on, wait_running: the lifecycle's power steps;
- record: Beacon.tier and server_size; notify: the customer, once (what changed, how long the
  server was off).

Nothing slow sits between power-off and power-on (no e-mail, no snapshot), so the Beacon is off
for the shortest time. Disks never shrink: a bigger tier grows the disk (it buys more storage),
so a tier change that would need a smaller server is refused before anything is powered off,
and staff are told. Any failure before `record` powers the server back on at whatever size it
has (the compensation) and flags the Order for staff: the server is never left off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from billing.catalog import catalog_data, server_size
from billing.models import Order, Tier
from integrations.clouds.base import CloudProvider, Server
from integrations.errors import ProviderError
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import Done, GiveUp, StepFunction, Wait, Workflow
from provisioning.lifecycle import (
    _email,
    _power_step,
    _servers,
    _wait_power_step,
    lifecycle_gave_up,
)
from provisioning.models import Beacon, BeaconStatus, Job
from provisioning.provision import size_number
from provisioning.vendors import get_provider

# A resize copies the disk: minutes, rarely more than half an hour; past this, give up.
RESIZE_DEADLINE = timedelta(minutes=60)


@dataclass(frozen=True)
class ResizePlan:
    """What the job does, decided once by the `look` step (saved as its checkpoint)."""

    server_id: str
    from_size: str
    to_size: str
    from_tier: str
    to_tier: str
    to_tier_id: int
    grow_disk: bool

    @property
    def resizes(self) -> bool:
        """False when the server has the paid tier's size already (only the tier moves)."""
        return self.from_size != self.to_size


def beacon_needs_resize(beacon: Beacon) -> bool:
    """Whether an active Beacon runs another tier than its Order pays for."""
    tier_id = beacon.order.tier_id
    return (
        beacon.status == BeaconStatus.ACTIVE and tier_id is not None and tier_id != beacon.tier_id
    )


def size_position(kind: str, size: str) -> int | None:
    """The catalogue's number (1..4) of a provider's size, None for a size it does not sell."""
    sizes = catalog_data()["server_sizes"]
    numbers = {name: int(number) for number, name in sizes.get(kind, sizes["hetzner"]).items()}
    return numbers.get(size)


def resize_plan(beacon: Beacon, server: Server) -> ResizePlan | str:
    """The plan for the Beacon's server, or why it cannot be resized in place."""
    tier: Tier | None = beacon.order.tier
    if tier is None or beacon.provider is None:
        return "the order names no tier or the Beacon has no provider"
    kind = beacon.provider.kind
    to_size = server_size(kind, size_number(beacon.bundle, tier))
    here, there = size_position(kind, server.size), size_position(kind, to_size)
    if here is not None and there is not None and there < here:
        return (
            f"{tier.slug} needs {to_size}, smaller than the server's {server.size}: a disk never "
            "shrinks, so this needs a new server (restore a snapshot on one) or a refund"
        )
    return ResizePlan(
        server_id=server.id,
        from_size=server.size,
        to_size=to_size,
        from_tier=beacon.tier.slug,
        to_tier=tier.slug,
        to_tier_id=tier.pk,
        grow_disk=here is None or there is None or there > here,
    )


def _beacon(job: Job) -> Beacon:
    return Beacon.objects.select_related("provider", "order__tier", "bundle", "tier").get(
        pk=job.beacon_id
    )


def _plan(job: Job) -> ResizePlan:
    result = Checkpoint(job.checkpoint).result("look")
    result.pop("at", None)
    return ResizePlan(**result)


def _provider(beacon: Beacon) -> CloudProvider:
    if beacon.provider is None:
        raise ProviderError("the Beacon has no provider", transient=False)
    return get_provider(beacon.provider.kind)


# --- the steps -------------------------------------------------------------------------------


def step_look(job: Job) -> Done | GiveUp:
    """Read the Beacon's one server and decide the plan; nothing is touched yet."""
    beacon = _beacon(job)
    _, servers = _servers(beacon)
    if len(servers) != 1:
        return GiveUp(f"resize needs exactly one server for the Beacon; found {len(servers)}")
    plan = resize_plan(beacon, servers[0])
    if isinstance(plan, str):
        return GiveUp(f"resize refused: {plan}")
    if not plan.resizes:
        return Done(asdict(plan), f"the server has {plan.to_size} already: only the tier moves")
    disk = "the disk grows too" if plan.grow_disk else "the disk stays"
    return Done(asdict(plan), f"resize {plan.from_size} -> {plan.to_size} ({disk})")


def _when_resizing(step: StepFunction, what: str) -> StepFunction:
    """`step`, skipped when the plan resizes nothing (the server keeps running)."""

    def wrapped(job: Job) -> Any:
        if not _plan(job).resizes:
            return Done(message=f"no {what}: nothing to resize")
        return step(job)

    wrapped.__doc__ = step.__doc__
    return wrapped


def step_change_type(job: Job) -> Done:
    """Ask the provider for the new size, unless the server shows it has it or is getting it
    (an earlier attempt whose answer was lost): one change only, whatever the retries."""
    plan = _plan(job)
    if not plan.resizes:
        return Done(message="no change: nothing to resize")
    provider = _provider(_beacon(job))
    server = provider.get_server(plan.server_id)
    if server is None:
        raise ProviderError(f"server {plan.server_id} is gone", transient=False)
    if server.size == plan.to_size:
        return Done({"action": ""}, f"the server has {plan.to_size} already")
    running = provider.resize_in_progress(server.id)
    if running is not None:
        return Done({"action": running}, "a resize is under way already (an answer was lost)")
    if server.status != "off":
        raise ProviderError(f"the server is {server.status}, not off", transient=True)
    started = provider.server_resize(server.id, plan.to_size, grow_disk=plan.grow_disk)
    return Done({"action": started.action_id}, f"changing {plan.from_size} -> {plan.to_size}")


def step_wait_resized(job: Job) -> Done | Wait:
    """Wait until the server reports its new size; a failed action, or none done within
    RESIZE_DEADLINE, fails the step (and the compensation powers the server back on)."""
    plan = _plan(job)
    if not plan.resizes:
        return Done(message="no wait: nothing to resize")
    provider = _provider(_beacon(job))
    server = provider.get_server(plan.server_id)
    if server is not None and server.size == plan.to_size:
        return Done(message=f"the server is {plan.to_size}")
    checkpoint = Checkpoint(job.checkpoint)
    action = checkpoint.result("change_type").get("action") or ""
    if action and provider.action_status(action) == "error":
        raise ProviderError(f"the provider's resize action {action} failed", transient=False)
    if timezone.now() - checkpoint.finished_at("change_type") > RESIZE_DEADLINE:
        raise ProviderError(f"the server is not {plan.to_size} in time", transient=False)
    poll = timezone.now() + timedelta(seconds=settings.JOB_POLL_SECONDS)
    return Wait(poll, f"waiting for the server to be {plan.to_size}")


def step_record(job: Job) -> Done:
    """The Beacon runs the paid tier now, on the size the server has."""
    plan = _plan(job)
    Beacon.objects.filter(pk=job.beacon_id).update(
        tier_id=plan.to_tier_id, server_size=plan.to_size
    )
    return Done(message=f"Beacon runs {plan.to_tier} on {plan.to_size}")


def off_minutes(job: Job) -> int:
    """How long the server was off, in whole minutes rounded up (0 when it never was)."""
    checkpoint = Checkpoint(job.checkpoint)
    if not _plan(job).resizes:
        return 0
    off = checkpoint.finished_at("wait_running") - checkpoint.finished_at("power_off")
    return max(1, -(-int(off.total_seconds()) // 60))


def step_notify(job: Job) -> Done | Wait:
    """Tell the customer once: the tiers, the sizes, how long the server was off."""
    plan = _plan(job)
    return _email(
        job,
        "resized",
        f"resized:{job.pk}",
        plan=plan,
        off_minutes=off_minutes(job),
        at=Checkpoint(job.checkpoint).finished_at("record"),
    )


def compensate_resize(job: Job) -> Done | Wait:
    """Staff are told first; then the server is powered back on at whatever size it has, and
    the step looks again until it runs (never left off)."""
    beacon = _beacon(job)
    failure = Checkpoint(job.checkpoint).failure
    reason = f"resize job failed at {failure.get('step')}: {failure.get('message')}"
    Order.objects.filter(pk=beacon.order_id).update(
        needs_attention=True, attention_reason=reason[:1000]
    )
    provider, servers = _servers(beacon)
    if provider is None or all(server.status == "running" for server in servers):
        sizes = sorted({server.size for server in servers})
        if sizes:
            Beacon.objects.filter(pk=beacon.pk).update(server_size=sizes[0])
        return Done(message=f"server(s) running at {', '.join(sizes) or 'no size'}")
    powering = [provider.power_on(server.id) for server in servers if server.status == "off"]
    if not powering:  # between states (a resize finishing, a start): bounded retries
        raise ProviderError("the server is not running yet", transient=True)
    poll = timezone.now() + timedelta(seconds=settings.JOB_POLL_SECONDS)
    return Wait(poll, "powering the server back on after a failed resize")


RESIZE = Workflow(
    steps=(
        ("look", step_look),
        ("power_off", _when_resizing(_power_step(on=False), "power-off")),
        ("wait_off", _when_resizing(_wait_power_step(on=False, power_step="power_off"), "wait")),
        ("change_type", step_change_type),
        ("wait_resized", step_wait_resized),
        ("power_on", _power_step(on=True)),
        ("wait_running", _wait_power_step(on=True, power_step="power_on")),
        ("record", step_record),
        ("notify", step_notify),
    ),
    compensate=compensate_resize,
    point_of_no_return="record",
    gave_up=lifecycle_gave_up,
)

"""Life after purchase: the state a Beacon should be in, and the Jobs that take it there.

`beacon_desired_status` reads Stripe's view of the subscription (kept on the Order by
billing.subscriptions) and staff holds; provisioning.services.beacon_converge starts the Job
that closes the gap. The workflows, each step idempotent (it looks at the servers first):

- suspend: power the server off, wait until it is off, mark the Beacon suspended, tell the
  customer once;
- resume: power on, wait until running, mark the Beacon active, tell the customer once;
- decommission: power off, tell the customer the real deletion date, wait out the grace
  period, take a final snapshot (the backups app's steps; kept the tier's backup_days), delete
  the server(s) and DNS records, mark the Beacon decommissioned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.db.models import Sum
from django.utils import timezone

from accounts.services import account_groups_sync
from billing.models import Order, OrderStatus, PaymentFailure, SubscriptionStatus
from dns.services import dns_records_delete
from documents.emails import email_send_once
from documents.models import EmailMessage, EmailStatus
from integrations.clouds.base import CloudProvider, Server
from integrations.errors import ProviderError
from provisioning.checkpoint import Checkpoint
from provisioning.jobs import Done, StepFunction, Wait, Workflow
from provisioning.models import Beacon, BeaconStatus, Job, StaffHold
from provisioning.provision import labelled_servers_delete
from provisioning.vendors import get_dns_backend, get_provider
from provisioning.welcome import email_outcome

SUSPENDED_POLICIES = ("power_off",)
POWER_DEADLINE = timedelta(minutes=10)
PAYING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
ENDED = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
OVERDUE = (SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED)
# Steps of a decommission job before anything is deleted: a new subscription may still cancel it.
DECOMMISSION_CANCELLABLE_STEPS = ("power_off", "wait_off", "announce", "wait_grace")


# --- what the Beacon should be ----------------------------------------------------------------


def failed_attempts(order: Order) -> tuple[int, datetime | None]:
    """Failed payment attempts on the subscription's unpaid invoices, and the newest failure."""
    if not order.stripe_subscription_id:
        return 0, None
    unpaid = PaymentFailure.objects.filter(
        stripe_subscription_id=order.stripe_subscription_id, paid_at__isnull=True
    )
    latest = unpaid.order_by("-failed_at").values_list("failed_at", flat=True).first()
    return unpaid.aggregate(total=Sum("attempt_count"))["total"] or 0, latest


def failures_suspend(order: Order) -> bool:
    """SUSPEND_AFTER_FAILURES failed attempts suspend, unless Stripe has called the subscription
    active or trialing since the newest of them."""
    attempts, latest = failed_attempts(order)
    if attempts < settings.SUSPEND_AFTER_FAILURES:
        return False
    said_fine = order.subscription_status in PAYING and order.subscription_status_at
    return not (said_fine and latest is not None and order.subscription_status_at >= latest)


def billing_desired_status(order: Order) -> str | None:
    """What billing alone asks of the Order's Beacon: active, suspended, decommissioned, or
    None when it has no opinion (payment still incomplete, nothing known)."""
    status = order.subscription_status
    if status in ENDED:
        return BeaconStatus.DECOMMISSIONED
    if status in OVERDUE:
        return BeaconStatus.SUSPENDED
    if status == SubscriptionStatus.INCOMPLETE:
        return None
    if not status and order.status != OrderStatus.PAID:
        return None
    # active, trialing, past_due, or nothing heard since the paid checkout
    return BeaconStatus.SUSPENDED if failures_suspend(order) else BeaconStatus.ACTIVE


def beacon_desired_status(beacon: Beacon) -> str | None:
    """Billing's answer, overridden by staff holds (see StaffHold)."""
    if beacon.staff_hold == StaffHold.DECOMMISSION:
        return BeaconStatus.DECOMMISSIONED
    desired = billing_desired_status(beacon.order)
    if desired == BeaconStatus.DECOMMISSIONED and beacon.staff_hold == StaffHold.KEEP:
        return BeaconStatus.SUSPENDED
    if beacon.staff_hold == StaffHold.SUSPEND and desired in (None, BeaconStatus.ACTIVE):
        return BeaconStatus.SUSPENDED
    return desired


def decommission_at(beacon: Beacon) -> datetime:
    """When the Beacon's server and records go: the grace period after the subscription ended,
    at once when staff decommission it.

    Never sooner than the grace period from now: an event replayed after an outage carries an
    `ended_at` long past, and the customer still gets the whole grace period from being told
    (step_announce moves the date again if telling them comes later).
    """
    now = timezone.now()
    if beacon.staff_hold == StaffHold.DECOMMISSION:
        return now
    ended = beacon.order.subscription_ended_at or now
    return max(ended, now) + timedelta(days=settings.DECOMMISSION_GRACE_DAYS)


# --- steps shared by the workflows ------------------------------------------------------------


def _beacon(job: Job) -> Beacon:
    return Beacon.objects.select_related("provider", "order").get(pk=job.beacon_id)


def _servers(beacon: Beacon) -> tuple[CloudProvider | None, list[Server]]:
    """The Beacon's servers at its provider, found by label (the row's id may be stale)."""
    if beacon.provider is None:
        return None, []
    provider = get_provider(beacon.provider.kind)
    return provider, provider.find_servers({"wopr-beacon": str(beacon.pk)})


def _power_step(*, on: bool) -> StepFunction:
    wanted = "running" if on else "off"

    def step(job: Job) -> Done:
        provider, servers = _servers(_beacon(job))
        if on and not servers:
            raise ProviderError("the Beacon has no server to power on", transient=False)
        actions = {}
        for server in servers:
            if server.status != wanted:
                actions[server.id] = (
                    provider.power_on(server.id) if on else provider.power_off(server.id)
                )
        verb = "on" if on else "off"
        return Done(
            {"actions": actions},
            f"powering {verb} {len(actions)} server(s)" if actions else f"already powered {verb}",
        )

    step.__doc__ = f"Ask the provider to power every server of the Beacon {wanted}."
    return step


def _wait_power_step(*, on: bool, power_step: str) -> StepFunction:
    wanted = "running" if on else "off"

    def step(job: Job) -> Done | Wait:
        provider, servers = _servers(_beacon(job))
        if all(server.status == wanted for server in servers):
            return Done(message=f"server(s) {wanted}")
        checkpoint = Checkpoint(job.checkpoint)
        actions = checkpoint.result(power_step).get("actions", {})
        busy = any(provider.action_status(action) == "running" for action in actions.values())
        if busy and timezone.now() - checkpoint.finished_at(power_step) < POWER_DEADLINE:
            poll = timezone.now() + timedelta(seconds=settings.JOB_POLL_SECONDS)
            return Wait(poll, f"waiting for the server to be {wanted}")
        raise ProviderError(f"the server is not {wanted} after the power action", transient=True)

    step.__doc__ = f"Wait until every server of the Beacon is {wanted}."
    return step


def _set_status(job: Job, status: str, *, from_: tuple[str, ...]) -> None:
    Beacon.objects.filter(pk=job.beacon_id, status__in=from_).update(status=status)


def _email(job: Job, template: str, key: str, **context: Any) -> Done | Wait:
    """Send the customer e-mail once per `key`; a retried step finds it sent and moves on."""
    beacon = _beacon(job)
    message = email_send_once(
        key=key,
        template=template,
        to=beacon.order.email,
        context={"beacon": beacon, "order": beacon.order, **context},
        beacon=beacon,
        order=beacon.order,
    )
    return email_outcome(message, template)


def step_account_groups(job: Job) -> Done:
    """The owner's Authentik groups follow the Beacon's new status: a suspended or deleted
    Beacon's groups go (unless another live Beacon of theirs needs them), a resumed one's come
    back; the last Beacon gone deactivates the user (accounts.services)."""
    return Done(message=account_groups_sync(beacon=_beacon(job)).message)


def lifecycle_gave_up(job: Job, message: str) -> None:
    """A suspend, resume or decommission failed: money and servers may disagree until staff
    look, so the Order goes to the top of the admin (reconcile reports it too)."""
    Order.objects.filter(beacon__pk=job.beacon_id).update(
        needs_attention=True, attention_reason=f"{job.kind} job failed: {message}"[:1000]
    )


# --- suspend ------------------------------------------------------------------------------------


def step_mark_suspended(job: Job) -> Done:
    _set_status(
        job,
        BeaconStatus.SUSPENDED,
        from_=(BeaconStatus.ACTIVE, BeaconStatus.DECOMMISSIONING),
    )
    return Done(message="Beacon is suspended")


def step_notify_suspended(job: Job) -> Done | Wait:
    """Tell the customer, once per suspension; a Beacon kept by staff after its subscription
    ended was already told about the cancellation."""
    cause = Checkpoint(job.checkpoint).cause
    if cause == "kept":
        return Done(message="no e-mail: kept by staff after cancellation")
    return _email(
        job,
        "suspended",
        f"suspended:{job.pk}",
        cause=cause,
        at=Checkpoint(job.checkpoint).finished_at("mark_suspended"),
    )


SUSPEND = Workflow(
    steps=(
        ("power_off", _power_step(on=False)),
        ("wait_off", _wait_power_step(on=False, power_step="power_off")),
        ("mark_suspended", step_mark_suspended),
        ("account_groups", step_account_groups),
        ("notify", step_notify_suspended),
    ),
    gave_up=lifecycle_gave_up,
)


# --- resume -------------------------------------------------------------------------------------


def step_mark_active(job: Job) -> Done:
    _set_status(
        job, BeaconStatus.ACTIVE, from_=(BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING)
    )
    return Done(message="Beacon is active again")


def step_notify_resumed(job: Job) -> Done | Wait:
    return _email(
        job,
        "resumed",
        f"resumed:{job.pk}",
        at=Checkpoint(job.checkpoint).finished_at("mark_active"),
    )


RESUME = Workflow(
    steps=(
        ("power_on", _power_step(on=True)),
        ("wait_running", _wait_power_step(on=True, power_step="power_on")),
        ("mark_active", step_mark_active),
        ("account_groups", step_account_groups),
        ("notify", step_notify_resumed),
    ),
    gave_up=lifecycle_gave_up,
)


# --- decommission -------------------------------------------------------------------------------


def _announced_at(job: Job, email_key: str) -> datetime:
    """The deletion date to tell the customer: the scheduled one, moved to the grace period
    from now when it is sooner, and saved before the e-mail goes so the job keeps its word.

    Once the e-mail has gone, the date it gave stands (a retried step moves nothing).
    """
    checkpoint = Checkpoint(job.checkpoint)
    scheduled = checkpoint.decommission_at
    told = EmailMessage.objects.filter(idempotency_key=email_key, status=EmailStatus.SENT)
    if checkpoint.announced or told.exists():
        return scheduled
    when = max(scheduled, timezone.now() + timedelta(days=settings.DECOMMISSION_GRACE_DAYS))
    job.checkpoint = checkpoint.with_schedule(when, announced=True)
    # Saved now, not with the step's result: the e-mail may go even if this step's lease is lost.
    Job.objects.filter(pk=job.pk, step=job.step).update(checkpoint=job.checkpoint)
    return when


def step_announce(job: Job) -> Done | Wait:
    """The `cancelled` e-mail with the real deletion date, once per ended subscription (a staff
    decommission, of a paying subscription or brought forward to now, is for staff to explain)."""
    beacon = _beacon(job)
    order = beacon.order
    if order.subscription_status not in ENDED:
        return Done(message="no e-mail: the subscription has not ended")
    if beacon.staff_hold == StaffHold.DECOMMISSION:
        # Deleted now by staff: no date to promise (it would be past when read); staff explain.
        return Done(message="no e-mail: staff decommissioned the Beacon now")
    key = f"cancelled:{order.stripe_subscription_id}"
    return _email(
        job,
        "cancelled",
        key,
        decommission_at=_announced_at(job, key),
        grace_days=settings.DECOMMISSION_GRACE_DAYS,
        export_window_hours=settings.EXPORT_WINDOW_HOURS,
    )


# The decommission step during which staff may open an export window (Beacon.export_until).
EXPORT_WINDOW_STEP = "wait_grace"


def step_wait_grace(job: Job) -> Done | Wait:
    """Wait out the grace period with the server off. During an export window opened by staff
    (`beacon_export_window_open`) the server is on; once the window ends, and at the deletion
    time at the latest, it is powered off again, so the steps after this one find it off."""
    beacon = _beacon(job)
    when = Checkpoint(job.checkpoint).decommission_at
    window_end = min(beacon.export_until, when) if beacon.export_until else None
    if window_end is not None and timezone.now() < window_end:
        return _export_window_keep_on(job, beacon, window_end, when)
    if window_end is not None:
        provider, servers = _servers(beacon)
        powering_off = _export_power(provider, servers, on=False, message="export window over")
        # Insisted on until POWER_DEADLINE past the deletion time: a server that will not go
        # off does not hold up its deletion for ever (the steps after delete it in any state).
        if powering_off is not None and timezone.now() < when + POWER_DEADLINE:
            return powering_off
    if timezone.now() < when:
        return Wait(when, f"server and DNS records will be deleted at {when:%Y-%m-%d %H:%M} UTC")
    return Done(message="grace period over")


def _export_window_keep_on(
    job: Job, beacon: Beacon, window_end: datetime, deletion: datetime
) -> Wait:
    """Inside the export window: the server on, the customer told once (per window), then
    nothing until the window ends (never later than the deletion)."""
    provider, servers = _servers(beacon)
    if not servers:
        return Wait(window_end, "export window open, but the Beacon has no server to power on")
    until = f"{window_end:%Y-%m-%d %H:%M} UTC"
    powering_on = _export_power(provider, servers, on=True, message=f"export until {until}")
    if powering_on is not None:
        return powering_on
    told = _email(
        job,
        "export_window",
        f"export_window:{beacon.pk}:{window_end.isoformat()}",
        export_until=window_end,
        decommission_at=deletion,
    )
    if isinstance(told, Wait):
        return told
    return Wait(window_end, f"powered on for export until {until}; then off, deletion unchanged")


def _export_power(
    provider: CloudProvider | None, servers: list[Server], *, on: bool, message: str
) -> Wait | None:
    """None when every server is already running (`on`) or off. Otherwise power the servers in
    the opposite state (one between states is left to finish: a repeated look sends no second
    action) and look again shortly."""
    wanted, opposite = ("running", "off") if on else ("off", "running")
    if provider is None or all(server.status == wanted for server in servers):
        return None
    for server in servers:
        if server.status == opposite and on:
            provider.power_on(server.id)
        elif server.status == opposite:
            provider.power_off(server.id)
    poll = timezone.now() + timedelta(seconds=settings.JOB_POLL_SECONDS)
    return Wait(poll, f"{message}: waiting for the server to be {wanted}")


# The final snapshot before deletion belongs to the backups app, which sits above provisioning
# (so is not imported here): it hands its step functions over at start-up (backups.apps).
FINAL_SNAPSHOT_STEPS: dict[str, StepFunction] = {}


def final_snapshot_steps_register(steps: dict[str, StepFunction]) -> None:
    """Called once by backups.apps: `final_snapshot` and `wait_final_snapshot`."""
    FINAL_SNAPSHOT_STEPS.update(steps)


def _final_snapshot_step(name: str) -> StepFunction:
    def step(job: Job) -> Done | Wait:
        function = FINAL_SNAPSHOT_STEPS.get(name)
        if function is None:  # never delete a server without its copy: fail, staff decide
            raise ProviderError(f"no {name} step registered (backups app)", transient=False)
        return function(job)  # type: ignore[return-value]

    step.__doc__ = f"The backups app's {name} step: the server is deleted only after it."
    return step


def step_delete_servers(job: Job) -> Done:
    """Delete every server labelled for the Beacon at every configured provider."""
    deleted = labelled_servers_delete(_beacon(job), set(settings.PROVIDERS))
    return Done({"deleted_servers": deleted}, f"{len(deleted)} server(s) deleted")


def step_delete_dns(job: Job) -> Done:
    deleted = dns_records_delete(beacon=_beacon(job), backend=get_dns_backend())
    return Done({"deleted_records": deleted}, f"{deleted} DNS record(s) deleted")


def step_mark_decommissioned(job: Job) -> Done:
    Beacon.objects.filter(pk=job.beacon_id).exclude(status=BeaconStatus.DECOMMISSIONED).update(
        status=BeaconStatus.DECOMMISSIONED, provider_server_id=""
    )
    return Done(message="Beacon is decommissioned")


DECOMMISSION = Workflow(
    steps=(
        ("power_off", _power_step(on=False)),
        ("wait_off", _wait_power_step(on=False, power_step="power_off")),
        ("announce", step_announce),
        ("wait_grace", step_wait_grace),
        ("final_snapshot", _final_snapshot_step("final_snapshot")),
        ("wait_final_snapshot", _final_snapshot_step("wait_final_snapshot")),
        ("delete_servers", step_delete_servers),
        ("delete_dns", step_delete_dns),
        ("mark_decommissioned", step_mark_decommissioned),
        ("account_groups", step_account_groups),
    ),
    gave_up=lifecycle_gave_up,
)


# --- settings -------------------------------------------------------------------------------------


@register("wopr")
def check_lifecycle_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The lifecycle settings hold values this code implements."""
    errors = []
    if settings.SUSPENDED_POLICY not in SUSPENDED_POLICIES:
        errors.append(
            Error(
                f"SUSPENDED_POLICY {settings.SUSPENDED_POLICY!r} is not implemented; "
                f"use one of: {', '.join(SUSPENDED_POLICIES)}.",
                id="wopr.E050",
            )
        )
    for name, minimum in (
        ("SUSPEND_AFTER_FAILURES", 1),
        ("DECOMMISSION_GRACE_DAYS", 0),
        ("RECONCILE_ORPHAN_MIN_AGE_HOURS", 0),
        ("EXPORT_WINDOW_HOURS", 1),
    ):
        if getattr(settings, name) < minimum:
            errors.append(Error(f"{name} must be at least {minimum}.", id="wopr.E051"))
    return errors

"""A new paid checkout taking back its customer's Beacon in the cancellation grace period.

After a subscription ends, its Beacon is powered off and waits DECOMMISSION_GRACE_DAYS before it
is deleted; its name stays taken meanwhile. A resubscription naming the Order revives it
(billing.subscriptions._resubscribed_order); a customer who simply buys again through the
storefront with the same Beacon name gets the same Beacon back here, instead of paying for
nothing while the old server is deleted after the grace:

- the Beacon moves to the new Order (Beacon.order is one-to-one: the old, ended Order keeps no
  Beacon; both ids are written on the Beacon's job timeline and in both Orders' metadata);
- the waiting decommission is cancelled in the same transaction (so it cannot reach its deleting
  steps meanwhile), and the Beacon converges: a resume job powers the server on. No second
  server is made.

Only the same customer may: the new Order's e-mail equals the old Order's (case-insensitive),
or both Orders belong to the same verified Customer; and only for the same bundle. A stranger
typing the name gets "taken". Once the decommission is deleting (or done) nothing is taken back.
"""

from __future__ import annotations

from django.db import transaction

from billing.models import Order
from provisioning.jobs import job_abort
from provisioning.lifecycle import DECOMMISSION_CANCELLABLE_STEPS, ENDED
from provisioning.models import (
    UNFINISHED_JOB_STATES,
    Beacon,
    BeaconStatus,
    JobEvent,
    JobKind,
    JobState,
    StaffHold,
)
from provisioning.services import beacon_converge_request

# Statuses a Beacon of an ended subscription has until its decommission deletes it.
IN_GRACE = (BeaconStatus.ACTIVE, BeaconStatus.SUSPENDED, BeaconStatus.DECOMMISSIONING)
# Why a Beacon cannot be taken back by a buyer ("" when it can).
STRANGER = "stranger"
OTHER_BUNDLE = "other bundle"
NOT_IN_GRACE = "not in grace"


def beacon_take_back_problem(
    *, beacon: Beacon, email: str, bundle_id: int | None, customer_id: int | None = None
) -> str:
    """Why a buyer (their e-mail, bundle and Customer) cannot take `beacon` back; "" when
    they can. NOT_IN_GRACE, STRANGER or OTHER_BUNDLE, in that order."""
    if not _in_grace(beacon):
        return NOT_IN_GRACE
    if not _same_customer(beacon, email, customer_id):
        return STRANGER
    return "" if beacon.bundle_id == bundle_id else OTHER_BUNDLE


def beacon_take_back_name_problem(*, name: str, email: str, bundle_slug: str) -> str:
    """For a checkout: why the buyer cannot take back the Beacon named `name` ("" when they
    can; NOT_IN_GRACE also when no Beacon has the name)."""
    beacon = Beacon.objects.select_related("order", "owner", "bundle").filter(name=name).first()
    if beacon is None:
        return NOT_IN_GRACE
    bundle_id = beacon.bundle_id if beacon.bundle.slug == bundle_slug else None
    return beacon_take_back_problem(beacon=beacon, email=email, bundle_id=bundle_id)


def beacon_take_back(*, order: Order) -> Beacon | None:
    """Move the Beacon named like the paid `order` to it, cancel its waiting decommission and
    converge it (a resume powers it on); once. The Beacon when `order` has it (now or already),
    None when it may not be taken back. Runs inside the caller's (webhook's) transaction."""
    with transaction.atomic():
        beacon = (
            Beacon.objects.select_for_update(of=("self",))
            .select_related("order", "owner")
            .filter(name=order.beacon_name)
            .first()
        )
        if beacon is None or beacon.order_id == order.pk:
            return beacon
        problem = beacon_take_back_problem(
            beacon=beacon,
            email=order.email,
            bundle_id=order.bundle_id,
            customer_id=order.customer_id,
        )
        if problem or not _decommission_cancelled(beacon, order):
            return None
        _move(beacon, order)
    beacon_converge_request(beacon_id=beacon.pk)
    beacon.refresh_from_db()
    return beacon


def _in_grace(beacon: Beacon) -> bool:
    """Its subscription ended, nothing deleted yet, and no staff decision to delete it."""
    if beacon.order.subscription_status not in ENDED or beacon.status not in IN_GRACE:
        return False
    if beacon.staff_hold == StaffHold.DECOMMISSION:
        return False
    deleting = beacon.jobs.filter(kind=JobKind.DECOMMISSION, state__in=UNFINISHED_JOB_STATES)
    return not deleting.exclude(step__in=DECOMMISSION_CANCELLABLE_STEPS).exists()


def _same_customer(beacon: Beacon, email: str, customer_id: int | None) -> bool:
    old = beacon.order.email
    if old and email and old.casefold() == email.casefold():
        return True
    owner = beacon.owner
    verified = owner is not None and owner.email_verified_at is not None
    return verified and customer_id is not None and customer_id == beacon.owner_id


def _decommission_cancelled(beacon: Beacon, order: Order) -> bool:
    """Cancel the waiting decommission (True when none waits); False when it moved on."""
    waiting = beacon.jobs.filter(kind=JobKind.DECOMMISSION, state__in=UNFINISHED_JOB_STATES).first()
    if waiting is None:
        return True
    reason = (
        f"decommission cancelled: Beacon taken back by order {order.pk} "
        f"(a new paid checkout of the same customer; it was order {beacon.order_id}'s)"
    )
    return job_abort(job=waiting, reason=reason, final_state=JobState.CANCELLED)


def _move(beacon: Beacon, order: Order) -> None:
    """Re-point the Beacon (a conditional update on its old Order) and record both Orders."""
    old = beacon.order
    hold = StaffHold.NONE if beacon.staff_hold == StaffHold.KEEP else beacon.staff_hold
    Beacon.objects.filter(pk=beacon.pk, order=old).update(
        order=order, staff_hold=hold, export_until=None
    )
    Order.objects.filter(pk=old.pk).update(
        stripe_metadata={**old.stripe_metadata, "beacon_taken_back_by": str(order.pk)}
    )
    Order.objects.filter(pk=order.pk).update(
        stripe_metadata={**order.stripe_metadata, "beacon_taken_back_from": str(old.pk)}
    )
    if order.tier_id != beacon.tier_id:  # paid for another size: staff resize the server
        paid = order.tier.slug if order.tier else "?"
        reason = f"Beacon taken back at tier {beacon.tier.slug}, paid tier {paid}: resize it"
        Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reason=reason)
    latest = beacon.jobs.order_by("-created_at").first()
    if latest is not None:
        JobEvent.objects.create(
            job=latest,
            step=latest.step,
            state=latest.state,
            message=f"Beacon moved from order {old.pk} to order {order.pk} (taken back)",
        )

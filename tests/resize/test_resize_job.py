"""The tier change's receiving side and the resize job, end to end on the fake cloud: a signed
customer.subscription.updated carrying another tier's price moves Order.tier and starts one
resize (off -> new size -> on -> e-mail); a redelivered, late or pending (unpaid) event starts
none; a downgrade that needs a smaller disk is refused before anything is powered off; a
failure powers the server back on and tells staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from provisioning.faults import fault_inject
from provisioning.models import Beacon, FakeServer, Job, JobEvent
from provisioning.services import beacon_converge
from tests.lifecycle.stripe_events import subscription_event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("priced")]


def updated(bought, clock, *, tier: str, seconds: int, bundle: str = "starter", **extra: Any):
    """customer.subscription.updated: active, its item on `tier`'s price, `seconds` from now."""
    event = subscription_event(
        bought.subscription_id,
        status=extra.pop("status", "active"),
        created=clock.stamp(seconds),
        price_id=f"price_{bundle}_{tier}",
    )
    event["data"]["object"].update(extra)
    return event


def server(bought) -> FakeServer:
    return FakeServer.objects.get(name=f"wopr-{bought.beacon.name}", deleted=False)


def resize_jobs(bought) -> list[Job]:
    return list(Job.objects.filter(beacon=bought.beacon, kind="resize"))


def steps_said(job: Job) -> list[str]:
    return list(JobEvent.objects.filter(job=job).order_by("pk").values_list("message", flat=True))


def test_a_paid_upgrade_resizes_the_server_off_then_on_and_tells_the_customer(buy, deliver, clock):
    bought = buy("grow1")
    assert server(bought).size == "cpx22"
    mail.outbox.clear()

    deliver(updated(bought, clock, tier="t2", seconds=10))

    bought.refresh()
    (job,) = resize_jobs(bought)
    said = " | ".join(steps_said(job))
    assert job.state == "completed", said
    assert bought.order.tier.slug == "t2" and bought.order.tier_change_to is None
    assert bought.beacon.tier.slug == "t2" and bought.beacon.server_size == "cpx32"
    assert server(bought).size == "cpx32" and server(bought).powered_on
    assert said.index("resize cpx22 -> cpx32") < said.index("powering off 1 server(s)")
    assert said.index("powering off") < said.index("changing cpx22 -> cpx32")
    assert said.index("changing cpx22 -> cpx32") < said.index("powering on 1 server(s)")
    (email,) = [m for m in mail.outbox if "t2 tier" in m.subject]
    assert email.to == [bought.order.email]
    assert "from cpx22 to cpx32" in email.body and "switched off for about 1 minute" in email.body


def test_a_redelivered_or_late_event_starts_no_second_resize(buy, deliver, clock):
    bought = buy("grow2")
    paid = updated(bought, clock, tier="t2", seconds=10)
    older = updated(bought, clock, tier="t1", seconds=5)

    deliver(paid)
    deliver(paid)  # Stripe redelivers
    deliver(older)  # an event from before the change, arriving late

    bought.refresh()
    assert len(resize_jobs(bought)) == 1
    assert bought.order.tier.slug == "t2" and bought.beacon.tier.slug == "t2"
    assert server(bought).size == "cpx32"


def test_a_pending_unpaid_change_moves_nothing(buy, deliver, clock):
    bought = buy("grow3")
    pending = {"subscription_items": [{"id": "si_x", "price": {"id": "price_starter_t2"}}]}

    deliver(updated(bought, clock, tier="t1", seconds=10, pending_update=pending))
    deliver(updated(bought, clock, tier="t2", seconds=20, status="past_due"))

    bought.refresh()
    assert bought.order.tier.slug == "t1" and bought.beacon.tier.slug == "t1"
    assert resize_jobs(bought) == []
    assert server(bought).size == "cpx22"


def test_a_downgrade_needing_a_smaller_disk_is_refused_without_powering_off(buy, deliver, clock):
    bought = buy("shrink1")
    deliver(updated(bought, clock, tier="t2", seconds=10))

    deliver(updated(bought, clock, tier="t1", seconds=20))

    bought.refresh()
    upgrade, downgrade = sorted(resize_jobs(bought), key=lambda job: job.created_at)
    assert upgrade.state == "completed" and downgrade.state == "failed"
    assert "a disk never shrinks" in downgrade.last_error
    assert not any("powering off" in message for message in steps_said(downgrade))
    assert server(bought).size == "cpx32" and server(bought).powered_on
    assert bought.beacon.tier.slug == "t2"
    assert bought.order.needs_attention and "disk never shrinks" in bought.order.attention_reason
    assert "staff must retry" in beacon_converge(beacon_id=bought.beacon.pk)


def test_a_change_within_the_same_server_size_only_moves_the_tier(buy, deliver, clock):
    bought = buy("same1", bundle="creator")  # min_size 2: t1 and t2 both run on cpx32
    mail.outbox.clear()

    deliver(updated(bought, clock, tier="t2", seconds=10, bundle="creator"))

    bought.refresh()
    (job,) = resize_jobs(bought)
    assert job.state == "completed"
    assert bought.beacon.tier.slug == "t2" and server(bought).size == "cpx32"
    assert not any("powering off" in message for message in steps_said(job))
    (email,) = [m for m in mail.outbox if "t2 tier" in m.subject]
    assert "nothing was switched off" in email.body


def test_a_failed_resize_powers_the_server_back_on_and_tells_staff(buy, deliver, sweep, clock):
    bought = buy("fail1")
    fault_inject("provider.resize", "permanent")

    deliver(updated(bought, clock, tier="t2", seconds=10))
    (job,) = resize_jobs(bought)
    assert job.step == "compensate" and server(bought).powered_on  # on again at once
    clock.advance(minutes=1)
    sweep()

    bought.refresh()
    job.refresh_from_db()
    assert job.state == "failed"
    assert server(bought).powered_on and server(bought).size == "cpx22"
    assert bought.beacon.tier.slug == "t1" and bought.order.tier.slug == "t2"
    assert bought.order.needs_attention
    assert "resize job failed at change_type" in bought.order.attention_reason


def test_a_lost_resize_answer_is_retried_without_a_second_change(buy, deliver, sweep, clock):
    bought = buy("lost1")
    fault_inject("provider.resize", "lost_response")

    deliver(updated(bought, clock, tier="t2", seconds=10))
    (job,) = resize_jobs(bought)
    assert job.step == "change_type" and job.attempts == 1
    assert server(bought).size == "cpx32" and not server(bought).powered_on
    clock.advance(minutes=10)
    sweep()

    job.refresh_from_db()
    assert job.state == "completed"
    assert "the server has cpx32 already" in steps_said(job)
    assert server(bought).powered_on
    assert Beacon.objects.get(pk=bought.beacon.pk).tier.slug == "t2"

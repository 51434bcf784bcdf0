"""An Authentik outage never costs a sale: when Authentik refuses for good (401) or is still down
on the provision job's last attempt, the Beacon is made anyway without an account, the Order is
flagged for staff, and no remedy (refund or cancellation) is opened. Earlier transient failures
are retried as usual."""

from __future__ import annotations

import httpx
import pytest
from django.core import mail

from billing.models import OrderRemedy
from fakes.authentik import API
from fakes.beacon import bootstrap_from_user_data
from provisioning.models import Job, JobEvent
from provisioning.userdata import beacon_owner
from tests.factories import BeaconFactory, CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db(transaction=False)


def assert_made_without_account(bought, user_data: list[str], reason: str) -> Job:
    """Active Beacon, flagged Order, no remedy, no account anywhere; the job."""
    bought.refresh()
    assert bought.beacon.status == "active"
    assert bought.order.needs_attention is True
    assert "no Authentik account" in bought.order.attention_reason
    assert reason in bought.order.attention_reason
    assert not OrderRemedy.objects.filter(order=bought.order).exists()
    job = Job.objects.get(beacon=bought.beacon, kind="provision")
    assert job.state == "completed"
    result = job.checkpoint["account"]
    assert (result["authentik_user_pk"], result["account_new"]) == ("", False)
    assert reason in result["no_account_reason"]
    (document,) = [bootstrap_from_user_data(data) for data in user_data]
    assert document["owner"]["authentik_user_id"] == ""
    (welcome,) = [m for m in mail.outbox if "is ready" in m.subject]
    assert "set your password" not in welcome.body.lower()
    assert "existing account" not in welcome.body.lower()
    failures = [m for m in mail.outbox if "could not" in m.subject or "failed" in m.subject]
    assert failures == []
    return job


def test_an_authentik_refusing_for_good_still_makes_the_beacon(authentik, buy, user_data):
    authentik.route = lambda request: httpx.Response(401, json={"detail": "Token invalid."})

    bought = buy("outage1")

    job = assert_made_without_account(bought, user_data, "401")
    assert authentik.users == {}
    assert JobEvent.objects.filter(job=job, step="account", message__contains="401").exists()


def test_a_transient_outage_is_retried_and_on_the_last_attempt_the_beacon_is_made_anyway(
    authentik, buy, user_data, settings, clock, sweep
):
    settings.JOB_MAX_ATTEMPTS = 2
    authentik.inject(method="GET", path_prefix=f"{API}/core/users/", status=503, times=100)

    bought = buy("outage2")

    job = Job.objects.get(beacon=bought.beacon, kind="provision")
    assert (job.step, job.state, job.attempts) == ("account", "pending", 1)  # retried, not done
    assert bought.refresh().beacon.status == "provisioning"
    clock.advance(minutes=20)
    sweep()

    assert_made_without_account(bought, user_data, "503")
    assert len([r for r in authentik.requests if r.method == "GET"]) == 2


def test_bootstrap_follows_the_account_step_not_an_older_stored_user(db):
    customer = CustomerFactory(authentik_user_pk="42")  # from an earlier purchase
    beacon = BeaconFactory(order=OrderFactory(customer=customer))
    failed = {"account": {"authentik_user_pk": "", "account_new": False}}
    made = {"account": {"authentik_user_pk": "43", "account_new": True}}

    assert beacon_owner(beacon, failed["account"])["authentik_user_id"] == ""
    assert beacon_owner(beacon, made["account"])["authentik_user_id"] == "43"
    assert beacon_owner(beacon, {})["authentik_user_id"] == "42"  # no account step yet

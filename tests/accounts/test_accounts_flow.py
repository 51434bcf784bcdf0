"""A purchase through the signed webhook and the job engine, with Authentik faked at its HTTP
edge: one user with its groups, the set-your-password link in the welcome e-mail and nowhere
stored, bootstrap.json naming the user; then suspension, resumption and decommission."""

from __future__ import annotations

import re

import httpx
import pytest
from django.apps import apps
from django.core import mail

from accounts.services import SKIPPED
from billing.models import Customer
from fakes.beacon import bootstrap_from_user_data
from provisioning.models import Job, JobEvent
from tests.lifecycle.stripe_events import subscription_event

pytestmark = pytest.mark.django_db(transaction=False)

LINK = re.compile(r"https://authentik\.test/if/flow/[^\s\"<]+")


def stored_text() -> str:
    """Every value of every row of every table, as text."""
    return "\n".join(str(row) for model in apps.get_models() for row in model.objects.values_list())


def welcome() -> mail.EmailMessage:
    (message,) = [m for m in mail.outbox if "is ready" in m.subject]
    return message


def test_a_purchase_makes_one_user_with_its_groups_and_mails_a_link_stored_nowhere(
    authentik, buy, user_data
):
    bought = buy("acct1")

    assert bought.beacon.status == "active"
    (user,) = authentik.users.values()
    assert authentik.user_group_names(user["pk"]) >= {"wopr-starter"}
    assert authentik.user_group_names(user["pk"]) == {
        f"wopr-{name}" for name in ["starter", *bought.beacon.modules]
    }
    message = welcome()
    html = message.alternatives[0][0]
    (link,) = set(LINK.findall(message.body))
    assert link == authentik.recovery_links[user["pk"]]  # the one valid link, fetched once
    assert link.replace("&", "&amp;") in html
    assert link not in stored_text()
    (document,) = [bootstrap_from_user_data(data) for data in user_data]
    assert document["owner"]["authentik_user_id"] == str(user["pk"])
    job = Job.objects.get(beacon=bought.beacon, kind="provision")
    assert job.checkpoint["account"]["account_new"] is True


def test_an_existing_account_is_told_to_sign_in_and_gets_no_link(authentik, buy):
    first = buy("acct2")
    mail.outbox.clear()
    recovery_calls = len([r for r in authentik.requests if "recovery" in r.url.path])

    buy("acct3", email=first.order.email)

    assert len(authentik.users) == 1
    message = welcome()
    assert "Sign in with your existing account" in message.body
    assert not LINK.search(message.body)
    assert len([r for r in authentik.requests if "recovery" in r.url.path]) == recovery_calls
    shared = {c.authentik_user_pk for c in Customer.objects.filter(email=first.order.email)}
    assert shared == {str(next(iter(authentik.users)))}


def test_suspension_resumption_and_decommission_move_the_groups(
    authentik, buy, deliver, clock, sweep
):
    bought = buy("acct4")
    pk = next(iter(authentik.users))
    held = authentik.user_group_names(pk)

    deliver(subscription_event(bought.subscription_id, status="unpaid", created=clock.stamp(5)))
    assert bought.refresh().beacon.status == "suspended"
    assert authentik.user_group_names(pk) == set()

    deliver(subscription_event(bought.subscription_id, status="active", created=clock.stamp(10)))
    assert bought.refresh().beacon.status == "active"
    assert authentik.user_group_names(pk) == held

    now = clock.stamp(15)
    deliver(
        subscription_event(
            bought.subscription_id,
            status="canceled",
            created=now,
            ended_at=now,
            event_type="customer.subscription.deleted",
        )
    )
    clock.advance(days=8)
    sweep()

    assert bought.refresh().beacon.status == "decommissioned"
    assert authentik.user_group_names(pk) == set()
    assert authentik.users[pk]["is_active"] is False


def test_without_authentik_url_the_purchase_goes_on_and_says_why(settings, buy, user_data):
    settings.AUTHENTIK_URL = ""

    bought = buy("acct5")

    assert bought.beacon.status == "active"
    assert JobEvent.objects.filter(step="account", message=SKIPPED).exists()
    assert "set your password" not in welcome().body
    (document,) = [bootstrap_from_user_data(data) for data in user_data]
    assert document["owner"]["authentik_user_id"] == ""


def test_an_authentik_without_a_recovery_flow_still_welcomes_the_customer(authentik, buy):
    # An Authentik whose brand has no recovery flow refuses every recovery link.
    real_route = authentik.route

    def no_recovery_flow(request):
        if request.url.path.endswith("/recovery/"):
            return httpx.Response(400, json={"non_field_errors": ["No recovery flow set."]})
        return real_route(request)

    authentik.route = no_recovery_flow

    bought = buy("acct6")

    assert bought.beacon.status == "active"
    body = welcome().body
    assert '"Forgot password?"' in body and not LINK.search(body)

"""The vendors' admin actions (wopr.admin_site.vendor_admin_guard): every role reads
dj-stripe's and django-q2's tables, but their actions that act (cancel a subscription in Stripe,
sync from its API, resubmit a stored task) and dj-stripe's own confirmation view are a
superuser's alone, and each run of them is in the audit trail."""

from __future__ import annotations

import django_q.admin
import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure
from djstripe.admin import views as djstripe_views

from wopr.models import StaffAction
from wopr.roles import OPERATIONS, OWNER, SUPPORT

pytestmark = pytest.mark.django_db

# Every action each role is offered, on every registered admin (an admin not named: none).
SUPPORT_ACTIONS = {
    "provisioning.beacon": {"retry_job"},
    "provisioning.job": {"retry_job"},
}
OPERATIONS_ACTIONS = {
    "backups.backupsnapshot": {"restore_snapshot"},
    "provisioning.beacon": {"retry_job", "suspend_beacon", "resume_beacon", "power_on_for_export"},
    "provisioning.fakefault": {"delete_selected"},
    "provisioning.job": {"retry_job"},
}
OWNER_ACTIONS = {
    "backups.backupsnapshot": {"restore_snapshot"},
    "billing.orderremedy": {"refund_and_cancel"},
    "installers.installerrelease": {"make_current"},
    "provisioning.beacon": {
        "retry_job",
        "cancel_job",
        "suspend_beacon",
        "resume_beacon",
        "power_on_for_export",
        "decommission_now",
        "cancel_decommission",
    },
    "provisioning.fakefault": {"delete_selected"},
    "provisioning.job": {"retry_job", "cancel_job"},
}
ALLOWED = {SUPPORT: SUPPORT_ACTIONS, OPERATIONS: OPERATIONS_ACTIONS, OWNER: OWNER_ACTIONS}

SYNC_ALL = "_sync_all_instances"


def staff_user(role: str | None) -> object:
    """A staff user whose only group is `role`, or a superuser for None."""
    name = role or "root"
    user = get_user_model().objects.create_user(
        username=f"{name}-user", is_staff=True, is_superuser=role is None
    )
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)  # no cached permissions


def client_for(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def offered_actions(user: object) -> dict[str, set[str]]:
    """label -> the actions get_actions() offers `user`, for every admin offering any."""
    request = RequestFactory().get("/admin/")
    request.user = user
    offered = {}
    for model, model_admin in admin.site._registry.items():
        actions = set(model_admin.get_actions(request))
        if actions:
            offered[model._meta.label_lower] = actions
    return offered


@pytest.mark.parametrize("role", [SUPPORT, OPERATIONS, OWNER])
def test_each_role_is_offered_exactly_its_allow_list_of_actions(role):
    assert offered_actions(staff_user(role)) == ALLOWED[role]


def test_a_superuser_is_still_offered_the_vendors_actions():
    offered = offered_actions(staff_user(None))

    assert {"_cancel", "_resync_instances", SYNC_ALL} <= offered["djstripe.subscription"]
    assert "resubmit_task" in offered["django_q.failure"]
    assert "resubmit_task" in offered["django_q.success"]


# --- dj-stripe's confirmation view -----------------------------------------------------------


def custom_action_url(action: str, model_name: str = "subscription") -> str:
    changelist = reverse(f"admin:djstripe_{model_name}_changelist")
    return f"{changelist}action/{action}/{model_name}/"


@pytest.fixture
def stripe_handlers(monkeypatch):
    """dj-stripe's view handlers replaced by recorders: no Stripe call, and we see each run."""
    ran = []
    for name in ("_cancel", "_resync_instances", SYNC_ALL):
        monkeypatch.setattr(
            djstripe_views.ConfirmCustomAction,
            name,
            lambda view, request, queryset, name=name: ran.append(name),
        )
    return ran


def test_support_posting_to_a_djstripe_custom_action_gets_403_and_nothing_runs(stripe_handlers):
    client = client_for(staff_user(SUPPORT))

    for action, selected in (("_cancel", ["1"]), (SYNC_ALL, [SYNC_ALL])):
        response = client.post(custom_action_url(action), {helpers.ACTION_CHECKBOX_NAME: selected})
        assert response.status_code == 403, action
        assert client.get(custom_action_url(action)).status_code == 403, action

    assert stripe_handlers == []
    assert not StaffAction.objects.filter(action__startswith="vendor.").exists()


def test_a_superuser_runs_a_djstripe_custom_action_and_the_trail_says_so(stripe_handlers):
    user = staff_user(None)

    response = client_for(user).post(
        custom_action_url(SYNC_ALL, "product"), {helpers.ACTION_CHECKBOX_NAME: [SYNC_ALL]}
    )

    assert response.status_code == 302
    assert stripe_handlers == [SYNC_ALL]
    row = StaffAction.objects.get(action=f"vendor.{SYNC_ALL}")
    assert (row.user, row.outcome) == (user, "done")
    assert row.detail == {"model": "product", "selected": [SYNC_ALL]}


def test_not_signed_in_the_custom_action_view_sends_to_the_sign_in_page(stripe_handlers):
    response = Client().post(custom_action_url(SYNC_ALL), {})

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert stripe_handlers == []


# --- django-q2's "Resubmit selected tasks to queue" -----------------------------------------


@pytest.fixture
def failed_task() -> Failure:
    now = timezone.now()
    return Failure.objects.create(
        id="f" * 32,
        name="refund-twice",
        func="billing.tasks.order_remedy_run",
        args=(7,),
        kwargs={},
        started=now,
        stopped=now,
        success=False,
    )


@pytest.fixture
def resubmitted(monkeypatch):
    queued = []
    monkeypatch.setattr(
        django_q.admin, "async_task", lambda func, *args, **kwargs: queued.append((func, args))
    )
    return queued


def resubmit(client: Client, task: Failure) -> object:
    return client.post(
        reverse("admin:django_q_failure_changelist"),
        {"action": "resubmit_task", helpers.ACTION_CHECKBOX_NAME: [task.pk], "index": 0},
    )


def test_support_resubmitting_a_failed_task_queues_nothing(failed_task, resubmitted):
    client = client_for(staff_user(SUPPORT))
    assert client.get(reverse("admin:django_q_failure_changelist")).status_code == 200

    resubmit(client, failed_task)

    assert resubmitted == []
    assert Failure.objects.filter(pk=failed_task.pk).exists()
    assert not StaffAction.objects.exists()


def test_a_superuser_resubmits_a_failed_task_and_the_trail_names_it(failed_task, resubmitted):
    user = staff_user(None)

    resubmit(client_for(user), failed_task)

    assert resubmitted == [("billing.tasks.order_remedy_run", (7,))]
    row = StaffAction.objects.get(action="vendor.resubmit_task")
    assert (row.user, row.outcome) == (user, "done")
    assert row.detail == {"model": "django_q.failure", "selected": [failed_task.pk]}

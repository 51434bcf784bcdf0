"""Notes on a customer: written with the form on the customer's page, posting to its own
address (so support, who may not change a customer, can write one), signed, shown on the page
and recorded once in the audit trail; an empty note or a user without the permission adds
nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from tests.test_admin import make_beacon
from wopr.models import StaffAction, StaffNote

pytestmark = pytest.mark.django_db


def signed_in(username: str, role: str | None) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(username=username, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def test_support_adds_a_note_on_a_customer_shown_on_the_page_and_recorded_once():
    customer = make_beacon().owner
    client, user = signed_in("support-notes", "support")
    assert not user.has_perm("billing.change_customer")
    page_url = reverse("admin:billing_customer_change", args=[customer.pk])
    note_url = reverse("admin:billing_customer_note", args=[customer.pk])
    assert f'action="{note_url}"' in client.get(page_url).content.decode()

    response = client.post(note_url, {"body": "Prefers <e-mail>"})

    assert response.status_code == 302
    assert response["Location"] == page_url
    note = StaffNote.objects.get(customer=customer)
    assert (note.body, note.author, note.author_name) == ("Prefers <e-mail>", user, "support-notes")
    assert "Prefers &lt;e-mail&gt;" in client.get(page_url).content.decode()
    (recorded,) = StaffAction.objects.all()
    assert (recorded.action, recorded.target_id) == ("customer.note", str(customer.pk))


def test_an_empty_note_is_refused_with_a_message():
    customer = make_beacon().owner
    client, _ = signed_in("support-empty", "support")

    response = client.post(
        reverse("admin:billing_customer_note", args=[customer.pk]), {"body": "  \n "}, follow=True
    )

    assert "Note: not added: the note is empty" in response.content.decode()
    assert not StaffNote.objects.exists()
    assert not StaffAction.objects.exists()


def test_a_staff_user_without_the_note_permission_is_refused_and_sees_no_form():
    customer = make_beacon().owner
    client, user = signed_in("reader", None)
    user.user_permissions.add(
        Permission.objects.get(codename="view_customer", content_type__app_label="billing")
    )
    note_url = reverse("admin:billing_customer_note", args=[customer.pk])

    page = client.get(reverse("admin:billing_customer_change", args=[customer.pk]))
    response = client.post(note_url, {"body": "hi"})

    assert page.status_code == 200
    assert note_url not in page.content.decode()
    assert response.status_code == 403
    assert not StaffNote.objects.exists()


def test_a_get_of_the_note_address_adds_nothing(admin_client):
    customer = make_beacon().owner

    response = admin_client.get(reverse("admin:billing_customer_note", args=[customer.pk]))

    assert response.status_code == 404
    assert not StaffNote.objects.exists()

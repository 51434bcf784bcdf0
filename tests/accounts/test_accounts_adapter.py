"""The Authentik adapter against the fake, whose every request and answer is validated with
authentik-client's generated models; Authentik's error table; the fake's own honesty."""

from __future__ import annotations

import json

import httpx
import pytest

from fakes.authentik import API, TOKEN, URL, FakeAuthentik
from integrations.errors import IdentityError
from integrations.http import transport_for
from integrations.identity.authentik import AuthentikIdentity, authentik_error
from integrations.identity.base import NewUser
from integrations.identity.registry import AuthentikConfig, identity_build


@pytest.fixture
def fake():
    fake = FakeAuthentik()
    with transport_for(URL + API, fake.transport()):
        yield fake
    assert fake.violations == []


@pytest.fixture
def identity(fake) -> AuthentikIdentity:
    return AuthentikIdentity(base_url=URL, token=TOKEN)


def new_user(email: str = "ada@example.com", customer: str = "1") -> NewUser:
    return NewUser(
        username=email,
        email=email,
        name="Ada",
        path="customers",
        attributes={"wopr_customer_id": customer},
    )


def test_a_created_user_is_found_by_attribute_and_by_email_and_nothing_else(identity, fake):
    made = identity.create_user(new_user())
    fake.add_user("grace", email="grace@example.com", attributes={"wopr_customer_id": "2"})

    (by_attribute,) = identity.find_users(attributes={"wopr_customer_id": "1"})
    (by_email,) = identity.find_users(email="ada@example.com")

    assert by_attribute == by_email == made
    assert (made.username, made.is_active, made.attributes) == (
        "ada@example.com",
        True,
        {"wopr_customer_id": "1"},
    )
    assert identity.find_users(attributes={"wopr_customer_id": "3"}) == []
    assert fake.users[made.pk]["path"] == "customers"
    create = next(r for r in fake.requests if r.method == "POST")
    assert create.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(create.content)["type"] == "internal"


def test_listings_follow_every_page(identity, fake, monkeypatch):
    monkeypatch.setattr("integrations.identity.authentik.PAGE_SIZE", 2)
    for number in range(5):
        fake.add_user(f"user{number}", email="shared@example.com")

    assert len(identity.find_users(email="shared@example.com")) == 5
    pages = [r.url.params["page"] for r in fake.requests if r.method == "GET"]
    assert pages == ["1", "2", "3"]


def test_membership_and_deactivation_round_trip(identity, fake):
    user = identity.create_user(new_user())
    group = identity.create_group("wopr-starter", {"managed-by": "wopr"})

    identity.add_to_group(group.pk, user.pk)
    member = identity.get_user(user.pk)
    identity.remove_from_group(group.pk, user.pk)
    former = identity.update_user(user.pk, is_active=False)

    assert identity.find_group("wopr-starter") == group
    assert identity.find_group("wopr-none") is None
    assert member.group_pks == {group.pk} and member.group_names == {"wopr-starter"}
    assert former.group_pks == frozenset() and former.is_active is False
    assert identity.get_user(999) is None


def test_the_recovery_link_is_a_fresh_secret_that_is_not_logged(identity, fake, caplog):
    user = identity.create_user(new_user())
    caplog.set_level("DEBUG")

    first = identity.recovery_link(user.pk)
    second = identity.recovery_link(user.pk)

    assert first != second and fake.recovery_links[user.pk] == second
    assert second.startswith(f"{URL}/if/flow/")
    assert first not in caplog.text and second not in caplog.text
    assert f"/core/users/{user.pk}/recovery/" in caplog.text  # the call is logged, not the link
    assert TOKEN not in caplog.text and TOKEN not in repr(identity)


def test_a_taken_username_is_a_permanent_error_naming_the_field(identity):
    identity.create_user(new_user())

    with pytest.raises(IdentityError) as caught:
        identity.create_user(new_user(customer="2"))

    assert (caught.value.transient, caught.value.code) == (False, "username")


@pytest.mark.parametrize(
    ("status", "body", "headers", "transient", "code", "retry_after"),
    [
        (503, {"detail": "unavailable"}, {}, True, "http_503", None),
        (429, {"detail": "slow down"}, {"Retry-After": "7"}, True, "http_429", 7),
        (403, {"detail": "no permission"}, {}, False, "http_403", None),
        (400, {"name": ["group with this name already exists."]}, {}, False, "name", None),
    ],
)
def test_the_error_table(status, body, headers, transient, code, retry_after):
    request = httpx.Request("POST", f"{URL}{API}/core/groups/")
    error = authentik_error(httpx.Response(status, json=body, headers=headers, request=request))

    assert (error.transient, error.code, error.retry_after) == (transient, code, retry_after)
    assert "/core/groups/" in str(error)


def test_a_lost_answer_is_a_transient_error_after_the_write_happened(identity, fake):
    fake.inject(method="POST", path_prefix=f"{API}/core/users/", drop=True)

    with pytest.raises(IdentityError) as caught:
        identity.create_user(new_user())

    assert caught.value.transient is True
    assert len(fake.users) == 1  # made, though we never heard


def test_a_wrong_token_is_refused_permanently(fake):
    stranger = AuthentikIdentity(base_url=URL, token="not-the-token")

    with pytest.raises(IdentityError) as caught:
        stranger.find_users(email="ada@example.com")

    assert (caught.value.transient, caught.value.code) == (False, "http_403")


def test_the_fake_refuses_a_body_authentik_client_rejects(fake):
    with httpx.Client(base_url=URL + API, transport=fake.transport()) as client:
        answer = client.post(
            "/core/users/",
            json={"username": "x", "password": "hunter2"},  # no name; an unknown field
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    assert answer.status_code == 400
    assert len(fake.violations) == 1 and "UserRequest" in fake.violations[0]
    assert fake.users == {}
    fake.violations.clear()


def test_no_url_builds_no_adapter():
    assert identity_build(AuthentikConfig(url="", token="")) is None
    built = identity_build(AuthentikConfig(url="https://auth.example.com/", token="t"))
    assert built is not None and built.api.base_url == "https://auth.example.com/api/v3"

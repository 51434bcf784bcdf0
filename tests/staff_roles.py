"""Staff users of one role (a group of wopr.roles, never a superuser), for the cockpit tests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client


def role_user(role: str, username: str | None = None) -> Any:
    """An active staff user whose only group is `role`."""
    user = get_user_model().objects.create_user(username=username or f"{role}-user", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def staff_client(role: str) -> Client:
    """A client signed in as a staff user (not a superuser) whose only group is `role`."""
    client = Client()
    client.force_login(role_user(role))
    return client

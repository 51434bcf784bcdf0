"""The interface of identity providers: customers' users and groups, typed in and out.

An identity provider is one directory of users (Authentik). An adapter never touches the ORM and
never returns raw JSON; failures are `integrations.errors.IdentityError`, which says whether
trying again may help. Writes are single calls: finding before creating, so that a retried
create never makes a second user or group, is the caller's job (accounts.services), which knows
what identifies a customer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.errors import IdentityError

__all__ = ["IdentityError", "IdentityGroup", "IdentityProvider", "IdentityUser", "NewUser"]


@dataclass(frozen=True)
class IdentityUser:
    """A user as the identity provider holds it; `group_pks` are the groups it is a direct
    member of, `group_names` their names when the provider said them."""

    pk: int
    username: str
    email: str
    name: str
    is_active: bool
    attributes: Mapping[str, Any] = field(default_factory=dict)
    group_pks: frozenset[str] = frozenset()
    group_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NewUser:
    """A user we want created (no password: the owner sets one through a recovery link)."""

    username: str
    email: str
    name: str
    path: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityGroup:
    """A group as the identity provider holds it."""

    pk: str
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


class IdentityProvider(ABC):
    """One directory of users and groups."""

    kind: str

    @abstractmethod
    def find_users(
        self,
        *,
        attributes: Mapping[str, Any] | None = None,
        email: str | None = None,
        username: str | None = None,
    ) -> list[IdentityUser]:
        """Users matching every filter given (attribute values compared exactly)."""

    @abstractmethod
    def get_user(self, pk: int) -> IdentityUser | None:
        """The user `pk`, or None when there is none."""

    @abstractmethod
    def create_user(self, user: NewUser) -> IdentityUser:
        """Create a user (a taken username is a permanent error with code `username`)."""

    @abstractmethod
    def update_user(
        self,
        pk: int,
        *,
        is_active: bool | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> IdentityUser:
        """Change what is given (attributes are replaced whole: pass the merged mapping)."""

    @abstractmethod
    def find_group(self, name: str) -> IdentityGroup | None:
        """The group named exactly `name`, or None."""

    @abstractmethod
    def create_group(self, name: str, attributes: Mapping[str, Any]) -> IdentityGroup:
        """Create a group (a taken name is a permanent error with code `name`)."""

    @abstractmethod
    def add_to_group(self, group_pk: str, user_pk: int) -> None:
        """Make the user a member (already one: no change)."""

    @abstractmethod
    def remove_from_group(self, group_pk: str, user_pk: int) -> None:
        """End the membership (not a member: no change)."""

    @abstractmethod
    def recovery_link(self, user_pk: int) -> str:
        """A one-time link with which the user sets a password. A secret: never log it."""

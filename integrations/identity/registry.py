"""The identity provider a configuration means, built from explicit values (no settings here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from integrations.budget import RateBudget
from integrations.identity.authentik import AuthentikIdentity
from integrations.identity.base import IdentityProvider


@dataclass(frozen=True)
class AuthentikConfig:
    """Where Authentik is (its root URL; `/api/v3` is added) and the token that manages users."""

    url: str
    token: str = field(repr=False)
    budget: RateBudget | None = None


def identity_build(config: AuthentikConfig) -> IdentityProvider | None:
    """The Authentik adapter, or None when no URL is configured (development: no accounts)."""
    if not config.url.strip():
        return None
    return AuthentikIdentity(base_url=config.url, token=config.token, budget=config.budget)

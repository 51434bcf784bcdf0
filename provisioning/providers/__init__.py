"""Registry of provider kinds; `get_provider(kind)` builds the configured adapter."""

from __future__ import annotations

from provisioning.providers.base import CloudProvider
from provisioning.providers.fake import FakeProvider

PROVIDER_CLASSES: dict[str, type[CloudProvider]] = {"fake": FakeProvider}


def get_provider(kind: str) -> CloudProvider:
    """The adapter for `kind`, configured from settings."""
    try:
        return PROVIDER_CLASSES[kind]()
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}") from None

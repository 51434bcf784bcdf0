"""Cloud provider kinds, and a builder from explicit configuration (no settings read here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import import_module

from integrations.budget import RateBudget
from integrations.clouds.base import CloudProvider

# kind -> "module:Class"; imported on first use. The fake is built app-side (it needs a store).
PROVIDER_CLASSES: dict[str, str] = {
    "fake": "integrations.clouds.fake:FakeCloud",
    "hetzner": "integrations.clouds.hetzner:HetznerProvider",
    "digitalocean": "integrations.clouds.digitalocean:DigitalOceanProvider",
}


@dataclass(frozen=True)
class CloudConfig:
    """What a real adapter needs: where, with which token, which SSH keys, which budget."""

    base_url: str
    token: str = field(repr=False)
    ssh_keys: Sequence[str] = ()
    budget: RateBudget | None = None
    # Only where the API gives no snapshot price (DigitalOcean); None: the adapter's default.
    snapshot_price_per_gb: Decimal | str | None = None


def provider_class(kind: str) -> type[CloudProvider]:
    """The adapter class of `kind`; ValueError for an unknown kind."""
    try:
        module, _, name = PROVIDER_CLASSES[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}") from None
    return getattr(import_module(module), name)


def provider_build(kind: str, config: CloudConfig) -> CloudProvider:
    """A real adapter of `kind` built from `config`."""
    cls = provider_class(kind)
    extra = {}
    if config.snapshot_price_per_gb is not None:
        extra["snapshot_price_per_gb"] = config.snapshot_price_per_gb
    return cls(  # type: ignore[call-arg]
        base_url=config.base_url,
        token=config.token,
        budget=config.budget,
        ssh_keys=list(config.ssh_keys),
        **extra,
    )

"""Registry of provider kinds; `get_provider(kind)` builds the adapter configured in settings.

`PROVIDERS` names the enabled kinds; each real adapter takes its base URL and token from
`<KIND>_API_URL` and `<KIND>_API_TOKEN`, so the same code talks to the real cloud, a Prism mock
of its spec or a stateful fake served on loopback, by settings alone.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

from provisioning.providers.base import CloudProvider

# kind -> "module:Class"; imported on first use.
PROVIDER_CLASSES: dict[str, str] = {
    "fake": "provisioning.providers.fake:FakeProvider",
    "hetzner": "provisioning.providers.hetzner:HetznerProvider",
    "digitalocean": "provisioning.providers.digitalocean:DigitalOceanProvider",
}


def provider_class(kind: str) -> type[CloudProvider]:
    try:
        module, _, name = PROVIDER_CLASSES[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}") from None
    return getattr(import_module(module), name)


def get_provider(kind: str) -> CloudProvider:
    """The adapter for `kind`, configured from settings, with the shared rate budget."""
    cls = provider_class(kind)
    if kind == "fake":
        return cls()
    from provisioning.ratelimit import DbRateBudget

    prefix = kind.upper()
    return cls(
        base_url=getattr(settings, f"{prefix}_API_URL"),
        token=getattr(settings, f"{prefix}_API_TOKEN"),
        budget=DbRateBudget(kind),
        ssh_keys=list(getattr(settings, f"{prefix}_SSH_KEYS", [])),
    )

"""The app's side of the vendor registries: `get_provider(kind)` and `get_dns_backend()` build
the adapters of `integrations/` from settings, with what only the app has: the shared rate
budget (RateLimitBudget rows), the fakes' database stores and their staged faults.

`PROVIDERS` names the enabled kinds; each real adapter takes its base URL and token from
`<KIND>_API_URL` and `<KIND>_API_TOKEN`, so the same code talks to the real cloud, a Prism mock
of its spec or a stateful fake served on loopback, by settings alone.
"""

from __future__ import annotations

from django.conf import settings

from dns.backends.fake import OrmZone
from integrations.clouds.base import CloudProvider
from integrations.clouds.registry import (
    PROVIDER_CLASSES,
    CloudConfig,
    provider_build,
    provider_class,
)
from integrations.dns.base import DnsBackend, DnsError
from integrations.dns.registry import CloudflareConfig, FakeConfig, dns_backend_build
from provisioning.faults import dns_faults
from provisioning.ratelimit import DbRateBudget

__all__ = ["PROVIDER_CLASSES", "get_dns_backend", "get_provider", "provider_class"]


def get_provider(kind: str) -> CloudProvider:
    """The adapter for `kind`, configured from settings, with the shared rate budget."""
    if kind == "fake":
        from provisioning.fake_cloud import FakeProvider

        return FakeProvider()
    provider_class(kind)  # an unknown kind fails before any setting is read
    prefix = kind.upper()
    config = CloudConfig(
        base_url=getattr(settings, f"{prefix}_API_URL"),
        token=getattr(settings, f"{prefix}_API_TOKEN"),
        ssh_keys=list(getattr(settings, f"{prefix}_SSH_KEYS", [])),
        budget=DbRateBudget(kind),
        snapshot_price_per_gb=getattr(settings, f"{prefix}_SNAPSHOT_PRICE_PER_GB", None),
    )
    return provider_build(kind, config)


def get_dns_backend() -> DnsBackend:
    """The DNS backend DNS_BACKEND names (Cloudflare with the shared rate budget; the fake over
    the database zone with its staged faults)."""
    kind = settings.DNS_BACKEND
    if kind == "fake":
        return dns_backend_build(kind, FakeConfig(store=OrmZone(), faults=dns_faults))
    config = CloudflareConfig(
        base_url=settings.CLOUDFLARE_API_URL,
        token=settings.CLOUDFLARE_API_TOKEN,
        zone_id=settings.CLOUDFLARE_ZONE_ID,
        budget=DbRateBudget("cloudflare", DnsError),
    )
    return dns_backend_build(kind, config)

"""Registry of DNS backends; `get_dns_backend()` builds the one DNS_BACKEND names."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

from dns.backends.base import DnsBackend

DNS_BACKENDS: dict[str, str] = {
    "fake": "dns.backends.fake:FakeDns",
    "cloudflare": "dns.backends.cloudflare:CloudflareDns",
}


def get_dns_backend() -> DnsBackend:
    """The configured DNS backend (Cloudflare with the shared rate budget)."""
    module, _, name = DNS_BACKENDS[settings.DNS_BACKEND].partition(":")
    cls = getattr(import_module(module), name)
    if settings.DNS_BACKEND == "fake":
        return cls()
    from provisioning.ratelimit import DbRateBudget
    from wopr.lib.errors import DnsError

    return cls(
        base_url=settings.CLOUDFLARE_API_URL,
        token=settings.CLOUDFLARE_API_TOKEN,
        zone_id=settings.CLOUDFLARE_ZONE_ID,
        budget=DbRateBudget("cloudflare", DnsError),
    )

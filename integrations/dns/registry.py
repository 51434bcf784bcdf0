"""Which DNS backend a name means, built from explicit configuration (no settings here)."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.budget import RateBudget
from integrations.dns.base import DnsBackend
from integrations.dns.cloudflare import CloudflareDns
from integrations.dns.fake import FakeDns, FaultHook, ZoneStore, no_faults

DNS_BACKENDS: dict[str, type[DnsBackend]] = {"fake": FakeDns, "cloudflare": CloudflareDns}


@dataclass(frozen=True)
class CloudflareConfig:
    """One zone at Cloudflare, the token that may edit it, and the shared budget."""

    base_url: str
    token: str
    zone_id: str
    budget: RateBudget | None = None

    def __repr__(self) -> str:  # never the token
        return f"CloudflareConfig(base_url={self.base_url!r}, zone_id={self.zone_id!r})"


@dataclass(frozen=True)
class FakeConfig:
    """Where the fake zone lives and which faults it injects (MemoryZone, none: defaults)."""

    store: ZoneStore | None = None
    faults: FaultHook = no_faults


def dns_backend_build(kind: str, config: CloudflareConfig | FakeConfig) -> DnsBackend:
    """The backend `kind` names, configured by `config` (KeyError for an unknown kind, which
    the app's start-up check reports first)."""
    cls = DNS_BACKENDS[kind]
    if isinstance(config, CloudflareConfig) and cls is CloudflareDns:
        return CloudflareDns(
            base_url=config.base_url,
            token=config.token,
            zone_id=config.zone_id,
            budget=config.budget,
        )
    if isinstance(config, FakeConfig) and cls is FakeDns:
        return FakeDns(store=config.store, faults=config.faults)
    raise TypeError(f"DNS backend {kind!r} takes no {type(config).__name__}")

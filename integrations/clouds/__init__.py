"""Cloud provider adapters: the contract (base), Hetzner, DigitalOcean, the fake, the registry."""

from integrations.clouds.base import CloudProvider, Created, Location, Server, ServerSpec
from integrations.clouds.registry import (
    PROVIDER_CLASSES,
    CloudConfig,
    provider_build,
    provider_class,
)

__all__ = [
    "PROVIDER_CLASSES",
    "CloudConfig",
    "CloudProvider",
    "Created",
    "Location",
    "Server",
    "ServerSpec",
    "provider_build",
    "provider_class",
]

"""DNS backends: the adapters live in `integrations.dns`; this package keeps the fake's
database zone (`fake.OrmZone`). `provisioning.vendors.get_dns_backend` builds the configured one."""

from integrations.dns.registry import DNS_BACKENDS

__all__ = ["DNS_BACKENDS"]

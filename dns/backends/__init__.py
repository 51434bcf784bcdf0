"""Registry of DNS backends; `get_dns_backend()` builds the one DNS_BACKEND names."""

from __future__ import annotations

from django.conf import settings

from dns.backends.base import DnsBackend
from dns.backends.fake import FakeDns

DNS_BACKENDS: dict[str, type[DnsBackend]] = {"fake": FakeDns}


def get_dns_backend() -> DnsBackend:
    """The configured DNS backend."""
    return DNS_BACKENDS[settings.DNS_BACKEND]()

"""DNS adapters: the interface (`base`), Cloudflare, the fake, and the registry.

Like the rest of `integrations/`, it imports no app: the app builds a backend with
`registry.dns_backend_build(kind, config)` and hands in the fake's store and fault hook.
"""

from integrations.dns.base import DnsBackend, DnsError, Record, RecordSpec

__all__ = ["DnsBackend", "DnsError", "Record", "RecordSpec"]

"""Errors shared by the adapters: each says whether trying again may help."""

from __future__ import annotations

from wopr.lib.redact import redact


class ExternalError(Exception):
    """A failure at the edge of the world (a cloud API, DNS, e-mail).

    - `transient`: timeouts, rate limits, 5xx, a locked resource: retried with backoff;
      `retry_after` (seconds), when the vendor said so, replaces the backoff.
    - `capacity`: the provider cannot place the server there now (no capacity, location
      disabled); the provision job moves on to the next location, then the next provider.
    - otherwise permanent: the job compensates and fails.
    Messages never carry credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        code: str = "",
        retry_after: float | None = None,
        capacity: bool = False,
    ) -> None:
        # Redacted here, once: these messages become Job errors, JobEvents and health findings.
        super().__init__(redact(message))
        self.transient = transient
        self.code = code
        self.retry_after = retry_after
        self.capacity = capacity


class ProviderError(ExternalError):
    """A cloud provider refused or failed a request."""


class DnsError(ExternalError):
    """The DNS provider refused or failed a request."""

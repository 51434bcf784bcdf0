"""Errors shared by the adapters: each says whether trying again may help."""

from __future__ import annotations


class ExternalError(Exception):
    """A failure at the edge of the world (a cloud API, DNS, e-mail).

    `transient` errors (timeouts, rate limits, 5xx) are retried with backoff; the others fail the
    job and start compensation. `retry_after` (seconds), when the vendor said so, overrides the
    backoff.
    """

    def __init__(
        self, message: str, *, transient: bool, code: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.retry_after = retry_after


class ProviderError(ExternalError):
    """A cloud provider refused or failed a request."""


class DnsError(ExternalError):
    """The DNS provider refused or failed a request."""

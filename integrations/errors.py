"""Errors shared by the adapters: each says whether trying again may help.

Messages are redacted once, here, because they become Job errors, JobEvents and health findings.
This layer knows no settings, so the app installs its redactor at start-up
(`redactor_install(wopr.lib.redact.redact)`, done in `WoprConfig.ready()`).
"""

from __future__ import annotations

from collections.abc import Callable

Redactor = Callable[[str], str]


def _unchanged(text: str) -> str:
    return text


_redactor: Redactor = _unchanged


def redactor_install(redactor: Redactor) -> None:
    """Pass every error message through `redactor` from now on (the app's secret scrubber)."""
    global _redactor
    _redactor = redactor


def redact(text: str) -> str:
    """`text` through the installed redactor (unchanged when none is installed)."""
    return _redactor(text)


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
        super().__init__(redact(message))
        self.transient = transient
        self.code = code
        self.retry_after = retry_after
        self.capacity = capacity


class ProviderError(ExternalError):
    """A cloud provider refused or failed a request."""


class DnsError(ExternalError):
    """The DNS provider refused or failed a request."""


class IdentityError(ExternalError):
    """The identity provider (Authentik) refused or failed a request."""

"""The one httpx client factory. Every request to the outside world is made through it.

It is also the seam for tests: `transport_install(base_url, transport)` routes a base URL to an
`httpx.MockTransport` (or a stateful fake vendor) instead of the network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

logger = logging.getLogger(__name__)

USER_AGENT = "wopr-control-plane/0.1"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)

_transports: dict[str, httpx.BaseTransport] = {}


def _key(base_url: str) -> str:
    return base_url.rstrip("/")


def http_client(
    *, base_url: str, headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None
) -> httpx.Client:
    """A client for one vendor API: a timeout on every request, no redirects followed."""
    return httpx.Client(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=timeout or DEFAULT_TIMEOUT,
        follow_redirects=False,
        transport=_transports.get(_key(base_url)),
    )


def transport_install(base_url: str, transport: httpx.BaseTransport) -> None:
    """Send every request for `base_url` to `transport` (tests and demos)."""
    _transports[_key(base_url)] = transport


def transport_remove(base_url: str) -> None:
    _transports.pop(_key(base_url), None)


@contextmanager
def transport_for(base_url: str, transport: httpx.BaseTransport) -> Iterator[None]:
    """`with transport_for(url, MockTransport(handler)):` routes `url` there for the block."""
    transport_install(base_url, transport)
    try:
        yield
    finally:
        transport_remove(base_url)

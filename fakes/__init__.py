"""Stateful fakes of the vendors' HTTP APIs (Hetzner Cloud, DigitalOcean, Cloudflare DNS).

For tests and `manage.py serve_fakecloud` only: production code never imports them (an
import-linter contract), and the image does not carry them.

Each fake keeps servers, actions or DNS records in memory and answers in the vendor's shapes,
so the real adapters can be exercised end to end without the network. A fake is used through
`httpx.MockTransport` (`fake.transport()`, installed with `integrations.http.transport_install`)
or served on a loopback port (`fakes.loopback.serve(fake, port)`) for tests with several
processes and demos.
Tests validate the fakes' answers against the vendors' own OpenAPI specs, so they cannot drift.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Injected:
    """A scripted answer: the next `times` requests matching method and path prefix get it.

    `status`/`body`/`headers` give the answer; `drop` performs the request and then drops the
    connection (a lost response); `before` (default) answers without performing it.
    """

    method: str
    path_prefix: str
    status: int = 500
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    drop: bool = False


class FakeVendor:
    """Base of the fakes: request routing hooks, scripted failures, a request log."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.injected: list[Injected] = []
        self.requests: list[httpx.Request] = []
        # Called with the user data of every server created (see fakes.beacon).
        self.on_create: Callable[[str], None] | None = None

    # --- to implement ---------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    # --- machinery ------------------------------------------------------------------------
    def inject(self, **kwargs: object) -> Injected:
        """Script the next answer(s), e.g. `inject(method="POST", path_prefix="/v1/servers",
        status=412, body={...})`."""
        scripted = Injected(**kwargs)  # type: ignore[arg-type]
        with self.lock:
            self.injected.append(scripted)
        return scripted

    def _take_injected(self, request: httpx.Request) -> Injected | None:
        with self.lock:
            for scripted in self.injected:
                if (
                    scripted.times > 0
                    and scripted.method == request.method
                    and request.url.path.startswith(scripted.path_prefix)
                ):
                    scripted.times -= 1
                    return scripted
        return None

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.lock:
            self.requests.append(request)
        scripted = self._take_injected(request)
        if scripted is not None and not scripted.drop:
            return httpx.Response(scripted.status, json=scripted.body, headers=scripted.headers)
        with self.lock:
            response = self.route(request)
        if scripted is not None and scripted.drop:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a response", request=request
            )
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

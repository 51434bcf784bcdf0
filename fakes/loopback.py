"""Serving a fake vendor over real HTTP on a loopback port (serve_fakecloud, scale-out tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from fakes import FakeVendor


def serve(fake: FakeVendor, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve `fake` over real HTTP on a loopback port (in a daemon thread); returns the server,
    whose `server_address` tells the port. Call `.shutdown()` to stop it."""
    handler = _handler_for(fake.handle)
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _handler_for(handle: Callable[[httpx.Request], httpx.Response]) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host", "127.0.0.1")
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = handle(request)
            except httpx.TransportError:
                self.close_connection = True  # the lost response: hang up without answering
                return
            payload = response.content
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler

"""Validate an httpx request/response pair against a vendor's own OpenAPI document.

The trimmed specs live beside the project in ../shared/specs/trimmed/ (public data, never copied
into the repository); tests that need them skip when ../shared/ is absent (a user's clone).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.loopback import listening

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRIMMED = SHARED / "specs" / "trimmed"
# The spec's own server URL path, which our base URL carries too (Prism ignores it).
SERVER_PREFIX = {"hetzner": "/v1", "cloudflare": "/client/v4", "digitalocean": ""}

needs_shared = pytest.mark.skipif(
    not TRIMMED.is_dir(), reason="../shared/ is absent (a user's clone): no vendor specs"
)


@cache
def vendor_openapi(vendor: str) -> OpenAPI:
    spec = json.loads((TRIMMED / f"{vendor}.json").read_text())
    # Validate paths as the vendor documents them, whatever host the test talked to.
    spec["servers"] = [{"url": f"http://vendor.test{SERVER_PREFIX[vendor]}"}]
    return OpenAPI.from_dict(spec)


class _Request:
    def __init__(self, request: httpx.Request, prefix: str) -> None:
        path = request.url.path
        if prefix and not path.startswith(prefix):
            path = prefix + path
        self.host_url = "http://vendor.test"
        self.path = path
        self.full_url_pattern = self.host_url + path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "application/json").split(";")[0]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "application/json").split(";")[0]
        self.headers = Headers(list(response.headers.items()))


def spec_errors(
    vendor: str, request: httpx.Request, response: httpx.Response | None = None
) -> list[str]:
    """Every way the exchange breaks the vendor's spec (empty when it conforms)."""
    openapi = vendor_openapi(vendor)
    wrapped = _Request(request, SERVER_PREFIX[vendor])
    errors = [_describe(error) for error in openapi.iter_request_errors(wrapped)]
    if response is not None:
        errors += [
            _describe(error) for error in openapi.iter_response_errors(wrapped, _Response(response))
        ]
    return errors


def _describe(error: Any) -> str:
    causes = getattr(error, "schema_errors", None) or [error.__cause__] if error.__cause__ else []
    detail = "; ".join(str(getattr(cause, "message", cause))[:300] for cause in causes if cause)
    return f"{type(error).__name__}: {error}" + (f" ({detail})" if detail else "")


def assert_conforms(
    vendor: str, request: httpx.Request, response: httpx.Response | None = None
) -> None:
    errors = spec_errors(vendor, request, response)
    assert not errors, f"{request.method} {request.url.path}: " + " | ".join(errors)


def spec_checked(
    vendor: str, handle: Callable[[httpx.Request], httpx.Response]
) -> httpx.MockTransport:
    """A transport answering with `handle` that asserts each request the adapter sends, and
    each answer the fake gives, conform to the vendor's spec. Without ../shared/ (a user's
    clone) it only answers."""
    validate = (TRIMMED / f"{vendor}.json").is_file()

    def checked(request: httpx.Request) -> httpx.Response:
        request.read()
        if validate:
            assert_conforms(vendor, request)  # before a dropped answer can hide it
        response = handle(request)
        if validate:
            response.read()
            assert_conforms(vendor, request, response)
        return response

    return httpx.MockTransport(checked)


MOCKS_SH = SHARED / "mocks" / "mocks.sh"


def _listening(url: str) -> bool:
    parsed = httpx.URL(url)
    return listening(parsed.host, parsed.port)


def mock_server(url: str) -> str:
    """The base URL of one of ../shared/mocks/' servers (Prism), starting them all once with
    `mocks.sh start` when nothing listens there; skips, saying why, when that cannot work."""
    if not MOCKS_SH.is_file():
        pytest.skip("../shared/ is absent (a user's clone): no vendor mock servers")
    if _listening(url):
        return url
    try:
        started = subprocess.run(
            ["bash", str(MOCKS_SH), "start"], capture_output=True, text=True, timeout=240
        )
        detail = (started.stdout + started.stderr)[-300:]
    except (OSError, subprocess.TimeoutExpired) as error:
        detail = str(error)
    if not _listening(url):
        pytest.skip(f"the mock on {url} does not answer after `mocks.sh start`: {detail}")
    return url

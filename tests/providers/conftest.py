"""Shared fixtures of the provider adapter tests: stateful fake vendors behind a transport that
checks every exchange against the vendor's own OpenAPI spec (when ../shared/ is there)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from provisioning.fakecloud.hetzner import FakeHetzner
from provisioning.providers.hetzner import HetznerProvider
from tests.vendor_spec import TRIMMED, assert_conforms
from wopr.lib.http import transport_for

HETZNER_URL = "https://api.hetzner.cloud/v1"


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


@pytest.fixture
def fake_hetzner() -> FakeHetzner:
    """A fresh in-memory Hetzner; tweak its attributes (rate_remaining, ...) in the test."""
    return FakeHetzner()


@pytest.fixture
def hetzner(fake_hetzner: FakeHetzner) -> Iterator[HetznerProvider]:
    """The real adapter talking to `fake_hetzner`, every exchange checked against the spec."""
    with transport_for(HETZNER_URL, spec_checked("hetzner", fake_hetzner.handle)):
        yield HetznerProvider(base_url=HETZNER_URL, token=fake_hetzner.token)


@pytest.fixture
def spec_transport() -> Callable[..., httpx.MockTransport]:
    """`spec_transport(vendor, handler)`: a MockTransport whose exchanges are spec-checked."""
    return spec_checked

"""Shared fixtures of the provider adapter tests: stateful fake vendors behind a transport that
checks every exchange against the vendor's own OpenAPI spec (when ../shared/ is there)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from fakes.hetzner import FakeHetzner
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from tests.vendor_spec import spec_checked

HETZNER_URL = "https://api.hetzner.cloud/v1"


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

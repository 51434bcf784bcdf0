"""The resize requests of both cloud adapters, sent to Prism mocks of the vendors' own specs,
which answer 422 to whatever the spec does not allow. Prism is not stateful: only "accepted
and parsed" is asserted; the behaviour is proved against the stateful fakes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from tests.vendor_spec import Recording, mock_server, needs_shared, prism_accepted

pytestmark = needs_shared

HETZNER_PRISM = "http://127.0.0.1:4010"  # Prism ignores the spec's /v1 base path
DO_PRISM = "http://127.0.0.1:4013"


@pytest.fixture
def recording() -> Iterator[Recording]:
    transport = Recording()
    urls = [mock_server(HETZNER_PRISM), mock_server(DO_PRISM)]
    with transport_for(urls[0], transport), transport_for(urls[1], transport):
        yield transport
    transport.inner.close()


def test_hetzner_change_type_and_the_running_actions_are_accepted(recording):
    hetzner = HetznerProvider(base_url=HETZNER_PRISM, token="prism-token")

    started = hetzner.server_resize("42", "cpx32", grow_disk=True)
    kept = hetzner.server_resize("42", "cpx32", grow_disk=False)
    hetzner.resize_in_progress("42")

    assert started.action_id.isdigit() and kept.grow_disk is False
    assert prism_accepted(recording) == [
        "POST /servers/42/actions/change_type",
        "POST /servers/42/actions/change_type",
        "GET /servers/42/actions",
    ]


def test_digitalocean_resize_and_the_droplet_actions_are_accepted(recording):
    digitalocean = DigitalOceanProvider(base_url=DO_PRISM, token="prism-token")

    started = digitalocean.server_resize("3164444", "s-4vcpu-8gb", grow_disk=True)
    digitalocean.resize_in_progress("3164444")

    assert started.action_id.isdigit()
    assert prism_accepted(recording)[:2] == [
        "POST /v2/droplets/3164444/actions",
        "GET /v2/droplets/3164444/actions",
    ]

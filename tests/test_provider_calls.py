"""What one Beacon costs at the cloud: the fewest calls the vendor's API allows.

A purchase drives the real adapters against the stateful fakes (see test_flow_real_adapters).
Hetzner: create, switch protection on, then one GET of the server per poll (its create action
is read only when the server is off). DigitalOcean: look for an earlier attempt's droplet by
tag (names are not unique there), create, then one GET of the droplet per poll.
"""

from __future__ import annotations

import pytest

from tests.test_flow_real_adapters import buy, clouds  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def calls(vendor) -> list[str]:
    return [f"{request.method} {request.url.path}" for request in vendor.requests]


def test_a_beacon_costs_three_hetzner_calls(clouds, buy):  # noqa: F811
    clouds.hetzner.action_polls = 0  # the server is running at the first look

    job = buy("calls1")

    assert job.state == "completed", job.last_error
    (server,) = clouds.hetzner.servers
    assert calls(clouds.hetzner) == [
        "POST /v1/servers",
        f"POST /v1/servers/{server}/actions/change_protection",
        f"GET /v1/servers/{server}",
    ]


def test_a_slower_hetzner_server_costs_one_get_per_poll(clouds, buy):  # noqa: F811
    clouds.hetzner.action_polls = 2  # still initializing at the first two looks

    job = buy("calls2")

    assert job.state == "completed", job.last_error
    (server,) = clouds.hetzner.servers
    assert calls(clouds.hetzner)[2:] == [f"GET /v1/servers/{server}"] * 3


def test_a_beacon_costs_three_digitalocean_calls(clouds, buy):  # noqa: F811
    clouds.hetzner.unavailable_locations = {"fsn1", "nbg1", "hel1"}
    clouds.digitalocean.action_polls = 0

    job = buy("calls3")

    assert job.state == "completed", job.last_error
    (droplet,) = clouds.digitalocean.droplets
    assert calls(clouds.digitalocean) == [
        "GET /v2/droplets",
        "POST /v2/droplets",
        f"GET /v2/droplets/{droplet}",
    ]

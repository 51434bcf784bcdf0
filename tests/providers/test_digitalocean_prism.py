"""Every request the DigitalOcean adapter can make, sent to a Prism mock of DO's own spec.

Prism validates each request against DigitalOcean's OpenAPI document and answers with the
spec's static examples (so only "accepted" and "parsed" are checked here, not state).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.clouds.base import ServerSpec
from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.http import http_client, transport_for
from tests.vendor_spec import Recording, assert_conforms, mock_server, needs_shared

pytestmark = needs_shared

PRISM = "http://127.0.0.1:4013"
TOKEN = "prism-token"
DROPLET_ID = "3164444"  # the spec's example droplet: Prism is not stateful


@pytest.fixture(scope="module")
def prism() -> str:
    """The DigitalOcean mock on 127.0.0.1:4013, started with ../shared/mocks/mocks.sh if down."""
    return mock_server(PRISM)


@pytest.fixture
def recorder(prism):
    recording = Recording()
    with transport_for(prism, recording):
        yield recording
    recording.close()


@pytest.fixture
def provider(prism, recorder) -> DigitalOceanProvider:
    return DigitalOceanProvider(base_url=prism, token=TOKEN, ssh_keys=["289794"])


SPEC = ServerSpec(
    name="wopr-alpha",
    size="s-2vcpu-4gb",
    image="debian-12",
    location="fra1",
    labels={"wopr-beacon": "5", "wopr-job": "9", "managed-by": "wopr"},
    user_data="#cloud-config\nruncmd: [echo hi]\n",
    ssh_keys=["3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"],
)

CALLS: dict[str, Callable[[DigitalOceanProvider], object]] = {
    "create_server": lambda provider: provider.create_server(SPEC),
    "get_server": lambda provider: provider.get_server(DROPLET_ID),
    "find_servers": lambda provider: provider.find_servers({"wopr-job": "9"}),
    "find_servers_unfiltered": lambda provider: provider.find_servers({}),
    "action_status": lambda provider: provider.action_status("36804636"),
    "power_off": lambda provider: provider.power_off(DROPLET_ID),
    "power_on": lambda provider: provider.power_on(DROPLET_ID),
    "delete_server": lambda provider: provider.delete_server(DROPLET_ID),
    "list_locations": lambda provider: provider.list_locations(),
    "list_server_types": lambda provider: provider.list_server_types(),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_prism_accepts_every_request_the_adapter_makes(name, provider, recorder):
    CALLS[name](provider)

    assert recorder.exchanges, "the call sent a request"
    for request, response in recorder.exchanges:
        where = f"{request.method} {request.url.path}"
        assert response.is_success, f"{where}: {response.status_code} {response.text[:300]}"
        assert "sl-violations" not in response.headers, response.headers["sl-violations"]
        assert_conforms("digitalocean", request, response)


def test_prism_answers_parse_into_our_types(provider):
    created = provider.create_server(SPEC)
    server = provider.get_server(DROPLET_ID)

    assert created.server.id == DROPLET_ID
    assert created.action_id.isdigit()
    assert server is not None and server.id == DROPLET_ID
    assert provider.action_status("36804636") in {"running", "success", "error"}
    assert provider.list_locations()
    assert all(size.monthly_price for size in provider.list_server_types())


def test_prism_rejects_a_droplet_without_name_or_size(prism):
    """Validation is live: the adapter's acceptance above means something."""
    with http_client(base_url=prism, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        response = client.post("/v2/droplets", json={"region": "fra1", "image": "debian-12-x64"})

    assert response.status_code == 422
    assert "name" in response.headers.get("sl-violations", "")


def test_prism_rejects_a_request_without_credentials(prism):
    with http_client(base_url=prism) as client:
        response = client.get("/v2/droplets")

    assert response.status_code == 401

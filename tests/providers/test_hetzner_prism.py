"""Every request HetznerProvider can make, sent once to a Prism mock of Hetzner's own OpenAPI
spec, which rejects (422) whatever the spec does not allow. Prism is not stateful: it answers
with the spec's examples (server 42), so only "accepted and parsed" is asserted here."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from integrations.clouds.base import ServerSpec
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from tests.vendor_spec import Recording, mock_server, needs_shared, prism_accepted

pytestmark = needs_shared

PRISM = "http://127.0.0.1:4010"  # Prism ignores the spec's /v1 base path


@pytest.fixture(scope="session")
def prism_hetzner() -> str:
    """Prism's base URL, starting the shared mocks once if nothing answers there."""
    return mock_server(PRISM)


@pytest.fixture
def recording(prism_hetzner: str) -> Iterator[Recording]:
    transport = Recording()
    with transport_for(prism_hetzner, transport):
        yield transport
    transport.inner.close()


@pytest.fixture
def prism(prism_hetzner: str, recording: Recording) -> HetznerProvider:
    return HetznerProvider(base_url=prism_hetzner, token="prism-token", ssh_keys=["ops"])


def test_create_and_protect_are_accepted(prism, recording):
    spec = ServerSpec(
        name="wopr-prism",
        size="cpx22",
        image="ubuntu-24.04",
        location="fsn1",
        labels={"wopr-job": "7", "wopr-beacon": "3", "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )
    created = prism.create_server(spec)
    prism.protect(created.server.id)

    assert created.server.id == "42" and created.action_id.isdigit()
    assert created.server.ipv4 and created.server.ipv6
    assert prism_accepted(recording) == [
        "POST /servers",
        "POST /servers/42/actions/change_protection",
        "POST /servers/42/actions/change_protection",
    ]


def test_reads_are_accepted(prism, recording):
    server = prism.get_server("42")
    found = prism.find_servers({"wopr-job": "7", "managed-by": "wopr"})
    status = prism.action_status("42")
    locations = prism.list_locations()
    types = prism.list_server_types()

    assert server is not None and server.id == "42"
    assert found and status in ("running", "success", "error")
    assert locations and types and types[0].monthly_price
    assert prism_accepted(recording) == [
        "GET /servers/42",
        "GET /servers",
        "GET /actions/42",
        "GET /locations",
        "GET /server_types",
    ]


def test_power_and_delete_are_accepted(prism, recording):
    off = prism.power_off("42")
    on = prism.power_on("42")
    prism.delete_server("42")

    assert off.isdigit() and on.isdigit()
    assert prism_accepted(recording) == [
        "POST /servers/42/actions/poweroff",
        "POST /servers/42/actions/poweron",
        "POST /servers/42/actions/change_protection",
        "DELETE /servers/42",
    ]


def test_a_malformed_request_is_rejected(prism_hetzner):
    """Proof the validation is live: a create without a name is refused."""
    response = httpx.post(
        f"{prism_hetzner}/servers",
        json={"server_type": "cpx22", "image": "ubuntu-24.04"},
        headers={"Authorization": "Bearer prism-token"},
        timeout=10,
    )

    assert response.status_code == 422
    assert "name" in response.text

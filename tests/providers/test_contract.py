"""One behaviour contract, run against every provider: the fake (kept in the database) and each
real adapter over its stateful fake vendor (every exchange checked against the vendor's spec).
What passes here is what the provision workflow relies on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.digitalocean import FakeDigitalOcean
from fakes.hetzner import FakeHetzner
from integrations.clouds.base import CloudProvider, ServerSpec
from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from provisioning.fake_cloud import FakeProvider
from tests.vendor_spec import spec_checked

LOCATIONS = {"fake": "fake-eu-central", "hetzner": "fsn1", "digitalocean": "fra1"}
SIZES = {"fake": "cpx22", "hetzner": "cpx22", "digitalocean": "s-2vcpu-4gb"}


@pytest.fixture(params=["fake", "hetzner", "digitalocean"])
def provider(request, settings) -> Iterator[CloudProvider]:
    settings.FAKE_SERVER_BOOT_SECONDS = 0
    if request.param == "fake":
        request.getfixturevalue("db")
        yield FakeProvider()
    elif request.param == "hetzner":
        vendor = FakeHetzner(action_polls=0)
        url = "https://hetzner.contract.test/v1"
        with transport_for(url, spec_checked("hetzner", vendor.handle)):
            yield HetznerProvider(base_url=url, token=vendor.token)
    else:
        vendor = FakeDigitalOcean(action_polls=0)
        url = "https://digitalocean.contract.test"
        with transport_for(url, spec_checked("digitalocean", vendor.handle)):
            yield DigitalOceanProvider(base_url=url, token=vendor.token)


def spec_for(provider: CloudProvider, name: str, job: str = "job-1") -> ServerSpec:
    return ServerSpec(
        name=name,
        size=SIZES[provider.kind],
        image="debian-12",
        location=LOCATIONS[provider.kind],
        labels={"wopr-beacon": "beacon-1", "wopr-job": job, "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )


def running(provider: CloudProvider, server_id: str) -> str:
    """The server's status once any boot action is over (a few looks at most)."""
    status = ""
    for _ in range(5):
        status = provider.get_server(server_id).status
        if status == "running":
            break
    return status


def test_create_then_get_returns_the_same_server(provider):
    created = provider.create_server(spec_for(provider, "wopr-contract1"))

    server = provider.get_server(created.server.id)

    assert server is not None
    assert (server.id, server.name) == (created.server.id, "wopr-contract1")
    assert server.labels["wopr-job"] == "job-1"
    assert server.ipv4
    assert running(provider, server.id) == "running"


def test_create_answers_with_an_action_that_ends_in_success(provider):
    created = provider.create_server(spec_for(provider, "wopr-contract2"))

    statuses = [provider.action_status(created.action_id) for _ in range(3)]

    assert statuses[-1] == "success"
    assert set(statuses) <= {"running", "success"}


def test_find_by_label_returns_only_matching_servers(provider):
    mine = provider.create_server(spec_for(provider, "wopr-contract3", job="job-a")).server
    provider.create_server(spec_for(provider, "wopr-contract4", job="job-b"))

    found = provider.find_servers({"wopr-job": "job-a"})

    assert [server.id for server in found] == [mine.id]
    assert len(provider.find_servers({"managed-by": "wopr"})) == 2
    assert provider.find_servers({"wopr-job": "job-none"}) == []


def test_power_off_then_on(provider):
    server = provider.create_server(spec_for(provider, "wopr-contract5")).server
    running(provider, server.id)

    off_action = provider.power_off(server.id)
    for _ in range(3):
        provider.action_status(off_action)
    assert provider.get_server(server.id).status == "off"

    on_action = provider.power_on(server.id)
    for _ in range(3):
        provider.action_status(on_action)
    assert provider.get_server(server.id).status == "running"


def test_delete_removes_the_server_and_is_idempotent(provider):
    server = provider.create_server(spec_for(provider, "wopr-contract6")).server

    provider.delete_server(server.id)
    provider.delete_server(server.id)

    assert provider.get_server(server.id) is None
    assert provider.find_servers({"wopr-job": "job-1"}) == []


def test_an_unknown_id_is_none_and_deleting_it_is_fine(provider):
    assert provider.get_server("999999") is None
    provider.delete_server("999999")


def test_locations_and_sizes_cover_what_the_catalogue_needs(provider):
    from operations.health import needed_sizes

    locations = {location.name for location in provider.list_locations()}
    sizes = {server_type.name for server_type in provider.list_server_types()}

    assert LOCATIONS[provider.kind] in locations
    assert needed_sizes(provider.kind) <= sizes

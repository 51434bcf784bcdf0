"""Live checks against real accounts, run by hand before a release:

    LIVE_HETZNER_API_TOKEN=... LIVE_DIGITALOCEAN_API_TOKEN=... \\
    LIVE_CLOUDFLARE_API_TOKEN=... LIVE_CLOUDFLARE_ZONE_ID=... LIVE_CLOUDFLARE_NAME=zone.example \
    pytest -m live

Read-only calls only, unless LIVE_ALLOW_SPEND=1 also lets one small server be created and
deleted (a few cents). Without the variables each test is skipped and says which one is missing.
"""

from __future__ import annotations

import os
import uuid

import pytest

from integrations.clouds.base import ServerSpec
from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.clouds.hetzner import HetznerProvider
from integrations.dns.base import RecordSpec
from integrations.dns.cloudflare import CloudflareDns
from operations.health import needed_sizes

pytestmark = pytest.mark.live


def need(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live test: set {', '.join(missing)} to run it against the real API")
    return {name: os.environ[name] for name in names}


def hetzner() -> HetznerProvider:
    env = need("LIVE_HETZNER_API_TOKEN")
    return HetznerProvider(
        base_url="https://api.hetzner.cloud/v1", token=env["LIVE_HETZNER_API_TOKEN"]
    )


def digitalocean() -> DigitalOceanProvider:
    env = need("LIVE_DIGITALOCEAN_API_TOKEN")
    return DigitalOceanProvider(
        base_url="https://api.digitalocean.com", token=env["LIVE_DIGITALOCEAN_API_TOKEN"]
    )


@pytest.mark.parametrize("build", [hetzner, digitalocean], ids=["hetzner", "digitalocean"])
def test_live_catalogue_has_every_size_we_sell(build):
    provider = build()

    sizes = {server_type.name for server_type in provider.list_server_types()}

    assert needed_sizes(provider.kind) <= sizes
    assert provider.list_locations()


@pytest.mark.parametrize("build", [hetzner, digitalocean], ids=["hetzner", "digitalocean"])
def test_live_find_by_label_answers(build):
    provider = build()

    found = provider.find_servers({"wopr-job": f"live-{uuid.uuid4().hex[:8]}"})

    assert found == []


def test_live_hetzner_create_and_delete_one_server():
    need("LIVE_ALLOW_SPEND")
    provider = hetzner()
    job = f"live-{uuid.uuid4().hex[:8]}"
    created = provider.create_server(
        ServerSpec(
            name=f"wopr-{job}",
            size="cpx22",
            image="debian-12",
            location="fsn1",
            labels={"wopr-job": job, "managed-by": "wopr-live-test"},
            user_data="#cloud-config\n",
        )
    )
    try:
        assert provider.find_servers({"wopr-job": job})[0].id == created.server.id
    finally:
        provider.delete_server(created.server.id)
    assert provider.get_server(created.server.id) is None or provider.get_server(
        created.server.id
    ).status in {"deleting", "off"}


def test_live_cloudflare_upsert_find_delete():
    env = need("LIVE_CLOUDFLARE_API_TOKEN", "LIVE_CLOUDFLARE_ZONE_ID", "LIVE_CLOUDFLARE_NAME")
    dns = CloudflareDns(
        base_url="https://api.cloudflare.com/client/v4",
        token=env["LIVE_CLOUDFLARE_API_TOKEN"],
        zone_id=env["LIVE_CLOUDFLARE_ZONE_ID"],
    )
    name = f"wopr-live-{uuid.uuid4().hex[:8]}.{env['LIVE_CLOUDFLARE_NAME']}"

    record = dns.upsert(RecordSpec("A", name, "192.0.2.10"))
    try:
        assert [found.id for found in dns.find(name, "A")] == [record.id]
        assert dns.upsert(RecordSpec("A", name, "192.0.2.10")).id == record.id
    finally:
        dns.delete(record.id)
    assert dns.find(name, "A") == []

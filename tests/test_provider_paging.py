"""Reconcile and the health sweep see every server and record, however many: no page cap."""

from __future__ import annotations

import pytest

from fakes.cloudflare import ZONE_ID, FakeCloudflare
from fakes.hetzner import FakeHetzner
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from operations.reconcile import reconcile_run
from provisioning.models import FindingKind

HETZNER = "https://api.hetzner.cloud/v1"
CLOUDFLARE = "https://api.cloudflare.com/client/v4"
MANY = 5_000
RECORDS = 20_000


@pytest.fixture
def crowded() -> FakeHetzner:
    """A Hetzner project holding 5,000 servers labelled as ours (no Beacon owns them)."""
    fake = FakeHetzner()
    for number in range(MANY):
        fake.add_server(f"stray{number}", labels={"managed-by": "wopr", "wopr-beacon": "0"})
    fake.add_server("someone-else", labels={"team": "other"})
    return fake


def test_find_servers_returns_every_one_of_five_thousand(crowded):
    provider = HetznerProvider(base_url=HETZNER, token=crowded.token)

    with transport_for(HETZNER, crowded.transport()):
        found = provider.find_servers({"managed-by": "wopr"})

    assert len(found) == MANY
    assert len({server.id for server in found}) == MANY
    assert len(crowded.requests) == MANY // 50  # Hetzner's largest page: 50 servers


@pytest.mark.django_db
def test_reconcile_sees_every_one_of_five_thousand_servers(crowded, settings):
    settings.PROVIDERS = ["hetzner"]
    settings.HETZNER_API_URL, settings.HETZNER_API_TOKEN = HETZNER, crowded.token

    with transport_for(HETZNER, crowded.transport()):
        run = reconcile_run()

    kinds = [finding["kind"] for finding in run.findings]
    assert FindingKind.ERROR not in kinds
    orphans = {f["id"] for f in run.findings if f["kind"] == FindingKind.ORPHAN_SERVER}
    assert orphans == {
        str(key) for key, server in crowded.servers.items() if server["labels"].get("managed-by")
    }
    assert len(orphans) == MANY


@pytest.mark.django_db
def test_reconcile_completes_with_5000_servers_and_20000_records(crowded, settings):
    """The issue's scale: every server and every record at the vendors is looked at."""
    zone = FakeCloudflare(zones={ZONE_ID: "beacons.test"})
    for number in range(RECORDS // 2):  # an A and an AAAA for 10,000 names nobody owns
        name = f"ghost{number}.beacons.test"
        zone.add_record(ZONE_ID, type="A", name=name, content="198.51.100.7")
        zone.add_record(ZONE_ID, type="AAAA", name=name, content="2001:db8::7")
    settings.PROVIDERS = ["hetzner"]
    settings.HETZNER_API_URL, settings.HETZNER_API_TOKEN = HETZNER, crowded.token
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_URL, settings.CLOUDFLARE_API_TOKEN = CLOUDFLARE, zone.token
    settings.CLOUDFLARE_ZONE_ID = ZONE_ID

    with transport_for(HETZNER, crowded.transport()), transport_for(CLOUDFLARE, zone.transport()):
        run = reconcile_run()

    kinds = [finding["kind"] for finding in run.findings]
    assert FindingKind.ERROR not in kinds
    assert kinds.count(FindingKind.ORPHAN_SERVER) == MANY
    assert kinds.count(FindingKind.ORPHAN_DNS) == RECORDS

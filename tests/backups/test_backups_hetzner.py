"""Daily snapshot and restore through the real Hetzner and Cloudflare adapters, talking HTTP to
the stateful fake vendors, every exchange checked against the vendors' own specs."""

from __future__ import annotations

import pytest
from django.utils import timezone

from backups.models import BackupSnapshot
from backups.services import backups_daily_start, snapshot_restore_start
from fakes.cloudflare import ZONE_ID, FakeCloudflare
from fakes.hetzner import FakeHetzner
from integrations.http import transport_install, transport_remove
from provisioning.jobs import job_advance
from provisioning.models import Beacon, Job, Provider
from tests.factories import BeaconFactory
from tests.vendor_spec import hetzner_spec_with, spec_checked

pytestmark = pytest.mark.django_db

HETZNER = "https://api.hetzner.cloud/v1"
CLOUDFLARE = "https://api.cloudflare.com/client/v4"


@pytest.fixture
def hetzner(settings, monkeypatch):
    """Hetzner and Cloudflare fakes behind the real adapters (spec-checked both ways; the
    trimmed Hetzner spec lacks create_image, grafted in from the full one as H4a's tests do)."""
    hetzner_spec_with(monkeypatch, "/servers/{id}/actions/create_image")
    cloud, dns = FakeHetzner(), FakeCloudflare(zones={ZONE_ID: "beacons.test"})
    settings.PROVIDERS = ["hetzner"]
    settings.HETZNER_API_URL, settings.HETZNER_API_TOKEN = HETZNER, cloud.token
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_URL, settings.CLOUDFLARE_API_TOKEN = CLOUDFLARE, dns.token
    settings.CLOUDFLARE_ZONE_ID = ZONE_ID
    settings.JOB_POLL_SECONDS = 0
    routes = {
        HETZNER: spec_checked("hetzner", cloud.handle),
        CLOUDFLARE: spec_checked("cloudflare", dns.handle),
    }
    for url, transport in routes.items():
        transport_install(url, transport)
    cloud.dns = dns
    yield cloud
    for url in routes:
        transport_remove(url)


@pytest.fixture
def beacon(hetzner) -> Beacon:
    """An active Beacon on a running Hetzner server labelled as ours."""
    provider = Provider.objects.create(name="hetzner", kind="hetzner")
    beacon = BeaconFactory(provider=provider, provider_location="fsn1", server_size="cpx22")
    server = hetzner.add_server(
        f"wopr-{beacon.name}",
        labels={"wopr-beacon": str(beacon.pk), "wopr-job": "provision", "managed-by": "wopr"},
    )
    ip = hetzner._server_json(server)["public_net"]["ipv4"]["ip"]
    Beacon.objects.filter(pk=beacon.pk).update(provider_server_id=str(server["id"]), ipv4=ip)
    beacon.refresh_from_db()
    return beacon


def drive(job: Job, django_capture_on_commit_callbacks) -> Job:
    """Run the job's steps as the workers would, each as soon as it is due."""
    for _ in range(40):
        job.refresh_from_db()
        if job.finished:
            break
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            job_advance(job_id=job.pk)
    return job


def test_daily_snapshot_and_restore_through_the_hetzner_api(
    hetzner, beacon, django_capture_on_commit_callbacks
):
    old_server = int(beacon.provider_server_id)
    with django_capture_on_commit_callbacks(execute=False):
        [job_id] = backups_daily_start()
    job = drive(Job.objects.get(pk=job_id), django_capture_on_commit_callbacks)

    assert job.state == "completed", job.last_error
    snapshot = BackupSnapshot.objects.get(beacon=beacon)
    assert snapshot.status == "available"
    [image] = hetzner.images.values()
    assert image["labels"] == {
        "wopr-snapshot": snapshot.name,
        "wopr-beacon": str(beacon.pk),
        "managed-by": "wopr",
    }
    assert image["description"] == snapshot.name
    assert snapshot.provider_snapshot_id == str(image["id"])
    assert snapshot.size_gb and snapshot.price_per_gb_month and snapshot.monthly_cost

    with django_capture_on_commit_callbacks(execute=False):
        snapshot_restore_start(snapshot=snapshot, requested_by=None)
    restore = drive(
        Job.objects.get(beacon=beacon, kind="restore"), django_capture_on_commit_callbacks
    )

    assert restore.state == "completed", restore.last_error
    [(server_id, server)] = hetzner.servers.items()
    assert server_id != old_server  # the old one is deleted
    assert str(server["image"]) == snapshot.provider_snapshot_id
    assert server["labels"]["wopr-job"] == str(restore.pk)
    beacon.refresh_from_db()
    assert beacon.provider_server_id == str(server_id)
    records = {(r["type"], r["name"]): r["content"] for r in hetzner.dns.records[ZONE_ID].values()}
    assert records[("A", beacon.fqdn)] == beacon.ipv4
    assert records[("AAAA", f"*.{beacon.fqdn}")] == beacon.ipv6

"""The purchase flow with the real adapters (Hetzner, DigitalOcean, Cloudflare) talking HTTP to
the stateful fake vendors, every exchange checked against the vendors' own specs."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from billing.simulation import checkout_completed_event, encode, sign
from fakes.cloudflare import ZONE_ID, FakeCloudflare
from fakes.digitalocean import FakeDigitalOcean
from fakes.hetzner import FakeHetzner
from integrations.http import transport_install, transport_remove
from provisioning.callbacks import job_callback_record
from provisioning.jobs import job_advance
from provisioning.models import Beacon, Job, Provider
from tests.vendor_spec import spec_checked

pytestmark = pytest.mark.django_db

HETZNER = "https://api.hetzner.cloud/v1"
DIGITALOCEAN = "https://api.digitalocean.com"
CLOUDFLARE = "https://api.cloudflare.com/client/v4"


class Clouds:
    def __init__(self) -> None:
        self.hetzner = FakeHetzner()
        self.digitalocean = FakeDigitalOcean()
        self.cloudflare = FakeCloudflare(zones={ZONE_ID: "beacons.test"})

    def live_servers(self) -> list[tuple[str, object]]:
        return [("hetzner", s) for s in self.hetzner.servers.values()] + [
            ("digitalocean", d) for d in self.digitalocean.droplets.values()
        ]

    def records(self) -> list[dict]:
        return list(self.cloudflare.records[ZONE_ID].values())


@pytest.fixture
def clouds(settings):
    clouds = Clouds()
    settings.PROVIDERS = ["hetzner", "digitalocean"]
    settings.HETZNER_API_URL, settings.HETZNER_API_TOKEN = HETZNER, clouds.hetzner.token
    settings.DIGITALOCEAN_API_URL = DIGITALOCEAN
    settings.DIGITALOCEAN_API_TOKEN = clouds.digitalocean.token
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_URL, settings.CLOUDFLARE_API_TOKEN = CLOUDFLARE, clouds.cloudflare.token
    settings.CLOUDFLARE_ZONE_ID = ZONE_ID
    settings.JOB_POLL_SECONDS = 0
    # Hetzner first; DigitalOcean only when Hetzner has no capacity in the region.
    Provider.objects.create(name="hetzner", kind="hetzner", weight=100)
    Provider.objects.create(name="digitalocean", kind="digitalocean", weight=0)
    routes = {
        HETZNER: spec_checked("hetzner", clouds.hetzner.handle),
        DIGITALOCEAN: spec_checked("digitalocean", clouds.digitalocean.handle),
        CLOUDFLARE: spec_checked("cloudflare", clouds.cloudflare.handle),
    }
    for url, transport in routes.items():
        transport_install(url, transport)
    yield clouds
    for url in routes:
        transport_remove(url)


@pytest.fixture
def buy(client, django_capture_on_commit_callbacks):
    """Deliver a signed purchase, then drive its job as the workers and the Beacon would:
    run whatever is due, and report `complete` when the job waits for the callback."""

    def _buy(beacon_name: str, region: str = "eu-central") -> Job:
        payload = encode(checkout_completed_event(beacon_name=beacon_name, region=region))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/api/webhook/stripe",
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_test_secret"),
            )
        assert response.status_code == 200
        job = Job.objects.get(beacon__name=beacon_name)
        for _ in range(30):
            job.refresh_from_db()
            if job.finished:
                break
            if job.step == "wait_callback" and not job.callback_completed_at:
                with django_capture_on_commit_callbacks(execute=True):
                    job_callback_record(job=job, status="complete", message="installed")
            Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
            with django_capture_on_commit_callbacks(execute=True):
                job_advance(job_id=job.pk)
        return job

    return _buy


def test_purchase_ends_active_on_hetzner_with_cloudflare_records(clouds, buy):
    job = buy("real1")

    assert job.state == "completed", job.last_error
    beacon = Beacon.objects.get(name="real1")
    assert (beacon.status, beacon.provider.name, beacon.provider_location) == (
        "active",
        "hetzner",
        "fsn1",
    )
    ((kind, server),) = clouds.live_servers()
    assert kind == "hetzner"
    assert server["labels"] == {
        "wopr-beacon": str(beacon.pk),
        "wopr-job": str(job.pk),
        "managed-by": "wopr",
    }
    shown = clouds.hetzner._server_json(server)
    assert shown["protection"]["delete"] is True
    assert beacon.ipv4 == shown["public_net"]["ipv4"]["ip"]
    records = {(r["type"], r["name"]): r["content"] for r in clouds.records()}
    assert records == {
        ("A", "real1.beacons.test"): beacon.ipv4,
        ("AAAA", "real1.beacons.test"): beacon.ipv6,
        ("A", "*.real1.beacons.test"): beacon.ipv4,
        ("AAAA", "*.real1.beacons.test"): beacon.ipv6,
    }
    assert len(mail.outbox) == 1


def test_no_capacity_in_the_first_location_lands_in_the_next_one(clouds, buy):
    clouds.hetzner.unavailable_locations = {"fsn1"}

    job = buy("cap1")

    assert job.state == "completed", job.last_error
    beacon = Beacon.objects.get(name="cap1")
    assert (beacon.provider.name, beacon.provider_location) == ("hetzner", "nbg1")
    assert job.checkpoint["placements_tried"] == ["hetzner/fsn1"]
    assert len(clouds.live_servers()) == 1


def test_no_hetzner_capacity_in_the_region_lands_on_digitalocean(clouds, buy):
    clouds.hetzner.unavailable_locations = {"fsn1", "nbg1", "hel1"}

    job = buy("cap2")

    assert job.state == "completed", job.last_error
    beacon = Beacon.objects.get(name="cap2")
    assert (beacon.provider.name, beacon.provider_location) == ("digitalocean", "fra1")
    assert beacon.server_size == "s-2vcpu-4gb"
    ((kind, droplet),) = clouds.live_servers()
    assert kind == "digitalocean"
    assert f"wopr-job:{job.pk}" in droplet.tags


def test_no_capacity_anywhere_fails_with_nothing_left_behind(clouds, buy):
    clouds.hetzner.unavailable_locations = {"fsn1", "nbg1", "hel1"}
    clouds.digitalocean.unavailable_regions = {"fra1", "ams3"}

    job = buy("cap3")

    assert job.state == "failed"
    assert "no capacity anywhere" in job.last_error
    assert clouds.live_servers() == []
    assert clouds.records() == []


def test_lost_create_response_is_adopted_not_duplicated(clouds, buy):
    clouds.hetzner.inject(method="POST", path_prefix="/v1/servers", drop=True)

    job = buy("lost2")

    assert job.state == "completed", job.last_error
    assert len(clouds.live_servers()) == 1


def test_permanent_dns_failure_deletes_the_protected_server(clouds, buy):
    clouds.cloudflare.inject(
        method="POST",
        path_prefix=f"/client/v4/zones/{ZONE_ID}/dns_records",
        status=400,
        body={
            "success": False,
            "errors": [{"code": 9005, "message": "Content for A record is invalid."}],
            "messages": [],
            "result": None,
        },
    )

    job = buy("dnsfail")

    assert job.state == "failed"
    assert clouds.live_servers() == []
    assert clouds.records() == []
    assert Beacon.objects.get(name="dnsfail").status == "failed"
    assert [m.to for m in mail.outbox if m.to == ["ops@localhost"]] == [["ops@localhost"]]

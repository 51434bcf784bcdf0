"""server_resize and resize_in_progress of every adapter, against the vendors' specs (each
request and each fake answer validated), and the change_type step under a lost answer: the
retry reads the server first and sends no second change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import httpx
import pytest

from fakes.digitalocean import FakeDigitalOcean
from fakes.hetzner import FakeHetzner
from integrations.clouds.base import CloudProvider, ProviderError, ServerSpec
from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from provisioning import resize
from provisioning.fake_cloud import FakeProvider
from provisioning.faults import fault_inject
from provisioning.jobs import Done
from provisioning.models import FakeServer, Job
from provisioning.resize import ResizePlan, step_change_type
from tests.vendor_spec import spec_checked

HETZNER_URL = "https://hetzner.resize.test/v1"
DO_URL = "https://digitalocean.resize.test"


# --- Hetzner ------------------------------------------------------------------------------------


@pytest.fixture
def hz_fake() -> FakeHetzner:
    return FakeHetzner(action_polls=1)


@pytest.fixture
def hz(hetzner_spec, hz_fake) -> Iterator[HetznerProvider]:
    with transport_for(HETZNER_URL, spec_checked("hetzner", hz_fake.handle)):
        yield HetznerProvider(base_url=HETZNER_URL, token=hz_fake.token)


def hz_off_server(fake: FakeHetzner, server_type: str = "cpx22") -> str:
    record = fake.add_server("wopr-big", labels={"wopr-beacon": "b1"}, server_type=server_type)
    record["powered"] = False
    return str(record["id"])


def change_type_posts(fake: FakeHetzner) -> list[httpx.Request]:
    return [r for r in fake.requests if r.url.path.endswith("/actions/change_type")]


def settle(provider: CloudProvider, action_id: str) -> None:
    for _ in range(5):
        if provider.action_status(action_id) != "running":
            return
    raise AssertionError(f"action {action_id} never finished")


def test_hetzner_change_type_sends_the_type_and_upgrade_disk_and_the_type_follows(hz, hz_fake):
    server_id = hz_off_server(hz_fake)

    started = hz.server_resize(server_id, "cpx32", grow_disk=True)
    during = hz.get_server(server_id)
    running = hz.resize_in_progress(server_id)
    settle(hz, started.action_id)
    after = hz.get_server(server_id)

    (post,) = change_type_posts(hz_fake)
    assert json.loads(post.content) == {"server_type": "cpx32", "upgrade_disk": True}
    assert running == started.action_id
    assert during.size == "cpx22" and during.status == "migrating"
    assert after.size == "cpx32" and after.status == "off"
    assert hz.resize_in_progress(server_id) is None


def test_hetzner_refuses_to_change_a_running_server(hz, hz_fake):
    record = hz_fake.add_server("wopr-on", server_type="cpx22")

    with pytest.raises(ProviderError) as refused:
        hz.server_resize(str(record["id"]), "cpx32")

    assert refused.value.code == "server_not_stopped" and not refused.value.transient
    assert record["server_type"] == "cpx22"


def test_hetzner_a_grown_disk_refuses_a_downgrade_a_kept_disk_allows_it(hz, hz_fake):
    grown, kept = hz_off_server(hz_fake), hz_off_server(hz_fake)
    settle(hz, hz.server_resize(grown, "cpx32", grow_disk=True).action_id)
    settle(hz, hz.server_resize(kept, "cpx32", grow_disk=False).action_id)
    hz.get_server(grown), hz.get_server(kept)

    with pytest.raises(ProviderError) as refused:
        hz.server_resize(grown, "cpx22")
    back = hz.server_resize(kept, "cpx22")

    assert refused.value.code == "invalid_server_type" and not refused.value.transient
    assert back.action_id.isdigit()


# --- DigitalOcean -------------------------------------------------------------------------------


@pytest.fixture
def do_fake() -> FakeDigitalOcean:
    return FakeDigitalOcean(action_polls=1)


@pytest.fixture
def do(do_fake) -> Iterator[DigitalOceanProvider]:
    with transport_for(DO_URL, spec_checked("digitalocean", do_fake.handle)):
        yield DigitalOceanProvider(base_url=DO_URL, token=do_fake.token)


def do_off_droplet(do: DigitalOceanProvider, size: str = "s-2vcpu-4gb") -> str:
    spec = ServerSpec(
        name="wopr-big",
        size=size,
        image="debian-12",
        location="fra1",
        labels={"wopr-beacon": "b1"},
        user_data="#cloud-config\n",
    )
    created = do.create_server(spec)
    settle(do, created.action_id)
    settle(do, do.power_off(created.server.id))
    return created.server.id


def resize_posts(fake: FakeDigitalOcean) -> list[httpx.Request]:
    return [
        r
        for r in fake.requests
        if r.method == "POST" and r.url.path.endswith("/actions") and b'"resize"' in r.content
    ]


def test_digitalocean_resize_sends_size_and_disk_and_the_droplet_follows(do, do_fake):
    droplet_id = do_off_droplet(do)

    started = do.server_resize(droplet_id, "s-4vcpu-8gb", grow_disk=True)
    running = do.resize_in_progress(droplet_id)
    settle(do, started.action_id)
    after = do.get_server(droplet_id)

    (post,) = resize_posts(do_fake)
    assert json.loads(post.content) == {"type": "resize", "size": "s-4vcpu-8gb", "disk": True}
    assert running == started.action_id
    assert after.size == "s-4vcpu-8gb" and after.status == "off"
    assert do.resize_in_progress(droplet_id) is None


def test_digitalocean_refuses_a_running_droplet_and_a_smaller_disk(do, do_fake):
    droplet_id = do_off_droplet(do, size="s-4vcpu-8gb")
    settle(do, do.server_resize(droplet_id, "s-8vcpu-16gb", grow_disk=True).action_id)

    with pytest.raises(ProviderError) as smaller:
        do.server_resize(droplet_id, "s-4vcpu-8gb")
    settle(do, do.power_on(droplet_id))
    with pytest.raises(ProviderError) as running:
        do.server_resize(droplet_id, "s-8vcpu-32gb")

    assert "smaller disk" in str(smaller.value) and not smaller.value.transient
    assert "powered off" in str(running.value) and not running.value.transient


# --- the fake cloud (the database store) ---------------------------------------------------------


@pytest.fixture
def fake_cloud(db) -> FakeProvider:
    return FakeProvider()


def fake_server(cloud: FakeProvider, *, on: bool) -> str:
    spec = ServerSpec(
        name="wopr-fake-big",
        size="cpx22",
        image="debian-12",
        location="fake-eu-central",
        labels={"wopr-beacon": "b1"},
        user_data="#cloud-config\n",
    )
    server_id = cloud.create_server(spec).server.id
    if not on:
        cloud.power_off(server_id)
    return server_id


def test_fake_resizes_an_off_server_and_refuses_a_running_one_or_a_smaller_size(fake_cloud):
    running, off = fake_server(fake_cloud, on=True), None
    FakeServer.objects.filter(pk=running).update(name="renamed")
    off = fake_server(fake_cloud, on=False)

    with pytest.raises(ProviderError) as on_refused:
        fake_cloud.server_resize(running, "cpx32")
    started = fake_cloud.server_resize(off, "cpx42")
    with pytest.raises(ProviderError) as smaller:
        fake_cloud.server_resize(off, "cpx32")

    assert on_refused.value.code == "server_not_stopped"
    assert fake_cloud.action_status(started.action_id) == "success"
    assert fake_cloud.get_server(off).size == "cpx42"
    assert smaller.value.code == "invalid_server_type"


def test_fake_lost_resize_answer_has_resized_the_server(fake_cloud):
    server_id = fake_server(fake_cloud, on=False)
    fault_inject("provider.resize", "lost_response")

    with pytest.raises(ProviderError) as lost:
        fake_cloud.server_resize(server_id, "cpx32")

    assert lost.value.transient
    assert fake_cloud.get_server(server_id).size == "cpx32"


# --- the change_type step: a lost answer, then the retry ------------------------------------------


def change_job(server_id: str, from_size: str, to_size: str) -> Job:
    plan = ResizePlan(
        server_id=server_id,
        from_size=from_size,
        to_size=to_size,
        from_tier="t1",
        to_tier="t2",
        to_tier_id=2,
        grow_disk=True,
    )
    return Job(checkpoint={"look": {**asdict(plan), "at": "2026-12-04T20:00:00+00:00"}})


def run_step_with(monkeypatch, provider: CloudProvider, job: Job) -> Done:
    monkeypatch.setattr(resize, "_beacon", lambda job: None)
    monkeypatch.setattr(resize, "_provider", lambda beacon: provider)
    return step_change_type(job)


def test_hetzner_lost_change_type_answer_then_retry_makes_one_change(monkeypatch, hz, hz_fake):
    server_id = hz_off_server(hz_fake)
    job = change_job(server_id, "cpx22", "cpx32")
    hz_fake.inject(
        method="POST", path_prefix=f"/v1/servers/{server_id}/actions/change_type", drop=True
    )

    with pytest.raises(ProviderError) as lost:
        run_step_with(monkeypatch, hz, job)
    retried = run_step_with(monkeypatch, hz, job)

    (action,) = [a for a in hz_fake.actions.values() if a["command"] == "change_server_type"]
    assert lost.value.transient
    assert len(change_type_posts(hz_fake)) == 1
    assert retried.checkpoint == {"action": str(action["id"])}
    settle(hz, str(action["id"]))
    assert run_step_with(monkeypatch, hz, job).checkpoint == {"action": ""}  # resized: no POST
    assert len(change_type_posts(hz_fake)) == 1


def test_digitalocean_lost_resize_answer_then_retry_makes_one_resize(monkeypatch, do, do_fake):
    droplet_id = do_off_droplet(do)
    job = change_job(droplet_id, "s-2vcpu-4gb", "s-4vcpu-8gb")
    do_fake.inject(method="POST", path_prefix=f"/v2/droplets/{droplet_id}/actions", drop=True)

    with pytest.raises(ProviderError):
        run_step_with(monkeypatch, do, job)
    retried = run_step_with(monkeypatch, do, job)

    (action,) = [a for a in do_fake.actions.values() if a.type == "resize"]
    assert len(resize_posts(do_fake)) == 1
    assert retried.checkpoint == {"action": str(action.id)}

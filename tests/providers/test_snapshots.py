"""Snapshots (the backups we sell) through every cloud: the in-database fake cloud with its
scripted faults, and each real adapter against its stateful HTTP fake (every exchange checked
against the vendor's spec) and against scripted answers for the error table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from fakes.digitalocean import FakeDigitalOcean
from fakes.hetzner import FakeHetzner
from integrations.clouds.base import ProviderError, ServerSpec
from integrations.clouds.digitalocean import DigitalOceanProvider
from integrations.clouds.digitalocean import snapshot_labels as do_labels
from integrations.clouds.hetzner import HetznerProvider
from integrations.http import transport_for
from provisioning.fake_cloud import FakeProvider
from provisioning.faults import fault_inject
from provisioning.models import FakeServer, FakeSnapshot
from tests.vendor_spec import (
    Recording,
    assert_conforms,
    hetzner_spec_with,
    mock_server,
    needs_shared,
    prism_accepted,
    spec_checked,
)

BEACON = "0b6f0c6e-5d3a-4c1e-9f6a-2b7d8e9f0a1b"
OTHER_BEACON = "7f1e2d3c-4b5a-4968-8776-655443322110"


def snapshot_name(beacon: str = BEACON, kind: str = "daily", day: str = "20261204") -> str:
    return f"wopr-{beacon}-{kind}-{day}"


def snapshot_labels(name: str, beacon: str = BEACON) -> dict[str, str]:
    return {"wopr-snapshot": name, "wopr-beacon": beacon, "managed-by": "wopr"}


class Clock:
    """django.utils.timezone.now, movable (the fake cloud and the models read it)."""

    def __init__(self, real_now) -> None:
        self.real_now = real_now
        self.offset = timedelta()

    def now(self):
        return self.real_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock(timezone.now)
    monkeypatch.setattr(timezone, "now", moved.now)
    return moved


# --- the in-database fake cloud ---------------------------------------------------------------
@pytest.fixture
def fake(db, settings, clock) -> FakeProvider:
    settings.FAKE_SERVER_BOOT_SECONDS = 30  # servers boot, snapshots are made, in 30 s
    return FakeProvider()


def fake_server(fake: FakeProvider, name: str = "wopr-alpha", image: str = "debian-12") -> str:
    spec = ServerSpec(
        name=name,
        size="cpx22",
        image=image,
        location="fake-eu-central",
        labels={"wopr-beacon": BEACON, "wopr-job": name, "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )
    return fake.create_server(spec).server.id


def test_fake_snapshot_is_creating_then_available_with_its_server_and_size(fake, clock):
    server_id = fake_server(fake)
    name = snapshot_name()

    started = fake.create_snapshot(server_id, name=name, labels=snapshot_labels(name))

    creating = fake.get_snapshot(started.snapshot_id)
    assert (creating.status, creating.size_gb, creating.name) == ("creating", None, name)
    assert fake.action_status(started.action_id) == "running"
    clock.advance(31)
    ready = fake.get_snapshot(started.snapshot_id)
    assert fake.action_status(started.action_id) == "success"
    assert ready.status == "available"
    assert ready.server_id == server_id
    assert ready.size_gb == pytest.approx(1.5)
    assert ready.labels == snapshot_labels(name)


def test_fake_finds_snapshots_by_each_label_and_only_live_ones(fake, clock):
    server_id = fake_server(fake)
    mine = [snapshot_name(day=day) for day in ("20261203", "20261204")]
    theirs = snapshot_name(beacon=OTHER_BEACON)
    for name in mine:
        fake.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    fake.create_snapshot(server_id, name=theirs, labels=snapshot_labels(theirs, OTHER_BEACON))

    assert [s.name for s in fake.find_snapshots({"wopr-snapshot": mine[1]})] == [mine[1]]
    assert [s.name for s in fake.find_snapshots({"wopr-beacon": BEACON})] == mine
    assert len(fake.find_snapshots({"managed-by": "wopr"})) == 3
    fake.delete_snapshot(fake.find_snapshots({"wopr-snapshot": mine[0]})[0].id)
    assert [s.name for s in fake.find_snapshots({"wopr-beacon": BEACON})] == [mine[1]]


def test_fake_delete_is_idempotent_and_get_of_a_deleted_snapshot_is_none(fake):
    name = snapshot_name()
    started = fake.create_snapshot(fake_server(fake), name=name, labels=snapshot_labels(name))

    fake.delete_snapshot(started.snapshot_id)
    fake.delete_snapshot(started.snapshot_id)
    fake.delete_snapshot("no-such-id")

    assert fake.get_snapshot(started.snapshot_id) is None
    assert FakeSnapshot.objects.get(pk=started.snapshot_id).deleted is True


def test_fake_refuses_a_snapshot_of_a_missing_server_and_a_second_live_name(fake):
    name = snapshot_name()
    with pytest.raises(ProviderError) as missing:
        fake.create_snapshot("999999", name=name, labels=snapshot_labels(name))
    server_id = fake_server(fake)
    fake.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    with pytest.raises(ProviderError) as taken:
        fake.create_snapshot(server_id, name=name, labels=snapshot_labels(name))

    assert (missing.value.transient, missing.value.code) == (False, "not_found")
    assert (taken.value.transient, taken.value.code) == (False, "uniqueness_error")
    assert FakeSnapshot.objects.count() == 1


def test_fake_lost_answer_makes_the_snapshot_and_a_look_before_retrying_finds_it(fake):
    server_id = fake_server(fake)
    name = snapshot_name()
    fault_inject("provider.snapshot", "lost_response")

    with pytest.raises(ProviderError) as lost:
        fake.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    (found,) = fake.find_snapshots({"wopr-snapshot": name})

    assert lost.value.transient is True
    assert found.server_id == server_id
    assert FakeSnapshot.objects.filter(name=name).count() == 1


@pytest.mark.parametrize("kind", ["transient", "permanent"])
def test_fake_snapshot_fault_fails_before_anything_is_made(fake, kind):
    server_id = fake_server(fake)
    fault_inject("provider.snapshot", kind)

    with pytest.raises(ProviderError) as failed:
        fake.create_snapshot(server_id, name=snapshot_name(), labels={})

    assert failed.value.transient is (kind == "transient")
    assert not FakeSnapshot.objects.exists()


def test_fake_snapshot_delete_faults_lost_answer_deletes_and_transient_does_not(fake):
    name = snapshot_name()
    started = fake.create_snapshot(fake_server(fake), name=name, labels=snapshot_labels(name))
    fault_inject("provider.snapshot_delete", "transient")
    fault_inject("provider.snapshot_delete", "lost_response")

    with pytest.raises(ProviderError):
        fake.delete_snapshot(started.snapshot_id)
    assert fake.get_snapshot(started.snapshot_id) is not None
    with pytest.raises(ProviderError):
        fake.delete_snapshot(started.snapshot_id)
    assert fake.get_snapshot(started.snapshot_id) is None
    fake.delete_snapshot(started.snapshot_id)  # the retry after the lost answer: fine


def test_fake_restores_a_server_from_an_available_snapshot_and_records_the_image(fake, clock):
    name = snapshot_name()
    started = fake.create_snapshot(fake_server(fake), name=name, labels=snapshot_labels(name))

    with pytest.raises(ProviderError) as not_ready:
        fake_server(fake, name="wopr-restored", image=started.snapshot_id)
    clock.advance(31)
    restored = fake_server(fake, name="wopr-restored", image=started.snapshot_id)

    assert not_ready.value.code == "not_found"
    assert FakeServer.objects.get(pk=restored).image == started.snapshot_id
    with pytest.raises(ProviderError):
        fake_server(fake, name="wopr-from-nothing", image="424242")


def test_fake_snapshot_price_is_a_cent_per_gb(fake):
    assert fake.snapshot_price_per_gb_month("fake-eu-central") == Decimal("0.01")


# --- Hetzner's spec, with the one snapshot path the trimmed copy lacks --------------------------
CREATE_IMAGE = "/servers/{id}/actions/create_image"


@pytest.fixture
def hetzner_spec(monkeypatch) -> None:
    """Validate Hetzner exchanges against the spec with create_image grafted in."""
    hetzner_spec_with(monkeypatch, CREATE_IMAGE)


HETZNER_URL = "https://hetzner.snapshots.test/v1"
DO_URL = "https://digitalocean.snapshots.test"


@pytest.fixture
def hz_fake() -> FakeHetzner:
    return FakeHetzner(action_polls=1)


@pytest.fixture
def hz(hetzner_spec, hz_fake) -> Iterator[HetznerProvider]:
    with transport_for(HETZNER_URL, spec_checked("hetzner", hz_fake.handle)):
        yield HetznerProvider(base_url=HETZNER_URL, token=hz_fake.token)


def hz_requests(fake: FakeHetzner, method: str, path: str) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == method and r.url.path == "/v1" + path]


def hz_server(fake: FakeHetzner, name: str = "wopr-alpha") -> str:
    return str(fake.add_server(name, labels={"wopr-beacon": BEACON})["id"])


def test_hetzner_create_sends_a_labelled_snapshot_and_knows_its_image_id_at_once(hz, hz_fake):
    server_id = hz_server(hz_fake)
    name = snapshot_name()

    started = hz.create_snapshot(server_id, name=name, labels=snapshot_labels(name))

    (request,) = hz_requests(hz_fake, "POST", f"/servers/{server_id}/actions/create_image")
    assert json.loads(request.content) == {
        "type": "snapshot",
        "description": name,
        "labels": snapshot_labels(name),
    }
    assert int(started.snapshot_id) in hz_fake.images
    assert hz_fake.actions[int(started.action_id)]["command"] == "create_image"


def test_hetzner_snapshot_is_creating_then_available_with_size_and_server(hz, hz_fake):
    server_id = hz_server(hz_fake)
    name = snapshot_name()
    started = hz.create_snapshot(server_id, name=name, labels=snapshot_labels(name))

    creating = hz.get_snapshot(started.snapshot_id)
    while hz.action_status(started.action_id) == "running":
        pass
    ready = hz.get_snapshot(started.snapshot_id)

    assert (creating.status, creating.size_gb) == ("creating", None)
    assert (ready.status, ready.name, ready.server_id) == ("available", name, server_id)
    assert ready.size_gb == pytest.approx(4.0)  # a twentieth of cpx22's 80 GB
    assert ready.labels == snapshot_labels(name)
    assert ready.created_at is not None


def test_hetzner_finds_snapshots_by_each_label_through_the_selector(hz, hz_fake):
    server_id = hz_server(hz_fake)
    mine = [snapshot_name(day=day) for day in ("20261203", "20261204")]
    theirs = snapshot_name(beacon=OTHER_BEACON)
    for name in mine:
        hz.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    hz.create_snapshot(server_id, name=theirs, labels=snapshot_labels(theirs, OTHER_BEACON))

    by_name = hz.find_snapshots({"wopr-snapshot": mine[0]})
    by_beacon = hz.find_snapshots({"wopr-beacon": BEACON})
    ours = hz.find_snapshots({"managed-by": "wopr"})

    assert [s.name for s in by_name] == [mine[0]]
    assert [s.name for s in by_beacon] == mine
    assert len(ours) == 3
    query = hz_requests(hz_fake, "GET", "/images")[0].url.params
    assert (query["type"], query["label_selector"]) == ("snapshot", f"wopr-snapshot=={mine[0]}")


def test_hetzner_find_follows_every_page(hz, hz_fake):
    for number in range(120):
        name = snapshot_name(day=f"2026{number:04d}")
        hz_fake.add_snapshot(name, labels=snapshot_labels(name))

    found = hz.find_snapshots({"wopr-beacon": BEACON})

    assert len(found) == 120
    assert len({s.id for s in found}) == 120
    assert [r.url.params["page"] for r in hz_requests(hz_fake, "GET", "/images")] == ["1", "2", "3"]


def test_hetzner_delete_is_idempotent(hz, hz_fake):
    image = hz_fake.add_snapshot(snapshot_name())

    hz.delete_snapshot(str(image["id"]))
    hz.delete_snapshot(str(image["id"]))
    hz.delete_snapshot("not-an-id")

    assert image["id"] not in hz_fake.images
    assert hz.get_snapshot(str(image["id"])) is None
    assert len(hz_requests(hz_fake, "DELETE", f"/images/{image['id']}")) == 2


def test_hetzner_snapshot_price_is_the_net_price_per_gb(hz, hz_fake):
    assert hz.snapshot_price_per_gb_month("fsn1") == Decimal("0.0119")
    assert len(hz_requests(hz_fake, "GET", "/pricing")) == 1


def test_hetzner_snapshot_of_a_missing_server_is_permanent(hz, hz_fake):
    with pytest.raises(ProviderError) as caught:
        hz.create_snapshot("4999", name=snapshot_name(), labels={})

    assert (caught.value.transient, caught.value.code) == (False, "not_found")
    assert not hz_fake.images


@pytest.mark.parametrize(
    ("status", "code", "headers"),
    [(429, "rate_limit_exceeded", {"Retry-After": "7"}), (503, "unavailable", {})],
)
def test_hetzner_snapshot_throttled_or_unavailable_is_transient(hz, hz_fake, status, code, headers):
    server_id = hz_server(hz_fake)
    body = {"error": {"code": code, "message": "try again", "details": None}}
    hz_fake.inject(
        method="POST", path_prefix="/v1/servers", status=status, body=body, headers=headers
    )

    with pytest.raises(ProviderError) as caught:
        hz.create_snapshot(server_id, name=snapshot_name(), labels={})

    assert caught.value.transient is True
    assert caught.value.code == code
    assert not hz_fake.images


def test_hetzner_restores_a_server_from_an_available_snapshot(hz, hz_fake):
    name = snapshot_name()
    started = hz.create_snapshot(hz_server(hz_fake), name=name, labels=snapshot_labels(name))
    spec = ServerSpec(
        name="wopr-restored",
        size="cpx22",
        image=started.snapshot_id,
        location="fsn1",
        labels={"wopr-beacon": BEACON, "wopr-job": "restore-1", "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )

    with pytest.raises(ProviderError) as not_ready:
        hz.create_server(spec)
    while hz.action_status(started.action_id) == "running":
        pass
    created = hz.create_server(spec)

    assert not_ready.value.transient is False
    assert hz_fake.servers[int(created.server.id)]["image"] == started.snapshot_id
    body = json.loads(hz_requests(hz_fake, "POST", "/servers")[-1].content)
    assert body["image"] == started.snapshot_id


# --- DigitalOcean ---------------------------------------------------------------------------
@pytest.fixture
def do_fake() -> FakeDigitalOcean:
    return FakeDigitalOcean(action_polls=1)


@pytest.fixture
def do(do_fake) -> Iterator[DigitalOceanProvider]:
    with transport_for(DO_URL, spec_checked("digitalocean", do_fake.handle)):
        yield DigitalOceanProvider(base_url=DO_URL, token=do_fake.token)


def do_requests(fake: FakeDigitalOcean, method: str, path: str) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == method and r.url.path == path]


def do_droplet(do: DigitalOceanProvider, name: str = "wopr-alpha") -> str:
    spec = ServerSpec(
        name=name,
        size="s-2vcpu-4gb",
        image="debian-12",
        location="fra1",
        labels={"wopr-job": name, "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )
    created = do.create_server(spec)
    while do.action_status(created.action_id) == "running":
        pass
    return created.server.id


def do_snapshot(do: DigitalOceanProvider, droplet_id: str, name: str) -> None:
    started = do.create_snapshot(droplet_id, name=name, labels=snapshot_labels(name))
    while do.action_status(started.action_id) == "running":
        pass


def test_digitalocean_create_is_a_snapshot_action_whose_image_is_known_once_done(do, do_fake):
    droplet_id = do_droplet(do)
    name = snapshot_name()

    started = do.create_snapshot(droplet_id, name=name, labels=snapshot_labels(name))

    (request,) = do_requests(do_fake, "POST", f"/v2/droplets/{droplet_id}/actions")[-1:]
    assert json.loads(request.content) == {"type": "snapshot", "name": name}
    assert started.snapshot_id is None
    assert do.find_snapshots({"wopr-snapshot": name}) == []  # DO lists it once it is done
    assert do.action_status(started.action_id) == "running"
    assert do.action_status(started.action_id) == "success"
    (snapshot,) = do.find_snapshots({"wopr-snapshot": name})
    assert (snapshot.status, snapshot.size_gb) == ("available", pytest.approx(4.0))
    assert snapshot.labels == snapshot_labels(name)
    assert do.get_snapshot(snapshot.id) == snapshot


def test_digitalocean_finds_by_each_label_read_back_from_the_name(do, do_fake):
    mine = [snapshot_name(day=day) for day in ("20261203", "20261204")]
    for name in [*mine, snapshot_name(beacon=OTHER_BEACON), "someone-elses-snapshot"]:
        do_fake.add_snapshot(name)

    by_name = do.find_snapshots({"wopr-snapshot": mine[1]})
    by_beacon = do.find_snapshots({"wopr-beacon": BEACON})
    ours = do.find_snapshots({"managed-by": "wopr"})
    by_job = do.find_snapshots({"wopr-job": "7"})  # no such thing in a name: never matches

    assert [s.name for s in by_name] == [mine[1]]
    assert [s.name for s in by_beacon] == mine
    assert len(ours) == 3
    assert by_job == []
    assert do_requests(do_fake, "GET", "/v2/images")[0].url.params["private"] == "true"


def test_digitalocean_snapshot_labels_come_from_the_name_only_for_ours():
    name = snapshot_name(kind="final")

    assert do_labels(name) == snapshot_labels(name)
    assert do_labels("wopr-not-a-uuid-daily") == {
        "wopr-snapshot": "wopr-not-a-uuid-daily",
        "managed-by": "wopr",
    }
    assert do_labels("nightly") == {}


def test_digitalocean_find_follows_every_page(do, do_fake):
    for number in range(250):
        do_fake.add_snapshot(snapshot_name(day=f"2026{number:04d}"))

    found = do.find_snapshots({"wopr-beacon": BEACON})

    assert len({s.id for s in found}) == 250
    pages = [r.url.params["page"] for r in do_requests(do_fake, "GET", "/v2/images")]
    assert pages == ["1", "2"]


def test_digitalocean_delete_is_idempotent(do, do_fake):
    image = do_fake.add_snapshot(snapshot_name())

    do.delete_snapshot(str(image.id))
    do.delete_snapshot(str(image.id))
    do.delete_snapshot("not-an-id")

    assert image.id not in do_fake.images
    assert do.get_snapshot(str(image.id)) is None
    assert len(do_requests(do_fake, "DELETE", f"/v2/images/{image.id}")) == 2


def test_digitalocean_snapshot_price_is_the_configured_one(do_fake):
    default = DigitalOceanProvider(base_url=DO_URL, token="t")
    configured = DigitalOceanProvider(base_url=DO_URL, token="t", snapshot_price_per_gb="0.05")

    assert default.snapshot_price_per_gb_month("fra1") == Decimal("0.06")
    assert configured.snapshot_price_per_gb_month("fra1") == Decimal("0.05")
    with pytest.raises(ValueError, match="not a number"):
        DigitalOceanProvider(base_url=DO_URL, token="t", snapshot_price_per_gb="cheap")


def test_digitalocean_snapshot_of_a_missing_droplet_is_permanent(do):
    with pytest.raises(ProviderError) as caught:
        do.create_snapshot("3999999", name=snapshot_name(), labels={})

    assert (caught.value.transient, caught.value.code) == (False, "not_found")


@pytest.mark.parametrize(
    ("status", "code", "headers"),
    [(429, "too_many_requests", {"retry-after": "7"}), (500, "server_error", {})],
)
def test_digitalocean_snapshot_throttled_or_failing_is_transient(
    do, do_fake, status, code, headers
):
    droplet_id = do_droplet(do)
    body = {"id": code, "message": "try again", "request_id": "4d9d8375-3c56-4925-a3e7-eb137f"}
    do_fake.inject(
        method="POST", path_prefix="/v2/droplets/", status=status, body=body, headers=headers
    )

    with pytest.raises(ProviderError) as caught:
        do.create_snapshot(droplet_id, name=snapshot_name(), labels={})

    assert (caught.value.transient, caught.value.code) == (True, code)
    assert not do_fake.images


def test_digitalocean_restores_a_droplet_from_a_snapshot_id_sent_as_a_number(do, do_fake):
    name = snapshot_name()
    do_snapshot(do, do_droplet(do), name)
    (snapshot,) = do.find_snapshots({"wopr-snapshot": name})
    spec = ServerSpec(
        name="wopr-restored",
        size="s-2vcpu-4gb",
        image=snapshot.id,
        location="fra1",
        labels={"wopr-job": "restore-1", "managed-by": "wopr"},
        user_data="#cloud-config\n",
    )

    created = do.create_server(spec)

    body = json.loads(do_requests(do_fake, "POST", "/v2/droplets")[-1].content)
    assert body["image"] == int(snapshot.id)
    assert do_fake.droplets[int(created.server.id)].image == snapshot.id
    with pytest.raises(ProviderError) as elsewhere:
        do.create_server(ServerSpec(**{**spec.__dict__, "name": "wopr-x", "location": "nyc3"}))
    assert elsewhere.value.transient is False


# --- the Prism mocks of the vendors' own specs (not stateful: only "accepted and parsed") -------
def prism_recording(url: str) -> Iterator[Recording]:
    recording = Recording()
    with transport_for(url, recording):
        yield recording
    recording.inner.close()


@pytest.fixture
def prism_hz() -> Iterator[tuple[HetznerProvider, Recording]]:
    url = mock_server("http://127.0.0.1:4010")  # Prism ignores Hetzner's /v1
    for recording in prism_recording(url):
        yield HetznerProvider(base_url=url, token="prism-token"), recording


@pytest.fixture
def prism_do() -> Iterator[tuple[DigitalOceanProvider, Recording]]:
    url = mock_server("http://127.0.0.1:4013")
    for recording in prism_recording(url):
        yield DigitalOceanProvider(base_url=url, token="prism-token"), recording


@needs_shared
def test_prism_hetzner_accepts_every_snapshot_request(prism_hz):
    provider, recording = prism_hz
    name = snapshot_name()

    started = provider.create_snapshot("42", name=name, labels=snapshot_labels(name))
    found = provider.find_snapshots({"wopr-snapshot": name})
    snapshot = provider.get_snapshot(started.snapshot_id)
    provider.delete_snapshot(started.snapshot_id)
    price = provider.snapshot_price_per_gb_month("fsn1")

    assert started.snapshot_id.isdigit() and started.action_id.isdigit()
    assert found and snapshot is not None and snapshot.id.isdigit()  # the spec's example
    assert price > 0
    image = f"/images/{started.snapshot_id}"
    assert prism_accepted(recording) == [
        "POST /servers/42/actions/create_image",
        "GET /images",
        f"GET {image}",
        f"DELETE {image}",
        "GET /pricing",
    ]


@needs_shared
def test_prism_digitalocean_accepts_every_snapshot_request(prism_do):
    provider, recording = prism_do
    name = snapshot_name()

    started = provider.create_snapshot("3164444", name=name, labels=snapshot_labels(name))
    provider.find_snapshots({"wopr-snapshot": name})
    snapshot = provider.get_snapshot("7555620")
    provider.delete_snapshot("7555620")

    assert started.snapshot_id is None and started.action_id.isdigit()
    assert snapshot is not None and snapshot.id.isdigit()
    assert prism_accepted(recording) == [
        "POST /v2/droplets/3164444/actions",
        "GET /v2/images",
        "GET /v2/images/7555620",
        "DELETE /v2/images/7555620",
    ]
    for request, response in recording.exchanges:
        assert_conforms("digitalocean", request, response)


# --- lost answers: a look before retrying finds the first snapshot, never a second one --------
def test_hetzner_lost_create_answer_leaves_one_snapshot_the_retry_finds(hz, hz_fake):
    server_id = hz_server(hz_fake)
    name = snapshot_name()
    hz_fake.inject(method="POST", path_prefix=f"/v1/servers/{server_id}/actions", drop=True)

    with pytest.raises(ProviderError) as lost:
        hz.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    (found,) = hz.find_snapshots({"wopr-snapshot": name})

    assert lost.value.transient is True
    assert found.server_id == server_id
    assert len(hz_fake.images) == 1


def test_digitalocean_lost_create_answer_is_busy_until_done_then_found_once(do, do_fake):
    droplet_id = do_droplet(do)
    name = snapshot_name()
    do_fake.inject(method="POST", path_prefix=f"/v2/droplets/{droplet_id}/actions", drop=True)

    with pytest.raises(ProviderError) as lost:
        do.create_snapshot(droplet_id, name=name, labels=snapshot_labels(name))
    assert do.find_snapshots({"wopr-snapshot": name}) == []  # not listed while it is made
    with pytest.raises(ProviderError) as busy:  # the retry: the droplet has a pending event
        do.create_snapshot(droplet_id, name=name, labels=snapshot_labels(name))
    while do.get_server(droplet_id) and not do.find_snapshots({"wopr-snapshot": name}):
        pass  # each look at the droplet lets its action run on

    assert (lost.value.transient, busy.value.transient) == (True, True)
    assert [image.name for image in do_fake.images.values()] == [name]


# --- one contract: what the backups jobs rely on, on every cloud -------------------------------
@pytest.fixture(params=["fake", "hetzner", "digitalocean"])
def cloud(request):
    """(provider, server id) for each cloud, with one running server of Beacon BEACON."""
    if request.param == "fake":
        provider = request.getfixturevalue("fake")
        return provider, fake_server(provider)
    if request.param == "hetzner":
        return request.getfixturevalue("hz"), hz_server(request.getfixturevalue("hz_fake"))
    provider = request.getfixturevalue("do")
    return provider, do_droplet(provider)


def test_every_cloud_takes_finds_and_deletes_a_snapshot_by_its_labels(cloud, clock):
    provider, server_id = cloud
    name = snapshot_name()

    started = provider.create_snapshot(server_id, name=name, labels=snapshot_labels(name))
    while provider.action_status(started.action_id) == "running":
        clock.advance(5)
    (snapshot,) = provider.find_snapshots({"wopr-snapshot": name})
    ours = provider.find_snapshots({"wopr-beacon": BEACON, "managed-by": "wopr"})
    provider.delete_snapshot(snapshot.id)
    provider.delete_snapshot(snapshot.id)

    assert started.snapshot_id in (None, snapshot.id)
    assert (snapshot.name, snapshot.status) == (name, "available")
    assert snapshot.size_gb and snapshot.size_gb > 0
    assert snapshot.labels == snapshot_labels(name)
    assert [s.id for s in ours] == [snapshot.id]
    assert provider.find_snapshots({"wopr-snapshot": name}) == []
    assert provider.get_snapshot(snapshot.id) is None
    assert provider.snapshot_price_per_gb_month("any") > 0

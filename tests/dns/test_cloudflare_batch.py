"""A Beacon's records through Cloudflare in the fewest calls: each name listed once, every change
in one call to the batch endpoint; and a zone listed to its last record, however many.

Exchanges go through FakeCloudflare and, where the spec is present, are checked against
Cloudflare's OpenAPI document plus the batch path (tests/dns/cloudflare_batch_spec.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from dns.models import DnsRecord
from dns.services import dns_records_delete, dns_records_upsert
from fakes.cloudflare import TOKEN, ZONE_ID, FakeCloudflare
from integrations.dns.base import RecordSpec
from integrations.dns.cloudflare import CloudflareDns
from integrations.errors import DnsError
from integrations.http import http_client, transport_for
from provisioning.vendors import get_dns_backend
from tests.vendor_spec import TRIMMED, assert_conforms

BASE = "https://api.cloudflare.com/client/v4"
RECORDS = f"/client/v4/zones/{ZONE_ID}/dns_records"
BATCH = f"{RECORDS}/batch"
NAME = "b1.beacons.test"
SPEC_PRESENT = (TRIMMED / "cloudflare.json").is_file()


def _validating(fake: FakeCloudflare) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        if SPEC_PRESENT:
            assert_conforms("cloudflare", request)
        response = fake.handle(request)
        if SPEC_PRESENT:
            response.read()
            assert_conforms("cloudflare", request, response)
        return response

    return httpx.MockTransport(handle)


@pytest.fixture
def fake() -> Iterator[FakeCloudflare]:
    fake = FakeCloudflare(zones={ZONE_ID: "beacons.test"})
    with transport_for(BASE, _validating(fake)):
        yield fake


@pytest.fixture
def cloudflare(fake: FakeCloudflare) -> CloudflareDns:
    return CloudflareDns(base_url=BASE, token=TOKEN, zone_id=ZONE_ID)


@pytest.fixture
def settings_cloudflare(settings, fake):
    settings.DNS_BACKEND = "cloudflare"
    settings.CLOUDFLARE_API_URL, settings.CLOUDFLARE_API_TOKEN = BASE, TOKEN
    settings.CLOUDFLARE_ZONE_ID = ZONE_ID
    return fake


def _specs(ipv4: str = "203.0.113.7", ipv6: str = "2001:db8::7") -> list[RecordSpec]:
    return [
        RecordSpec(kind, name, address)
        for name in (NAME, f"*.{NAME}")
        for kind, address in (("A", ipv4), ("AAAA", ipv6))
    ]


def _calls(fake: FakeCloudflare) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r in fake.requests]


def _zone(fake: FakeCloudflare) -> set[tuple[str, str, str]]:
    return {(r["type"], r["name"], r["content"]) for r in fake.zone_records(ZONE_ID)}


# --- the cost of one Beacon ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_beacon_costs_three_cloudflare_calls_to_publish_and_three_to_remove(settings_cloudflare):
    from tests.factories import BeaconFactory

    fake = settings_cloudflare
    beacon = BeaconFactory(fqdn=NAME, ipv4="203.0.113.7", ipv6="2001:db8::7")

    rows = dns_records_upsert(beacon=beacon, backend=get_dns_backend())
    published = _calls(fake)
    made = {record["id"] for record in fake.zone_records(ZONE_ID)}
    deleted = dns_records_delete(beacon=beacon, backend=get_dns_backend())
    removed = _calls(fake)[len(published) :]

    # Was 8 and 8: a listing and a write per record.
    assert published == [("GET", RECORDS), ("GET", RECORDS), ("POST", BATCH)]
    assert removed == [("GET", RECORDS), ("GET", RECORDS), ("POST", BATCH)]
    assert {row.provider_record_id for row in rows} == made
    assert len(made) == 4
    assert deleted == 4
    assert fake.zone_records(ZONE_ID) == []
    assert set(DnsRecord.objects.values_list("status", flat=True)) == {"deleted"}


def test_upsert_all_publishes_every_record_with_the_ids_cloudflare_gave(fake, cloudflare):
    records = cloudflare.upsert_all(_specs())

    stored = {r["id"]: (r["type"], r["name"], r["content"]) for r in fake.zone_records(ZONE_ID)}
    assert [stored[record.id] for record in records] == [
        ("A", NAME, "203.0.113.7"),
        ("AAAA", NAME, "2001:db8::7"),
        ("A", f"*.{NAME}", "203.0.113.7"),
        ("AAAA", f"*.{NAME}", "2001:db8::7"),
    ]
    (batch,) = fake.writes()
    body = json.loads(batch.content)
    assert [post["type"] for post in body["posts"]] == ["A", "AAAA", "A", "AAAA"]
    assert set(body) == {"posts"}  # no empty lists sent
    assert {request.url.params["name"] for request in fake.requests[:2]} == {NAME, f"*.{NAME}"}
    assert all("type" not in request.url.params for request in fake.requests[:2])


def test_upsert_all_again_lists_and_writes_nothing(fake, cloudflare):
    first = cloudflare.upsert_all(_specs())
    fake.requests.clear()

    again = cloudflare.upsert_all(_specs())

    assert again == first
    assert [request.method for request in fake.requests] == ["GET", "GET"]


def test_upsert_all_patches_moved_addresses_and_deletes_duplicates_in_one_batch(fake, cloudflare):
    old = fake.add_record(ZONE_ID, type="A", name=NAME, content="198.51.100.1", ttl=300)
    duplicate = fake.add_record(ZONE_ID, type="A", name=NAME, content="198.51.100.2", ttl=300)
    kept_txt = fake.add_record(ZONE_ID, type="TXT", name=NAME, content="keep me", ttl=300)

    records = cloudflare.upsert_all(_specs())

    (batch,) = fake.writes()
    body = json.loads(batch.content)
    assert body["deletes"] == [{"id": duplicate["id"]}]
    assert [(p["id"], p["content"]) for p in body["patches"]] == [(old["id"], "203.0.113.7")]
    assert len(body["posts"]) == 3
    assert records[0].id == old["id"]
    assert _zone(fake) == {
        ("A", NAME, "203.0.113.7"),
        ("AAAA", NAME, "2001:db8::7"),
        ("A", f"*.{NAME}", "203.0.113.7"),
        ("AAAA", f"*.{NAME}", "2001:db8::7"),
        ("TXT", NAME, kept_txt["content"]),
    }


def test_a_lost_batch_answer_then_a_retry_leaves_exactly_one_record_each(fake, cloudflare):
    fake.inject(method="POST", path_prefix=BATCH, drop=True)

    with pytest.raises(DnsError) as lost:
        cloudflare.upsert_all(_specs())
    assert (lost.value.transient, lost.value.code) == (True, "network")

    records = cloudflare.upsert_all(_specs())

    assert len(fake.zone_records(ZONE_ID)) == 4
    assert {record.id for record in records} == {r["id"] for r in fake.zone_records(ZONE_ID)}
    assert [request.method for request in fake.writes()] == ["POST"]  # the lost one only


def test_a_batch_refused_for_a_record_made_meanwhile_is_planned_again(fake, cloudflare):
    theirs = fake.add_record(ZONE_ID, type="A", name=NAME, content="203.0.113.7", ttl=300)
    empty = {"success": True, "errors": [], "messages": [], "result": []}
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=empty, times=2)

    records = cloudflare.upsert_all(_specs())

    assert records[0].id == theirs["id"]
    assert [request.method for request in fake.requests] == ["GET", "GET", "POST"] * 2
    assert len(fake.zone_records(ZONE_ID)) == 4


def test_a_batch_refused_twice_because_the_listing_lags_is_a_transient_error(fake, cloudflare):
    fake.add_record(ZONE_ID, type="A", name=NAME, content="203.0.113.7", ttl=300)
    empty = {"success": True, "errors": [], "messages": [], "result": []}
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=empty, times=4)

    with pytest.raises(DnsError) as refused:
        cloudflare.upsert_all(_specs())

    assert refused.value.transient  # the job retries; it does not tear the server down
    assert refused.value.code in ("81057", "81058")
    assert len(fake.zone_records(ZONE_ID)) == 1  # nothing half-made


def test_a_refused_batch_changes_nothing(fake, cloudflare):
    made = fake.add_record(ZONE_ID, type="A", name=NAME, content="203.0.113.7", ttl=300)
    post = {"type": "A", "name": "ok.beacons.test", "content": "192.0.2.1", "ttl": 300}
    body = {"deletes": [{"id": made["id"]}], "posts": [post, post]}  # the second is identical

    with http_client(base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        response = client.post(f"/zones/{ZONE_ID}/dns_records/batch", json=body)

    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, 81058)
    assert _zone(fake) == {("A", NAME, "203.0.113.7")}
    assert cloudflare.find(NAME, "A")[0].id == made["id"]  # the name index was restored too


def test_delete_names_deletes_only_address_records_in_one_batch(fake, cloudflare):
    cloudflare.upsert_all(_specs())
    fake.add_record(ZONE_ID, type="TXT", name=NAME, content="keep me", ttl=300)
    fake.requests.clear()

    deleted = cloudflare.delete_names([NAME, f"*.{NAME}"], ["A", "AAAA"])

    assert deleted == 4
    assert [request.method for request in fake.requests] == ["GET", "GET", "POST"]
    assert _zone(fake) == {("TXT", NAME, "keep me")}
    assert cloudflare.delete_names([NAME, f"*.{NAME}"], ["A", "AAAA"]) == 0  # nothing to batch


def test_more_changes_than_one_batch_takes_are_sent_in_several(fake, cloudflare):
    names = [f"n{i}.beacons.test" for i in range(150)]
    specs = [RecordSpec(kind, n, ip) for n in names for kind, ip in (("A", "192.0.2.1"),)]
    specs += [RecordSpec("AAAA", n, "2001:db8::1") for n in names]

    records = cloudflare.upsert_all(specs)

    batches = [json.loads(r.content) for r in fake.writes()]
    assert [len(b["posts"]) for b in batches] == [200, 100]
    assert len({record.id for record in records}) == 300 == len(fake.zone_records(ZONE_ID))


# --- a zone listed to its last record ----------------------------------------------------------


def test_listing_a_zone_of_20000_records_returns_every_one():
    fake = FakeCloudflare(zones={ZONE_ID: "beacons.test"})
    for n in range(10_000):
        fake.add_record(ZONE_ID, type="A", name=f"b{n}.w.beacons.test", content="198.51.100.7")
        fake.add_record(ZONE_ID, type="AAAA", name=f"b{n}.w.beacons.test", content="2001:db8::7")
    fake.add_record(ZONE_ID, type="A", name="www.beacons.test", content="198.51.100.8")
    cloudflare = CloudflareDns(base_url=BASE, token=TOKEN, zone_id=ZONE_ID)

    with transport_for(BASE, fake.transport()):
        found = cloudflare.list_records(".w.beacons.test")

    assert len(found) == 20_000
    assert len({record.id for record in found}) == 20_000
    pages = [request.url.params["page"] for request in fake.requests]
    assert pages == ["1", "2", "3", "4", "5"]  # 20,001 records, 5,000 a page: no page cap


def test_find_follows_pages_past_the_old_cap_of_twenty(fake, cloudflare):
    for i in range(2_101):
        fake.add_record(ZONE_ID, type="A", name=NAME, content=f"10.{i // 250}.{i % 250}.1", ttl=300)
    fake.requests.clear()

    with transport_for(BASE, fake.transport()):  # 22 pages: validating each would be slow
        found = cloudflare.find(NAME, "A")

    assert len(found) == 2_101
    assert len(fake.requests) == 22


def test_fake_dns_backend_takes_its_store_and_faults_from_the_app():
    from integrations.dns.fake import FakeDns, MemoryZone

    raised = DnsError("lost", transient=True, code="fake_lost_response")
    fake = FakeDns(
        store=MemoryZone(), faults=lambda point: raised if point == "dns.upsert" else None
    )

    with pytest.raises(DnsError):
        fake.upsert(RecordSpec("A", NAME, "192.0.2.1"))

    (record,) = fake.find(NAME, "A")  # a lost answer: the change was made
    assert record.content == "192.0.2.1"
    assert fake.delete_names([NAME], ["A"]) == 1
    assert fake.list_records(".beacons.test") == []

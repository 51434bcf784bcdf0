"""CloudflareDns over the stateful FakeCloudflare: request shapes, an upsert that never leaves
two records, pagination, idempotent delete, the error table, the shared budget, no token leaks.

Every request the adapter sends and every answer the fake gives is checked against Cloudflare's
own OpenAPI document (../shared/specs/trimmed/cloudflare.json) when it is present.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dns.backends.fake import FakeDns
from fakes.cloudflare import TOKEN, ZONE_ID, FakeCloudflare
from integrations.dns.base import DnsBackend, Record, RecordSpec
from integrations.dns.cloudflare import CloudflareDns, cloudflare_error
from integrations.errors import DnsError
from integrations.http import http_client, transport_for
from provisioning.models import RateLimitBudget
from provisioning.ratelimit import DbRateBudget
from tests.vendor_spec import TRIMMED, assert_conforms

BASE = "https://cloudflare.test/client/v4"
RAW = "https://unvalidated.cloudflare.test/client/v4"
RECORDS = f"/client/v4/zones/{ZONE_ID}/dns_records"
SPEC_PRESENT = (TRIMMED / "cloudflare.json").is_file()
WWW = "www.example.com"


def _conforms(request: httpx.Request, response: httpx.Response | None = None) -> None:
    if not SPEC_PRESENT:
        return
    # The spec declares 200 and 4XX only: a 5xx answer has no schema to meet.
    if response is not None and response.status_code >= 500:
        response = None
    assert_conforms("cloudflare", request, response)


def _validating(fake: FakeCloudflare) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        try:
            response = fake.handle(request)
        except httpx.TransportError:
            _conforms(request)
            raise
        _conforms(request, response)
        return response

    return httpx.MockTransport(handle)


@pytest.fixture
def fake() -> Iterator[FakeCloudflare]:
    fake = FakeCloudflare()
    with transport_for(BASE, _validating(fake)):
        yield fake


@pytest.fixture
def cloudflare(fake: FakeCloudflare) -> CloudflareDns:
    return CloudflareDns(base_url=BASE, token=TOKEN, zone_id=ZONE_ID)


def _methods(fake: FakeCloudflare) -> list[str]:
    return [request.method for request in fake.requests]


def _failure(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


EMPTY_PAGE = {
    "success": True,
    "errors": [],
    "messages": [],
    "result": [],
    "result_info": {"page": 1, "per_page": 100, "count": 0, "total_count": 0, "total_pages": 1},
}


# --- request shapes ------------------------------------------------------------------------


def test_find_sends_name_type_paging_and_bearer_token(fake, cloudflare):
    made = fake.add_record(type="A", name=WWW, content="192.0.2.1", ttl=300)
    fake.add_record(type="AAAA", name=WWW, content="2001:db8::1", ttl=300)

    assert cloudflare.find(WWW, "A") == [Record(made["id"], "A", WWW, "192.0.2.1", 300, False)]

    (request,) = fake.requests
    assert request.method == "GET"
    assert request.url.path == RECORDS
    assert dict(request.url.params) == {"name": WWW, "type": "A", "per_page": "100", "page": "1"}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"].startswith("wopr-control-plane/")
    assert request.content == b""


def test_upsert_creates_a_and_aaaa_records(fake, cloudflare):
    a = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))
    aaaa = cloudflare.upsert(RecordSpec("AAAA", WWW, "2001:db8::1", ttl=600))

    assert _methods(fake) == ["GET", "POST", "GET", "POST"]
    post_a, post_aaaa = fake.writes()
    assert post_a.url.path == RECORDS
    assert post_a.headers["content-type"] == "application/json"
    assert httpx.Response(200, content=post_a.content).json() == {
        "type": "A",
        "name": WWW,
        "content": "192.0.2.1",
        "ttl": 300,
        "proxied": False,
    }
    assert httpx.Response(200, content=post_aaaa.content).json()["ttl"] == 600
    stored = {record["id"]: record for record in fake.zone_records()}
    assert set(stored) == {a.id, aaaa.id}
    assert len(a.id) == 32
    assert (stored[aaaa.id]["type"], stored[aaaa.id]["content"]) == ("AAAA", "2001:db8::1")
    assert aaaa == Record(aaaa.id, "AAAA", WWW, "2001:db8::1", 600, False)


@pytest.mark.parametrize(
    "spec",
    [
        RecordSpec("A", WWW, "192.0.2.1"),
        # Cloudflare stores IPv6 compressed; the long form is the same address.
        RecordSpec("AAAA", WWW, "2001:0db8:0000:0000::0001"),
        # Cloudflare forces ttl 1 ("automatic") on proxied records.
        RecordSpec("A", WWW, "192.0.2.1", ttl=300, proxied=True),
    ],
    ids=["a", "aaaa-long-form", "proxied"],
)
def test_upsert_with_the_same_values_writes_nothing(fake, cloudflare, spec):
    first = cloudflare.upsert(spec)
    second = cloudflare.upsert(spec)

    assert second == first
    assert [request.method for request in fake.writes()] == ["POST"]
    assert len(fake.zone_records()) == 1


def test_upsert_with_new_content_patches_the_record(fake, cloudflare):
    made = fake.add_record(type="A", name=WWW, content="192.0.2.1", ttl=300)

    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.99", ttl=120))

    (patch,) = fake.writes()
    assert patch.method == "PATCH"
    assert patch.url.path == f"{RECORDS}/{made['id']}"
    assert httpx.Response(200, content=patch.content).json() == {
        "type": "A",
        "name": WWW,
        "content": "192.0.2.99",
        "ttl": 120,
        "proxied": False,
    }
    assert record == Record(made["id"], "A", WWW, "192.0.2.99", 120, False)
    assert fake.zone_records()[0]["content"] == "192.0.2.99"


@pytest.mark.parametrize(
    ("contents", "writes"),
    [
        (["192.0.2.7", "192.0.2.8"], ["PATCH", "DELETE"]),  # neither matches: patch the first
        (["192.0.2.7", "192.0.2.1"], ["DELETE"]),  # the second matches: keep it as it is
    ],
)
def test_upsert_leaves_one_of_two_duplicates(fake, cloudflare, contents, writes):
    made = [fake.add_record(type="A", name=WWW, content=content, ttl=300) for content in contents]

    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert [request.method for request in fake.writes()] == writes
    (left,) = fake.zone_records()
    assert (left["id"], left["content"]) == (record.id, "192.0.2.1")
    assert record.id in {row["id"] for row in made}


@pytest.mark.parametrize(
    ("code", "message"),
    [(81057, "The record already exists."), (81058, "An identical record already exists.")],
)
def test_create_answered_already_exists_adopts_the_record(fake, cloudflare, code, message):
    # A concurrent worker creates the record between our listing and our create.
    theirs = fake.add_record(type="A", name=WWW, content="192.0.2.1", ttl=300)
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=EMPTY_PAGE)
    fake.inject(method="POST", path_prefix=RECORDS, status=400, body=_failure(code, message))

    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert record.id == theirs["id"]
    assert _methods(fake) == ["GET", "POST", "GET"]
    assert len(fake.zone_records()) == 1


def test_create_answered_already_exists_patches_a_different_record(fake, cloudflare):
    theirs = fake.add_record(type="A", name=WWW, content="192.0.2.50", ttl=300)
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=EMPTY_PAGE)
    fake.inject(
        method="POST",
        path_prefix=RECORDS,
        status=400,
        body=_failure(81057, "The record already exists."),
    )

    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert _methods(fake) == ["GET", "POST", "GET", "PATCH"]
    assert (record.id, record.content) == (theirs["id"], "192.0.2.1")
    assert len(fake.zone_records()) == 1


def test_create_answered_already_exists_but_nothing_listed_is_transient(fake, cloudflare):
    fake.inject(
        method="POST",
        path_prefix=RECORDS,
        status=400,
        body=_failure(81058, "An identical record already exists."),
    )

    with pytest.raises(DnsError) as error:
        cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert (error.value.transient, error.value.code) == (True, "81058")
    assert _methods(fake) == ["GET", "POST", "GET"]


def test_lost_create_answer_then_retry_leaves_exactly_one_record(fake, cloudflare):
    fake.inject(method="POST", path_prefix=RECORDS, drop=True)
    spec = RecordSpec("A", WWW, "192.0.2.1")

    with pytest.raises(DnsError) as lost:
        cloudflare.upsert(spec)
    assert lost.value.transient
    assert lost.value.code == "network"

    record = cloudflare.upsert(spec)

    (stored,) = fake.zone_records()
    assert record.id == stored["id"]
    assert [request.method for request in fake.writes()] == ["POST"]


def test_find_follows_every_page(fake, cloudflare):
    for i in range(250):
        fake.add_record(type="A", name=WWW, content=f"10.0.{i // 200}.{i % 200}", ttl=300)
    fake.add_record(type="A", name="other.example.com", content="10.9.9.9", ttl=300)

    records = cloudflare.find(WWW, "A")

    assert len(records) == 250
    assert len({record.id for record in records}) == 250
    assert [request.url.params["page"] for request in fake.requests] == ["1", "2", "3"]
    assert {request.url.params["per_page"] for request in fake.requests} == {"100"}


def test_find_stops_at_a_short_page_without_total_pages(fake, cloudflare):
    # The 2024 schema has no total_pages, and its total_count counts the whole zone.
    page = {
        **EMPTY_PAGE,
        "result_info": {"page": 1, "per_page": 100, "count": 0, "total_count": 2000},
    }
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=page)

    assert cloudflare.find(WWW, "A") == []
    assert len(fake.requests) == 1


def test_find_ignores_records_a_server_returned_for_other_names(fake, cloudflare):
    stray = fake.add_record(type="A", name="example.com", content="198.51.100.4", ttl=3600)
    page = {**EMPTY_PAGE, "result": [stray]}
    fake.inject(method="GET", path_prefix=RECORDS, status=200, body=page)

    assert cloudflare.find(WWW, "A") == []


def test_delete_is_idempotent(fake, cloudflare):
    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    cloudflare.delete(record.id)
    cloudflare.delete(record.id)  # 404 with 81044: already gone

    deletes = [request for request in fake.requests if request.method == "DELETE"]
    assert [request.url.path for request in deletes] == [f"{RECORDS}/{record.id}"] * 2
    assert all(request.content == b"" for request in deletes)
    assert fake.zone_records() == []


def test_delete_in_an_unknown_zone_is_an_error(fake):
    other_zone = CloudflareDns(base_url=BASE, token=TOKEN, zone_id="f" * 32)

    with pytest.raises(DnsError) as error:
        other_zone.delete("a" * 32)
    assert (error.value.transient, error.value.code) == (False, "7003")


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "transient", "code", "retry_after"),
    [
        (429, {"Retry-After": "17"}, _failure(10429, "Rate limited."), True, "10429", 17.0),
        (500, {}, _failure(10001, "Internal error"), True, "10001", None),
        (502, {}, None, True, "http_502", None),
        (503, {}, None, True, "http_503", None),
        (504, {}, None, True, "http_504", None),
        (400, {}, _failure(9005, "Content for A record is invalid."), False, "9005", None),
        (401, {}, _failure(10000, "Authentication error"), False, "10000", None),
        (403, {}, _failure(9109, "Invalid access token"), False, "9109", None),
    ],
)
def test_error_answers_map_to_dns_errors(
    fake, cloudflare, status, headers, body, transient, code, retry_after
):
    fake.inject(method="GET", path_prefix=RECORDS, status=status, body=body, headers=headers)

    with pytest.raises(DnsError) as error:
        cloudflare.find(WWW, "A")

    assert (error.value.transient, error.value.code, error.value.retry_after) == (
        transient,
        code,
        retry_after,
    )
    assert str(status) in str(error.value)


def test_a_wrong_token_is_a_permanent_error(fake):
    wrong = CloudflareDns(base_url=BASE, token="not-the-token", zone_id=ZONE_ID)

    with pytest.raises(DnsError) as error:
        wrong.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert (error.value.transient, error.value.code) == (False, "10000")
    assert fake.writes() == []


def test_the_fakes_rate_limit_is_transient_with_retry_after(fake, cloudflare):
    fake.rate_limited_times = 1

    with pytest.raises(DnsError) as error:
        cloudflare.find(WWW, "A")
    assert (error.value.transient, error.value.retry_after) == (True, 30.0)
    assert cloudflare.find(WWW, "A") == []


def test_a_timeout_is_transient():
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    base = "https://slow.cloudflare.test/client/v4"
    with transport_for(base, httpx.MockTransport(slow)), pytest.raises(DnsError) as error:
        CloudflareDns(base_url=base, token=TOKEN, zone_id=ZONE_ID).find(WWW, "A")
    assert (error.value.transient, error.value.code) == (True, "network")


@pytest.mark.parametrize(
    ("response", "transient", "code", "retry_after"),
    [
        (httpx.Response(502, text="<html>Bad gateway</html>"), True, "http_502", None),
        (httpx.Response(429, json=_failure(971, "Please wait")), True, "971", 300.0),
        (
            httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            True,
            "http_429",
            0.0,
        ),
        (httpx.Response(200, json=_failure(1004, "DNS Validation Error")), False, "1004", None),
        (httpx.Response(200, text="<html>maintenance</html>"), True, "http_200", None),
        (httpx.Response(404, json=_failure(81044, "Record does not exist.")), False, "81044", None),
        (httpx.Response(409, json={"success": False}), False, "http_409", None),
    ],
    ids=[
        "html-502",
        "429-no-header",
        "429-http-date",
        "200-unsuccessful",
        "200-unreadable",
        "404",
        "409-bare",
    ],
)
def test_cloudflare_error_reads_only_the_response(response, transient, code, retry_after):
    error = cloudflare_error(response)

    assert isinstance(error, DnsError)
    assert (error.transient, error.code, error.retry_after) == (transient, code, retry_after)


# --- the shared budget ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_429_blocks_the_next_call_without_sending(fake):
    budget = DbRateBudget("cf-test", DnsError)
    cloudflare = CloudflareDns(base_url=BASE, token=TOKEN, zone_id=ZONE_ID, budget=budget)
    fake.inject(
        method="GET",
        path_prefix=RECORDS,
        status=429,
        headers={"Retry-After": "60"},
        body=_failure(10429, "Rate limited."),
    )
    with pytest.raises(DnsError):
        cloudflare.find(WWW, "A")
    sent = len(fake.requests)

    with pytest.raises(DnsError) as blocked:
        cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))

    assert len(fake.requests) == sent
    assert (blocked.value.transient, blocked.value.code) == (True, "rate_limit_budget")
    assert 0 < blocked.value.retry_after <= 60


@pytest.mark.django_db
def test_a_success_records_no_remaining_and_keeps_the_budget_open(fake):
    cloudflare = CloudflareDns(
        base_url=BASE, token=TOKEN, zone_id=ZONE_ID, budget=DbRateBudget("cf-test", DnsError)
    )

    cloudflare.find(WWW, "A")
    cloudflare.find(WWW, "A")

    row = RateLimitBudget.objects.get(key="cf-test")
    assert (row.remaining, row.blocked_until) == (None, None)
    assert len(fake.requests) == 2


@pytest.mark.django_db
def test_a_spent_ratelimit_header_blocks_until_its_reset(fake):
    cloudflare = CloudflareDns(
        base_url=BASE, token=TOKEN, zone_id=ZONE_ID, budget=DbRateBudget("cf-test", DnsError)
    )
    fake.inject(
        method="GET",
        path_prefix=RECORDS,
        status=200,
        body=EMPTY_PAGE,
        headers={"Ratelimit": '"default";r=0;t=45'},
    )
    cloudflare.find(WWW, "A")

    with pytest.raises(DnsError) as blocked:
        cloudflare.find(WWW, "A")

    assert blocked.value.code == "rate_limit_budget"
    assert len(fake.requests) == 1
    assert RateLimitBudget.objects.get(key="cf-test").remaining == 0


# --- secrets -------------------------------------------------------------------------------


def test_the_token_is_never_logged_nor_in_errors(fake, cloudflare, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[DnsError] = []
    record = cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.1"))
    cloudflare.upsert(RecordSpec("A", WWW, "192.0.2.2"))
    cloudflare.delete(record.id)
    for status in (400, 401, 403, 429, 500):
        fake.inject(method="GET", path_prefix=RECORDS, status=status, body=_failure(10000, "no"))
        with pytest.raises(DnsError) as error:
            cloudflare.find(WWW, "A")
        errors.append(error.value)
    fake.inject(method="GET", path_prefix=RECORDS, drop=True)
    with pytest.raises(DnsError) as lost:
        cloudflare.find(WWW, "A")
    errors.append(lost.value)

    assert "cf-ray=" in caplog.text  # the debug line is there, and it is the one without secrets
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in f"{error} {error!r} {error.__cause__!r}"
    assert TOKEN not in repr(cloudflare)


# --- the fake's own refusals ---------------------------------------------------------------


def _send(
    method: str, path: str, token: str = TOKEN, base: str = BASE, **kwargs: Any
) -> httpx.Response:
    with http_client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        return client.request(method, f"/zones/{ZONE_ID}/dns_records{path}", **kwargs)


def test_the_fake_refuses_like_cloudflare(fake):
    body = {"type": "A", "name": WWW, "content": "192.0.2.1", "ttl": 300, "proxied": False}
    assert _send("POST", "", json=body).status_code == 200
    cname = {"type": "CNAME", "name": WWW, "content": "example.net", "ttl": 300}

    refusals = {
        "identical": _send("POST", "", json=body),
        "cname": _send("POST", "", json=cname),
        "bad-ttl": _send("POST", "", json={**body, "content": "192.0.2.2", "ttl": 45}),
        "unknown": _send("DELETE", f"/{'0' * 32}"),
        "no-token": _send("GET", "", token="wrong"),
    }

    # The spec itself forbids this one, so it goes around the validating transport.
    with transport_for(RAW, fake.transport()):
        refusals["bad-ip"] = _send("POST", "", base=RAW, json={**body, "content": "not-an-ip"})

    codes = {name: (r.status_code, r.json()["errors"][0]["code"]) for name, r in refusals.items()}
    assert codes == {
        "identical": (400, 81058),
        "cname": (400, 81053),
        "bad-ip": (400, 9005),
        "bad-ttl": (400, 9021),
        "unknown": (404, 81044),
        "no-token": (401, 10000),
    }
    assert len(fake.zone_records()) == 1


def test_the_fake_answers_with_cloudflare_record_fields(fake):
    body = {"type": "AAAA", "name": "v6", "content": "2001:db8:0:0::5", "ttl": 300}

    record = _send("POST", "", json=body).json()["result"]

    assert record["name"] == "v6.example.com"  # relative names land in the zone
    assert record["content"] == "2001:db8::5"
    assert record["zone_id"] == ZONE_ID
    assert {"proxiable", "created_on", "modified_on", "meta", "zone_name"} <= set(record)
    assert len(record["id"]) == 32


# --- contract: the same behaviour from FakeDns and CloudflareDns ---------------------------


@pytest.fixture(params=["fake", "cloudflare"])
def backend(request) -> Iterator[DnsBackend]:
    if request.param == "fake":
        request.getfixturevalue("db")
        yield FakeDns()
        return
    vendor = FakeCloudflare()
    with transport_for(BASE, _validating(vendor)):
        yield CloudflareDns(base_url=BASE, token=TOKEN, zone_id=ZONE_ID)


def test_contract_upsert_find_delete(backend):
    spec = RecordSpec("A", "beacon.example.com", "192.0.2.10")

    first = backend.upsert(spec)
    second = backend.upsert(spec)
    found = backend.find("beacon.example.com", "A")
    backend.delete(first.id)
    backend.delete(first.id)

    assert second.id == first.id
    assert [(r.id, r.content, r.ttl, r.proxied) for r in found] == [
        (first.id, "192.0.2.10", 300, False)
    ]
    assert backend.find("beacon.example.com", "A") == []
    assert backend.find("beacon.example.com", "AAAA") == []


def test_list_records_finds_every_a_and_aaaa_under_a_suffix_across_pages(cloudflare, fake):
    for n in range(130):
        fake.add_record(type="A", name=f"b{n}.beacons.example.com", content="198.51.100.7")
    fake.add_record(type="AAAA", name="b1.beacons.example.com", content="2001:db8::1")
    fake.add_record(type="A", name="www.example.com", content="198.51.100.8")

    found = cloudflare.list_records(".beacons.example.com")

    assert len(found) == 131
    assert {record.record_type for record in found} == {"A", "AAAA"}
    assert all(record.name.endswith(".beacons.example.com") for record in found)

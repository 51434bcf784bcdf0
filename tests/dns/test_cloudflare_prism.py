"""Every request CloudflareDns can make, sent to a Prism mock of Cloudflare's own OpenAPI spec.

Prism validates each request against the spec and answers 422 when it breaks it, so a 2xx here
means Cloudflare's contract accepts what the adapter sends. Prism is not stateful: it answers
with the spec's example record (example.com, 198.51.100.4, id 023e105f...) whatever was asked.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from integrations.dns.base import RecordSpec
from integrations.dns.cloudflare import CloudflareDns
from integrations.http import transport_for
from tests.vendor_spec import mock_server, needs_shared

pytestmark = needs_shared

PRISM = "http://127.0.0.1:4011"  # Prism ignores the spec's /client/v4 base path
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"  # the spec's example zone and record id
RECORDS = f"/zones/{ZONE}/dns_records"
AUTH = {"Authorization": "Bearer prism-test-token"}


class RecordingTransport(httpx.BaseTransport):
    """Real HTTP to Prism, remembering method, path and status of every exchange."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request.method, request.url.path, response.status_code))
        return response

    def close(self) -> None:  # each adapter call closes its client; the pool lives per test
        return None


@pytest.fixture(scope="module")
def prism() -> str:
    return mock_server(PRISM)


@pytest.fixture
def recording(prism: str) -> Iterator[RecordingTransport]:
    transport = RecordingTransport()
    with transport_for(prism, transport):
        yield transport
    transport.inner.close()


@pytest.fixture
def cloudflare(prism: str, recording: RecordingTransport) -> CloudflareDns:
    return CloudflareDns(base_url=prism, token="prism-test-token", zone_id=ZONE)


def test_find_is_accepted(cloudflare, recording):
    (record,) = cloudflare.find("example.com", "A")

    assert (record.id, record.content, record.ttl) == (ZONE, "198.51.100.4", 3600)
    assert recording.exchanges == [("GET", RECORDS, 200)]


@pytest.mark.parametrize(
    "spec",
    [
        RecordSpec("A", "beacon.example.com", "192.0.2.10"),
        RecordSpec("AAAA", "*.beacon.example.com", "2001:db8::10", ttl=600),
    ],
    ids=["a", "wildcard-aaaa"],
)
def test_create_is_accepted(cloudflare, recording, spec):
    record = cloudflare.upsert(spec)  # Prism lists only example.com, so this creates

    assert record.id == ZONE
    assert recording.exchanges == [("GET", RECORDS, 200), ("POST", RECORDS, 200)]


def test_patch_is_accepted(cloudflare, recording):
    record = cloudflare.upsert(RecordSpec("A", "example.com", "192.0.2.10", ttl=300))

    assert record.id == ZONE
    assert recording.exchanges == [("GET", RECORDS, 200), ("PATCH", f"{RECORDS}/{ZONE}", 200)]


def test_delete_is_accepted(cloudflare, recording):
    cloudflare.delete(ZONE)

    assert recording.exchanges == [("DELETE", f"{RECORDS}/{ZONE}", 200)]


def test_prism_rejects_a_malformed_record(prism):
    body = {"type": "A", "name": "bad.example.com", "content": "not-an-ip", "ttl": 300}

    response = httpx.post(f"{prism}{RECORDS}", json=body, headers=AUTH, timeout=10)

    assert response.status_code == 422  # validation is live: the 2xx above mean something
    assert "ipv4" in response.text

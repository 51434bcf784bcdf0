"""The DigitalOcean adapter against the stateful fake, every exchange checked against DO's spec."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import httpx
import pytest

from fakes.digitalocean import FakeDigitalOcean
from integrations.clouds.base import Created, ProviderError, ServerSpec
from integrations.clouds.digitalocean import (
    DigitalOceanProvider,
    digitalocean_error,
    labels_to_tags,
    tags_to_labels,
)
from integrations.http import transport_for
from provisioning.ratelimit import DbRateBudget
from tests.vendor_spec import TRIMMED, assert_conforms

BASE_URL = "https://do.test"
TOKEN = "dop_v1_secret-token-never-logged"
SPEC_PRESENT = (TRIMMED / "digitalocean.json").is_file()
LABELS = {"wopr-beacon": "5", "wopr-job": "9", "managed-by": "wopr"}


class SpecCheckedTransport(httpx.BaseTransport):
    """Hands requests to the fake and checks each request and answer against DO's OpenAPI
    document (when ../shared/ is present), so neither the adapter nor the fake can drift."""

    def __init__(self, fake: FakeDigitalOcean) -> None:
        self.fake = fake
        self.checked = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.fake.handle(request)
        except httpx.TransportError:
            self._check(request, None)
            raise
        self._check(request, response)
        return response

    def _check(self, request: httpx.Request, response: httpx.Response | None) -> None:
        if SPEC_PRESENT:
            assert_conforms("digitalocean", request, response)
            self.checked += 1


@pytest.fixture
def fake() -> FakeDigitalOcean:
    return FakeDigitalOcean(token=TOKEN)


@pytest.fixture
def transport(fake):
    checked = SpecCheckedTransport(fake)
    with transport_for(BASE_URL, checked):
        yield checked


@pytest.fixture
def provider(transport) -> DigitalOceanProvider:
    return DigitalOceanProvider(base_url=BASE_URL, token=TOKEN, ssh_keys=["289794"])


def server_spec(**overrides: object) -> ServerSpec:
    values: dict = {
        "name": "wopr-alpha",
        "size": "s-2vcpu-4gb",
        "image": "debian-12",
        "location": "fra1",
        "labels": LABELS,
        "user_data": "#cloud-config\nruncmd: [echo hi]\n",
        "ssh_keys": ["3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"],
    }
    return ServerSpec(**{**values, **overrides})


def booted(provider: DigitalOceanProvider, created: Created) -> None:
    """Poll the create action until it is done (the fake needs two looks by default)."""
    while provider.action_status(created.action_id) == "running":
        pass


def seed(fake: FakeDigitalOcean, count: int, tags: list[str]) -> None:
    """Droplets made straight in the fake (quicker than the adapter for long lists)."""
    for number in range(count):
        body = {"name": f"seed-{number}", "size": "s-2vcpu-4gb", "image": "debian-12-x64"}
        request = httpx.Request(
            "POST",
            f"{BASE_URL}/v2/droplets",
            json={**body, "region": "nyc3", "tags": tags},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert fake.handle(request).status_code == 202


# --- requests and answers ---------------------------------------------------------------
def test_create_posts_a_droplet_with_tags_user_data_and_ipv6(provider, fake):
    provider.create_server(server_spec())

    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v2/droplets"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("wopr-control-plane/")
    assert httpx.Response(200, content=request.content).json() == {
        "name": "wopr-alpha",
        "region": "fra1",
        "size": "s-2vcpu-4gb",
        "image": "debian-12-x64",
        "ssh_keys": [289794, "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"],
        "user_data": "#cloud-config\nruncmd: [echo hi]\n",
        "ipv6": True,
        "tags": ["wopr-beacon:5", "wopr-job:9", "managed-by:wopr"],
    }


def test_create_returns_the_new_droplet_and_its_create_action(provider, fake):
    created = provider.create_server(server_spec())

    (droplet,) = fake.droplets.values()
    (action,) = fake.actions.values()
    assert created.action_id == str(action.id)
    assert created.server.id == str(droplet.id)
    assert created.server.status == "initializing"
    assert created.server.location == "fra1"
    assert created.server.size == "s-2vcpu-4gb"
    assert created.server.labels == LABELS
    assert (created.server.ipv4, created.server.ipv6) == (None, None)


def test_create_action_is_running_then_success_and_the_droplet_runs(provider, fake):
    created = provider.create_server(server_spec())

    assert provider.action_status(created.action_id) == "running"
    assert provider.action_status(created.action_id) == "success"
    server = provider.get_server(created.server.id)
    assert server is not None
    assert server.status == "running"
    assert server.ipv4 is not None and server.ipv4.startswith("203.0.113.")
    assert server.ipv6 is not None and server.ipv6.startswith("2001:db8:")
    assert [r.url.path for r in fake.requests[1:]] == [
        f"/v2/actions/{created.action_id}",
        f"/v2/actions/{created.action_id}",
        f"/v2/droplets/{created.server.id}",
    ]


def test_an_errored_action_reports_error(provider, fake):
    created = provider.create_server(server_spec())
    fake.fail_action(int(created.action_id))

    assert provider.action_status(created.action_id) == "error"


def test_get_unknown_droplet_is_none(provider, fake):
    assert provider.get_server("999999") is None
    assert provider.get_server("not-a-number") is None
    assert len(fake.requests) == 1  # a malformed id is not asked about


def test_find_servers_asks_for_one_tag_and_checks_the_other_labels_here(provider, fake):
    wanted = provider.create_server(server_spec())
    provider.create_server(server_spec(name="wopr-other", labels={**LABELS, "wopr-beacon": "6"}))
    provider.create_server(server_spec(name="wopr-third", labels={"wopr-job": "10"}))
    fake.requests.clear()

    found = provider.find_servers({"wopr-job": "9", "wopr-beacon": "5"})

    assert [server.id for server in found] == [wanted.server.id]
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.url.path == "/v2/droplets"
    assert dict(request.url.params) == {"tag_name": "wopr-job:9", "per_page": "50", "page": "1"}


def test_find_servers_follows_the_next_page_links(provider, fake):
    seed(fake, 120, ["wopr-job:9"])
    seed(fake, 3, ["wopr-job:8"])
    fake.requests.clear()

    found = provider.find_servers({"wopr-job": "9"})

    assert len(found) == 120
    assert len({server.id for server in found}) == 120
    assert [request.url.params["page"] for request in fake.requests] == ["1", "2", "3"]


def test_find_servers_without_labels_lists_every_droplet(provider, fake):
    seed(fake, 2, ["web"])

    assert len(provider.find_servers({})) == 2
    assert "tag_name" not in fake.requests[-1].url.params


def test_a_label_no_tag_can_carry_is_refused_before_sending(provider, fake):
    with pytest.raises(ProviderError) as caught:
        provider.create_server(server_spec(labels={"owner": "a.b@example.com"}))

    assert caught.value.code == "invalid_label"
    assert not caught.value.transient
    assert fake.requests == []


def test_power_off_and_on_return_actions_that_change_the_droplet(provider, fake):
    created = provider.create_server(server_spec())
    booted(provider, created)
    server_id = created.server.id

    off = provider.power_off(server_id)
    assert fake.requests[-1].url.path == f"/v2/droplets/{server_id}/actions"
    assert fake.requests[-1].content == b'{"type":"power_off"}'
    assert provider.action_status(off) == "running"
    assert provider.action_status(off) == "success"
    assert provider.get_server(server_id).status == "off"

    on = provider.power_on(server_id)
    assert fake.requests[-1].content == b'{"type":"power_on"}'
    assert on != off
    while provider.action_status(on) == "running":
        pass
    assert provider.get_server(server_id).status == "running"


def test_power_off_during_another_action_is_transient(provider):
    created = provider.create_server(server_spec())

    with pytest.raises(ProviderError) as caught:
        provider.power_off(created.server.id)

    assert caught.value.transient
    assert "pending event" in str(caught.value)


def test_power_off_unknown_droplet_is_permanent(provider):
    with pytest.raises(ProviderError) as caught:
        provider.power_off("424242")

    assert (caught.value.transient, caught.value.code) == (False, "not_found")


def test_delete_removes_the_droplet(provider, fake):
    created = provider.create_server(server_spec())

    provider.delete_server(created.server.id)

    assert fake.requests[-1].method == "DELETE"
    assert fake.requests[-1].url.path == f"/v2/droplets/{created.server.id}"
    assert fake.droplets == {}
    assert provider.get_server(created.server.id) is None


def test_deleting_twice_is_not_an_error(provider, fake):
    created = provider.create_server(server_spec())

    provider.delete_server(created.server.id)
    provider.delete_server(created.server.id)
    provider.delete_server("never-made")

    assert [request.method for request in fake.requests] == ["POST", "DELETE", "DELETE"]


def test_protect_is_a_no_op(provider, fake):
    provider.protect("123")

    assert fake.requests == []


def test_list_locations_says_which_regions_take_droplets(fake, provider):
    fake.unavailable_regions = {"sfo2"}

    locations = {location.name: location.available for location in provider.list_locations()}

    assert locations == {
        "nyc1": True,
        "nyc3": True,
        "sfo2": False,
        "sfo3": True,
        "fra1": True,
        "ams3": True,
    }


def test_list_server_types_prices_each_size_where_it_is_sold(provider):
    types = {server_type.name: server_type for server_type in provider.list_server_types()}

    small = types["s-2vcpu-4gb"]
    assert (small.cores, small.memory_gb, small.disk_gb) == (2, 4.0, 80)
    assert small.monthly_price["fra1"] == Decimal("24.00")
    assert len(small.monthly_price) == 6
    assert set(types) == {"s-2vcpu-4gb", "s-4vcpu-8gb", "s-8vcpu-16gb", "s-8vcpu-32gb"}
    assert types["s-8vcpu-32gb"].memory_gb == 32.0
    assert "sfo2" not in types["s-8vcpu-32gb"].monthly_price


def test_labels_and_tags_round_trip():
    tags = labels_to_tags(LABELS)

    assert tags_to_labels([*tags, "web"]) == LABELS


# --- errors ------------------------------------------------------------------------------
def do_error(code: str, message: str) -> dict[str, str]:
    return {"id": code, "message": message, "request_id": "4d9d8375-3c56-4925-a3e7-eb137fed17e9"}


def error_row(status, code, message, *, transient, capacity=False, headers=None, name=""):
    return pytest.param(
        status, do_error(code, message), headers or {}, transient, capacity, code,
        id=name or f"{status}-{code}",
    )  # fmt: skip


ERROR_TABLE = [
    error_row(429, "too_many_requests", "API rate limit exceeded.", transient=True,
              headers={"retry-after": "30"}),
    error_row(500, "server_error", "Unexpected server-side error", transient=True),
    error_row(502, "bad_gateway", "Bad gateway", transient=True),
    error_row(503, "service_unavailable", "Service unavailable", transient=True),
    error_row(504, "gateway_timeout", "Gateway timeout", transient=True),
    error_row(422, "unprocessable_entity", "Size is not available in this region.",
              transient=False, capacity=True, name="422-size-not-available"),
    error_row(422, "unprocessable_entity", "Region is not available", transient=False,
              capacity=True, name="422-region-not-available"),
    error_row(422, "unprocessable_entity", "This region is out of capacity.", transient=False,
              capacity=True, name="422-out-of-capacity"),
    error_row(422, "unprocessable_entity", "You specified an invalid image for Droplet creation.",
              transient=False, name="422-invalid-image"),
    error_row(401, "unauthorized", "Unable to authenticate you.", transient=False),
    error_row(403, "forbidden", "You do not have access for the attempted action.",
              transient=False),
    error_row(404, "not_found", "The resource you requested could not be found.",
              transient=False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers", "transient", "capacity", "code"), ERROR_TABLE
)
def test_create_errors_are_classified(
    provider, fake, status, body, headers, transient, capacity, code
):
    fake.inject(
        method="POST", path_prefix="/v2/droplets", status=status, body=body, headers=headers
    )

    with pytest.raises(ProviderError) as caught:
        provider.create_server(server_spec())

    error = caught.value
    assert (error.transient, error.capacity, error.code) == (transient, capacity, code)
    assert body["message"] in str(error)
    assert body["request_id"] in str(error)
    assert error.retry_after == (30.0 if status == 429 else None)
    assert fake.droplets == {}


def test_an_unavailable_region_is_a_capacity_error(provider, fake):
    fake.unavailable_regions = {"fra1"}

    with pytest.raises(ProviderError) as caught:
        provider.create_server(server_spec())

    assert caught.value.capacity
    assert not caught.value.transient
    assert caught.value.code == "unprocessable_entity"


def test_a_wrong_token_is_a_permanent_unauthorized_error(transport):
    provider = DigitalOceanProvider(base_url=BASE_URL, token="dop_v1_wrong")

    with pytest.raises(ProviderError) as caught:
        provider.get_server("1")

    assert (caught.value.transient, caught.value.code) == (False, "unauthorized")


def test_an_error_page_that_is_not_json_is_still_classified():
    response = httpx.Response(502, text="<html>Bad Gateway</html>")

    error = digitalocean_error(response)

    assert (error.transient, error.code) == (True, "http_502")


def test_429_without_retry_after_waits_until_the_reset():
    reset = int(time.time()) + 120
    response = httpx.Response(
        429,
        json=do_error("too_many_requests", "API rate limit exceeded."),
        headers={"ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
    )

    error = digitalocean_error(response)

    assert error.transient
    assert 110 < error.retry_after <= 120


@pytest.mark.parametrize(
    ("exception", "code"),
    [(httpx.ConnectTimeout("timed out"), "timeout"), (httpx.ConnectError("refused"), "network")],
)
def test_no_answer_is_transient(exception, code):
    def fail(request: httpx.Request) -> httpx.Response:
        raise exception

    provider = DigitalOceanProvider(base_url=BASE_URL, token=TOKEN)
    with transport_for(BASE_URL, httpx.MockTransport(fail)), pytest.raises(ProviderError) as caught:
        provider.get_server("1")

    assert (caught.value.transient, caught.value.code) == (True, code)


# --- the rate budget ---------------------------------------------------------------------
@pytest.mark.django_db
def test_a_spent_budget_blocks_the_next_call_without_sending(fake, transport):
    fake.ratelimit_remaining = 1
    provider = DigitalOceanProvider(base_url=BASE_URL, token=TOKEN, budget=DbRateBudget("do-test"))
    provider.list_locations()  # answered with ratelimit-remaining: 0
    sent = len(fake.requests)

    with pytest.raises(ProviderError) as caught:
        provider.get_server("1")

    assert caught.value.transient
    assert caught.value.code == "rate_limit_budget"
    assert 3500 < caught.value.retry_after <= 3600
    assert len(fake.requests) == sent


@pytest.mark.django_db
def test_429_retry_after_is_kept_and_blocks_the_budget(fake, transport):
    fake.inject(
        method="GET",
        path_prefix="/v2/droplets",
        status=429,
        body=do_error("too_many_requests", "API rate limit exceeded."),
        headers={"retry-after": "17", "ratelimit-limit": "250", "ratelimit-remaining": "0"},
    )
    provider = DigitalOceanProvider(base_url=BASE_URL, token=TOKEN, budget=DbRateBudget("do-test"))

    with pytest.raises(ProviderError) as caught:
        provider.find_servers({"wopr-job": "9"})
    assert (caught.value.transient, caught.value.retry_after) == (True, 17.0)

    with pytest.raises(ProviderError) as blocked:
        provider.find_servers({"wopr-job": "9"})
    assert blocked.value.code == "rate_limit_budget"
    assert len(fake.requests) == 1


def test_the_fakes_own_limit_answers_429(fake, provider):
    fake.ratelimit_remaining = 0

    with pytest.raises(ProviderError) as caught:
        provider.list_locations()

    assert (caught.value.transient, caught.value.code) == (True, "too_many_requests")
    assert caught.value.retry_after == 3600.0


# --- the lost response -------------------------------------------------------------------
def test_a_lost_create_answer_is_adopted_on_retry(provider, fake):
    fake.inject(method="POST", path_prefix="/v2/droplets", drop=True)

    with pytest.raises(ProviderError) as caught:
        provider.create_server(server_spec())
    assert (caught.value.transient, caught.value.code) == (True, "network")

    # The job's retry looks for its server first, as provision.step_create_server does.
    found = provider.find_servers({"wopr-job": "9"})
    if not found:
        provider.create_server(server_spec())

    assert len(found) == 1
    assert [server.id for server in found] == [str(droplet) for droplet in fake.droplets]
    assert len(fake.droplets) == 1


# --- secrets -----------------------------------------------------------------------------
def test_the_token_is_never_logged_nor_in_errors(provider, fake, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    created = provider.create_server(server_spec())
    provider.find_servers(LABELS)
    calls = [
        (dict(method="GET", status=500, body=do_error("server_error", "Unexpected")),
         lambda: provider.get_server(created.server.id)),
        (None, lambda: provider.power_off(created.server.id)),  # busy: the create still runs
        (dict(method="POST", drop=True), lambda: provider.create_server(server_spec())),
        (None, lambda: DigitalOceanProvider(base_url=BASE_URL, token="x").list_locations()),
    ]  # fmt: skip
    for injected, call in calls:
        if injected:
            fake.inject(path_prefix="/v2/droplets", **injected)
        with pytest.raises(ProviderError) as caught:
            call()
        errors.append(caught.value)

    assert caplog.records, "the adapter logs its requests"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in f"{error} {error.code} {error!r}" for error in errors)
    assert TOKEN not in repr(provider)
    assert "request " in caplog.text  # DigitalOcean's request id is logged instead


def test_every_exchange_was_checked_against_the_spec(provider, transport):
    if not SPEC_PRESENT:
        pytest.skip("../shared/ is absent: no DigitalOcean spec to check against")
    created = provider.create_server(server_spec())
    booted(provider, created)
    provider.power_off(created.server.id)
    provider.delete_server(created.server.id)
    provider.list_server_types()

    assert transport.checked >= 6


# --- listings that never end -------------------------------------------------------------
def endless_pages(*, advancing: bool) -> httpx.MockTransport:
    """A listing whose next link always points on (or, broken, back at page 2)."""

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        following = page + 1 if advancing else 2
        response = httpx.Response(
            200,
            json={
                "droplets": [],
                "links": {"pages": {"next": f"{BASE_URL}/v2/droplets?page={following}"}},
                "meta": {"total": 10_000},
            },
        )
        if SPEC_PRESENT:
            assert_conforms("digitalocean", request, response)
        return response

    return httpx.MockTransport(answer)


def test_a_listing_has_no_page_cap_but_stops_on_empty_pages_that_claim_more():
    provider = DigitalOceanProvider(base_url=BASE_URL, token=TOKEN)

    with (
        transport_for(BASE_URL, endless_pages(advancing=True)),
        pytest.raises(ProviderError) as caught,
    ):
        provider.find_servers({"wopr-job": "9"})

    assert (caught.value.transient, caught.value.code) == (True, "paging_loop")


def test_a_next_link_that_does_not_advance_ends_the_listing():
    provider = DigitalOceanProvider(base_url=BASE_URL, token=TOKEN)

    with transport_for(BASE_URL, endless_pages(advancing=False)):
        assert provider.find_servers({"wopr-job": "9"}) == []


# --- the fake itself ---------------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_the_fake_refuses_requests_without_the_bearer_token(fake, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    request = httpx.Request("GET", f"{BASE_URL}/v2/droplets", headers=headers)

    response = fake.handle(request)

    assert response.status_code == 401
    assert response.json()["id"] == "unauthorized"
    assert fake.droplets == {}

"""HetznerProvider against the stateful FakeHetzner (every exchange checked against Hetzner's
spec by the `hetzner` fixture) and against scripted MockTransport answers."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import httpx
import pytest

from fakes.hetzner import FakeHetzner
from integrations.clouds.base import ProviderError, ServerSpec
from integrations.clouds.hetzner import HetznerProvider, hetzner_error
from integrations.http import transport_for
from provisioning.ratelimit import DbRateBudget
from tests.vendor_spec import TRIMMED, assert_conforms

SCRIPTED_URL = "https://hetzner.test/v1"


def spec(name: str = "wopr-alpha", **overrides: object) -> ServerSpec:
    values: dict = {
        "name": name,
        "size": "cpx22",
        "image": "ubuntu-24.04",
        "location": "nbg1",
        "labels": {"wopr-beacon": "3", "wopr-job": "7", "managed-by": "wopr"},
        "user_data": "#cloud-config\nruncmd: [echo hi]\n",
    }
    return ServerSpec(**{**values, **overrides})


def sent(fake: FakeHetzner, method: str, path: str) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == method and r.url.path == path]


def kind(error: ProviderError) -> str:
    if error.capacity:
        return "capacity"
    return "transient" if error.transient else "permanent"


# --- create -----------------------------------------------------------------------------------
def test_create_sends_the_spec_with_both_ip_families_and_the_bearer_token(hetzner, fake_hetzner):
    created = hetzner.create_server(spec())

    (request,) = sent(fake_hetzner, "POST", "/v1/servers")
    assert request.headers["Authorization"] == f"Bearer {fake_hetzner.token}"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert body == {
        "name": "wopr-alpha",
        "server_type": "cpx22",
        "image": "ubuntu-24.04",
        "location": "nbg1",
        "labels": {"wopr-beacon": "3", "wopr-job": "7", "managed-by": "wopr"},
        "user_data": "#cloud-config\nruncmd: [echo hi]\n",
        "ssh_keys": [],
        "public_net": {"enable_ipv4": True, "enable_ipv6": True},
        "start_after_create": True,
    }
    record = fake_hetzner.servers[int(created.server.id)]
    assert created.action_id == str(record["create_action"])
    assert created.server.location == "nbg1"
    assert created.server.status == "initializing"


def test_create_switches_delete_protection_on_right_away(hetzner, fake_hetzner):
    created = hetzner.create_server(spec())

    path = f"/v1/servers/{created.server.id}/actions/change_protection"
    (request,) = sent(fake_hetzner, "POST", path)
    assert json.loads(request.content) == {"delete": True, "rebuild": True}
    assert fake_hetzner.servers[int(created.server.id)]["protection"]["delete"] is True
    assert created.server.protected is True


def test_the_specs_ssh_keys_win_over_the_configured_ones(hetzner, fake_hetzner):
    provider = HetznerProvider(
        base_url=hetzner.base_url, token="hetzner-test-token", ssh_keys=["ops-key"]
    )
    provider.create_server(spec("wopr-one"))
    provider.create_server(spec("wopr-two", ssh_keys=["beacon-key"], labels={"wopr-job": "8"}))

    keys = [json.loads(r.content)["ssh_keys"] for r in sent(fake_hetzner, "POST", "/v1/servers")]
    assert keys == [["ops-key"], ["beacon-key"]]


def test_a_taken_name_is_adopted_when_the_server_carries_the_same_job(hetzner, fake_hetzner):
    earlier = fake_hetzner.add_server("wopr-alpha", labels={"wopr-job": "7"})

    created = hetzner.create_server(spec())

    assert created.server.id == str(earlier["id"])
    assert created.action_id == ""
    assert earlier["protection"] == {"delete": True, "rebuild": True}
    (lookup,) = sent(fake_hetzner, "GET", "/v1/servers")
    assert lookup.url.params["name"] == "wopr-alpha"


def test_a_taken_name_is_adopted_by_the_same_beacon(hetzner, fake_hetzner):
    fake_hetzner.add_server("wopr-alpha", labels={"wopr-beacon": "3", "wopr-job": "6"})

    assert hetzner.create_server(spec()).action_id == ""


def test_a_name_taken_by_someone_elses_server_is_a_permanent_error(hetzner, fake_hetzner):
    fake_hetzner.add_server("wopr-alpha", labels={"wopr-job": "99"})

    with pytest.raises(ProviderError) as caught:
        hetzner.create_server(spec())

    assert caught.value.code == "uniqueness_error"
    assert kind(caught.value) == "permanent"
    assert len(fake_hetzner.servers) == 1


def test_a_lost_create_answer_then_a_retry_leaves_exactly_one_server(hetzner, fake_hetzner):
    fake_hetzner.inject(method="POST", path_prefix="/v1/servers", drop=True)

    with pytest.raises(ProviderError) as caught:
        hetzner.create_server(spec())
    assert kind(caught.value) == "transient"

    retried = hetzner.create_server(spec())
    found = hetzner.find_servers({"wopr-job": "7"})
    assert [server.id for server in found] == [retried.server.id]
    assert found[0].protected is True


def test_protection_refused_as_locked_after_create_is_taken_up_by_the_retry(hetzner, fake_hetzner):
    locked = {"error": {"code": "locked", "message": "server is locked", "details": None}}
    fake_hetzner.inject(
        method="POST", path_prefix="/v1/servers/4201/actions", status=423, body=locked
    )

    with pytest.raises(ProviderError) as caught:
        hetzner.create_server(spec())
    assert (kind(caught.value), caught.value.retry_after) == ("transient", 5.0)

    retried = hetzner.create_server(spec())
    assert (retried.server.id, retried.action_id) == ("4201", "")
    assert fake_hetzner.servers[4201]["protection"]["delete"] is True
    assert len(fake_hetzner.servers) == 1


def test_an_unavailable_location_is_a_capacity_error(hetzner, fake_hetzner):
    fake_hetzner.unavailable_locations = {"nbg1"}

    with pytest.raises(ProviderError) as caught:
        hetzner.create_server(spec())

    assert (kind(caught.value), caught.value.code) == ("capacity", "resource_unavailable")
    assert fake_hetzner.servers == {}


# --- read -------------------------------------------------------------------------------------
def test_get_returns_addresses_with_the_ipv6_host_of_the_64(hetzner, fake_hetzner):
    record = fake_hetzner.add_server("wopr-b", labels={"wopr-job": "1"}, protected=True)

    server = hetzner.get_server(str(record["id"]))

    n = record["id"]
    assert server.ipv4 == f"198.18.{n // 256}.{n % 256}"
    assert server.ipv6 == f"2001:db8:{n:x}::1"
    assert (server.name, server.status, server.size, server.location) == (
        "wopr-b",
        "running",
        "cpx22",
        "fsn1",
    )
    assert server.labels == {"wopr-job": "1"}
    assert server.protected is True


def test_get_of_an_unknown_server_is_none(hetzner, fake_hetzner):
    assert hetzner.get_server("123456") is None
    assert hetzner.get_server("not-a-hetzner-id") is None
    assert len(fake_hetzner.requests) == 1  # a non-numeric id is not even asked for


def test_find_asks_with_a_label_selector(hetzner, fake_hetzner):
    mine = fake_hetzner.add_server("a", labels={"wopr-job": "7", "managed-by": "wopr"})
    fake_hetzner.add_server("b", labels={"wopr-job": "8", "managed-by": "wopr"})
    fake_hetzner.add_server("c", labels={"wopr-job": "7"})

    found = hetzner.find_servers({"wopr-job": "7", "managed-by": "wopr"})

    assert [server.id for server in found] == [str(mine["id"])]
    (request,) = fake_hetzner.requests
    assert request.url.params["label_selector"] == "wopr-job==7,managed-by==wopr"
    assert request.url.params["per_page"] == "50"


def test_find_follows_next_page_over_three_pages(hetzner, fake_hetzner):
    for number in range(120):
        fake_hetzner.add_server(f"s{number}", labels={"managed-by": "wopr"})

    found = hetzner.find_servers({"managed-by": "wopr"})

    assert len(found) == 120
    assert len({server.id for server in found}) == 120
    assert [r.url.params["page"] for r in fake_hetzner.requests] == ["1", "2", "3"]


def test_paging_has_no_cap_but_stops_on_empty_pages_that_claim_more(spec_transport):
    # There is no page cap any more (reconcile must see every server); what stops a vendor
    # loop is two empty pages in a row that still name a next page.
    def endless(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        pagination = {
            "page": page,
            "per_page": 50,
            "previous_page": None,
            "next_page": page + 1,
            "last_page": None,
            "total_entries": None,
        }
        return httpx.Response(200, json={"servers": [], "meta": {"pagination": pagination}})

    calls = []
    transport = spec_transport("hetzner", lambda r: calls.append(r) or endless(r))
    with transport_for(SCRIPTED_URL, transport), pytest.raises(ProviderError) as caught:
        HetznerProvider(base_url=SCRIPTED_URL, token="t").find_servers({})

    assert caught.value.code == "paging_loop"
    assert len(calls) == 2


def test_locations_and_server_types_with_prices(hetzner):
    assert [location.name for location in hetzner.list_locations()] == [
        "fsn1",
        "nbg1",
        "hel1",
        "ash",
        "hil",
        "sin",
    ]
    types = {server_type.name: server_type for server_type in hetzner.list_server_types()}
    assert sorted(types) == ["cpx22", "cpx32", "cpx42", "cpx52"]
    cpx32 = types["cpx32"]
    assert (cpx32.cores, cpx32.memory_gb, cpx32.disk_gb) == (4, 8.0, 160)
    assert cpx32.monthly_price["fsn1"] == Decimal("13.9900")  # net: VAT depends on the buyer
    assert set(cpx32.monthly_price) == {"fsn1", "nbg1", "hel1", "ash", "hil", "sin"}


# --- power, actions, delete -------------------------------------------------------------------
def test_power_off_and_on_return_the_action_ids(hetzner, fake_hetzner):
    record = fake_hetzner.add_server("p")

    off = hetzner.power_off(str(record["id"]))
    assert record["powered"] is False
    on = hetzner.power_on(str(record["id"]))

    assert record["powered"] is True
    assert [fake_hetzner.actions[int(a)]["command"] for a in (off, on)] == [
        "stop_server",
        "start_server",
    ]


def test_action_status_goes_from_running_to_success(hetzner, fake_hetzner):
    action_id = hetzner.power_off(str(fake_hetzner.add_server("p")["id"]))

    assert hetzner.action_status(action_id) == "running"
    assert hetzner.action_status(action_id) == "success"


def test_a_failed_or_unknown_action_is_an_error(hetzner, fake_hetzner):
    action_id = hetzner.power_on(str(fake_hetzner.add_server("p")["id"]))
    failure = {"code": "action_failed", "message": "Action failed"}
    fake_hetzner.actions[int(action_id)].update(status="error", error=failure)

    assert hetzner.action_status(action_id) == "error"
    assert hetzner.action_status("777777") == "error"


def test_delete_lifts_protection_then_deletes(hetzner, fake_hetzner):
    record = fake_hetzner.add_server("d", protected=True)

    hetzner.delete_server(str(record["id"]))

    lift, delete = fake_hetzner.requests
    assert (lift.method, lift.url.path) == (
        "POST",
        f"/v1/servers/{record['id']}/actions/change_protection",
    )
    assert json.loads(lift.content) == {"delete": False, "rebuild": False}
    assert (delete.method, delete.url.path) == ("DELETE", f"/v1/servers/{record['id']}")
    assert record["id"] not in fake_hetzner.servers


def test_deleting_an_unknown_server_is_fine(hetzner, fake_hetzner):
    hetzner.delete_server("424242")
    hetzner.delete_server("not-a-hetzner-id")


def test_a_delete_refused_as_protected_is_retried_shortly(hetzner, fake_hetzner):
    record = fake_hetzner.add_server("d", protected=True)
    refusal = {"error": {"code": "protected", "message": "server is protected", "details": None}}
    fake_hetzner.inject(method="DELETE", path_prefix="/v1/servers", status=423, body=refusal)

    with pytest.raises(ProviderError) as caught:
        hetzner.delete_server(str(record["id"]))

    assert (kind(caught.value), caught.value.retry_after) == ("transient", 5.0)


# --- error classification ---------------------------------------------------------------------
ERROR_TABLE = [
    # status, code, class, retry_after
    (429, "rate_limit_exceeded", "transient", 7.0),
    (409, "conflict", "transient", None),
    (504, "timeout", "transient", None),
    (500, "server_error", "transient", None),
    (422, "service_error", "transient", None),
    (403, "maintenance", "transient", None),
    (503, "unavailable", "transient", None),
    (423, "locked", "transient", 5.0),
    (423, "protected", "transient", 5.0),
    (412, "resource_unavailable", "capacity", None),
    (412, "placement_error", "capacity", None),
    (412, "location_disabled", "capacity", None),
    (422, "invalid_input", "permanent", None),
    (400, "json_error", "permanent", None),
    (401, "unauthorized", "permanent", None),
    (401, "token_readonly", "permanent", None),
    (403, "forbidden", "permanent", None),
    (403, "resource_limit_exceeded", "permanent", None),
    (404, "not_found", "permanent", None),
    (409, "uniqueness_error", "permanent", None),
    (422, "unsupported_error", "permanent", None),
]


@pytest.mark.parametrize(("status", "code", "expected", "retry_after"), ERROR_TABLE)
def test_error_classification(status, code, expected, retry_after):
    body = {"error": {"code": code, "message": f"{code} happened", "details": None}}
    request = httpx.Request(
        "GET", f"{SCRIPTED_URL}/servers/1", headers={"Authorization": "Bearer t"}
    )
    response = httpx.Response(status, json=body, headers={"Retry-After": "7"}, request=request)
    if TRIMMED.is_dir():
        assert_conforms("hetzner", request, response)  # the table speaks Hetzner's shape

    error = hetzner_error(response)

    assert (kind(error), error.code, error.retry_after) == (expected, code, retry_after)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_without_a_json_body_is_transient(status):
    error = hetzner_error(httpx.Response(status, text="<html>Bad Gateway</html>"))

    assert (kind(error), error.code) == ("transient", f"http_{status}")


def test_a_disabled_location_in_the_message_is_capacity():
    body = {"error": {"code": "invalid_input", "message": "server location disabled"}}

    assert kind(hetzner_error(httpx.Response(422, json=body))) == "capacity"


def test_a_429_without_retry_after_waits_until_the_reset():
    reset = int(time.time()) + 30
    body = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    response = httpx.Response(429, json=body, headers={"RateLimit-Reset": str(reset)})

    assert 28 <= hetzner_error(response).retry_after <= 30


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "network"),
    ],
)
def test_network_failures_are_transient(spec_transport, failure, code):
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    transport = spec_transport("hetzner", fail)
    with transport_for(SCRIPTED_URL, transport), pytest.raises(ProviderError) as caught:
        HetznerProvider(base_url=SCRIPTED_URL, token="t").get_server("1")

    assert (kind(caught.value), caught.value.code) == ("transient", code)


def test_a_wrong_token_is_a_permanent_error(hetzner):
    provider = HetznerProvider(base_url=hetzner.base_url, token="revoked")

    with pytest.raises(ProviderError) as caught:
        provider.list_locations()

    assert (kind(caught.value), caught.value.code) == ("permanent", "unauthorized")


# --- rate budget ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_spent_budget_blocks_the_next_call_without_sending(hetzner, fake_hetzner):
    provider = HetznerProvider(
        base_url=hetzner.base_url, token=fake_hetzner.token, budget=DbRateBudget("hetzner-test")
    )
    record = fake_hetzner.add_server("r")
    fake_hetzner.rate_remaining = 1

    assert provider.get_server(str(record["id"])) is not None  # answered "RateLimit-Remaining: 0"
    sent_before = len(fake_hetzner.requests)
    with pytest.raises(ProviderError) as caught:
        provider.get_server(str(record["id"]))

    assert kind(caught.value) == "transient"
    assert caught.value.retry_after > 0
    assert len(fake_hetzner.requests) == sent_before


@pytest.mark.django_db
def test_a_429_says_when_to_retry_and_blocks_the_budget(hetzner, fake_hetzner):
    provider = HetznerProvider(
        base_url=hetzner.base_url, token=fake_hetzner.token, budget=DbRateBudget("hetzner-test")
    )
    fake_hetzner.rate_remaining = 0
    fake_hetzner.retry_after = 7

    with pytest.raises(ProviderError) as caught:
        provider.list_locations()
    assert (kind(caught.value), caught.value.code) == ("transient", "rate_limit_exceeded")
    assert caught.value.retry_after == 7

    sent_before = len(fake_hetzner.requests)
    with pytest.raises(ProviderError) as blocked:
        provider.list_locations()
    assert (blocked.value.code, kind(blocked.value)) == ("rate_limit_budget", "transient")
    assert 0 < blocked.value.retry_after <= 7
    assert len(fake_hetzner.requests) == sent_before


# --- secrets ----------------------------------------------------------------------------------
def test_the_token_is_never_logged_nor_put_in_an_error(hetzner, fake_hetzner, caplog):
    token = "SECRET-hz-token-3f9a"
    fake_hetzner.token = token
    provider = HetznerProvider(base_url=hetzner.base_url, token=token)
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []

    created = provider.create_server(spec())
    provider.get_server(created.server.id)
    provider.find_servers({"wopr-job": "7"})
    provider.action_status(created.action_id)
    provider.delete_server(created.server.id)
    provider.delete_server(created.server.id)  # 404s, logged
    for failing in (
        lambda: provider.create_server(spec(location="nowhere")),
        lambda: HetznerProvider(base_url=hetzner.base_url, token="x").list_locations(),
    ):
        with pytest.raises(ProviderError) as caught:
            failing()
        errors.append(caught.value)
    fake_hetzner.inject(method="GET", path_prefix="/v1/servers", drop=True)
    with pytest.raises(ProviderError) as lost:
        provider.get_server("1")
    errors.append(lost.value)

    assert "X-Correlation-Id" in caplog.text
    assert token not in caplog.text
    assert all(token not in record.getMessage() for record in caplog.records)
    assert all(token not in f"{error!s} {error!r}" for error in errors)
    assert token not in repr(provider)

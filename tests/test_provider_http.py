"""The one request pipeline: a shared client per vendor and token, the test seam, the budget."""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

from integrations.http import VendorClient, shared_client, transport_for
from provisioning.ratelimit import DbRateBudget

URL = "https://vendor.test"


class Vendor(VendorClient):
    vendor = "Vendor"


def answering(text: str) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"from": text}))


def test_one_keep_alive_client_per_base_url_and_token():
    first = shared_client(base_url=URL, headers={"Authorization": "Bearer a"})

    assert shared_client(base_url=URL + "/", headers={"Authorization": "Bearer a"}) is first
    assert shared_client(base_url=URL, headers={"Authorization": "Bearer b"}) is not first


def test_a_transport_installed_after_the_client_was_built_takes_over():
    api = Vendor(base_url=URL, token="t")
    with transport_for(URL, answering("first")):
        assert api.request("GET", "/x") == {"from": "first"}
    with transport_for(URL, answering("second")):
        assert api.request("GET", "/x") == {"from": "second"}


def test_pages_follow_the_vendor_to_the_last_page_without_a_cap():
    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        return httpx.Response(200, json={"items": [page], "next": page + 1 if page < 60 else None})

    api = Vendor(base_url=URL, token="t")
    with transport_for(URL, httpx.MockTransport(answer)):
        items = list(api.pages("/i", items=lambda b: b["items"], next_page=lambda b, p: b["next"]))

    assert items == list(range(1, 61))


def test_a_page_named_twice_is_a_vendor_loop():
    looping = httpx.MockTransport(lambda request: httpx.Response(200, json={"items": [1]}))
    api = Vendor(base_url=URL, token="t")

    with transport_for(URL, looping), pytest.raises(Exception) as caught:
        list(api.pages("/i", items=lambda b: b["items"], next_page=lambda b, p: 2))

    assert caught.value.code == "paging_loop"


@pytest.mark.django_db
def test_the_budget_row_is_written_only_when_what_it_stores_changes():
    changed: list[str] = []

    def count_writes(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith(("UPDATE", "INSERT")) and context["cursor"].rowcount:
            changed.append(sql)
        return result

    budget = DbRateBudget("vendor-test")
    with connection.execute_wrapper(count_writes):
        budget.record(remaining=10, limit=100)
        budget.record(remaining=10, limit=100)
        budget.record(remaining=10, limit=100)
        budget.record(remaining=9, limit=100)

    assert len(changed) == 2  # the first answer, then the one that said something new

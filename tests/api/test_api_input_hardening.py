"""Issue 9, item 6 at the API: hostile input to POST /api/v1/checkout gets a 400 with the field
named, never a 500; and a custom domain never reaches a PDF's stylesheet."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string

from billing.models import Order
from documents.models import DocumentKind
from documents.pdf import page_size
from documents.services import TEMPLATES, _context
from tests.factories import BeaconFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout"


@pytest.fixture(autouse=True)
def _stripe_never_reached(settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_123"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # validation fails first


def field_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    return error["fields"]


@pytest.mark.parametrize("depth", [100_000, 1_000, 40])
def test_deeply_nested_json_is_a_400_not_a_500(api, depth):
    body = '{"bundle": ' + "[" * depth + "]" * depth + "}"

    response = api.post(URL, body.encode(), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "Traceback" not in response.content.decode()
    assert not Order.objects.exists()


def test_json_nested_a_little_still_reaches_the_field_checks(post_json, checkout_payload):
    response = post_json(URL, checkout_payload(bundle=[[["starter"]]]))

    assert "bundle" in field_errors(response)


@pytest.mark.parametrize(
    "email",
    [
        "ada@example.com\r\nBcc: victim@example.net",
        "ada@example.com,bob@example.net",
        "ada@example.com; bob@example.net",
        '"ada,bob"@example.com',
        "ada@[127.0.0.1]",
        "ada@localhost",
        "ada@exa\x00mple.com",
        "a" * 10_000 + "@example.com",
    ],
    ids=[
        "crlf",
        "comma-list",
        "semicolon-list",
        "quoted-comma",
        "ip-literal",
        "no-dot",
        "nul",
        "10k",
    ],
)
def test_an_email_that_is_not_one_plain_address_is_refused(post_json, checkout_payload, email):
    response = post_json(URL, checkout_payload(email=email))

    assert "email" in field_errors(response)
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "domain",
    [
        'x"; } body { display: none } .a { content: "',
        "cloud.example.org\r\nevil",
        "clo\x00ud.example.org",
        "192.168.0.1",
        "a" * 64 + ".example.org",
    ],
    ids=["css", "crlf", "nul", "ip-address", "label-too-long"],
)
def test_a_custom_domain_that_is_not_a_host_name_is_refused(post_json, checkout_payload, domain):
    response = post_json(URL, checkout_payload(custom_domain=domain))

    assert "custom_domain" in field_errors(response)
    assert not Order.objects.exists()


def test_the_custom_domain_never_reaches_the_pdf_stylesheet():
    beacon = BeaconFactory(order__custom_domain="cloud.example.org")
    kind = DocumentKind.CUSTOM_DOMAIN_GUIDE
    context = {**_context(beacon, kind), "page_size": page_size()}

    html = render_to_string(TEMPLATES[kind], context)

    styles = " ".join(re.findall(r"<style.*?</style>", html, flags=re.DOTALL))
    assert styles
    assert "cloud.example.org" not in styles
    assert "cloud.example.org" in html  # it is in the text, where the template escapes it

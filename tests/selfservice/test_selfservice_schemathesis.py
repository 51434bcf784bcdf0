"""The self-service endpoints against their own OpenAPI schema, with a valid customer token:
schemathesis generates valid and invalid requests; no answer is a server error except the
documented 503 of the Stripe operations while no Stripe key is configured, and every answer
conforms to the schema (status code, content type, headers, body)."""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import BeaconFactory, CustomerFactory
from wopr.wsgi import application

pytestmark = pytest.mark.django_db

EXAMPLES = 25
STRIPE_OPERATIONS = {"billing-portal", "cancel"}


def no_server_error(ctx, response, case) -> None:
    if response.status_code < 500:
        return
    stripe_operation = case.operation.path.rsplit("/", 1)[-1] in STRIPE_OPERATIONS
    assert stripe_operation and response.status_code == 503, (
        f"{case.operation.label} answered {response.status_code}: {response.text[:300]}"
    )


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def in_process_requests_share_the_test_transaction():
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def fuzz(operation, mode: GenerationMode, statuses: Counter, **fixed) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call()
        statuses[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=checks)

    run()


def test_the_self_service_api_conforms_to_its_schema_with_a_valid_token(
    settings, provider, in_process_requests_share_the_test_transaction
):
    settings.THROTTLE_DEFAULT = settings.THROTTLE_SELFSERVICE = "100000/min"
    settings.STRIPE_TEST_SECRET_KEY = ""
    beacon = BeaconFactory(
        order__customer=CustomerFactory(email="ada@example.com"),
        order__stripe_customer_id="cus_fuzz",
        order__stripe_subscription_id="sub_fuzz",
        order__subscription_status="active",
    )
    headers = {"Authorization": f"Bearer {provider.token(exp=2**31 - 1)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = {
        result.ok().label: result.ok()
        for result in schema.get_all_operations()
        if "/api/v1/me/" in result.ok().label
    }
    assert {"GET /api/v1/me/beacons", "DELETE /api/v1/me/beacons/{beacon_id}/cancel"} <= set(
        operations
    )
    statuses: Counter = Counter()
    for label, operation in operations.items():
        pinned = {"path_parameters": {"beacon_id": str(beacon.pk)}} if "{" in label else {}
        for _ in range(2):  # twice: the repeat meets "already so" (cancelled, e-mail sent)
            fuzz(operation, GenerationMode.POSITIVE, statuses, headers=headers, **pinned)
        fuzz(operation, GenerationMode.POSITIVE, statuses, headers=headers)  # random ids: 404
        with contextlib.suppress(Unsatisfiable):  # no input field to break
            fuzz(operation, GenerationMode.NEGATIVE, statuses, headers=headers, **pinned)
    print("\n".join(f"{label} -> {status}: {n}" for (label, status), n in sorted(statuses.items())))
    for expected in [
        ("GET /api/v1/me/beacons", 200),
        ("POST /api/v1/me/beacons/{beacon_id}/billing-portal", 503),
        ("POST /api/v1/me/beacons/{beacon_id}/billing-portal", 404),
        ("POST /api/v1/me/beacons/{beacon_id}/cancel", 503),
        ("DELETE /api/v1/me/beacons/{beacon_id}/cancel", 200),
        ("POST /api/v1/me/beacons/{beacon_id}/welcome", 202),
        ("POST /api/v1/me/beacons/{beacon_id}/welcome", 429),
    ]:
        assert statuses[expected], expected


def test_the_schema_documents_the_me_endpoints_with_the_bearer_scheme(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    scheme = schema["components"]["securitySchemes"]["customerToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    operations = {
        (path, method): operation
        for path, methods in schema["paths"].items()
        if path.startswith("/api/v1/me/")
        for method, operation in methods.items()
    }
    mine = {
        ("/api/v1/me/beacons", "get"),
        ("/api/v1/me/beacons/{beacon_id}/billing-portal", "post"),
        ("/api/v1/me/beacons/{beacon_id}/cancel", "post"),
        ("/api/v1/me/beacons/{beacon_id}/cancel", "delete"),
        ("/api/v1/me/beacons/{beacon_id}/welcome", "post"),
    }
    assert mine <= set(operations)
    for key in mine:
        assert operations[key]["security"] == [{"customerToken": []}], key
        documented = set(operations[key]["responses"])
        assert {"401", "429", "503"} <= documented, key
        assert "{beacon_id}" not in key[0] or "404" in documented, key
    cancel = operations[("/api/v1/me/beacons/{beacon_id}/cancel", "post")]
    assert {"200", "409", "502", "503"} <= set(cancel["responses"])

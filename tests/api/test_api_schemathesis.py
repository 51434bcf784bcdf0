"""The API against its own OpenAPI schema: schemathesis generates requests for every operation
(valid ones and invalid ones) and checks that no answer is a server error and that every answer
conforms to the schema (status code, content type, headers, body).

In-process against the WSGI app, on the test database, without a Stripe key (checkout answers
its documented 503 once the input is valid).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from installers.services import installer_release_create_upload
from provisioning.callbacks import job_callback_token
from provisioning.services import beacon_create_for_order
from tests.factories import OrderFactory
from wopr.wsgi import application

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION_AND_MODE = 60
MINIMUM_REQUESTS = 500


def no_server_error(ctx, response, case) -> None:
    """No 5xx, except checkout's documented 503 while no Stripe key is configured."""
    if response.status_code < 500:
        return
    disabled = case.operation.label == "POST /api/v1/checkout" and response.status_code == 503
    assert disabled, f"{case.operation.label} answered {response.status_code}"


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz(
    operation,
    mode: GenerationMode,
    sent: Counter,
    statuses: Counter,
    strategy: SearchStrategy | None = None,
    **fixed: Any,
) -> None:
    """Send the operation's generated cases in one mode and check every answer; `fixed`
    (path_parameters, headers) pins parts of the request, e.g. to an existing order."""
    checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS

    @given(case=strategy or operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call()
        sent[(operation.label, mode.value)] += 1
        statuses[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=checks)

    run()


@pytest.fixture
def wsgi_requests_share_the_test_transaction():
    """As Django's test client does: no connection closing between in-process requests, so
    every request sees (and rolls back with) the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def existing(settings, tmp_path, django_capture_on_commit_callbacks) -> dict[str, Any]:
    """An order whose Beacon waits for its callback, so fixed ids reach real objects."""
    settings.FAKE_BEACON_INSTALL_SECONDS = 3600
    order = OrderFactory(beacon_name="fuzz1")
    with django_capture_on_commit_callbacks(execute=True):
        beacon, _ = beacon_create_for_order(order=order)
    token = job_callback_token(beacon.jobs.get())
    # A current uploaded installer, so the download answers 200 too.
    settings.INSTALLERS_ROOT = tmp_path / "installers"
    installer_release_create_upload(
        version="1.0.0", tarball=io.BytesIO(installer_tarball()), make_current=True
    )
    return {"order_id": str(order.pk), "beacon_id": str(beacon.pk), "token": token}


def installer_tarball() -> bytes:
    """The smallest installer: a tar.gz with an executable `install`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        script = b"#!/bin/sh\nexit 0\n"
        info = tarfile.TarInfo("install")
        info.size, info.mode = len(script), 0o755
        archive.addfile(info, io.BytesIO(script))
    return raw.getvalue()


def test_every_answer_conforms_to_the_schema(
    settings, wsgi_requests_share_the_test_transaction, existing
):
    settings.THROTTLE_CHECKOUT = settings.THROTTLE_DEFAULT = "100000/min"
    settings.ORDER_EVENTS_DEADLINE_SECONDS = 0.05
    settings.STRIPE_TEST_SECRET_KEY = ""
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    # The customer self-service API (/me/, bearer tokens) has its own run with tokens:
    # tests/selfservice/test_selfservice_schemathesis.py.
    operations = {label: op for label, op in operations.items() if "/api/v1/me/" not in label}
    assert len(operations) == 7
    sent: Counter[tuple[str, str]] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()

    nothing_to_negate = []
    for operation in operations.values():
        fuzz(operation, GenerationMode.POSITIVE, sent, statuses)
        try:
            fuzz(operation, GenerationMode.NEGATIVE, sent, statuses)
        except Unsatisfiable:  # every input the schema allows is valid: nothing to break
            nothing_to_negate.append(operation.label)
    # The schema's own example of a checkout is valid input: checkout is disabled (503).
    checkout = operations["POST /api/v1/checkout"]
    examples = st.one_of(schema.get_strategies_from_examples(checkout))
    fuzz(checkout, GenerationMode.POSITIVE, sent, statuses, strategy=examples)
    # Random ids never name a real order or Beacon: pin them, so 200s and 202s are checked too.
    order = {"path_parameters": {"order_id": existing["order_id"]}}
    fuzz(
        operations["GET /api/v1/orders/{order_id}"],
        GenerationMode.POSITIVE,
        sent,
        statuses,
        **order,
    )
    fuzz(
        operations["GET /api/v1/orders/{order_id}/events"],
        GenerationMode.POSITIVE,
        sent,
        statuses,
        **order,
    )
    fuzz(
        operations["POST /api/v1/beacons/{beacon_id}/callback"],
        GenerationMode.POSITIVE,
        sent,
        statuses,
        path_parameters={"beacon_id": existing["beacon_id"]},
        headers={"Authorization": f"Bearer {existing['token']}"},
    )
    fuzz(
        operations["GET /api/v1/beacons/{beacon_id}/installer"],
        GenerationMode.POSITIVE,
        sent,
        statuses,
        path_parameters={"beacon_id": existing["beacon_id"]},
        headers={"Authorization": f"Bearer {existing['token']}"},
    )

    elapsed = time.monotonic() - started
    total = sum(sent.values())
    print(f"\nschemathesis: {total} requests in {elapsed:.1f}s")
    for (label, status), count in sorted(statuses.items()):
        print(f"  {label} -> {status}: {count}")
    print(f"  no invalid input possible: {nothing_to_negate}")
    assert total >= MINIMUM_REQUESTS, sent
    for label, status in [
        ("GET /api/v1/catalog", 200),
        ("GET /api/v1/beacon-names/{name}", 200),
        ("POST /api/v1/checkout", 400),
        ("POST /api/v1/checkout", 503),
        ("GET /api/v1/orders/{order_id}", 200),
        ("GET /api/v1/orders/{order_id}/events", 200),
        ("POST /api/v1/beacons/{beacon_id}/callback", 202),
        ("POST /api/v1/beacons/{beacon_id}/callback", 401),
        ("GET /api/v1/beacons/{beacon_id}/installer", 200),
        ("GET /api/v1/beacons/{beacon_id}/installer", 401),
    ]:
        assert statuses[(label, status)], (label, status)

"""Database statements and CPU per Beacon, in one process: `manage.py simulate_purchase` (the
webhook view, then every job step run here until the Beacon is active) under
CaptureQueriesContext and time.process_time, with the fake cloud's waits at 0. The webhook
alone (its work left queued) is measured the same way; the worker's share is the difference.
PDF rendering is timed apart (every module's `render_pdf` is wrapped) and subtracted.

Run by benchmarks/run.py in a process of its own (its settings come from the environment):

    DATABASE_URL=postgres://... .venv/bin/python -m benchmarks.beacon_cost 3

and prints one JSON line: medians over the measured Beacons (one unmeasured Beacon first).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wopr.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from billing.simulation import checkout_completed_event, encode, sign  # noqa: E402

PDF_CPU = [0.0]


def _pdf_timed(render: Callable[..., bytes]) -> Callable[..., bytes]:
    def timed(*args: Any, **kwargs: Any) -> bytes:
        started = time.process_time()
        try:
            return render(*args, **kwargs)
        finally:
            PDF_CPU[0] += time.process_time() - started

    return timed


def pdfs_timed() -> int:
    """Wrap `render_pdf` wherever a module bound it; returns how many modules were patched."""
    from documents import pdf

    original, timed = pdf.render_pdf, _pdf_timed(pdf.render_pdf)
    patched = 0
    for module in list(sys.modules.values()):
        if getattr(module, "render_pdf", None) is original:
            module.render_pdf = timed
            patched += 1
    return patched


def measured(call: Callable[[], None]) -> dict[str, float]:
    """Statements, CPU seconds and PDF CPU seconds of `call`."""
    PDF_CPU[0] = 0.0
    with CaptureQueriesContext(connection) as queries:
        started = time.process_time()
        call()
        cpu = time.process_time() - started
    return {"queries": len(queries), "cpu": cpu, "pdf_cpu": PDF_CPU[0]}


def beacon_whole(name: str) -> None:
    """One purchase from webhook to active Beacon, in this process."""
    out = io.StringIO()
    call_command(
        "simulate_purchase",
        bundle="starter",
        tier="t1",
        email=f"{name}@example.org",
        beacon_name=name,
        timeout=60,
        stdout=out,
    )
    if " is active" not in out.getvalue():
        raise RuntimeError(f"{name} did not become active:\n{out.getvalue()}")


def webhook_only(name: str) -> None:
    """The webhook view alone; the work it enqueues stays in the broker."""
    from django.conf import settings

    payload = encode(checkout_completed_event(beacon_name=name, email=f"{name}@example.org"))
    response = Client(HTTP_HOST="127.0.0.1").post(
        "/api/webhook/stripe",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload, settings.STRIPE_TEST_WEBHOOK_SECRET),
    )
    assert response.status_code == 200, response.status_code


def main(rounds: int) -> None:
    patched = pdfs_timed()
    # The webhook alone first: simulate_purchase switches django-q2 to run tasks inline.
    webhook_only("costhookwarm")
    hooks = [measured(lambda n=n: webhook_only(f"costhook{n}")) for n in range(rounds)]
    beacon_whole("costwarm")
    whole = [measured(lambda n=n: beacon_whole(f"cost{n}")) for n in range(rounds)]
    result = {
        key: statistics.median(row[key] for row in whole) for key in ("queries", "cpu", "pdf_cpu")
    }
    result["webhook_queries"] = statistics.median(row["queries"] for row in hooks)
    result["webhook_cpu"] = statistics.median(row["cpu"] for row in hooks)
    result["pdf_modules_patched"] = patched
    print(json.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

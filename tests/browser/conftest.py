"""Fixtures of the browser tests: Debian's chromium driven by Playwright against the live server.

The admin is served by pytest-django's `live_server` (a thread of this process, on the test
database, static files included); the test's own thread plays the worker: what the web requests
enqueue is held in `worker` and run when the test says so, as django-q2's cluster would. So a
page can be seen while a job waits, and again once the worker has run it.

Without /usr/bin/chromium the tests skip locally and fail under CI=true (.ci/run installs it);
no browser is ever downloaded (`playwright install` is never run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.utils.module_loading import import_string

from tests.vendor_spec import unavailable

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "a-long-test-password-for-staff"
WEBHOOK_URL = "/api/webhook/stripe"
WEBHOOK_SECRET = "whsec_test_secret"  # tests/conftest.py's STRIPE_TEST_WEBHOOK_SECRET


@pytest.fixture(autouse=True)
def _admin_over_plain_http(settings) -> None:
    """The live server speaks http on localhost: no HTTPS redirect, cookies without `Secure`
    (chromium would drop them), and a password-only sign-in unless a test asks for TOTP."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.ADMIN_REQUIRE_OTP = False


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots are kept after the run: $WOPR_TEST_ARTIFACTS, else
    build/test-artifacts/browser/ in the checkout (build/ is git-ignored)."""
    folder = Path(os.environ.get("WOPR_TEST_ARTIFACTS") or ROOT / "build/test-artifacts/browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(monkeypatch) -> Iterator[Any]:
    """Headless chromium from the Debian package, one per test (nothing leaks between tests)."""
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse the
    # ORM calls the test itself makes (set-up, the worker); the server thread is unaffected.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()
        # While that loop runs, Django keeps this thread's connections apart (asgiref's Local
        # acts as a context variable): close them here, or PostgreSQL's test database could not
        # be dropped at the end of the session ("being accessed by other users").
        connections.close_all()


@dataclass
class Worker:
    """The task queue as the test's thread sees it: tasks enqueued by any thread wait here
    until `drain` runs them in order (and whatever they enqueue in turn)."""

    pending: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enqueue(self, func: str, *args: Any, **_options: Any) -> str:
        with self.lock:
            self.pending.append((func, args))
            return f"task-{len(self.pending) + len(self.done)}"

    def drain(self, limit: int = 50) -> list[str]:
        """Run what is queued until nothing is left; the names of the tasks run."""
        ran: list[str] = []
        while len(ran) < limit:
            with self.lock:
                if not self.pending:
                    return ran
                func, args = self.pending.pop(0)
            import_string(func)(*args)
            ran.append(func)
            self.done.append(func)
        raise AssertionError(f"the queue did not empty after {limit} tasks: {ran}")


@pytest.fixture
def worker(monkeypatch) -> Worker:
    """Tasks enqueued by the live server are held for the test to run (see `Worker`)."""
    queue = Worker()
    for module in ("django_q.tasks", "provisioning.tasks", "billing.tasks"):
        monkeypatch.setattr(f"{module}.async_task", queue.enqueue)
    return queue


@pytest.fixture
def staff(db) -> Callable[[str], Any]:
    """A local staff account (password PASSWORD) holding one role, named after it."""
    from wopr.roles import roles_sync

    roles_sync()  # the transactional test database was flushed before this test

    def _staff(role: str) -> Any:
        user = get_user_model().objects.create_user(
            f"{role}-staff", email=f"{role}@example.com", password=PASSWORD, is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        return user

    return _staff


def sign_in(page: Any, base_url: str, username: str, **fields: str) -> None:
    """Sign in through the admin's own sign-in page; extra fields (otp_token) typed too."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    for name, value in fields.items():
        page.fill(f"input[name={name}]", value)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def signed_in(browser, live_server) -> Callable[..., Any]:
    """A fresh browser page signed in as `user`, at the admin index."""

    def _signed_in(user: Any, **fields: str) -> Any:
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 1000}
        )
        context.set_default_timeout(15_000)  # a missing element fails the test in seconds
        page = context.new_page()
        sign_in(page, live_server.url, user.get_username(), **fields)
        return page

    return _signed_in


def webhook_post(base_url: str, event: dict[str, Any]) -> httpx.Response:
    """POST a Stripe event to the live server, signed as Stripe signs it."""
    from billing.simulation import encode, sign

    payload = encode(event)
    headers = {
        "Stripe-Signature": sign(payload, WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{base_url}{WEBHOOK_URL}", content=payload, headers=headers, timeout=30)


@pytest.fixture
def buy(live_server, worker) -> Callable[..., Any]:
    """Buy a Beacon through the signed webhook on the live server and let the worker build it;
    `failing=True`: server creation fails for good first (a permanent fault at the fake
    provider's create), so the Beacon ends `failed`."""
    from billing.simulation import checkout_completed_event
    from provisioning.faults import fault_inject
    from provisioning.models import Beacon

    def _buy(name: str, *, failing: bool = False) -> Any:
        if failing:
            fault_inject("provider.create", "permanent", message="the cloud refused the server")
        response = webhook_post(live_server.url, checkout_completed_event(beacon_name=name))
        assert response.status_code == 200, response.text
        worker.drain()
        return Beacon.objects.get(name=name)

    return _buy


@pytest.fixture
def failed_beacon(buy) -> Any:
    """The Beacon `broke1`, whose provisioning failed for good: status `failed`."""
    beacon = buy("broke1", failing=True)
    assert beacon.status == "failed"
    return beacon

"""The staff cockpit in a real browser (issue 14's acceptance): an owner signs in, finds a
failed Beacon from the dashboard, retries it, watches the job complete and downloads its PDF;
a support user sees no "Decommission"; screenshots of both pages are kept as artifacts."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from pypdf import PdfReader

from provisioning.models import Beacon

if TYPE_CHECKING:
    from tests.browser.conftest import Worker

pytestmark = [
    pytest.mark.browser,
    # live_server needs committed rows; the catalogue (made by migrations) is restored per test.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PNG = b"\x89PNG\r\n\x1a\n"
RELOADS = 10  # worker passes, each then a reload: the fake cloud builds in the first


def beacon_from_dashboard(page: Any, name: str, status: str = "failed") -> None:
    """Dashboard → "Beacons by status: <status>" → the Beacon named `name` → its page."""
    page.locator(f"#cockpit-beacons .status-{status} a").click()
    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()


def status_badge(page: Any) -> str:
    """The Beacon's status as its page shows it."""
    return page.locator(".field-status_badge .cockpit-badge").inner_text().strip().lower()


def button(page: Any, label: str) -> Any:
    """The page's link or button with exactly this label."""
    role = page.get_by_role("link", name=label, exact=True)
    return role.or_(page.get_by_role("button", name=label, exact=True))


def active_after_worker_passes(page: Any, worker: Worker) -> str:
    """Run the worker as the cluster would (queued tasks, then a sweep of due jobs) and
    reload the page, until its badge says active or RELOADS run out; the last badge seen."""
    badge = status_badge(page)
    for _ in range(RELOADS):
        worker.drain()
        worker.enqueue("provisioning.tasks.jobs_sweep")
        worker.drain()
        page.reload()
        badge = status_badge(page)
        if badge == "active":
            break
    return badge


def screenshot(page: Any, path: Any) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(PNG)


def test_owner_signs_in_and_the_dashboard_is_kept_as_a_screenshot(
    signed_in, staff, failed_beacon, artifacts
):
    page = signed_in(staff("owner"))

    assert page.url.endswith("/admin/")
    assert page.locator("#cockpit-beacons .status-failed").inner_text().split()[0] == "1"
    screenshot(page, artifacts / "dashboard.png")


def test_a_failed_beacon_retried_from_its_page_completes_and_its_pdf_downloads(
    signed_in, staff, failed_beacon, worker, artifacts
):
    page = signed_in(staff("owner"))
    beacon_from_dashboard(page, "broke1")
    assert status_badge(page) == "failed"

    button(page, "Retry").click()
    page.get_by_role("button", name=re.compile(r"^Yes,")).click()
    page.wait_for_load_state()
    assert Beacon.objects.get(pk=failed_beacon.pk).jobs.latest("created_at").state == "pending"
    assert status_badge(page) != "active"  # the worker has not run yet

    assert active_after_worker_passes(page, worker) == "active"
    screenshot(page, artifacts / "beacon.png")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").first.click()
    data = download_info.value.path().read_bytes()
    assert data.startswith(b"%PDF")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "broke1.beacons.test" in text


def test_support_sees_no_decommission_and_is_refused_it_but_an_owner_sees_it(
    signed_in, staff, buy, live_server
):
    beacon = buy("live1")
    assert beacon.status == "active"

    support = signed_in(staff("support"))
    beacon_from_dashboard(support, "live1", status="active")
    assert button(support, "Resend welcome").count() == 1  # support's own buttons are there
    assert support.locator("#action-decommission").count() == 0
    assert support.get_by_text("Decommission", exact=True).count() == 0
    url = reverse("admin:provisioning_beacon_act", args=[beacon.pk, "decommission"])
    assert support.goto(f"{live_server.url}{url}").status == 403

    owner = signed_in(staff("owner"))
    beacon_from_dashboard(owner, "live1", status="active")
    assert button(owner, "Decommission").count() == 1
    assert owner.goto(f"{live_server.url}{url}").status == 200


def test_staff_sign_in_with_a_totp_code_when_the_admin_asks_for_one(settings, signed_in, staff):
    settings.ADMIN_REQUIRE_OTP = True
    user = staff("operations")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)

    page = signed_in(user, otp_token=f"{code:0{device.digits}d}")

    assert page.url.endswith("/admin/")
    assert page.locator("#cockpit-dashboard").count() == 1

"""A server size missing at a provider takes only what needs it off sale, and one failed request
during a health sweep is asked again before a verdict; the rest keeps selling."""

from __future__ import annotations

import pytest

from billing.models import Bundle, Tier
from billing.simulation import checkout_completed_event, encode, sign
from integrations.errors import ProviderError
from operations.health import providers_health_sweep
from provisioning.models import Beacon, Provider
from provisioning.provision import healthy_providers, placement_order, sizes_on_sale
from tests.test_provider_health import ScriptedFake

pytestmark = pytest.mark.django_db

SIZE_3 = "cpx42"  # the fake provider borrows Hetzner's names: size 3 (tier t3, `professional`)


class FlakyFake(ScriptedFake):
    """Answers `failures` requests with a 503 first, then as the fake does."""

    def __init__(self, *, failures: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.failures, self.calls = failures, 0

    def list_locations(self):
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise ProviderError("503 Service Unavailable", transient=True, code="http_503")
        return super().list_locations()


def test_a_missing_size_degrades_the_provider_and_marks_only_that_size():
    (result,) = providers_health_sweep(adapter_for=lambda kind: ScriptedFake(drop_size=SIZE_3))

    assert result.status == "degraded"
    assert any(f"server size {SIZE_3} is not offered" in f for f in result.findings)
    provider = Provider.objects.get(name="fake")
    assert (provider.health_status, provider.unavailable_sizes) == ("degraded", [SIZE_3])


def test_the_size_is_back_on_sale_when_the_next_sweep_finds_it():
    providers_health_sweep(adapter_for=lambda kind: ScriptedFake(drop_size=SIZE_3))

    providers_health_sweep(adapter_for=lambda kind: ScriptedFake())

    provider = Provider.objects.get(name="fake")
    assert (provider.health_status, provider.unavailable_sizes) == ("healthy", [])


def test_placement_skips_the_provider_only_for_the_missing_size(settings):
    settings.PROVIDERS = ["fake", "fake2"]
    # Both rows are of the fake kind: give them the verdicts a sweep would.
    Provider.objects.create(
        name="fake", kind="fake", health_status="degraded", unavailable_sizes=[SIZE_3]
    )
    Provider.objects.create(name="fake2", kind="fake", weight=1, health_status="healthy")

    assert [p.name for p in healthy_providers("eu-central", 1)] == ["fake", "fake2"]
    assert [p.name for p in healthy_providers("eu-central", 3)] == ["fake2"]
    assert [p.name for p, _ in placement_order("eu-central", None, 3)] == ["fake2"]
    assert sizes_on_sale()["eu-central"] == {1, 2, 3, 4}


def test_with_one_provider_missing_a_size_every_other_purchase_still_provisions(
    client, django_capture_on_commit_callbacks
):
    providers_health_sweep(adapter_for=lambda kind: ScriptedFake(drop_size=SIZE_3))
    assert sizes_on_sale()["eu-central"] == {1, 2, 4}
    event = checkout_completed_event(beacon_name="small1", bundle="starter", tier="t1")
    payload = encode(event)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/webhook/stripe",
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_test_secret"),
        )

    assert response.status_code == 200
    beacon = Beacon.objects.get(name="small1")
    assert (beacon.status, beacon.server_size) == ("active", "cpx22")


def test_one_503_during_a_sweep_is_asked_again_before_a_verdict():
    fake = FlakyFake(failures=1)

    (result,) = providers_health_sweep(adapter_for=lambda kind: fake)

    assert (result.status, fake.calls) == ("healthy", 2)
    assert Provider.objects.get(name="fake").health_status == "healthy"


def test_a_provider_that_keeps_failing_is_critical_after_a_bounded_number_of_tries():
    fake = FlakyFake(failures=100)

    (result,) = providers_health_sweep(adapter_for=lambda kind: fake, timeout=30)

    assert (result.status, fake.calls) == ("critical", 3)
    assert "503 Service Unavailable" in result.findings[0]


def test_retries_stay_within_the_sweeps_time_limit():
    fake = FlakyFake(failures=100)

    # The first pause (0.5 s) does not fit in a 0.3 s limit: one try, then the verdict.
    (result,) = providers_health_sweep(adapter_for=lambda kind: fake, timeout=0.3)

    assert (result.status, fake.calls) == ("critical", 1)


def test_refused_credentials_are_not_asked_again():
    fake = FlakyFake(failures=0, refuse=True)

    (result,) = providers_health_sweep(adapter_for=lambda kind: fake)

    assert (result.status, fake.calls) == ("critical", 1)


def test_a_provider_without_any_needed_size_is_still_critical(monkeypatch):
    monkeypatch.setattr(ScriptedFake, "list_server_types", lambda self: [])

    (result,) = providers_health_sweep(adapter_for=lambda kind: ScriptedFake())

    assert result.status == "critical"
    assert Provider.objects.get(name="fake").unavailable_sizes == [
        "cpx22",
        "cpx32",
        SIZE_3,
        "cpx52",
    ]


def test_a_failed_sweep_keeps_the_sizes_it_knew():
    providers_health_sweep(adapter_for=lambda kind: ScriptedFake(drop_size=SIZE_3))

    providers_health_sweep(adapter_for=lambda kind: ScriptedFake(refuse=True))

    provider = Provider.objects.get(name="fake")
    assert (provider.health_status, provider.unavailable_sizes) == ("critical", [SIZE_3])


def test_size_numbers_follow_bundle_minimum_and_tier():
    from provisioning.provision import size_number

    professional = Bundle.objects.get(slug="professional")  # min_size 3
    starter = Bundle.objects.get(slug="starter")  # min_size 1
    t1, t3 = Tier.objects.get(slug="t1"), Tier.objects.get(slug="t3")

    assert (size_number(professional, t1), size_number(starter, t1)) == (3, 1)
    assert size_number(starter, t3) == 3

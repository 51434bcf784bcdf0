"""`manage.py provider_health` and the sweep behind it."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.errors import ProviderError
from operations.health import providers_health_sweep
from provisioning.fake_cloud import FakeProvider
from provisioning.models import Provider, ProviderHealthCheck

pytestmark = pytest.mark.django_db


class ScriptedFake(FakeProvider):
    """The fake provider with a changeable catalogue, for verdicts on demand."""

    def __init__(
        self,
        *,
        price: int = 5,
        drop_size: str = "",
        refuse: bool = False,
        barrier: threading.Barrier | None = None,
        hang: threading.Event | None = None,
    ):
        self.price, self.drop_size, self.refuse = price, drop_size, refuse
        self.barrier, self.hang = barrier, hang

    def list_locations(self):
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # breaks unless every provider is asked at once
        if self.hang is not None:
            self.hang.wait(timeout=10)
        if self.refuse:
            raise ProviderError("unable to authenticate", transient=False, code="unauthorized")
        return super().list_locations()

    def list_server_types(self):
        types = [t for t in super().list_server_types() if t.name != self.drop_size]
        for server_type in types:
            for location in server_type.monthly_price:
                server_type.monthly_price[location] = Decimal(self.price)
        return types


def test_healthy_fake_gives_a_healthy_row_and_status():
    results = providers_health_sweep(adapter_for=lambda kind: ScriptedFake())

    assert [(r.provider, r.status) for r in results] == [("fake", "healthy")]
    check = ProviderHealthCheck.objects.get()
    assert check.status == "healthy"
    assert check.prices["cpx22@fake-eu-central"] == "5"
    assert Provider.objects.get(name="fake").health_status == "healthy"


def test_a_price_change_since_the_last_sweep_is_degraded():
    providers_health_sweep(adapter_for=lambda kind: ScriptedFake(price=5))

    results = providers_health_sweep(adapter_for=lambda kind: ScriptedFake(price=6))

    assert results[0].status == "degraded"
    assert any("price of cpx22@fake-eu-central changed 5 -> 6" in f for f in results[0].findings)
    assert Provider.objects.get(name="fake").health_status == "degraded"


def test_refused_credentials_are_critical():
    results = providers_health_sweep(adapter_for=lambda kind: ScriptedFake(refuse=True))

    assert results[0].status == "critical"
    assert "credentials refused" in results[0].findings[0]


def test_a_needed_size_gone_is_degraded_not_critical():
    # Only the bundles and tiers needing it go off sale (tests/test_provider_sizes.py).
    results = providers_health_sweep(adapter_for=lambda kind: ScriptedFake(drop_size="cpx42"))

    assert results[0].status == "degraded"
    assert any("server size cpx42 is not offered" in f for f in results[0].findings)


def test_a_provider_that_does_not_answer_in_time_is_critical():
    hang = threading.Event()
    try:
        results = providers_health_sweep(
            adapter_for=lambda kind: ScriptedFake(hang=hang), timeout=0.2
        )
    finally:
        hang.set()

    assert results[0].status == "critical"
    assert "no answer within 0.2 s" in results[0].findings


def test_five_providers_are_checked_at_the_same_time(settings):
    """Each provider waits at a barrier that opens only when all five are being asked at
    once; a sequential sweep would break it. (Wall time is measured in benchmarks/.)"""
    settings.PROVIDERS = ["fake", "p2", "p3", "p4", "p5"]
    for name in settings.PROVIDERS[1:]:
        Provider.objects.create(name=name, kind="fake")
    barrier = threading.Barrier(5)

    results = providers_health_sweep(adapter_for=lambda kind: ScriptedFake(barrier=barrier))

    assert [r.status for r in results] == ["healthy"] * 5
    assert not barrier.broken


def test_old_history_is_pruned(settings):
    settings.PROVIDER_HEALTH_HISTORY_DAYS = 30
    provider = Provider.objects.create(name="fake", kind="fake")
    old = ProviderHealthCheck.objects.create(provider=provider, status="healthy")
    ProviderHealthCheck.objects.filter(pk=old.pk).update(
        checked_at=timezone.now() - timedelta(days=31)
    )

    providers_health_sweep(adapter_for=lambda kind: ScriptedFake())

    assert not ProviderHealthCheck.objects.filter(pk=old.pk).exists()
    assert ProviderHealthCheck.objects.count() == 1


def test_command_prints_one_line_per_provider_and_exits_zero(capsys):
    call_command("provider_health")

    out = capsys.readouterr().out
    assert out.startswith("fake")
    assert "healthy" in out


def test_command_json_output(capsys):
    call_command("provider_health", "--json")

    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["provider"] == "fake"
    assert payload[0]["status"] == "healthy"


def test_command_exits_one_when_a_provider_is_critical(monkeypatch):
    monkeypatch.setattr(FakeProvider, "list_server_types", lambda self: [])

    with pytest.raises(SystemExit) as exited:
        call_command("provider_health")

    assert exited.value.code == 1


def test_command_exits_two_on_an_unknown_provider():
    with pytest.raises(CommandError) as refused:
        call_command("provider_health", "--provider", "nope")

    assert refused.value.returncode == 2
    assert "unknown provider 'nope'" in str(refused.value)
